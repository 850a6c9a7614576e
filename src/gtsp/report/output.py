"""The report folder: refuse to write over a previous report unless asked, and then remove only
the files a report writes (other files there stay)."""
from __future__ import annotations

import re
from pathlib import Path

from gtsp.errors import GtspError

PAGES = ("report.md", "report.json", "report.html")
FIGURE_PREFIXES = ("effects-", "cost-", "ratio-", "curves-", "pareto-")


def report_files(out: Path) -> list[Path]:
    """The files in ``out`` that a report writes (pages and figures)."""
    figures = [p for p in out.glob("*.png") if p.name.startswith(FIGURE_PREFIXES)]
    return sorted([out / name for name in PAGES if (out / name).is_file()] + figures)


def prepare(out: Path, overwrite: bool) -> None:
    """Make ``out`` ready for a report: new or empty, or (``overwrite``) cleared of report files."""
    if out.exists() and not out.is_dir():
        raise GtspError(f"--out {out} is a file: give a folder for the report (it holds several files)")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise GtspError(f"--out {out} already holds files: pass --overwrite to replace the report files "
                            "there (other files stay), or choose another --out")
        for path in report_files(out):
            path.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GtspError(f"cannot create the report folder {out}: {err.strerror}; choose another --out") from None


def safe(name: str) -> str:
    """``name`` as a file-name part."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)
