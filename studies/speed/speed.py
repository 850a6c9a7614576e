"""How fast gtsp runs on one machine: one command writes ``results-MACHINE.json`` and ``results-MACHINE.md``.

    OMP_NUM_THREADS=1 python studies/speed/speed.py                 # CPU, 1 thread: results-cpu-2core-1thread.*
    python studies/speed/speed.py --threads 2                       # CPU, 2 intra-op threads
    python studies/speed/speed.py --device cuda                     # GPU: results-<gpu name>.*

1. gtsp's GraphGPS against PyG's ``GPSConv`` with the same hyper-parameters and weights, on NCI1 and
   ogbg-molhiv (shipped configs): training seconds per epoch and inference graphs/s (``versus_pyg.py``);
2. per pruning dimension at 0.5 (token, head, layer, neuron, all four jointly, and the attention-free
   baseline): compacted speed-up against the FLOPs ratio, NCI1 (``compacted.py``);
3. latency of the dense and the jointly compacted model at batch sizes 1, 8, 64 and 512.

Every ratio is between contenders timed in this process, interleaved, median over ``--rounds``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch

from gtsp.errors import GtspError
from gtsp.provenance import provenance

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the study's modules import each other by name

from compacted import latency_by_batch_size, per_dimension  # noqa: E402
from report_table import markdown  # noqa: E402
from versus_pyg import load_for, shipped_config, versus_gpsconv  # noqa: E402

CONFIGS = HERE.parents[1] / "configs"


def machine_name(device: torch.device, threads: int) -> str:
    """``cpu-2core-1thread`` or the GPU's name in lower case (``nvidia-h200``)."""
    if device.type == "cuda":
        return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")
    return f"cpu-{os.cpu_count()}core-{threads}thread"


def machine_record(device: torch.device, threads: int) -> dict[str, Any]:
    record = {"device": device.type, "processor": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "torch_threads": threads,
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "load_average_at_start": os.getloadavg()}
    if device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
    return record


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (default 1, gtsp's default)")
    parser.add_argument("--data-root", default=None, help="original files (default $GTSP_DATA)")
    parser.add_argument("--cache-root", default=None, help="processed cache (default $GTSP_CACHE)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per comparison (median; default 3)")
    parser.add_argument("--train-steps", type=int, default=26,
                        help="training steps timed per round, scaled to an epoch (default 26 = one NCI1 epoch)")
    parser.add_argument("--datasets", default="nci1,molhiv", help="versus-GPSConv datasets (shipped gps configs)")
    parser.add_argument("--machine", default=None, help="name in the output files (default from the device)")
    parser.add_argument("--out", default=str(HERE), help="folder for the JSON and Markdown files")
    args = parser.parse_args(argv)
    if args.device not in ("cpu", "cuda"):
        raise GtspError(f"--device {args.device}: choose cpu or cuda")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise GtspError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu")
    if args.threads < 1 or args.rounds < 1 or args.train_steps < 1:
        raise GtspError("--threads, --rounds and --train-steps must be at least 1")
    return args


def measure(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """All three measurements, printed as they finish."""
    results: dict[str, Any] = {"versus_gpsconv": []}
    for name in args.datasets.split(","):
        config = CONFIGS / f"gps-{'ogbg-molhiv' if name == 'molhiv' else name}.yaml"
        config = config if config.is_file() else CONFIGS / f"gps-{name}.yaml"
        if not config.is_file():
            raise GtspError(f"no shipped GraphGPS config for {name!r} in {CONFIGS}: use nci1 or molhiv")
        print(f"gtsp vs PyG GPSConv ({config.name})", flush=True)
        results["versus_gpsconv"].append(versus_gpsconv(config, device, args.data_root, args.cache_root,
                                                        args.train_steps, args.rounds))
    cfg = shipped_config(CONFIGS / "gps-nci1.yaml")
    data = load_for(cfg, args.data_root, args.cache_root)
    print("compacted speed-up per dimension (gps-nci1.yaml)", flush=True)
    results["per_dimension"], dense, joint, joint_name = per_dimension(cfg, data, device, ratio=0.5)
    print(f"latency by batch size: dense vs {joint_name}", flush=True)
    results["latency"] = {"compacted": joint_name,
                          "rows": latency_by_batch_size(dense, joint, data, device, args.rounds)}
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    machine = args.machine or machine_name(device, args.threads)
    start = time.perf_counter()
    results = {"machine_name": machine, "machine": machine_record(device, args.threads),
               "settings": {"rounds": args.rounds, "train_steps": args.train_steps},
               "provenance": provenance(None), **measure(args, device)}
    results["wall_seconds"] = time.perf_counter() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"results-{machine}.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / f"results-{machine}.md").write_text(markdown(results))
    print(f"wrote {out / f'results-{machine}.json'} and .md ({results['wall_seconds'] / 60:.1f} min)")


if __name__ == "__main__":
    try:
        main()
    except GtspError as err:
        raise SystemExit(f"speed.py: error: {err}") from None
