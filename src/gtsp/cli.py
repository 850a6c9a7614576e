"""The ``gtsp`` command: parse, validate, call the library. Nothing else lives here.

Errors the user can fix (:class:`gtsp.errors.GtspError`) print one line and exit 2.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from gtsp.analysis import cli as analysis_cli
from gtsp.api import commands as api_commands
from gtsp.cli_values import DISK_ERRORS, disk_error_line, parse_pairs, prune_args, ratio, yaml_value
from gtsp.config import RunConfig, load_yaml, merge
from gtsp.errors import GtspError, RelayedError
from gtsp.report import cli as report_cli
from gtsp.sweep import cli as sweep_cli

# CLI flag -> key inside RunConfig.model_args
MODEL_FLAGS = {"hidden": int, "layers": int, "heads": int, "dropout": float, "attn_dropout": float}


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a graph transformer and write results.json",
                       description="Train a backbone on a dataset; flags override --config.")
    p.add_argument("--config", help="YAML file with any RunConfig field (flags override it)")
    p.add_argument("--model", help="backbone: gps, graphtrans or graphormer (default gps)")
    p.add_argument("--dataset", help="TU name (MUTAG, NCI1, IMDB-BINARY, ...), ogbg-mol* name, or a "
                                     "dataset made by 'gtsp data build-mol' (default MUTAG, shipped)")
    p.add_argument("--data-root", help="folder with original data files (default $GTSP_DATA)")
    p.add_argument("--cache-root", help="writable folder for processed data (default $GTSP_CACHE or ~/.cache/gtsp)")
    p.add_argument("--out", help="run folder for checkpoint, metrics.jsonl, results.json (default runs/latest); "
                                 "it must be new or empty unless --resume or --overwrite")
    p.add_argument("--seed", type=int, help="random seed for split, init and batches (default 0)")
    p.add_argument("--epochs", type=int, help="training epochs (default 50)")
    p.add_argument("--batch-size", type=int, help="graphs per batch (default 128)")
    p.add_argument("--lr", type=float, help="peak AdamW learning rate (default 1e-3)")
    p.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 1e-5)")
    p.add_argument("--warmup-epochs", type=int, help="linear warm-up epochs before cosine decay (default 5)")
    p.add_argument("--select-from", type=int, metavar="EPOCH",
                   help="choose the best model among epochs >= EPOCH only (default 1: every epoch); guards "
                        "against a tiny validation split ranking a barely trained early epoch first")
    p.add_argument("--grad-clip", type=float, help="gradient-norm clip, 0 = off (default 5)")
    p.add_argument("--bucket-pool", type=int, help="training batches per size-sorted pool (default 1 = plain "
                                                  "shuffled batches; 16 trains faster but cost NCI1 accuracy)")
    p.add_argument("--no-bucket", dest="bucket_pool", action="store_const", const=1,
                   help="plain shuffled batches (the default; same as --bucket-pool 1)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default 1: faster for small graphs)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train (default auto)")
    p.add_argument("--folds", type=int, help="TU datasets: K-fold cross-validation instead of 80/10/10")
    p.add_argument("--fold", type=int, help="which fold is the test set (0..K-1; needs --folds)")
    p.add_argument("--resume", action="store_const", const=True,
                   help="continue the run in --out from its checkpoint; only --lr, --grad-clip, --threads, "
                        "--device, --data-root, --cache-root and more --epochs (dense runs) may differ")
    p.add_argument("--overwrite", action="store_const", const=True,
                   help="replace the run in --out (removes the files gtsp writes there, nothing else)")
    for flag, kind in MODEL_FLAGS.items():
        p.add_argument(f"--{flag.replace('_', '-')}", type=kind, dest=flag,
                       help=f"model {flag.replace('_', ' ')} (backbone default)")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="any other backbone hyper-parameter, e.g. --model-arg local=gin (repeatable)")
    from gtsp.sparsify import registry

    dims = registry.dimensions()
    p.add_argument("--prune", help="sparsity per dimension, fraction REMOVED, e.g. "
                                   f"{','.join(f'{d.name}=0.5' for d in dims)}")
    p.add_argument("--prune-arg", action="append", default=[], metavar="DIM.KEY=VALUE",
                   help="a sparsifier option (repeatable; same as prune_args in YAML), e.g. --prune-arg "
                        f"{dims[0].name}.seed=1; options and defaults: {'; '.join(d.help() for d in dims)}")
    p.add_argument("--budget", help="let gtsp choose the ratios: flops=F (share of the dense model's FLOPs that "
                   "the compacted model executes), flops_nominal=F (the paper's count: masked weights at their "
                   "density) or latency=F (share of its measured inference time), e.g. flops=0.5; options "
                   "trials=N (proxy runs, default 6), proxy_epochs=N (default a tenth of --epochs, at least 3)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _data_parser(sub) -> None:
    p = sub.add_parser("data", help="dataset tools")
    dsub = p.add_subparsers(dest="data_command", required=True)
    b = dsub.add_parser("build-mol", help="turn a SMILES CSV into a dataset gtsp can train on",
                        description="Featurise a SMILES table with OGB's smiles2graph and store it in OGB's "
                                    "layout under <cache>/custom/NAME; train with --dataset NAME.")
    b.add_argument("--csv", required=True, help="CSV file with a SMILES column and label columns")
    b.add_argument("--smiles-col", default="smiles", help="SMILES column (default smiles)")
    b.add_argument("--label-cols", required=True, help="comma-separated label columns (empty cells = missing)")
    b.add_argument("--name", required=True, help="dataset name to train with")
    b.add_argument("--split", choices=["scaffold", "random"], default="scaffold", help="split (default scaffold)")
    b.add_argument("--seed", type=int, default=0, help="seed of the random split")
    b.add_argument("--task", choices=["binary", "regression"],
                   help="task type (default: inferred; labels 0/1 -> binary, non-integers -> regression; "
                        "a few distinct integers such as -1/1 or 0/1/2 are refused until --task says which; "
                        "--task binary stores -1/1 labels as 0/1)")
    b.add_argument("--skip-invalid", action="store_true",
                   help="leave out rows whose SMILES RDKit cannot parse (default: refuse, listing them)")
    b.add_argument("--overwrite", action="store_true", help="rebuild a dataset of that name that already exists")
    b.add_argument("--cache-root", help="writable folder (default $GTSP_CACHE or ~/.cache/gtsp)")
    b.add_argument("--data-root", help="folder with original data files, to refuse names of TU datasets there "
                                       "(default $GTSP_DATA)")
    r = dsub.add_parser("prepare", help="process and cache a dataset with the encodings a model needs",
                        description="Run the pre-transforms (RWSE, shortest paths, ...) that training --model "
                                    "on --dataset needs and cache them, e.g. once before parallel seeds.")
    r.add_argument("--config", help="YAML file as for gtsp train (flags override it)")
    r.add_argument("--model", help="backbone whose encodings to compute (default gps)")
    r.add_argument("--dataset", help="dataset name as for gtsp train")
    r.add_argument("--data-root", help="folder with original data files (default $GTSP_DATA)")
    r.add_argument("--cache-root", help="writable folder for processed data (default $GTSP_CACHE or ~/.cache/gtsp)")
    r.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="backbone hyper-parameter that changes the encodings, e.g. rwse_steps=16")


def _export_parser(sub) -> None:
    p = sub.add_parser("export", help="save a run's model (compacted when pruned) as one file")
    p.add_argument("run_dir", help="folder of a finished gtsp train run")
    p.add_argument("--out", required=True, help="file to write (safetensors, with its spec also in FILE.json), "
                                                "e.g. model.safetensors")
    p.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    e = sub.add_parser("evaluate", help="test metric and throughput of an exported model")
    e.add_argument("model_file", help="file written by gtsp export")
    e.add_argument("--dataset", help="dataset to evaluate on (default: the one it was trained on)")
    e.add_argument("--data-root", help="folder with original data files (default $GTSP_DATA)")
    e.add_argument("--cache-root", help="writable folder for processed data")
    e.add_argument("--batch-size", type=int, default=128, help="graphs per batch (default 128)")
    e.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to run (default cpu)")
    r = sub.add_parser("predict", help="predict new molecules from a SMILES CSV with a model file")
    r.add_argument("model_file", help="model file of a run trained on molecules (or written by gtsp export)")
    r.add_argument("--csv", required=True, help="CSV file with a SMILES column; every row and column is kept")
    r.add_argument("--smiles-col", default="smiles", help="SMILES column (default smiles)")
    r.add_argument("--out", required=True, help="CSV to write: the input rows, prediction columns, 'error'")
    r.add_argument("--batch-size", type=int, default=128, help="molecules per batch (default 128)")
    r.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1)")
    r.add_argument("--overwrite", action="store_true", help="replace --out when it exists")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gtsp", description="Train graph transformers (GraphGPS, GraphTrans, "
                                     "Graphormer) and sparsify them into smaller, faster models (GTSP).")
    from gtsp import __version__

    parser.add_argument("--version", action="version", version=f"gtsp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _data_parser(sub)
    _export_parser(sub)
    sweep_cli.add_parser(sub)
    report_cli.add_parser(sub)
    analysis_cli.add_parser(sub)
    api_commands.add_parsers(sub)
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Defaults < YAML file < flags given on the command line."""
    cfg = RunConfig()
    if args.config:
        cfg = merge(cfg, load_yaml(args.config))
    flags = {k: v for k, v in vars(args).items()
             if v is not None and k in RunConfig.__dataclass_fields__ and k not in ("model_args", "prune", "budget")}
    model_args = {k: getattr(args, k) for k in MODEL_FLAGS if getattr(args, k, None) is not None}
    for item in args.model_arg:
        model_args.update({k: yaml_value(v) for k, v in parse_pairs(item, "--model-arg").items()})
    overrides = {**flags, "model_args": model_args}
    if getattr(args, "prune", None):
        overrides["prune"] = {k: ratio(k, v) for k, v in parse_pairs(args.prune, "--prune").items()}
    if getattr(args, "budget", None):
        overrides["budget"] = {k: yaml_value(v) for k, v in parse_pairs(args.budget, "--budget").items()}
    if getattr(args, "prune_arg", None):
        overrides["prune_args"] = prune_args(args.prune_arg)
    return merge(cfg, overrides)


def _cmd_train(args) -> None:
    from gtsp.api.training import run_config

    run_config(config_from_args(args), progress=not args.quiet)


def _cmd_data(args) -> None:
    if args.data_command == "prepare":
        _prepare(args)
    else:
        _build_mol(args)


def _prepare(args) -> None:
    from gtsp.train.run import prepare_data

    cfg = config_from_args(args)
    data = prepare_data(cfg)
    print(f"{cfg.dataset} ready for {cfg.model}: {len(data.train)} / {len(data.valid)} / {len(data.test)} graphs "
          "(train / valid / test)")


def _build_mol(args) -> None:
    from gtsp.data.mol_build import build_custom

    labels = [c.strip() for c in args.label_cols.split(",") if c.strip()]
    summary = build_custom(args.csv, smiles_col=args.smiles_col, label_cols=labels, name=args.name,
                           cache_root=args.cache_root, data_root=args.data_root, split=args.split,
                           seed=args.seed, task_type=args.task, skip_invalid=args.skip_invalid,
                           overwrite=args.overwrite)
    print("\n".join(summary.lines()))
    print(f"train with: gtsp train --dataset {args.name}")


def _cmd_export(args) -> None:
    from gtsp.api.model_files import export_run

    print(f"wrote {export_run(args.run_dir, args.out, overwrite=args.overwrite)}")


def _cmd_evaluate(args) -> None:
    from gtsp.api.model_files import evaluate

    result = evaluate(args.model_file, dataset=args.dataset, data_root=args.data_root,
                      cache_root=args.cache_root, batch_size=args.batch_size, device=args.device)
    print(f"test {result['metric']}: {result['test']:.4f} over {result['graphs']} graphs, "
          f"{result['graphs_per_s']:,.0f} graphs/s")


def _cmd_predict(args) -> None:
    from gtsp.predict import predict_csv

    summary = predict_csv(args.model_file, args.csv, args.out, smiles_col=args.smiles_col,
                          batch_size=args.batch_size, threads=args.threads, overwrite=args.overwrite)
    print(summary.line())


COMMANDS = {"train": _cmd_train, "data": _cmd_data, "export": _cmd_export, "evaluate": _cmd_evaluate,
            "predict": _cmd_predict,
            "sweep": sweep_cli.cmd_sweep, "report": report_cli.cmd_report,
            "analyze": analysis_cli.cmd_analyze, "prune": api_commands.cmd_prune,
            "import-pyg": api_commands.cmd_import_pyg}


def main(argv: Sequence[str] | None = None) -> int:
    main_rank = os.environ.get("RANK", "0") in ("", "0")  # torchrun's other ranks only warn
    logging.basicConfig(level=logging.INFO if main_rank else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except GtspError as err:
        if not isinstance(err, RelayedError):
            print(f"gtsp: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gtsp: interrupted (resume with --resume)", file=sys.stderr)
        return 130
    except OSError as err:
        if err.errno not in DISK_ERRORS:
            raise
        print(f"gtsp: error: {disk_error_line(err)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
