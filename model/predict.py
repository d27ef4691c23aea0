"""Read the digits in photos from the command line.

    python -m model.predict photo.jpg scan.png
    python -m model.predict --json --model model/release/model.tflite *.jpg

The model is loaded once for all files. A file that is missing or not a readable image is
reported (status "error") and the run goes on with the next file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from model.recognize import Recognizer, Result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m model.predict",
        description="Read handwritten digits and numbers from photos.",
        epilog=(
            "Exit status: 0 when every file was processed, even if some had no digit or could "
            "not be read (each such file is reported with status no_digit or error); 2 for bad "
            "arguments or a model that cannot be loaded."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="photos (JPEG, PNG, WebP, ...)")
    parser.add_argument(
        "--json", action="store_true",
        help='one JSON object per line and file: {"file", "status", "text", "digits", "error"}',
    )
    parser.add_argument(
        "--model", type=Path, default=None,
        help="a model directory, .tflite or .keras file (default: model/release)",
    )
    return parser.parse_args(argv)


def read_file(rec: Recognizer, path: str) -> Result:
    """The recognizer's result for one file; a file that cannot be opened is an error result."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return Result("error", error="No such file.")
    except OSError as exc:
        return Result("error", error=f"Can't read that file ({exc.strerror or exc}).")
    return rec.recognize(data)


def human(path: str, res: Result) -> str:
    """One line for people: the number and each digit's confidence, or what went wrong."""
    if res.status == "ok":  # several lines of writing: " / " between them
        sure = ", ".join(f"{d.digit} {d.confidence:.0%}" for d in res.digits)
        return f"{path}: {' / '.join(res.lines)}  ({sure})"
    if res.status == "no_digit":
        return f"{path}: no digit found"
    return f"{path}: error: {res.error}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        rec = Recognizer(args.model)
    except (OSError, ValueError) as exc:
        print(f"error: cannot load the model: {exc}", file=sys.stderr)
        return 2
    for path in args.files:
        res = read_file(rec, path)
        line = json.dumps(res.to_json(path), ensure_ascii=False) if args.json else human(path, res)
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
