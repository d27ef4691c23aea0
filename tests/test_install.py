"""Serving without TensorFlow: the bot answers from an environment with only the serving lock's
packages, and /retrain there says what to install.

- In `make test` (seconds): a virtual environment holding exactly the distributions of
  requirements/serve.txt, linked from the development venv instead of installed (TensorFlow and
  Keras are simply not there).
- `make check-install` (marked slow, minutes): `make serve-venv` in a temporary directory (a
  real `pip install` from the lock, pip's cache helps), the installed package answers a photo
  from outside the checkout, `import tensorflow` fails; then `make train-extra` and /retrain
  trains and reports.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.support import ADMIN_ID, ROOT, BotApiStandIn, BotProcess
from tests.support.conversation import ask, reading
from tests.support.pictures import digit_photo

REPLY_S = 30
NO_TENSORFLOW = "this installation has no TensorFlow"


def locked(lock: Path) -> list[Requirement]:
    """The pinned requirements of a lock file that apply to this machine."""
    pins = [Requirement(line.split(" \\")[0].strip())
            for line in lock.read_text().splitlines() if re.match(r"[A-Za-z0-9]", line)]
    return [r for r in pins if r.marker is None or r.marker.evaluate()]


def linked_serving_venv(venv: Path) -> Path:
    """A venv with the serve lock's distributions only, symlinked from this one."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = venv / "lib" / version / "site-packages"
    for requirement in locked(ROOT / "requirements" / "serve.txt"):
        dist = importlib.metadata.distribution(requirement.name)
        assert requirement.specifier.contains(dist.version), (requirement, dist.version)
        tops = {Path(f).parts[0] for f in dist.files or [] if ".." not in Path(f).parts}
        for top in tops:
            if not (site / top).exists():
                (site / top).symlink_to(dist.locate_file(top))
    return venv / "bin" / "python"


def run_make(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"


def python_can_import(python: Path, module: str) -> bool:
    done = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True,
                          cwd=ROOT, timeout=120)
    return done.returncode == 0


def check_serves_and_says_what_to_install(api: BotApiStandIn) -> None:
    user = 801
    for index in range(2):
        image, label = digit_photo(index)
        mid = api.send_photo(user, image)
        assert reading(api.run(api.wait_reply(user, mid, timeout=REPLY_S))) == str(label)
    stats = ask(api, user, lambda: api.send_command(user, "stats"), timeout=REPLY_S)
    assert stats.photo_bytes and "Model v1" in stats.text  # charts: matplotlib is there
    refusal = ask(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "retrain", "1"))
    assert NO_TENSORFLOW in refusal.text and "pip install 'digitbot[train]'" in refusal.text


@pytest.mark.timeout(180)
def test_serving_lock_alone_serves_without_tensorflow(tmp_path: Path) -> None:
    python = linked_serving_venv(tmp_path / "venv")
    assert python_can_import(python, "telegram") and python_can_import(python, "cv2")
    assert not python_can_import(python, "tensorflow")
    assert not python_can_import(python, "keras")
    with BotApiStandIn().in_thread() as api:
        bot = BotProcess(api, tmp_path / "data").start(python=str(python))
        try:
            check_serves_and_says_what_to_install(api)
        finally:
            bot.stop_and_check_log()


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_fresh_install_serves_without_tensorflow_and_the_train_extra_retrains(
    tmp_path: Path,
) -> None:
    venv = tmp_path / "venv"
    started = time.monotonic()
    make_serve_venv = ["make", "-s", "-C", str(ROOT), f"VENV_DIR={venv}", "serve-venv"]
    run_make(make_serve_venv)
    print(f"make serve-venv: {time.monotonic() - started:.0f} s")
    python = venv / "bin" / "python"
    assert not python_can_import(python, "tensorflow")
    outside = tmp_path / "elsewhere"  # not the checkout: the installed package must serve
    outside.mkdir()
    with BotApiStandIn().in_thread() as api:
        bot = BotProcess(api, tmp_path / "data")
        bot.cwd = outside
        bot.start(python=str(python))
        try:
            assert f"Serving model v1 from {venv}" in bot.log()
            check_serves_and_says_what_to_install(api)

            started = time.monotonic()
            run_make([*make_serve_venv[:-1], "train-extra"])
            print(f"make train-extra: {time.monotonic() - started:.0f} s")
            assert python_can_import(python, "tensorflow")
            started = time.monotonic()  # no restart: the next /retrain finds TensorFlow
            ask(api, ADMIN_ID, lambda: api.send_command(ADMIN_ID, "retrain", "1"))
            report = api.run(api.wait_message(
                ADMIN_ID, lambda c: c.method == "sendMessage" and "meanwhile" not in c.text,
                timeout=600, after=started))
            print(f"/retrain 1: {time.monotonic() - started:.0f} s: {report.text}")
            assert re.search(r"(Kept v1|v2 is now serving)(.|\n)*MNIST test split of "
                             r"mnist_sample\.npz", report.text), report.text
        finally:
            bot.stop_and_check_log()
