"""``gtsp prune`` and ``gtsp import-pyg``: the command-line faces of :func:`gtsp.prune` and
:func:`gtsp.from_pyg`; they parse and call, nothing else."""
from __future__ import annotations

import argparse
from typing import Any

# flag -> RunConfig field a fine-tuning run may override (the trained run's value otherwise)
TUNING_FLAGS = {"seed": int, "folds": int, "fold": int, "batch_size": int, "lr": float, "weight_decay": float,
                "warmup_epochs": int, "grad_clip": float, "threads": int}


def add_parsers(sub) -> None:
    """Add ``prune`` and ``import-pyg`` to the ``gtsp`` sub-commands."""
    p = sub.add_parser("prune", help="prune a trained model by fine-tuning it, then compact and export it",
                       description="Start from a dense model file's trained weights, fine-tune for "
                                   "--finetune-epochs with every pruning schedule compressed into them, compact, "
                                   "evaluate, and write the run folder (results.json, compacted.safetensors).")
    p.add_argument("model_file", help="dense model file (gtsp export of a dense run, a run's model.safetensors, "
                                      "or gtsp import-pyg's output)")
    p.add_argument("--dataset", help="dataset to fine-tune on (default: the one the model was trained on)")
    p.add_argument("--prune", help="fraction REMOVED per dimension, e.g. head=0.5,layer=0.25")
    p.add_argument("--budget", help="let gtsp choose the ratios: flops=F or latency=F (as for gtsp train)")
    p.add_argument("--prune-arg", action="append", default=[], metavar="DIM.KEY=VALUE",
                   help="a sparsifier option, e.g. --prune-arg layer.criterion=cka (repeatable)")
    p.add_argument("--finetune-epochs", type=int, default=10, help="fine-tuning epochs (default 10)")
    p.add_argument("--out", default="runs/pruned", help="run folder (default runs/pruned); new or empty unless "
                                                        "--overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.add_argument("--data-root", help="folder with original data files (default $GTSP_DATA)")
    p.add_argument("--cache-root", help="writable folder for processed data")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to train (default auto)")
    for flag, kind in TUNING_FLAGS.items():
        p.add_argument(f"--{flag.replace('_', '-')}", type=kind, dest=flag,
                       help=f"{flag.replace('_', ' ')} (default: the trained run's; warm-up 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_prune(args: argparse.Namespace) -> None:
    """``gtsp prune``: :func:`gtsp.prune` with the flags given."""
    from gtsp.api.pruning import prune
    from gtsp.cli import _parse_pairs, _prune_args, _ratio, _yaml_value

    ratios = {k: _ratio(k, v) for k, v in _parse_pairs(args.prune or "", "--prune").items()}
    budget = {k: _yaml_value(v) for k, v in _parse_pairs(args.budget or "", "--budget").items()}
    options: dict[str, Any] = {k: getattr(args, k) for k in TUNING_FLAGS if getattr(args, k) is not None}
    result = prune(args.model_file, prune=ratios, budget=budget, prune_args=_prune_args(args.prune_arg),
                   finetune_epochs=args.finetune_epochs, dataset=args.dataset, out=args.out,
                   progress=not args.quiet, overwrite=args.overwrite, data_root=args.data_root,
                   cache_root=args.cache_root, device=args.device, **options)
    print(f"compacted model: {result.out / 'compacted.safetensors'}")
