"""Inference speed of token pruning against the dense model, per backbone, in one process.

    python benchmarks/token_speed.py --data-root ../shared/data --out benchmarks/results/token_speed.json

For each backbone (its shipped NCI1 config, fresh weights, seed 0) the dense model and a copy with
token selectors at ``--ratio`` (what ``gtsp``'s token compaction returns) run over the test split's
size-sorted evaluation batches (as the trainer's compaction report times them), 1 thread, eval mode.
Passes alternate between the two models and, for each ``--overheads`` value, between settings of
the per-call overhead with which ``gtsp.nn.attention.size_groups`` decides to merge size groups
(0 merges only groups of equal lengths, the session-2 behaviour); the medians of ``--rounds`` passes
are reported. Also the time spent inside the
attention modules and inside the token selectors (forward hooks), which shows where the rest goes.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from gtsp.config import RunConfig, load_yaml, merge
from gtsp.data.batching import eval_batches
from gtsp.data.registry import load_dataset
from gtsp.models import MODELS, build_model
from gtsp.nn.attention import MultiHeadSelfAttention
from gtsp.nn.token_selector import TokenSelector
from gtsp.sparsify import build_sparsifier

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def set_group_overhead(model: torch.nn.Module, value: float) -> None:
    """The per-call overhead every attention module of ``model`` weighs against padding."""
    for module in model.modules():
        if isinstance(module, MultiHeadSelfAttention):
            module.group_overhead = value


class HookTimer:
    """Wall time spent inside every module of one class (forward pre/post hooks)."""

    def __init__(self, model: torch.nn.Module, cls: type) -> None:
        self.seconds, self._start = 0.0, 0.0
        for module in model.modules():
            if isinstance(module, cls):
                module.register_forward_pre_hook(self._enter)
                module.register_forward_hook(self._leave)

    def _enter(self, *_) -> None:
        self._start = time.perf_counter()

    def _leave(self, *_) -> None:
        self.seconds += time.perf_counter() - self._start


@torch.no_grad()
def one_pass(model, batches, timers) -> dict[str, float]:
    for timer in timers.values():
        timer.seconds = 0.0
    start = time.perf_counter()
    for batch in batches:
        model(batch)
    return {"total": time.perf_counter() - start, **{k: t.seconds for k, t in timers.items()}}


def measure_backbone(name: str, args) -> dict:
    cfg = merge(RunConfig(), load_yaml(CONFIGS / f"{name}-nci1.yaml"))
    hparams = cfg.model_args
    data = load_dataset(cfg.dataset, data_root=args.data_root, features=MODELS[cfg.model].required_features(hparams))
    torch.manual_seed(0)
    dense = build_model(cfg.model, data.info, **hparams).eval()
    sparsifier = build_sparsifier({"token": args.ratio})
    pruned = sparsifier.compact(sparsifier.prepare(copy.deepcopy(dense))).eval()
    batches = eval_batches(data.test, args.batch_size)[0]
    timers = {"dense": {"attention": HookTimer(dense, MultiHeadSelfAttention)},
              "token": {"attention": HookTimer(pruned, MultiHeadSelfAttention),
                        "selector": HookTimer(pruned, TokenSelector)}}
    samples = {(overhead, kind): [] for overhead in args.overheads for kind in ("dense", "token")}
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for overhead in args.overheads:
            for kind, model in (("dense", dense), ("token", pruned)):
                set_group_overhead(model, overhead)
                sample = one_pass(model, batches, timers[kind])
                if round_:
                    samples[(overhead, kind)].append(sample)
    rows = []
    for overhead in args.overheads:
        med = {kind: {key: statistics.median(s[key] for s in samples[(overhead, kind)]) * 1e3
                      for key in samples[(overhead, kind)][0]} for kind in ("dense", "token")}
        rows.append({"overhead_flops": overhead, "dense_ms": med["dense"], "token_ms": med["token"],
                     "speedup": med["dense"]["total"] / med["token"]["total"]})
        print(f"{name:10s} overhead {overhead:<7g} dense {med['dense']['total']:7.1f} ms "
              f"(attention {med['dense']['attention']:5.1f})  token {med['token']['total']:7.1f} ms "
              f"(attention {med['token']['attention']:5.1f}, selector {med['token']['selector']:4.1f})  "
              f"speed-up {rows[-1]['speedup']:.3f}x", flush=True)
    return {"graphs": sum(b.num_graphs for b in batches), "batches": len(batches), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--backbones", default="gps,graphtrans,graphormer")
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--overheads", default="0,2e6", help="per-call overheads (FLOPs) to compare, comma-separated")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default=None, help="write the numbers here as JSON")
    args = parser.parse_args()
    args.overheads = [float(s) for s in args.overheads.split(",")]
    torch.set_num_threads(1)
    results = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
               "threads": 1, "ratio": args.ratio, "rounds": args.rounds,
               "backbones": {name: measure_backbone(name, args) for name in args.backbones.split(",")}}
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
