"""Speed of gtsp's GPS against GraphGPS built from PyG's own ``GPSConv``, on the same data, in one process.

    python benchmarks/speed.py --dataset NCI1 --data-root ../shared/data --out benchmarks/results/speed_nci1.json
    python benchmarks/speed.py ... --device cuda                  # where a GPU exists
    python benchmarks/speed.py ... --experiments all              # + the speed experiments (slower)

Contenders (same hyper-parameters, same initial weights, same AdamW):
- ``reference``: ``benchmarks/pyg_reference.py`` (``GPSConv`` layers), trained on plain shuffled
  PyG ``DataLoader`` batches, evaluated through a ``DataLoader`` (the usual way);
- ``gtsp``: ``gtsp.models.GPS`` on gtsp's default training batches (``train_loader``: plain shuffled
  ones since session 2; its attention pads each group of 16 similar-size graphs on its own, on the CPU)
  and size-sorted, pre-collated evaluation batches (``eval_batches``).

Measured per model: training seconds per epoch (collation + forward + backward + AdamW step over
the train split; medians of epochs interleaved between the models), inference graphs/s over the
test split (eval mode, no_grad, medians of interleaved passes), peak training memory, counted
FLOPs per second against this machine's measured fp32 ``torch.mm`` rate, and a ``torch.profiler``
breakdown of one training epoch. Also the share of attention slots spent on padding.

Peak memory on CPU is measured in a fresh subprocess per model, two ways:
(1) ``tensor_peak_bytes``: the peak of live torch tensor bytes over one training epoch, from the
    allocation/free events of ``torch.profiler(profile_memory=True)``, above what was alive when the
    epoch started (parameters, optimiser state and the dataset are not counted) -- the CPU analogue
    of ``torch.cuda.max_memory_allocated``;
(2) ``rss_peak_bytes``: the growth of the process's resident set over its first training epoch
    (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``, minus ``VmRSS`` before the epoch; no
    profiler running), which includes allocator caching and fragmentation.
On CUDA: ``torch.cuda.max_memory_allocated`` minus the memory allocated before the epoch.

FLOPs are gtsp's analytic count (``analytic_flops_per_graph``: linear layers at each graph's real
size, attention ``4 H L^2 d`` over the real nodes, one add per edge and channel for message
passing), summed over the split's graphs; training counts 3x the forward (forward + backward, the
usual approximation). They are useful FLOPs: padding costs time but earns no counted FLOP.

Threads: ``--threads 1`` by default. On this shared 2-core machine two OpenMP threads with the default
(spinning) wait policy made training steps 28-38x slower under load (``--experiments threads``).

Experiments (``--experiments threads,pool,attention,compile,collate,gates`` or ``all``, ~5 more minutes
on CPU): threads 1 vs 2 (also with ``OMP_WAIT_POLICY=PASSIVE``); bucket pool size (padding, epoch time,
how much batches repeat across epochs); attention layouts (padded + mask, no mask, nested jagged
tensors, exact-length groups, block-diagonal, ``nn.MultiheadAttention``, explicit softmax with a
``rand``-based dropout mask); ``torch.compile(dynamic=True)`` (child process, time-limited);
collation vs model step; the cost of gtsp's all-ones sparsifier gates. Findings:
``benchmarks/results/speed_findings.md``.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torch_geometric
from torch.profiler import ProfilerActivity, profile, record_function
from torch_geometric.loader import DataLoader
from torch_geometric.utils import to_dense_batch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pyg_reference import reference_from_gtsp  # noqa: E402

from gtsp.accounting.flops import analytic_flops_per_graph  # noqa: E402
from gtsp.data.batching import SizeBucketSampler, eval_batches, train_loader  # noqa: E402
from gtsp.data.registry import load_dataset  # noqa: E402
from gtsp.models import build_model  # noqa: E402
from gtsp.nn.attention import GROUP_SIZE, MultiHeadSelfAttention, size_groups  # noqa: E402
from gtsp.nn.sequences import Sequences  # noqa: E402
from gtsp.train.metrics import task_loss  # noqa: E402

HPARAMS = dict(hidden=64, layers=4, heads=4, local="gin", dropout=0.0, attn_dropout=0.5, pool="sum", rwse_steps=20)
LR, WEIGHT_DECAY = 1e-3, 1e-5
EXPERIMENTS = ("threads", "pool", "attention", "compile", "collate", "gates", "dropout")


# ---------------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="NCI1")
    p.add_argument("--data-root", default=None)
    p.add_argument("--cache-root", default=None)
    p.add_argument("--out", default=None, help="JSON file to write")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: faster on this shared 2-core machine, "
                        "see the 'threads' experiment); 0 keeps torch's default")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3, help="timed training epochs per model (after 1 warm-up)")
    p.add_argument("--infer-repeats", type=int, default=7, help="timed inference passes per contender")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--no-profile", action="store_true", help="skip the profiled epochs")
    p.add_argument("--experiments", default="", help=f"comma list of {', '.join(EXPERIMENTS)}, or 'all'")
    p.add_argument("--only-experiments", action="store_true",
                   help="skip the benchmark; add/replace the experiments in an existing --out file")
    p.add_argument("--compile-timeout", type=int, default=420, help="seconds allowed for the torch.compile child")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # memory:<model> or compile
    return p.parse_args(argv)


def setup_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def machine_info(device: torch.device) -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu,
            "logical_cpus": os.cpu_count(), "torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
            "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "load_average_start": os.getloadavg()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def load(args):
    return load_dataset(args.dataset, data_root=args.data_root, cache_root=args.cache_root, features=("rwse",),
                        seed=args.seed)


def build_models(info, device, seed: int):
    """gtsp's GPS and the PyG reference, holding the same initial weights."""
    torch.manual_seed(seed)
    gtsp_model = build_model("gps", info, **HPARAMS)
    reference = reference_from_gtsp(gtsp_model, info)
    return gtsp_model.to(device), reference.to(device)


def make_train_loader(name: str, graphs, batch_size: int, seed: int):
    if name == "gtsp":
        return train_loader(graphs, batch_size, seed)
    return DataLoader(graphs, batch_size=batch_size, shuffle=True)


def optimizer_for(model):
    return torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)


# ---------------------------------------------------------------------------------------------
# timing primitives
# ---------------------------------------------------------------------------------------------
def train_epoch(model, loader, optimizer, info, device, epoch: int = 0, phases: bool = False) -> dict:
    """One epoch: collation + forward + backward + AdamW step. Returns seconds, collation seconds, loss."""
    model.train()
    sampler = getattr(loader, "batch_sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    mark = record_function if phases else (lambda name: nullcontext())
    sync(device)
    start = time.perf_counter()
    collate, loss_sum, graphs, steps = 0.0, torch.zeros((), device=device), 0, 0
    batches = iter(loader)
    while True:
        t = time.perf_counter()
        with mark("phase: collate"):
            batch = next(batches, None)
            if batch is None:
                break
            batch = batch.to(device)
        collate += time.perf_counter() - t
        with mark("phase: forward"):
            loss = task_loss(info, model(batch), batch.y)
        with mark("phase: backward"):
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        with mark("phase: optimizer"):
            optimizer.step()
        loss_sum += loss.detach() * batch.num_graphs
        graphs += batch.num_graphs
        steps += 1
    sync(device)
    return {"seconds": time.perf_counter() - start, "collate_seconds": collate, "loss": float(loss_sum) / graphs,
            "steps": steps}


def train_steps(model, batches, optimizer, info, device) -> float:
    """Seconds for forward + backward + step over already collated ``batches`` (no collation)."""
    model.train()
    sync(device)
    start = time.perf_counter()
    for batch in batches:
        loss = task_loss(info, model(batch), batch.y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return time.perf_counter() - start


@torch.no_grad()
def infer_pass(model, batches, device) -> float:
    """Seconds for one eval-mode pass over ``batches`` (a list of Batches, or a DataLoader that collates)."""
    model.eval()
    sync(device)
    start = time.perf_counter()
    for batch in batches:
        model(batch.to(device))
    sync(device)
    return time.perf_counter() - start


def matmul_gflops(device, size: int = 2048, repeats: int = 5) -> list[float]:
    """fp32 ``torch.mm`` rate (GFLOP/s) of ``size x size`` matrices (8192 on a GPU), one sample per call."""
    if device.type == "cuda":
        size = 8192
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    torch.mm(a, b)
    rates = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        rates.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
    return rates


def median(values) -> float:
    return float(statistics.median(values))


# ---------------------------------------------------------------------------------------------
# padding
# ---------------------------------------------------------------------------------------------
def attention_groups(batches_sizes: list[np.ndarray], group_size: int) -> list[np.ndarray]:
    """The sequences attention pads together: each batch, cut as ``gtsp.nn.attention.size_groups`` does."""
    groups = []
    for sizes in batches_sizes:
        lengths = torch.as_tensor(sizes)
        mask = torch.arange(int(lengths.max())).unsqueeze(0) < lengths.unsqueeze(1)
        parts = size_groups(mask, group_size, HPARAMS["hidden"])
        groups += [sizes] if parts is None else [sizes[graphs.numpy()] for graphs, _ in parts]
    return groups


def gtsp_group_size(device: torch.device) -> int:
    """Graphs per attention size group in gtsp's model on ``device`` (no groups on a GPU)."""
    return 0 if device.type == "cuda" else GROUP_SIZE


def padding_stats(batches_sizes: list[np.ndarray], group_size: int = 0) -> dict:
    """Share of padded token slots (``1 - N / (B L)``) and padded attention pairs (``1 - sum n^2 / (B L^2)``),
    per padded unit: a batch, or with ``group_size`` each size group that attention pads on its own."""
    slots, pairs, tot_slots, tot_real, tot_pairs, tot_real_pairs = [], [], 0, 0, 0, 0
    for sizes in attention_groups(batches_sizes, group_size):
        b, length = len(sizes), int(sizes.max())
        real, real_pairs = int(sizes.sum()), int((sizes.astype(np.int64) ** 2).sum())
        slots.append(1 - real / (b * length))
        pairs.append(1 - real_pairs / (b * length * length))
        tot_slots += b * length
        tot_real += real
        tot_pairs += b * length * length
        tot_real_pairs += real_pairs
    return {"batches": len(batches_sizes), "group_size": group_size,
            "slot_padding_mean": float(np.mean(slots)), "slot_padding_median": float(np.median(slots)),
            "slot_padding_max": float(np.max(slots)), "slot_padding_overall": 1 - tot_real / tot_slots,
            "pair_padding_mean": float(np.mean(pairs)), "pair_padding_median": float(np.median(pairs)),
            "pair_padding_max": float(np.max(pairs)), "pair_padding_overall": 1 - tot_real_pairs / tot_pairs,
            "attention_work_vs_unpadded": tot_pairs / tot_real_pairs}


def sampler_batches(sampler, epoch: int = 0) -> list[list[int]]:
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    return [list(map(int, b)) for b in sampler]


def padding_breakdown(ds, batch_size: int, seed: int, device: torch.device) -> dict:
    sizes = np.array([g.num_nodes for g in ds.train])
    test_sizes = np.array([g.num_nodes for g in ds.test])
    torch.manual_seed(seed)
    random_batches = sampler_batches(DataLoader(ds.train, batch_size=batch_size, shuffle=True).batch_sampler)
    bucket_batches = sampler_batches(train_loader(ds.train, batch_size, seed).batch_sampler, epoch=1)
    order = np.argsort(test_sizes, kind="stable")
    return {
        "train_random (reference)": padding_stats([sizes[b] for b in random_batches]),
        "train (gtsp: its batches, attention size groups)": padding_stats([sizes[b] for b in bucket_batches],
                                                                          gtsp_group_size(device)),
        "test_loader_order (reference)": padding_stats(
            [test_sizes[s:s + batch_size] for s in range(0, len(test_sizes), batch_size)]),
        "test_sorted (gtsp)": padding_stats(
            [test_sizes[order[s:s + batch_size]] for s in range(0, len(order), batch_size)], gtsp_group_size(device)),
        "graph_size": {"mean": float(sizes.mean()), "median": float(np.median(sizes)), "max": int(sizes.max()),
                       "min": int(sizes.min())},
    }


# ---------------------------------------------------------------------------------------------
# FLOPs
# ---------------------------------------------------------------------------------------------
def split_flops(model, graphs, device) -> dict:
    """Analytic forward FLOPs summed over ``graphs`` (gtsp's per-graph count, run once per distinct shape).

    A graph's count depends only on its node and edge counts, so each distinct ``(nodes, edges)``
    pair is counted once and weighted by how often it occurs; the sum equals counting every graph.
    """
    model = copy.deepcopy(model).eval()
    shapes = Counter((g.num_nodes, g.num_edges) for g in graphs)
    first = {}
    for g in graphs:
        first.setdefault((g.num_nodes, g.num_edges), g)
    total = {"dense": 0.0, "message_passing": 0.0}
    for shape, count in shapes.items():
        per = analytic_flops_per_graph(model, [first[shape]], device=device)
        total["dense"] += count * per["dense"]
        total["message_passing"] += count * per["message_passing"]
    total["total"] = total["dense"] + total["message_passing"]
    total["graphs"] = len(graphs)
    total["distinct_shapes"] = len(shapes)
    return total


def executed_attention_flops(batches_sizes, layers: int, hidden: int, group_size: int = 0) -> tuple[float, float]:
    """Attention score/value FLOPs (``4 L^2 C`` per sequence and layer) as executed (padded) and useful."""
    batches_sizes = attention_groups(batches_sizes, group_size)
    padded = sum(4.0 * len(s) * int(s.max()) ** 2 * hidden for s in batches_sizes) * layers
    useful = sum(4.0 * float((s.astype(np.int64) ** 2).sum()) * hidden for s in batches_sizes) * layers
    return padded, useful


# ---------------------------------------------------------------------------------------------
# profile
# ---------------------------------------------------------------------------------------------
CATEGORIES = [
    ("dense matmul (Linear: mm/addmm)", ("aten::mm", "aten::addmm", "aten::matmul", "aten::linear", "aten::t")),
    ("attention math (bmm, softmax, SDPA)", ("aten::bmm", "aten::baddbmm", "aten::_softmax", "aten::softmax",
                                             "aten::_softmax_backward_data", "aten::_safe_softmax",
                                             "aten::isneginf", "aten::_scaled_dot_product",
                                             "aten::scaled_dot_product", "aten::_native_multi_head_attention",
                                             "aten::_masked_softmax", "aten::_transform_bias_rescale_qkv",
                                             "aten::all", "aten::where")),  # all/where: SDPA math-path mask checks
    ("dropout RNG (bernoulli)", ("aten::bernoulli", "aten::native_dropout", "aten::dropout")),
    ("scatter/gather/index", ("aten::scatter", "aten::index", "aten::gather", "aten::masked", "aten::nonzero",
                              "aten::_index_put", "aten::bincount", "aten::cumsum", "aten::repeat_interleave",
                              "aten::searchsorted", "aten::embedding")),
    ("batch norm", ("aten::native_batch_norm", "aten::batch_norm", "aten::_batch_norm")),
    ("tensor creation/copy (copy_, fill_, cat, zeros)", ("aten::copy_", "aten::fill_", "aten::zero_", "aten::cat",
                                                         "aten::empty", "aten::zeros", "aten::ones",
                                                         "aten::new_zeros", "aten::clone", "aten::contiguous",
                                                         "aten::_to_copy", "aten::to", "aten::resize_",
                                                         "aten::full", "aten::arange", "aten::stack")),
]


def categorize(name: str) -> str:
    for category, prefixes in CATEGORIES:
        if name.startswith(prefixes):
            return category
    if name.startswith("aten::_foreach") or name.startswith("Optimizer."):
        return "optimizer"
    if name.startswith("aten::"):
        return "elementwise & other aten ops"
    if name.startswith("autograd::") or "Backward" in name or "AccumulateGrad" in name or name in ("detach", "detach_"):
        return "autograd engine"  # engine bookkeeping and backward-node wrappers (their aten ops count apart)
    if "DataLoader" in name:
        return "collation (DataLoader, Python side)"
    if name.startswith("cuda"):
        return "CUDA runtime (launches, syncs)"
    return "other (" + name[:40] + ")"


def profile_epoch(model, loader, optimizer, info, device, epoch: int, top: int = 15) -> dict:
    """Profile one training epoch: phase totals, self time per op category, top ops by self CPU time."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        result = train_epoch(model, loader, optimizer, info, device, epoch, phases=True)
    events = prof.key_averages()
    phases, categories, ops = {}, defaultdict(float), []
    self_total = device_busy = 0.0
    for e in events:
        if e.key.startswith("phase: "):  # with CUDA the annotation also appears as a GPU-side event: keep the CPU one
            phases[e.key[7:]] = max(phases.get(e.key[7:], 0.0), e.cpu_time_total / 1e6)
            continue
        if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA:  # kernel and memcpy rows
            device_busy += e.self_device_time_total / 1e6
            continue
        self_s = e.self_cpu_time_total / 1e6
        if e.key.startswith("ProfilerStep") or self_s <= 0:
            continue
        categories[categorize(e.key)] += self_s
        self_total += self_s
        if e.key.startswith("aten::"):
            ops.append((e.key, self_s, e.count, getattr(e, "self_device_time_total", 0.0) / 1e6))
    ops.sort(key=lambda o: -o[1])
    wall = result["seconds"]
    # time on the main thread not inside any recorded op: Python, module calls, PyG's MessagePassing glue
    categories["python & framework glue (not in any op)"] = max(wall - self_total, 0.0)
    return {"profiled_epoch_seconds": wall, "phases_seconds": phases,
            **({"device_busy_seconds": device_busy} if device.type == "cuda" else {}),
            "categories_seconds": dict(sorted(categories.items(), key=lambda kv: -kv[1])),
            "categories_fraction": {k: v / wall for k, v in sorted(categories.items(), key=lambda kv: -kv[1])},
            "top_ops": [{"op": n, "self_seconds": s, "fraction": s / wall, "calls": c}
                        | ({"self_device_seconds": d} if device.type == "cuda" else {}) for n, s, c, d in ops[:top]],
            **({"top_ops_by_device_time": [{"op": n, "self_device_seconds": d, "calls": c} for n, _, c, d in
                                           sorted(ops, key=lambda o: -o[3])[:top]]} if device.type == "cuda" else {})}


# ---------------------------------------------------------------------------------------------
# peak memory (child process per model)
# ---------------------------------------------------------------------------------------------
def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_rss_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def memory_child(args, name: str) -> dict:
    """Peak memory of one training epoch of ``name``, in this (fresh) process."""
    device = torch.device(args.device)
    ds = load(args)
    gtsp_model, reference = build_models(ds.info, device, args.seed)
    model = gtsp_model if name == "gtsp" else reference
    del gtsp_model, reference
    loader = make_train_loader(name, ds.train, args.batch_size, args.seed)
    optimizer = optimizer_for(model)
    out = {"model": name, "device": device.type}
    if device.type == "cuda":
        train_steps(model, [b.to(device) for _, b in zip(range(3), loader)], optimizer, ds.info, device)
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        train_epoch(model, loader, optimizer, ds.info, device, epoch=1)
        out["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device) - before
        out["cuda_allocated_before_bytes"] = before
        return out
    # (2) RSS: data and model are loaded, nothing has trained yet; the peak of the first epoch counts
    rss_before = _status_kib("VmRSS")
    reset = _reset_rss_peak()
    train_epoch(model, loader, optimizer, ds.info, device, epoch=1)
    out["rss_before_bytes"] = rss_before * 1024
    out["rss_peak_bytes"] = (_status_kib("VmHWM") - rss_before) * 1024 if reset else None
    out["rss_peak_method"] = ("VmHWM - VmRSS over the first training epoch (HWM reset by clear_refs=5)" if reset
                              else "unavailable (clear_refs not writable)")
    # (1) live tensors: optimiser state exists now; grads are dropped so only the epoch's own tensors count
    optimizer.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        train_epoch(model, loader, optimizer, ds.info, device, epoch=2)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and e.device_type()
              == torch.autograd.DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())
    live = np.cumsum([e.nbytes() for e in events]) if events else np.zeros(1)
    out["tensor_peak_bytes"] = int(live.max())
    out["tensor_events"] = len(events)
    out["param_and_optimizer_bytes"] = int(sum(p.numel() * p.element_size() for p in model.parameters()) +
                                           sum(t.numel() * t.element_size() for s in optimizer.state.values()
                                               for t in s.values() if torch.is_tensor(t)))
    return out


def run_child(args, child: str, timeout: int, env: dict | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", child, "--dataset", args.dataset,
           "--device", args.device, "--threads", str(args.threads), "--batch-size", str(args.batch_size),
           "--seed", str(args.seed)]
    for flag, value in (("--data-root", args.data_root), ("--cache-root", args.cache_root)):
        if value:
            cmd += [flag, value]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr[-2000:]}"}
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------------
def benchmark(args, ds, device) -> dict:
    info = ds.info
    gtsp_model, reference = build_models(info, device, args.seed)
    models = {"reference": reference, "gtsp": gtsp_model}
    loaders = {name: make_train_loader(name, ds.train, args.batch_size, args.seed) for name in models}
    optimizers = {name: optimizer_for(m) for name, m in models.items()}
    report = {name: {} for name in models}

    # ---- training: 1 warm-up epoch each, then epochs interleaved (order alternates), mm rate between
    log("training: warm-up epoch per model")
    for name, model in models.items():
        train_epoch(model, loaders[name], optimizers[name], info, device, epoch=0)
    epochs = defaultdict(list)
    mm_rates = matmul_gflops(device)
    for r in range(args.repeats):
        for name in (list(models) if r % 2 == 0 else list(models)[::-1]):
            epochs[name].append(train_epoch(models[name], loaders[name], optimizers[name], info, device, epoch=r + 1))
            log(f"  epoch {r + 1} {name}: {epochs[name][-1]['seconds']:.2f} s")
        mm_rates += matmul_gflops(device, repeats=3)
    for name in models:
        seconds = [e["seconds"] for e in epochs[name]]
        report[name]["train_epoch_seconds"] = median(seconds)
        report[name]["train_epoch_samples"] = seconds
        report[name]["collate_seconds_per_epoch"] = median([e["collate_seconds"] for e in epochs[name]])
        report[name]["steps_per_epoch"] = epochs[name][0]["steps"]
        report[name]["train_loss_last_epoch"] = epochs[name][-1]["loss"]
    size = "8192x8192" if device.type == "cuda" else "2048x2048"
    floor = {"op": f"torch.mm fp32 {size}", "gflops_median": median(mm_rates), "gflops_max": max(mm_rates),
             "samples": mm_rates, "threads": torch.get_num_threads()}

    # ---- inference: interleaved passes over the test split
    log("inference")
    test_loader = DataLoader(ds.test, batch_size=args.batch_size, shuffle=False)
    loader_order = [b.to(device) for b in test_loader]
    sorted_batches = [b.to(device) for b in eval_batches(ds.test, args.batch_size)[0]]
    contenders = {"reference (DataLoader, collates each pass)": (reference, test_loader),
                  "reference (pre-collated, loader order)": (reference, loader_order),
                  "gtsp (pre-collated, size-sorted)": (gtsp_model, sorted_batches),
                  "gtsp (pre-collated, loader order)": (gtsp_model, loader_order)}
    for model, batches in contenders.values():
        infer_pass(model, batches, device)
    passes = defaultdict(list)
    for r in range(args.infer_repeats):
        for key in (list(contenders) if r % 2 == 0 else list(contenders)[::-1]):
            passes[key].append(infer_pass(*contenders[key], device))
    graphs = len(ds.test)
    inference = {key: {"graphs_per_s": graphs / median(v), "seconds_per_pass": median(v), "samples": v}
                 for key, v in passes.items()}
    usual = {"reference": "reference (DataLoader, collates each pass)", "gtsp": "gtsp (pre-collated, size-sorted)"}
    for name, key in usual.items():
        report[name]["inference_graphs_per_s"] = inference[key]["graphs_per_s"]

    # ---- FLOPs (useful, analytic) and the fraction of the matmul floor
    log("counting FLOPs")
    train_flops = split_flops(gtsp_model, ds.train, device)
    test_flops = split_flops(gtsp_model, ds.test, device)
    flops = {"train_forward": train_flops, "test_forward": test_flops,
             "train_epoch_fwd_bwd": 3 * train_flops["total"],
             "method": "gtsp analytic_flops_per_graph summed over the split (per distinct (nodes, edges)); "
                       "training = 3 x forward (forward + backward approximation)"}
    sizes = np.array([g.num_nodes for g in ds.train])
    for name in models:
        batches = sampler_batches(loaders[name].batch_sampler, epoch=1)
        group_size = gtsp_group_size(device) if name == "gtsp" else 0
        padded, useful = executed_attention_flops([sizes[b] for b in batches], HPARAMS["layers"], HPARAMS["hidden"],
                                                  group_size)
        rate = flops["train_epoch_fwd_bwd"] / report[name]["train_epoch_seconds"] / 1e9
        infer_rate = test_flops["total"] / graphs * report[name]["inference_graphs_per_s"] / 1e9
        report[name]["train_useful_gflops_per_s"] = rate
        report[name]["train_fraction_of_floor"] = rate / floor["gflops_median"]
        report[name]["inference_useful_gflops_per_s"] = infer_rate
        report[name]["inference_fraction_of_floor"] = infer_rate / floor["gflops_median"]
        report[name]["attention_flops_executed_vs_useful"] = padded / useful
        report[name]["train_epoch_flops_executed_with_padding"] = 3 * (train_flops["total"] + padded - useful)

    # ---- peak memory
    memory = None
    if not args.no_memory:
        log("peak memory (fresh subprocess per model)")
        memory = {name: run_child(args, f"memory:{name}", timeout=600) for name in models}
        for name in models:
            report[name]["peak_memory"] = memory[name]

    # ---- profile
    profiles = None
    if not args.no_profile:
        log("profiling one epoch per model")
        profiles = {name: profile_epoch(models[name], loaders[name], optimizers[name], info, device,
                                        epoch=args.repeats + 1) for name in models}

    ratios = {"train_epoch_time gtsp/reference": report["gtsp"]["train_epoch_seconds"] /
              report["reference"]["train_epoch_seconds"],
              "train_speedup reference/gtsp": report["reference"]["train_epoch_seconds"] /
              report["gtsp"]["train_epoch_seconds"],
              "inference_throughput gtsp/reference": report["gtsp"]["inference_graphs_per_s"] /
              report["reference"]["inference_graphs_per_s"]}
    if memory is not None:
        for key in ("tensor_peak_bytes", "rss_peak_bytes", "cuda_peak_bytes"):
            a, b = memory["gtsp"].get(key), memory["reference"].get(key)
            if a and b:
                ratios[f"peak_memory[{key}] gtsp/reference"] = a / b
    return {"models": report, "ratios": ratios, "inference_contenders": inference, "floor": floor,
            "flops": flops, "profile": profiles}


# ---------------------------------------------------------------------------------------------
# experiments
# ---------------------------------------------------------------------------------------------
def threads_measure(args, ds, device) -> dict:
    """Intra-op threads 1 vs 2 for 8 gtsp training steps and test-split inference, interleaved."""
    gtsp_model, reference = build_models(ds.info, device, args.seed)
    batches = [b for _, b in zip(range(8), train_loader(ds.train, args.batch_size, args.seed))]
    test = eval_batches(ds.test, args.batch_size)[0]
    ref_test = list(DataLoader(ds.test, batch_size=args.batch_size))
    opt = optimizer_for(gtsp_model)
    previous = torch.get_num_threads()
    samples = defaultdict(list)
    settings = (1, 2)
    for threads in settings:  # warm-up per setting
        torch.set_num_threads(threads)
        train_steps(gtsp_model, batches[:2], opt, ds.info, device)
        infer_pass(gtsp_model, test, device)
    for r in range(3):
        for threads in (settings if r % 2 == 0 else settings[::-1]):
            torch.set_num_threads(threads)
            samples[f"train_8_steps_gtsp@{threads}"].append(train_steps(gtsp_model, batches, opt, ds.info, device))
            samples[f"infer_test_gtsp@{threads}"].append(infer_pass(gtsp_model, test, device))
            samples[f"infer_test_reference@{threads}"].append(infer_pass(reference, ref_test, device))
            log(f"  threads {threads}: train {samples[f'train_8_steps_gtsp@{threads}'][-1]:.2f} s")
    torch.set_num_threads(previous)
    out = {k: {"median_s": median(v), "samples": v} for k, v in samples.items()}
    for kind in ("train_8_steps_gtsp", "infer_test_gtsp", "infer_test_reference"):
        out[f"{kind} time 2threads/1thread"] = out[f"{kind}@2"]["median_s"] / out[f"{kind}@1"]["median_s"]
    out["load_average"] = os.getloadavg()
    out["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY")
    return out


def experiment_threads(args, ds, device) -> dict:
    """Threads 1 vs 2 here (OpenMP's default, spinning, wait policy), then in a child with passive waiting."""
    return {"default_wait_policy": threads_measure(args, ds, device),
            "OMP_WAIT_POLICY=PASSIVE (child process)": run_child(args, "threads", timeout=600,
                                                                 env={"OMP_WAIT_POLICY": "PASSIVE"})}


def batch_overlap(first: list[list[int]], second: list[list[int]]) -> float:
    """Mean over ``second``'s batches of the best Jaccard overlap with any batch of ``first``."""
    sets = [set(b) for b in first]
    return float(np.mean([max(len(s & t) / len(s | t) for t in sets) for s in map(set, second)]))


def experiment_pool(args, ds, device) -> dict:
    """Bucket pool size: padding (with attention size groups), batch-to-batch diversity across epochs, epoch time."""
    sizes = np.array([g.num_nodes for g in ds.train])
    n_batches = -(-len(sizes) // args.batch_size)
    out = {"batches_per_epoch": n_batches, "padding": {}, "epoch_overlap": {}, "train_epoch_seconds": {}}
    for pool in (1, 2, 4, 8, 16, n_batches):
        sampler = SizeBucketSampler(sizes, args.batch_size, args.seed, pool=pool)
        e1, e2 = sampler_batches(sampler, 1), sampler_batches(sampler, 2)
        stats = padding_stats([sizes[b] for b in e1], gtsp_group_size(device))
        out["padding"][pool] = {k: stats[k] for k in ("slot_padding_overall", "pair_padding_overall",
                                                       "attention_work_vs_unpadded")}
        out["epoch_overlap"][pool] = batch_overlap(e1, e2)
    timed = (1, 8, 16, n_batches)
    gtsp_model, _ = build_models(ds.info, device, args.seed)
    opt = optimizer_for(gtsp_model)
    loaders = {pool: DataLoader(ds.train, batch_sampler=SizeBucketSampler(sizes, args.batch_size, args.seed, pool))
               for pool in timed}
    samples = defaultdict(list)
    train_epoch(gtsp_model, loaders[timed[0]], opt, ds.info, device, epoch=0)
    for r in range(2):
        for pool in (timed if r % 2 == 0 else timed[::-1]):
            samples[pool].append(train_epoch(gtsp_model, loaders[pool], opt, ds.info, device, epoch=r + 1)["seconds"])
            log(f"  pool {pool}: {samples[pool][-1]:.2f} s")
    out["train_epoch_seconds"] = {pool: {"median_s": median(v), "samples": v} for pool, v in samples.items()}
    return out


def _attention_inputs(batch_list, dim: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(int(b.num_nodes), dim, generator=gen), b.batch, int(b.num_graphs)) for b in batch_list]


def experiment_attention(args, ds, device) -> dict:
    """Attention block variants on real NCI1 batches: forward + backward with dropout 0.5, and eval forward."""
    dim, heads = HPARAMS["hidden"], HPARAMS["heads"]
    head_dim = dim // heads
    torch.manual_seed(args.seed)
    attn = MultiHeadSelfAttention(dim, heads, dropout=HPARAMS["attn_dropout"])
    mha = torch.nn.MultiheadAttention(dim, heads, dropout=HPARAMS["attn_dropout"], batch_first=True)
    count = 6
    bucketed = _attention_inputs([b for _, b in zip(range(count), train_loader(ds.train, args.batch_size, args.seed))],
                                 dim, 1)
    torch.manual_seed(args.seed)
    random = _attention_inputs([b for _, b in zip(range(count), DataLoader(ds.train, batch_size=args.batch_size,
                                                                            shuffle=True))], dim, 2)

    def padded(x, batch, n, use_mask=True):
        seq = Sequences.from_batch(batch, n)
        return seq.to_flat(attn(seq.to_dense(x), seq.mask if use_mask and not seq.is_full else None))

    def nested(x, batch, n):
        counts = torch.bincount(batch, minlength=n)
        offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        q, k, v = attn.qkv(x).view(-1, 3, heads, head_dim).unbind(1)
        nj = [torch.nested.nested_tensor_from_jagged(t.contiguous(), offsets).transpose(1, 2) for t in (q, k, v)]
        out = F.scaled_dot_product_attention(*nj, dropout_p=attn.dropout if attn.training else 0.0)
        return attn.out(out.transpose(1, 2).values().reshape(-1, dim))

    def block_diagonal(x, batch, n):
        q, k, v = attn.qkv(x).view(-1, 3, heads, head_dim).permute(1, 2, 0, 3).unsqueeze(1)  # [3, 1, H, N, d]
        mask = batch.unsqueeze(0) == batch.unsqueeze(1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=attn.dropout if attn.training else 0.0)
        return attn.out(out[0].transpose(0, 1).reshape(-1, dim))

    def by_length(x, batch, n):
        """Split the batch into groups of equal-size graphs: dense SDPA per group, no mask, no padding."""
        counts = torch.bincount(batch, minlength=n)
        starts = torch.cumsum(counts, 0) - counts
        qkv = attn.qkv(x)
        out = torch.empty(x.size(0), dim)
        for length in torch.unique(counts).tolist():
            graphs = (counts == length).nonzero().flatten()
            rows = (starts[graphs].unsqueeze(1) + torch.arange(length)).flatten()
            q, k, v = qkv[rows].view(graphs.numel(), length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
            o = F.scaled_dot_product_attention(q, k, v, dropout_p=attn.dropout if attn.training else 0.0)
            out = out.index_copy(0, rows, o.transpose(1, 2).reshape(-1, dim))
        return attn.out(out)

    def manual_rand_dropout(x, batch, n):
        """Proposal: explicit softmax attention whose dropout mask comes from ``rand >= p`` (not bernoulli_)."""
        seq = Sequences.from_batch(batch, n)
        dense = seq.to_dense(x)
        b, length, _ = dense.shape
        q, k, v = attn.qkv(dense).view(b, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
        scores = (q * head_dim ** -0.5) @ k.transpose(-1, -2)
        if not seq.is_full:
            scores = scores.masked_fill(~seq.mask[:, None, None, :], float("-inf"))
        probs = scores.softmax(-1)
        if attn.training and attn.dropout > 0:
            probs = probs * ((torch.rand_like(probs) >= attn.dropout) * (1.0 / (1.0 - attn.dropout)))
        return seq.to_flat(attn.out((probs @ v).transpose(1, 2).reshape(b, length, dim)))

    def pyg_mha(x, batch, n):
        dense, mask = to_dense_batch(x, batch, batch_size=n)
        return mha(dense, dense, dense, key_padding_mask=~mask, need_weights=False)[0][mask]

    variants = {
        "padded+mask, random batches (gtsp attention, PyG batching)": (lambda x, b, n: padded(x, b, n), random),
        "nn.MultiheadAttention+key_padding_mask, random batches (GPSConv)": (pyg_mha, random),
        "padded+mask, bucketed batches (gtsp)": (lambda x, b, n: padded(x, b, n), bucketed),
        "padded, no mask, bucketed batches (cost only: wrong unless full)":
            (lambda x, b, n: padded(x, b, n, use_mask=False), bucketed),
        "padded+mask, bucketed, manual softmax + rand dropout (proposal)": (manual_rand_dropout, bucketed),
        "nested jagged SDPA (no padding)": (nested, bucketed),
        "split by exact length, dense SDPA, no mask": (by_length, bucketed),
        "block-diagonal mask on flat nodes (first 2 batches)": (block_diagonal, bucketed[:2]),
    }

    def run(fn, inputs, train: bool) -> float:
        attn.train(train)
        mha.train(train)
        start = time.perf_counter()
        for x, batch, n in inputs:
            if train:
                x = x.clone().requires_grad_(True)
                fn(x, batch, n).square().mean().backward()
            else:
                with torch.no_grad():
                    fn(x, batch, n)
        return time.perf_counter() - start

    # correctness of the no-padding variants against the padded one (eval mode)
    attn.eval()
    with torch.no_grad():
        x, batch, n = bucketed[0]
        ref = padded(x, batch, n)
        errors = {name: float((fn(x, batch, n) - ref).abs().max()) for name, fn in
                  (("nested", nested), ("by_length", by_length), ("block_diagonal", block_diagonal),
                   ("manual_rand_dropout", manual_rand_dropout))}
    out = {"batches": count, "max_abs_error_vs_padded": errors, "train_fwd_bwd": {}, "eval_fwd": {}}
    for mode, train in (("train_fwd_bwd", True), ("eval_fwd", False)):
        for fn, inputs in variants.values():
            run(fn, inputs[:1], train)
        samples = defaultdict(list)
        for r in range(3):
            for name in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
                fn, inputs = variants[name]
                samples[name].append(run(fn, inputs, train) / len(inputs))
        out[mode] = {name: {"ms_per_batch": 1e3 * median(v), "samples_s": v} for name, v in samples.items()}
        log(f"  attention {mode}: " + ", ".join(f"{k[:24]}={v['ms_per_batch']:.1f}ms" for k, v in out[mode].items()))
    # what share of a padded training step dropout's RNG takes
    sizes = torch.Size([args.batch_size, heads, 40, 40])
    t = time.perf_counter()
    for _ in range(5):
        torch.empty(sizes).bernoulli_(0.5)
    bern = (time.perf_counter() - t) / 5
    t = time.perf_counter()
    for _ in range(5):
        torch.rand(sizes) < 0.5
    rand = (time.perf_counter() - t) / 5
    out["dropout_mask_[128,4,40,40]"] = {"bernoulli__ms": 1e3 * bern, "rand_lt_ms": 1e3 * rand}
    return out


def compile_child(args) -> dict:
    """torch.compile(dynamic=True) of gtsp's GPS: compile time and steady-state speed vs eager (same process)."""
    device = torch.device(args.device)
    ds = load(args)
    eager, _ = build_models(ds.info, device, args.seed)
    compiled_model = copy.deepcopy(eager)
    batches = [b.to(device) for _, b in zip(range(8), train_loader(ds.train, args.batch_size, args.seed))]
    test = [b.to(device) for b in eval_batches(ds.test, args.batch_size)[0]]
    opt_e, opt_c = optimizer_for(eager), optimizer_for(compiled_model)
    compiled = torch.compile(compiled_model, dynamic=True)
    out = {"device": device.type, "threads": torch.get_num_threads()}
    start = time.perf_counter()
    train_steps(compiled, batches, opt_c, ds.info, device)  # compiles (and recompiles) on the way
    out["first_8_train_steps_with_compile_s"] = time.perf_counter() - start
    start = time.perf_counter()
    infer_pass(compiled, test, device)
    out["first_eval_pass_with_compile_s"] = time.perf_counter() - start
    train_steps(eager, batches[:2], opt_e, ds.info, device)
    samples = defaultdict(list)
    for r in range(3):
        for name, model, opt in ((("eager", eager, opt_e), ("compiled", compiled, opt_c)) if r % 2 == 0 else
                                 (("compiled", compiled, opt_c), ("eager", eager, opt_e))):
            samples[f"train_8_steps_{name}"].append(train_steps(model, batches, opt, ds.info, device))
            samples[f"infer_test_{name}"].append(infer_pass(model, test, device))
    out.update({k: {"median_s": median(v), "samples": v} for k, v in samples.items()})
    out["train compiled/eager"] = out["train_8_steps_compiled"]["median_s"] / out["train_8_steps_eager"]["median_s"]
    out["infer compiled/eager"] = out["infer_test_compiled"]["median_s"] / out["infer_test_eager"]["median_s"]
    try:
        from torch._dynamo.utils import counters
        out["graph_breaks"] = sum(counters["graph_break"].values())
        out["unique_graphs"] = counters["stats"]["unique_graphs"]
    except Exception:  # counters are internal; their absence only loses a detail
        pass
    return out


def experiment_collate(args, ds, device) -> dict:
    """Collation (``Batch.from_data_list``) per epoch vs the model step, and pre-collated training batches."""
    gtsp_model, _ = build_models(ds.info, device, args.seed)
    opt = optimizer_for(gtsp_model)
    loader = train_loader(ds.train, args.batch_size, args.seed)
    random_loader = DataLoader(ds.train, batch_size=args.batch_size, shuffle=True)
    precollated = list(loader)
    out = defaultdict(list)
    train_steps(gtsp_model, precollated[:2], opt, ds.info, device)
    for r in range(3):
        start = time.perf_counter()
        for _ in loader:
            pass
        out["collate_only_bucketed_s"].append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in random_loader:
            pass
        out["collate_only_random_s"].append(time.perf_counter() - start)
        out["epoch_with_collation_s"].append(train_epoch(gtsp_model, loader, opt, ds.info, device, r + 1)["seconds"])
        out["epoch_precollated_s"].append(train_steps(gtsp_model, precollated, opt, ds.info, device))
    result = {k: {"median_s": median(v), "samples": v} for k, v in out.items()}
    result["collation share of epoch"] = (result["collate_only_bucketed_s"]["median_s"] /
                                          result["epoch_with_collation_s"]["median_s"])
    return result


@contextmanager
def gates_skipped():
    """Temporarily run FeedForward and attention without their (all-ones) gate multiplies."""
    from gtsp.nn import attention as attention_module
    from gtsp.nn.ffn import FeedForward

    ffn_forward, attend = FeedForward.forward, MultiHeadSelfAttention._attend

    def ffn_plain(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))

    def attend_plain(self, x, mask, bias):
        batch, length, _ = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        heads = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_module._attention_mask(mask, bias, q.dtype),
                                               dropout_p=self.dropout if self.training else 0.0)
        return self.out(heads.transpose(1, 2).reshape(batch, length, -1))

    FeedForward.forward, MultiHeadSelfAttention._attend = ffn_plain, attend_plain
    try:
        yield
    finally:
        FeedForward.forward, MultiHeadSelfAttention._attend = ffn_forward, attend


def experiment_gates(args, ds, device) -> dict:
    """Cost of gtsp's sparsifier gates (head_gate, neuron_gate multiplies) when they are all ones."""
    gtsp_model, _ = build_models(ds.info, device, args.seed)
    opt = optimizer_for(gtsp_model)
    batches = [b.to(device) for _, b in zip(range(10), train_loader(ds.train, args.batch_size, args.seed))]
    test = [b.to(device) for b in eval_batches(ds.test, args.batch_size)[0]]
    gtsp_model.eval()
    with torch.no_grad():
        gated = gtsp_model(test[0])
        with gates_skipped():
            plain = gtsp_model(test[0])
    contenders = {"gated": nullcontext, "gates skipped": gates_skipped}
    for ctx in contenders.values():
        with ctx():
            train_steps(gtsp_model, batches[:2], opt, ds.info, device)
    samples = defaultdict(list)
    for r in range(4):
        for name in (list(contenders) if r % 2 == 0 else list(contenders)[::-1]):
            with contenders[name]():
                samples[f"train_10_steps {name}"].append(train_steps(gtsp_model, batches, opt, ds.info, device))
                samples[f"infer_test {name}"].append(infer_pass(gtsp_model, test, device))
    out = {k: {"median_s": median(v), "samples": v} for k, v in samples.items()}
    out["max_abs_output_difference"] = float((gated - plain).abs().max())
    out["train gated/skipped"] = (out["train_10_steps gated"]["median_s"] /
                                  out["train_10_steps gates skipped"]["median_s"])
    out["infer gated/skipped"] = out["infer_test gated"]["median_s"] / out["infer_test gates skipped"]["median_s"]
    return out


def _attend_rand_dropout(self, x, mask, bias):
    """Proposal for ``MultiHeadSelfAttention._attend``: on CPU, while training with dropout, explicit
    softmax attention whose dropout mask is drawn as ``rand >= p`` (SDPA's CPU math path draws it with
    the slower ``bernoulli_``); SDPA unchanged otherwise. Same distribution, different random draws."""
    from gtsp.nn import attention as attention_module

    if not (self.training and self.dropout > 0) or self.record_head_scores or x.device.type != "cpu":
        return _ORIGINAL_ATTEND(self, x, mask, bias)  # CUDA SDPA fuses dropout into its kernel: keep it
    batch, length, _ = x.shape
    q, k, v = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
    scores = (q * self.head_dim ** -0.5) @ k.transpose(-1, -2)
    attn_mask = attention_module._attention_mask(mask, bias, q.dtype)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
    probs = torch.softmax(scores, -1).nan_to_num(0.0)  # rows with no real key (empty graphs): 0, as SDPA does
    probs = probs * ((torch.rand_like(probs) >= self.dropout) * (1.0 / (1.0 - self.dropout)))
    heads = (probs @ v) * self.head_gate.view(1, -1, 1, 1)
    return self.out(heads.transpose(1, 2).reshape(batch, length, -1))


_ORIGINAL_ATTEND = MultiHeadSelfAttention._attend


@contextmanager
def rand_dropout_attention():
    MultiHeadSelfAttention._attend = _attend_rand_dropout
    try:
        yield
    finally:
        MultiHeadSelfAttention._attend = _ORIGINAL_ATTEND


def experiment_dropout(args, ds, device) -> dict:
    """Training steps with gtsp's attention as is vs the ``rand``-dropout proposal (same batches, interleaved)."""
    gtsp_model, _ = build_models(ds.info, device, args.seed)
    opt = optimizer_for(gtsp_model)
    batches = [b.to(device) for _, b in zip(range(10), train_loader(ds.train, args.batch_size, args.seed))]
    contenders = {"SDPA (current)": nullcontext, "explicit softmax + rand dropout (proposal)": rand_dropout_attention}
    for ctx in contenders.values():
        with ctx():
            train_steps(gtsp_model, batches[:2], opt, ds.info, device)
    gtsp_model.eval()  # eval path is untouched by the proposal
    with torch.no_grad():
        current = gtsp_model(batches[0])
        with rand_dropout_attention():
            proposal = gtsp_model(batches[0])
    samples = defaultdict(list)
    for r in range(4):
        for name in (list(contenders) if r % 2 == 0 else list(contenders)[::-1]):
            with contenders[name]():
                samples[name].append(train_steps(gtsp_model, batches, opt, ds.info, device))
    out = {f"train_10_steps {k}": {"median_s": median(v), "samples": v} for k, v in samples.items()}
    out["eval_max_abs_difference"] = float((current - proposal).abs().max())
    out["train proposal/current"] = median(samples["explicit softmax + rand dropout (proposal)"]) / median(
        samples["SDPA (current)"])
    return out


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------
def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def mib(value) -> str:
    return "-" if not value else f"{value / 2**20:.1f}"


def print_table(result: dict) -> None:
    models, ratios = result["models"], result["ratios"]
    rows = [("train s/epoch (median)", lambda m: f"{m['train_epoch_seconds']:.2f}"),
            ("  of which collation s", lambda m: f"{m['collate_seconds_per_epoch']:.2f}"),
            ("inference graphs/s", lambda m: f"{m['inference_graphs_per_s']:.0f}"),
            ("peak tensor MiB (train)", lambda m: mib(m.get("peak_memory", {}).get("tensor_peak_bytes")
                                                      or m.get("peak_memory", {}).get("cuda_peak_bytes"))),
            ("peak RSS growth MiB (train)", lambda m: mib(m.get("peak_memory", {}).get("rss_peak_bytes"))),
            ("useful GFLOP/s train", lambda m: f"{m['train_useful_gflops_per_s']:.2f}"),
            ("  fraction of mm floor", lambda m: f"{100 * m['train_fraction_of_floor']:.1f}%"),
            ("useful GFLOP/s inference", lambda m: f"{m['inference_useful_gflops_per_s']:.2f}"),
            ("  fraction of mm floor", lambda m: f"{100 * m['inference_fraction_of_floor']:.1f}%"),
            ("attention FLOPs executed/useful", lambda m: f"{m['attention_flops_executed_vs_useful']:.2f}x")]
    print(f"\n{'':34s} {'reference (PyG GPSConv)':>24s} {'gtsp GPS':>12s}")
    for label, fmt in rows:
        print(f"{label:34s} {fmt(models['reference']):>24s} {fmt(models['gtsp']):>12s}")
    print(f"\nmatmul floor: {result['floor']['gflops_median']:.1f} GFLOP/s ({result['floor']['op']}, "
          f"{result['floor']['threads']} thread(s))")
    for key, value in ratios.items():
        print(f"{key}: {value:.3f}")
    for key, value in result["inference_contenders"].items():
        print(f"inference {key}: {value['graphs_per_s']:.0f} graphs/s")
    for key, value in result["padding"].items():
        if "slot_padding_overall" in value:
            print(f"padding {key}: slots {100 * value['slot_padding_overall']:.1f}%, attention pairs "
                  f"{100 * value['pair_padding_overall']:.1f}% (work {value['attention_work_vs_unpadded']:.2f}x)")
    if result.get("profile"):
        for name, prof in result["profile"].items():
            print(f"\nprofile {name} (one epoch, {prof['profiled_epoch_seconds']:.2f} s under the profiler):")
            for category, fraction in prof["categories_fraction"].items():
                print(f"  {category:52s} {100 * fraction:5.1f}%")
            print("  top ops by self CPU time: " + ", ".join(
                f"{o['op'][6:]} {100 * o['fraction']:.1f}%" for o in prof["top_ops"][:8]))


def run_experiments(args, ds, device) -> dict:
    wanted = EXPERIMENTS if args.experiments == "all" else [e for e in args.experiments.split(",") if e]
    unknown = [e for e in wanted if e not in EXPERIMENTS]
    if unknown:
        raise SystemExit(f"unknown experiment(s) {unknown}: choose from {', '.join(EXPERIMENTS)}")
    experiments = {}
    for name in wanted:
        log(f"experiment: {name}")
        start = time.perf_counter()
        if name == "compile":
            experiments[name] = run_child(args, "compile", timeout=args.compile_timeout)
        else:
            experiments[name] = globals()[f"experiment_{name}"](args, ds, device)
        experiments[name]["experiment_seconds"] = time.perf_counter() - start
        experiments[name]["load_average_after"] = os.getloadavg()
    return experiments


def only_experiments(args, device) -> int:
    """Run the named experiments alone and merge them into ``--out`` (kept otherwise as it was)."""
    out = Path(args.out) if args.out else None
    result = json.loads(out.read_text()) if out is not None and out.is_file() else {}
    experiments = run_experiments(args, load(args), device)
    result.setdefault("experiments", {}).update(experiments)
    print(json.dumps({k: {m: v for m, v in e.items() if m not in ("samples", "samples_s")}
                      for k, e in experiments.items()}, indent=1, default=str))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, default=str) + "\n")
        log(f"updated {out}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_threads(args.threads)
    device = torch.device(args.device)
    if args.child:
        if args.child.startswith("memory:"):
            result = memory_child(args, args.child.split(":", 1)[1])
        elif args.child == "threads":
            result = threads_measure(args, load(args), device)
        else:
            result = compile_child(args)
        print(json.dumps(result))
        return 0
    started = time.perf_counter()
    if args.only_experiments:
        return only_experiments(args, device)
    result = {"benchmark": "gtsp GPS vs PyG GPSConv", "dataset": args.dataset, "device": str(device),
              "machine": machine_info(device),
              "settings": {"hparams": HPARAMS, "batch_size": args.batch_size, "lr": LR, "weight_decay": WEIGHT_DECAY,
                           "optimizer": "AdamW", "repeats": args.repeats, "infer_repeats": args.infer_repeats,
                           "threads": torch.get_num_threads(), "seed": args.seed}}
    log(f"loading {args.dataset}")
    ds = load(args)
    result["split_sizes"] = {"train": len(ds.train), "valid": len(ds.valid), "test": len(ds.test)}
    result["padding"] = padding_breakdown(ds, args.batch_size, args.seed, torch.device(args.device))
    result.update(benchmark(args, ds, device))
    experiments = run_experiments(args, ds, device)
    if experiments:
        result["experiments"] = experiments
    result["machine"]["load_average_end"] = os.getloadavg()
    result["benchmark_seconds"] = time.perf_counter() - started
    print_table(result)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1, default=str) + "\n")
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
