"""Recognizer accuracy and speed on generated phone photos (model/photos.py).

    .venv/bin/python bench/recognizer_bench.py [--n-digit 1000] [--n-number 500] [--n-blank 300]
        [--n-other 300] [--n-nondigit 300] [--n-crop 300] [--n-speed 300] [--seed 0]
        [--model PATH] [--mnist PATH] [--show-failures DIR]

Handwriting comes from MNIST's *test* split only (the model trains on x_train); "other" photos use
no MNIST at all (font and pen-stroke digits) and stand in for writers the project has never seen.
Prints one table for README: accuracy per kind, false accepts, and time from JPEG bytes to Result
(1280x960 photos, one process, after warm-up).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from model.photos import DEFAULT_MNIST, Truth, load_test_digits, photo_set  # noqa: E402
from model.recognize import Recognizer, Result  # noqa: E402

SPEED_SIZE = (1280, 960)
WARMUP = 10


def outcome(kind: str, truth: Truth, res: Result) -> bool:
    """Whether the recognizer got this photo right."""
    if kind in ("blank", "nondigit"):
        return res.status == "no_digit"
    return res.status == "ok" and res.text == truth.text


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def save_failure(folder: Path, kind: str, i: int, data: bytes, truth: Truth, res: Result) -> None:
    got = res.text if res.status == "ok" else res.status
    style = re.sub(r"[^a-z0-9]+", "-", truth.style.lower())
    ext = "png" if truth.fmt == "png" else "jpg"
    name = f"{kind}_{i:04d}_truth-{truth.text or 'blank'}_got-{got or 'empty'}_{style}.{ext}"
    (folder / name).write_bytes(data)


def facets(truth: Truth) -> list[tuple[str, str]]:
    """What a photo's result can be broken down by, to show where the recognizer fails."""
    meta = truth.meta
    out = [("style", truth.style)]
    if "digit_height" in meta:
        share = meta["digit_height"] / min(truth.size)
        size = "<10%" if share < 0.1 else "10-25%" if share < 0.25 else ">25%"
        out.append(("digit height / short side", size))
    if "ink" in meta:
        out.append(("ink", meta["ink"]))
    if "blur" in meta:
        sigma = meta["blur"]
        blur = "sharp" if sigma < 0.7 else "soft" if sigma < 1.1 else "blurry"
        out.append(("blur", "motion" if "motion_blur" in meta else blur))
    if "shadow" in meta:
        out.append(("light", "shadow"))
    if meta.get("table_edge"):
        out.append(("light", "table edge"))
    if truth.style.startswith("pen/") and len(truth.text) == 1:
        out.append(("way of writing", meta["variants"][0]))
    return out


def evaluate(rec: Recognizer, kind: str, photos: list, failures: Path | None) -> dict:
    right = accepted_wrong = 0
    statuses: Counter = Counter()
    by: dict = defaultdict(lambda: [0, 0])
    confusions: Counter = Counter()
    for i, (data, truth) in enumerate(photos):
        try:
            res = rec.recognize(data)
        except Exception as exc:  # the contract says never; count it loudly instead of dying
            if not statuses["raised"]:
                traceback.print_exc()
            res = Result("raised", error=repr(exc))
        ok = outcome(kind, truth, res)
        right += ok
        statuses[res.status] += 1
        # A false accept: the bot answers with digits that are not what the photo shows.
        accepted_wrong += res.status == "ok" and not ok
        for facet in facets(truth):
            by[facet][0] += ok
            by[facet][1] += 1
        if not ok:
            confusions[(truth.text or "blank", res.text if res.status == "ok" else res.status)] += 1
        if failures and not ok:
            save_failure(failures, kind, i, data, truth, res)
    return {
        "n": len(photos),
        "right": right,
        "false_accept": accepted_wrong,
        "statuses": statuses,
        "by": dict(by),
        "confusions": confusions,
    }


def speed(rec: Recognizer, photos: list) -> dict:
    for data, _ in photos[:WARMUP]:
        rec.recognize(data)
    times, cpu = [], []
    start = time.perf_counter()
    for data, _ in photos[WARMUP:]:
        t0, c0 = time.perf_counter(), time.process_time()
        rec.recognize(data)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    total = time.perf_counter() - start
    ms = np.array(times) * 1000
    return {
        "n": len(times),
        "cpu_median": float(np.median(cpu) * 1000),  # this process's CPU, all its threads
        "median": float(np.median(ms)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "per_s": len(times) / total,
        "kb": statistics.mean(len(d) for d, _ in photos[WARMUP:]) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-digit", type=int, default=1000, help="single-digit photos")
    parser.add_argument("--n-number", type=int, default=500, help="2-5 digit number photos")
    parser.add_argument("--n-blank", type=int, default=300, help="photos with no digit")
    parser.add_argument("--n-other", type=int, default=300, help="non-MNIST digit photos")
    parser.add_argument("--n-nondigit", type=int, default=300,
                        help="photos of words, doodles, smudges...: must be no_digit")
    parser.add_argument("--n-crop", type=int, default=300,
                        help="digits cut out to their ink (scans, datasets), 16-300 px")
    parser.add_argument("--n-speed", type=int, default=300, help="1280x960 JPEGs to time")
    parser.add_argument("--n", type=int, help="scale: sets every count to N (speed: N too)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="model dir, .tflite or .keras (default model/release)")
    parser.add_argument(
        "--mnist",
        default=os.environ.get("MNIST_PATH") or str(DEFAULT_MNIST),
        help="Keras mnist.npz; only x_test/y_test are read (default $MNIST_PATH)",
    )
    parser.add_argument(
        "--show-failures",
        type=Path,
        metavar="DIR",
        help="write every misread photo here, truth and answer in its name",
    )
    args = parser.parse_args()
    counts = {
        "digit": args.n_digit,
        "number": args.n_number,
        "blank": args.n_blank,
        "other": args.n_other,
        "nondigit": args.n_nondigit,
        "crop": args.n_crop,
    }
    n_speed = args.n_speed
    if args.n is not None:
        counts = dict.fromkeys(counts, args.n)
        n_speed = args.n
    if args.show_failures:
        args.show_failures.mkdir(parents=True, exist_ok=True)

    test_digits = load_test_digits(args.mnist)
    rec = Recognizer(args.model)
    print(
        f"model: {rec.model_path}   seed: {args.seed}   MNIST test digits: {len(test_digits[0])}",
        flush=True,
    )

    results = {}
    for kind, n in counts.items():
        if not n:
            continue
        t0 = time.perf_counter()
        photos = photo_set(n, kind, args.seed, test_digits=test_digits)
        made = time.perf_counter() - t0
        results[kind] = evaluate(rec, kind, photos, args.show_failures)
        print(f"  {kind}: {n} photos generated in {made:.0f} s, read", flush=True)
    timing = None
    load_before = f"{os.getloadavg()[0]:.1f}"
    if n_speed:
        photos = photo_set(
            n_speed + WARMUP,
            "digit",
            args.seed + 1,
            size=SPEED_SIZE,
            screen=False,
            test_digits=test_digits,
        )
        timing = speed(rec, photos)

    cmd = " ".join(["python", "bench/recognizer_bench.py", *sys.argv[1:]])
    print(f"\n$ {cmd}")
    labels = {
        "digit": "single digits, correct",
        "number": "whole numbers (2-5 digits), exactly right",
        "blank": "blank paper, reported no_digit",
        "other": "other sources (non-MNIST), correct",
        "nondigit": "not digits (words, doodles...), no_digit",
        "crop": "digits cut out to their ink, correct",
    }
    print(f"| {'photos':<44} | {'n':>5} | {'result':>7} | {'false accepts':>13} |")
    print(f"|{'-' * 46}|{'-' * 7}|{'-' * 9}|{'-' * 15}|")
    for kind, r in results.items():
        print(
            f"| {labels[kind]:<44} | {r['n']:>5} | {pct(r['right'], r['n']):>7} | "
            f"{pct(r['false_accept'], r['n']):>13} |"
        )
    if timing:
        print(
            f"\nspeed, {SPEED_SIZE[0]}x{SPEED_SIZE[1]} JPEG bytes -> Result, one process, "
            f"{timing['n']} photos (~{timing['kb']:.0f} KB) after {WARMUP} warm-up:"
        )
        print(
            f"median {timing['median']:.1f} ms | p90 {timing['p90']:.1f} ms | "
            f"p99 {timing['p99']:.1f} ms | {timing['per_s']:.0f} photos/s | "
            f"CPU median {timing['cpu_median']:.1f} ms"
        )
        print(
            f"machine: {os.cpu_count()} CPUs, load average {load_before} before, "
            f"{os.getloadavg()[0]:.1f} after (wall times grow when others share the CPUs)"
        )
    print("\ndetail (share right, photos):")
    for kind, r in results.items():
        status = ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items()))
        print(f"  {kind}: status {status}")
        groups: dict = defaultdict(list)
        for (facet, value), (a, b) in sorted(r["by"].items()):
            groups[facet].append(f"{value} {pct(a, b)} ({b})")
        for facet, parts in groups.items():
            print(f"    by {facet}: " + ", ".join(parts))
        common = ", ".join(f"{t}->{g} x{c}" for (t, g), c in r["confusions"].most_common(8))
        if common:
            print(f"    most common misreads: {common}")
    if args.show_failures:
        print(f"\nfailures written to {args.show_failures}")


if __name__ == "__main__":
    main()
