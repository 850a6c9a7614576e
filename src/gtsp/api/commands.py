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
    i = sub.add_parser("import-pyg", help="convert a PyG GPSConv model into a gtsp model file",
                       description="Build the PyG model with a function of yours, load its trained weights, "
                                   "convert it into gtsp's GraphGPS (same weights, same logits) and write a "
                                   "model file that gtsp evaluate, predict and prune read.")
    i.add_argument("builder", help="FILE.py:FUNCTION, a function without arguments returning the PyG model")
    i.add_argument("--weights", help="the model's trained state_dict (torch.save); read with weights_only=True")
    i.add_argument("--dataset", required=True, help="dataset the model reads (its feature widths and outputs)")
    i.add_argument("--pool", choices=["sum", "mean"], default="sum", help="the model's graph pooling (default sum)")
    i.add_argument("--part", action="append", default=[], metavar="PART=ATTRIBUTE",
                   help="attribute name of a part when it differs from PyG's example, e.g. layers=blocks "
                        "(parts: node_encoder, pe_norm, pe_encoder, edge_encoder, layers, readout)")
    i.add_argument("--out", required=True, help="model file to write, e.g. converted.safetensors")
    i.add_argument("--data-root", help="folder with original data files (default $GTSP_DATA)")
    i.add_argument("--cache-root", help="writable folder for processed data")


def cmd_import_pyg(args: argparse.Namespace) -> None:
    """``gtsp import-pyg``: build the user's model, load its weights, :func:`gtsp.from_pyg`, save."""
    import torch

    from gtsp.api.graphs import load_dataset
    from gtsp.api.model_files import save_model
    from gtsp.api.pyg_import import from_pyg
    from gtsp.api.pyg_parts import DEFAULT_NAMES
    from gtsp.cli_values import parse_pairs
    from gtsp.errors import GtspError

    model = _built(args.builder)
    if args.weights:
        try:
            model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
        except (OSError, RuntimeError) as err:
            raise GtspError(f"--weights {args.weights}: {str(err).splitlines()[0]}: give the state_dict "
                            "saved from this model (torch.save(model.state_dict(), FILE))") from None
    names = {k: v for item in args.part for k, v in parse_pairs(item, "--part").items()}
    unknown = sorted(set(names) - set(DEFAULT_NAMES))
    if unknown:
        raise GtspError(f"--part {unknown[0]}: unknown part; parts are {', '.join(DEFAULT_NAMES)}")
    data = load_dataset(args.dataset, data_root=args.data_root, cache_root=args.cache_root)
    converted = from_pyg(model.eval(), data, pool=args.pool, **names)
    print(f"wrote {save_model(converted, args.out)}")


def _built(builder: str):
    """The module returned by ``FILE.py:FUNCTION`` (the user's code, run because they named it)."""
    import importlib.util
    from pathlib import Path

    from torch import nn

    from gtsp.errors import GtspError

    path, _, function = builder.rpartition(":")
    if not path or not function or not Path(path).is_file():
        raise GtspError(f"builder {builder!r}: give FILE.py:FUNCTION with an existing file, e.g. my_model.py:build")
    spec = importlib.util.spec_from_file_location("gtsp_user_builder", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, function, None)):
        raise GtspError(f"{path} has no function {function!r}: define def {function}(): return the model")
    model = getattr(module, function)()
    if not isinstance(model, nn.Module):
        raise GtspError(f"{builder} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def cmd_prune(args: argparse.Namespace) -> None:
    """``gtsp prune``: :func:`gtsp.prune` with the flags given."""
    from gtsp.api.pruning import prune
    from gtsp.cli_values import parse_pairs, prune_args, ratio, yaml_value

    ratios = {k: ratio(k, v) for k, v in parse_pairs(args.prune or "", "--prune").items()}
    budget = {k: yaml_value(v) for k, v in parse_pairs(args.budget or "", "--budget").items()}
    options: dict[str, Any] = {k: getattr(args, k) for k in TUNING_FLAGS if getattr(args, k) is not None}
    result = prune(args.model_file, prune=ratios, budget=budget, prune_args=prune_args(args.prune_arg),
                   finetune_epochs=args.finetune_epochs, dataset=args.dataset, out=args.out,
                   progress=not args.quiet, overwrite=args.overwrite, data_root=args.data_root,
                   cache_root=args.cache_root, device=args.device, **options)
    print(f"compacted model: {result.out / 'compacted.safetensors'}")
