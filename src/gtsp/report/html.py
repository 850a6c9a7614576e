"""``report.html``: one self-contained page (tables as HTML, figures inlined as base64 PNG).

It needs no other file, no script and no network, so it can be mailed or archived as is.
Figures are shown at their own pixel size (capped at the page width), so their text reads
as large as the page's.
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222;
       font-size: 16px; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td:nth-child(1), td:nth-child(2) { text-align: left; }
figure { margin: 1.5em 0; }
figcaption { font-size: 0.95em; color: #444; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.notes { color: #444; font-size: 0.95em; }
"""


class HtmlTable(Protocol):
    def html(self) -> str: ...


@dataclass
class Section:
    """A dataset's heading, its tables, notes under them and its figures (caption, PNG file)."""

    title: str
    tables: list[HtmlTable]
    notes: list[str] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)


def render_page(title: str, notes: list[str], sections: list[Section]) -> str:
    """The whole page as one string."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>", _list(notes)]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>{section.tables[0].html()}{_list(section.notes)}")
        if len(section.tables) > 1:
            parts.append("<h3>Runs without a dense partner (listed, not averaged in)</h3>"
                         + "".join(t.html() for t in section.tables[1:]))
        for caption, png in section.figures:
            parts.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{_b64(png)}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _list(items: list[str]) -> str:
    return "<ul class='notes'>" + "".join(f"<li>{html.escape(n)}</li>" for n in items) + "</ul>" if items else ""


def _b64(png: Path) -> str:
    return base64.b64encode(png.read_bytes()).decode("ascii")
