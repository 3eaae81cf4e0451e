"""`python -m mailbot.documents.samples OUTDIR` writes documents people can look at."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mailbot.documents.samples import main

from .conftest import Decoder


def test_samples_entry_point_writes_every_document(tmp_path: Path, zbar: Decoder) -> None:
    assert main([str(tmp_path / "out")]) == 0
    names = {path.name for path in (tmp_path / "out").iterdir()}
    assert {"invoice.pdf", "certificate.pdf", "registry.xlsx"} <= names
    png = next((tmp_path / "out").glob("*.png"))
    assert zbar(png) == [f"EAN-13:{png.stem}"]
    assert (tmp_path / "out" / f"{png.stem}.svg").read_bytes().startswith(b"<?xml")
    assert all((tmp_path / "out" / name).read_bytes()[:4] == b"%PDF" for name in names
               if name.endswith(".pdf"))  # fmt: skip


def test_samples_runs_as_a_module_and_needs_an_outdir(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "mailbot.documents.samples"]
    assert subprocess.run(args, capture_output=True, check=False).returncode == 2
    done = subprocess.run([*args, str(tmp_path)], capture_output=True, check=True)
    assert str(tmp_path / "invoice.pdf") in done.stdout.decode()
