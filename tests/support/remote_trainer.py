"""Plays a trainer on another machine for RETRAIN_COMMAND (tests/test_retrain_command.py).

    python tests/support/remote_trainer.py CONTROL_DIR

Does what the contract in docs/operations.md asks of any RETRAIN_COMMAND: reads the job from
the DIGITBOT_* variables, prints one `PROGRESS {json}` line per epoch, and leaves the result in
DIGITBOT_RUN_DIR (model.tflite + metrics.json: here the release model's files, as if they came
back from the remote host). CONTROL_DIR/behaviour picks what happens ("ok", "no-model": exit 0
without a result, "fail": exit 3 with a message on stderr); CONTROL_DIR/seen.json records the
environment and niceness it ran with.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

RELEASE = Path(__file__).resolve().parents[2] / "model" / "release"


def main(control: Path) -> int:
    behaviour = (control / "behaviour").read_text().strip()
    seen = {"env": dict(os.environ), "nice": os.nice(0)}
    (control / "seen.json").write_text(json.dumps(seen))
    if behaviour == "fail":
        print("remote trainer: the GPU host is unreachable", file=sys.stderr)
        return 3
    epochs = int(os.environ["DIGITBOT_EPOCHS"] or 3)
    for epoch in range(1, epochs + 1):
        print("PROGRESS " + json.dumps({"epoch": epoch, "epochs": epochs, "loss": 0.1,
                                        "val_accuracy": 0.99}), flush=True)
    run_dir = Path(os.environ["DIGITBOT_RUN_DIR"])
    run_dir.mkdir(parents=True, exist_ok=True)
    if behaviour == "ok":
        for name in ("model.tflite", "metrics.json"):
            shutil.copy(RELEASE / name, run_dir / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
