"""``gtsp report DIR [--out REPORT] [--overwrite]``."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    """The ``report`` subcommand."""
    p = sub.add_parser("report", help="paired tables, plots and an HTML page over many runs",
                       description="Read every results.json under DIR (e.g. a sweep's out folder), compare each "
                                   "run with the dense run of the same fold and seed, and write report.md, "
                                   "report.json, report.html (self-contained) and PNG figures.")
    p.add_argument("root", metavar="DIR", help="folder searched recursively for results.json")
    p.add_argument("--out", help="report folder (default DIR/report); refused if it already holds files")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a previous report in --out (only the files a report writes are removed)")


def cmd_report(args: argparse.Namespace) -> None:
    """Build the report and say where it is."""
    from gtsp.report.build import build_report  # matplotlib loads only for this command

    report = build_report(args.root, args.out or Path(args.root) / "report", overwrite=args.overwrite)
    for warning in report.warnings:
        print(f"warning: {warning}")
    print(f"report of {report.runs} runs in {report.groups} settings: {report.out / 'report.html'} "
          f"(also report.md, report.json, {len(report.figures)} PNG figures)")
