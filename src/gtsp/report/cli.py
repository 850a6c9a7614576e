"""``gtsp report DIR [--out REPORT]``."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    """The ``report`` subcommand."""
    p = sub.add_parser("report", help="tables, Pareto plots and an HTML page over many runs",
                       description="Read every results.json under DIR (e.g. a sweep's out folder) and write "
                                   "report.md, report.json, report.html (self-contained) and PNG figures.")
    p.add_argument("root", metavar="DIR", help="folder searched recursively for results.json")
    p.add_argument("--out", help="report folder (default DIR/report)")


def cmd_report(args: argparse.Namespace) -> None:
    """Build the report and say where it is."""
    from gtsp.report.build import build_report  # matplotlib loads only for this command

    report = build_report(args.root, args.out or Path(args.root) / "report")
    for warning in report.warnings:
        print(f"warning: {warning}")
    print(f"report of {report.runs} runs in {report.groups} settings: {report.out / 'report.html'} "
          f"(also report.md, report.json, {len(report.figures)} PNG figures)")
