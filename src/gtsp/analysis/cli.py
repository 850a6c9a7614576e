"""``gtsp analyze RUN --out DIR [--graphs N]``."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    """The ``analyze`` subcommand."""
    p = sub.add_parser("analyze", help="what is redundant and what was pruned: heads, layers, attention, tokens, "
                                       "training curves",
                       description="RUN is a run folder of gtsp train or a model file of gtsp export: writes head "
                                   "and layer redundancy, attention received, kept tokens (token-pruned models) and "
                                   "the training vs test curve, each a PNG plus JSON. RUN may also be a folder "
                                   "holding several runs (e.g. weight sparsities): their training vs test curves.")
    p.add_argument("run", metavar="RUN", help="run folder, exported model file, or folder of runs")
    p.add_argument("--out", help="folder for the PNG and JSON files (default RUN/analysis, or beside a model file)")
    p.add_argument("--graphs", type=int, default=32, help="test graphs in the fixed sample (default 32)")
    p.add_argument("--data-root", help="folder with original data files (default $GTSP_DATA)")
    p.add_argument("--cache-root", help="writable folder for processed data (default $GTSP_CACHE or ~/.cache/gtsp)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1)")


def cmd_analyze(args: argparse.Namespace) -> None:
    """Run the analyses and list what was written."""
    import torch

    from gtsp.analysis.analyze import analyze  # matplotlib and RDKit load only for this command

    torch.set_num_threads(max(1, args.threads))
    source = Path(args.run)
    out = Path(args.out) if args.out else (source / "analysis" if source.is_dir() else
                                           source.with_name(source.name + ".analysis"))
    written = analyze(source, out, graphs=args.graphs, data_root=args.data_root, cache_root=args.cache_root)
    print(f"analysis of {source} in {out}: {', '.join(sorted(p.name for p in written))}")
