"""Data-parallel training on PyTorch's own engine: ``torchrun`` + ``DistributedDataParallel``.

``torchrun --nproc_per_node N -m gtsp train ...`` starts N processes and tells each its place
through environment variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``). :func:`session` joins them into one process group: NCCL when training on
GPUs (rank ``r`` on GPU ``LOCAL_RANK``), gloo on CPUs. Without torchrun (or with one rank)
everything here is a no-op and gtsp trains in one process exactly as before.

What the trainer asks of this module:

- the batches: ``--batch-size`` stays the GLOBAL batch; every rank draws the same epoch's batch
  list from ``(seed, epoch)`` and trains on its share of each batch (:func:`shard`), so the
  number of steps, the learning-rate schedule and the pruning schedules do not depend on the
  number of ranks, and a checkpoint resumes on any number of ranks;
- the model: :func:`wrap` synchronises batch norm across ranks and wraps the model in
  ``DistributedDataParallel``, which averages gradients;
- evaluation: :func:`all_gather` collects every rank's predictions so metrics are those of the
  whole split;
- the run folder: rank 0 alone writes (:func:`on_main`), and its refusals reach every rank.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gtsp.errors import GtspError, RelayedError
from gtsp.train.sync_batchnorm import plain_batch_norm, synced_batch_norm

T = TypeVar("T")
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


# ---- where this process stands ------------------------------------------------------------------
def launched_ranks() -> int:
    """Processes the launcher started (``WORLD_SIZE``; 1 without torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise GtspError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number: launch with torchrun, "
                        "which sets it") from None


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0") or 0)


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_main() -> bool:
    """Rank 0: the one process that writes checkpoints, metrics, results and model files."""
    return rank() == 0


# ---- the process group ---------------------------------------------------------------------------
@contextmanager
def session(device: torch.device) -> Iterator[torch.device]:
    """Join torchrun's process group for the ``with`` block and yield this rank's device.

    ``device`` is the one asked for (cpu or cuda): CUDA ranks use NCCL and GPU ``LOCAL_RANK``,
    CPU ranks gloo. One process (no torchrun, or one rank) yields ``device`` unchanged.
    """
    if launched_ranks() <= 1 or (dist.is_available() and dist.is_initialized()):
        yield device
        return
    missing = [name for name in LAUNCH_VARIABLES if name not in os.environ]
    if missing:
        raise GtspError(f"WORLD_SIZE={launched_ranks()} but {', '.join(missing)} not set: launch with "
                        "'torchrun --nproc_per_node N -m gtsp train ...'")
    if device.type == "cuda":
        if local_rank() >= torch.cuda.device_count():
            raise GtspError(f"LOCAL_RANK {local_rank()} has no GPU ({torch.cuda.device_count()} visible): give "
                            "torchrun at most one process per GPU (--nproc_per_node)")
        device = torch.device("cuda", local_rank())
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield device
    finally:
        dist.destroy_process_group()


def backend() -> str | None:
    """``gloo``, ``nccl`` or None in one process."""
    return dist.get_backend() if world_size() > 1 else None


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def broadcast_from_main(value: T) -> T:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if world_size() == 1:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_gather(value: T) -> list[T]:
    """Every rank's ``value``, in rank order, on every rank."""
    if world_size() == 1:
        return [value]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def sum_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums of ``values`` over all ranks (float64)."""
    if world_size() == 1:
        return list(values)
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    return totals.tolist()


def on_main(action: Callable[[], T]) -> T | None:
    """``action()`` on rank 0 only (other ranks get None); a refusal there is raised on every rank."""
    result, error = None, None
    if is_main():
        try:
            result = action()
        except GtspError as err:
            error = err
    message = broadcast_from_main(None if error is None else str(error))
    if error is not None:
        raise error
    if message is not None:
        raise RelayedError(message)
    return result


def in_turn(action: Callable[[], T]) -> T:
    """``action()`` on every rank, rank 0 first, then the first rank of every other node, then the rest.

    For work that fills a cache (dataset processing): the first run writes it, later ones read it,
    whether the cache is shared by all nodes or local to each; rank 0's refusal reaches every rank.
    """
    result = on_main(action)
    first_of_node = not is_main() and local_rank() == 0
    if first_of_node:
        result = action()
    barrier()
    if not is_main() and not first_of_node:
        result = action()
    barrier()
    return result


# ---- batches -------------------------------------------------------------------------------------
def shard(indices: list[int]) -> tuple[list[int], bool]:
    """This rank's graphs of one global batch, and whether they are only padding.

    Rank ``r`` takes every ``world``-th graph from position ``r``. A batch with fewer graphs than
    ranks (at most the last of an epoch) leaves some ranks without one: they run the batch's first
    graph with zero loss weight (``True``), because every rank must take part in every step.
    """
    mine = indices[rank()::world_size()]
    return (mine, False) if mine else (indices[:1], True)


def rank_share(count: int) -> range:
    """The positions ``0..count-1`` this rank handles (round robin)."""
    return range(rank(), count, world_size())


def seed_epoch(seed: int, epoch: int) -> None:
    """Seed torch's generator for ``epoch`` on this rank: dropout and sampling noise differ between
    ranks but never depend on what an earlier epoch drew, so a resumed run repeats the same noise."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{rank()}".encode()).digest()
    torch.manual_seed(int.from_bytes(digest[:8], "little"))


# ---- the model -----------------------------------------------------------------------------------
def wrap(model: nn.Module, device: torch.device, unused_parameters: bool = False) -> nn.Module:
    """``model`` for training: itself in one process, else batch norm synchronised across ranks and
    the model wrapped in ``DistributedDataParallel`` (which averages gradients).

    Buffers are synchronised once, not broadcast from rank 0 on every forward: synchronised batch norm keeps running
    statistics equal, masks are equal by construction, and sparsifier statistics are per-rank sums
    that :mod:`gtsp.sparsify.sync` reduces before each decision (a broadcast would overwrite them).
    ``unused_parameters``: some parameters may get no gradient on a step (layers that layer pruning
    drops or removes), so DDP must look for them after every backward pass (an extra traversal of
    the autograd graph; without it DDP waits for those gradients forever).
    """
    if world_size() == 1:
        return model
    synced_batch_norm(model)
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, forward_sync_buffers=False,
                                   find_unused_parameters=unused_parameters)


@torch.no_grad()
def average_buffers(model: nn.Module) -> None:
    """Replace every floating-point buffer of ``model`` by its mean over the ranks (in place).

    Called at each epoch's end, before rank 0 writes the checkpoint: statistics a sparsifier
    accumulates per rank between two decisions (head scores, dense weight gradients) then equal
    what every rank holds, so a resumed run (on any number of ranks) continues from the state the
    uninterrupted one had. Their later reduction before a decision is a mean, which this does not
    change; buffers already equal on every rank (masks, gates, batch-norm statistics) stay so.
    """
    if world_size() == 1:
        return
    buffers = [b for b in model.buffers() if b.is_floating_point()]
    if buffers:
        flat = torch.cat([b.reshape(-1).double() for b in buffers])
        dist.all_reduce(flat)
        flat /= world_size()
        offset = 0
        for buffer in buffers:
            buffer.copy_(flat[offset:offset + buffer.numel()].view_as(buffer))
            offset += buffer.numel()


def unwrap(model: nn.Module) -> nn.Module:
    """Undo :func:`wrap` on the underlying ``model`` (plain batch norm again), in place."""
    if world_size() > 1:
        plain_batch_norm(model)
    return model


def state_digest(model: nn.Module) -> str:
    """SHA-256 of ``model``'s state dict (names, shapes, dtypes, values): equal models, equal digests."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
