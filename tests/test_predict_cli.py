"""`python -m model.predict` run as a real subprocess on real files, good and broken."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model.recognize import Recognizer
from tests.support.paper import encode, number_photo, paper, sure_digits

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "model.predict", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A number, a blank page, a truncated JPEG, a PDF and a missing path."""
    folder = tmp_path_factory.mktemp("photos")
    digits = sure_digits(Recognizer())
    number, _ = number_photo(digits, "2026", np.random.default_rng(7), height=140, x=150)
    paths = {
        "number": folder / "number 2026.jpg",
        "blank": folder / "blank.jpg",
        "truncated": folder / "truncated.jpg",
        "pdf": folder / "doc.pdf",
        "missing": folder / "nope.png",
    }
    paths["number"].write_bytes(number)
    paths["blank"].write_bytes(encode(paper(1280, 960, np.random.default_rng(7), "ruled")))
    paths["truncated"].write_bytes(number[: len(number) // 3])
    paths["pdf"].write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << >> endobj\n")
    return paths


def test_json_lines_one_per_file_in_order(files: dict[str, Path]) -> None:
    order = ["number", "truncated", "blank", "pdf", "missing"]
    out = run_cli("--json", *(str(files[k]) for k in order))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == len(order)
    rows = [json.loads(line) for line in lines]
    assert [r["file"] for r in rows] == [str(files[k]) for k in order]
    number, truncated, blank, pdf, missing = rows
    assert number["status"] == "ok" and number["text"] == "2026"
    assert set(number) == {"file", "status", "text", "digits"}
    assert [d["digit"] for d in number["digits"]] == [2, 0, 2, 6]
    for d in number["digits"]:
        assert set(d) == {"digit", "confidence", "box", "line"}
        assert 0 < d["confidence"] <= 1 and len(d["box"]) == 4
    assert [d["box"][0] for d in number["digits"]] == sorted(d["box"][0] for d in number["digits"])
    assert blank == {"file": str(files["blank"]), "status": "no_digit", "text": "", "digits": []}
    for row in (truncated, pdf, missing):
        assert row["status"] == "error" and row["text"] == "" and row["digits"] == []
        assert isinstance(row["error"], str) and row["error"]
    assert "image" in pdf["error"] and "file" in missing["error"].lower()


def test_human_lines(files: dict[str, Path]) -> None:
    out = run_cli(str(files["number"]), str(files["blank"]), str(files["pdf"]))
    assert out.returncode == 0, out.stderr
    number, blank, pdf = out.stdout.splitlines()
    assert number.startswith(f"{files['number']}: 2026")
    assert blank == f"{files['blank']}: no digit found"
    assert pdf.startswith(f"{files['pdf']}: error: ")


def test_model_option_and_bad_model(files: dict[str, Path], tmp_path: Path) -> None:
    tflite = ROOT / "model" / "release" / "model.tflite"
    out = run_cli("--json", "--model", str(tflite), str(files["number"]))
    assert out.returncode == 0 and json.loads(out.stdout)["text"] == "2026"
    out = run_cli("--model", str(tmp_path / "none.tflite"), str(files["number"]))
    assert out.returncode == 2 and out.stdout == ""
    assert "cannot load the model" in out.stderr


def test_help_documents_exit_status() -> None:
    out = run_cli("--help")
    assert out.returncode == 0 and "Exit status: 0" in out.stdout and "--json" in out.stdout
