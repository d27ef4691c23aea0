"""Train the default CNN and the seed MLP with the project's CLI; print accuracy and wall time.

    MNIST_PATH=../shared/data/mnist.npz .venv/bin/python bench/train_bench.py [--archs cnn mlp]

Each run is a fresh `python -m model.train --arch A` process with its defaults on the full
data, so the wall time includes TensorFlow's start, evaluation, LiteRT export and the plots.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

CNN_TIME_BUDGET_S = 20 * 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", nargs="+", default=["cnn", "mlp"], choices=["cnn", "mlp"])
    parser.add_argument("--out-root", type=Path, default=Path("runs/bench"))
    args = parser.parse_args()
    if not os.environ.get("MNIST_PATH"):
        print("set MNIST_PATH to the Keras mnist.npz (e.g. ../shared/data/mnist.npz)")
        return 2

    rows = []
    for arch in args.archs:
        out = args.out_root / arch
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "model.train", "--arch", arch, "--out", str(out)],
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - started
        if proc.returncode != 0:
            print(f"{arch}: training failed\n{proc.stderr[-2000:]}")
            return 1
        metrics = json.loads((out / "metrics.json").read_text())
        rows.append((arch, metrics, wall))
        print(f"{arch}: {metrics['test_accuracy']:.2%} in {wall:.0f} s", flush=True)

    print(f"\nmachine: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}")
    print(
        f"{'arch':5} {'params':>8} {'epochs':>6} {'test acc':>9} {'test loss':>9} "
        f"{'fit s':>6} {'wall s':>7}"
    )
    for arch, m, wall in rows:
        print(
            f"{arch:5} {m['params']:>8,} {m['epochs_run']:>6} {m['test_accuracy']:>9.2%} "
            f"{m['test_loss']:>9.4f} {m['train_seconds']:>6.0f} {wall:>7.0f}"
        )
        if arch == "cnn":
            verdict = "within" if wall <= CNN_TIME_BUDGET_S else "OVER"
            print(f"      cnn wall time {wall / 60:.1f} min: {verdict} the 20-minute budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
