"""Inference speed of token pruning against the dense model, per backbone, in one process.

    python benchmarks/token_speed.py --data-root ../shared/data --out benchmarks/results/token_speed.json

For each backbone (its shipped NCI1 config, fresh weights, seed 0) the dense model and a copy with
token selectors at ``--ratio`` (what ``gtsp``'s token compaction returns) run over the test split's
size-sorted evaluation batches (as the trainer's compaction report times them), 1 thread, eval mode.
Passes alternate between the two models and, for each ``--slacks`` value, between settings of
``gtsp.nn.attention.size_groups``'s merge slack (1.0 merges only groups of equal lengths, the
session-2 behaviour); the medians of ``--rounds`` passes are reported. Also the time spent inside the
attention modules and inside the token selectors (forward hooks), which shows where the rest goes.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import yaml

import gtsp.nn.attention as attention_module
from gtsp.data.batching import eval_batches
from gtsp.data.registry import load_dataset
from gtsp.models import MODELS, build_model
from gtsp.nn.attention import MultiHeadSelfAttention
from gtsp.nn.token_selector import TokenSelector
from gtsp.sparsify import build_sparsifier

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@contextmanager
def merge_slack(value: float):
    """Temporarily change the default merge slack of ``size_groups``."""
    saved = attention_module.size_groups.__defaults__
    attention_module.size_groups.__defaults__ = (value,)
    try:
        yield
    finally:
        attention_module.size_groups.__defaults__ = saved


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
    cfg = yaml.safe_load((CONFIGS / f"{name}-nci1.yaml").read_text())
    hparams = dict(cfg.get("model_args", {}))
    data = load_dataset("NCI1", data_root=args.data_root, features=MODELS[cfg["model"]].required_features(hparams))
    torch.manual_seed(0)
    dense = build_model(cfg["model"], data.info, **hparams).eval()
    sparsifier = build_sparsifier({"token": args.ratio})
    pruned = sparsifier.compact(sparsifier.prepare(copy.deepcopy(dense))).eval()
    batches = eval_batches(data.test, args.batch_size)[0]
    timers = {"dense": {"attention": HookTimer(dense, MultiHeadSelfAttention)},
              "token": {"attention": HookTimer(pruned, MultiHeadSelfAttention),
                        "selector": HookTimer(pruned, TokenSelector)}}
    samples = {(slack, kind): [] for slack in args.slacks for kind in ("dense", "token")}
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for slack in args.slacks:
            with merge_slack(slack):
                for kind, model in (("dense", dense), ("token", pruned)):
                    sample = one_pass(model, batches, timers[kind])
                    if round_:
                        samples[(slack, kind)].append(sample)
    rows = []
    for slack in args.slacks:
        med = {kind: {key: statistics.median(s[key] for s in samples[(slack, kind)]) * 1e3
                      for key in samples[(slack, kind)][0]} for kind in ("dense", "token")}
        rows.append({"slack": slack, "dense_ms": med["dense"], "token_ms": med["token"],
                     "speedup": med["dense"]["total"] / med["token"]["total"]})
        print(f"{name:10s} slack {slack:<5g} dense {med['dense']['total']:7.1f} ms "
              f"(attention {med['dense']['attention']:5.1f})  token {med['token']['total']:7.1f} ms "
              f"(attention {med['token']['attention']:5.1f}, selector {med['token']['selector']:4.1f})  "
              f"speed-up {rows[-1]['speedup']:.3f}x", flush=True)
    return {"graphs": sum(b.num_graphs for b in batches), "batches": len(batches), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--backbones", default="gps,graphtrans,graphormer")
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--slacks", default="1.0,1.5", help="merge slacks to compare (comma-separated)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default=None, help="write the numbers here as JSON")
    args = parser.parse_args()
    args.slacks = [float(s) for s in args.slacks.split(",")]
    torch.set_num_threads(1)
    results = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
               "threads": 1, "ratio": args.ratio, "rounds": args.rounds,
               "backbones": {name: measure_backbone(name, args) for name in args.backbones.split(",")}}
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
