"""The training loop: seeded, checkpointed every epoch, resumable, NaN-guarded.

The trainer knows nothing of pruning beyond calling an optional ``hooks`` object
(a sparsifier) with this protocol, every method optional:

- ``extra_loss() -> Tensor | None``: added to the task loss;
- ``on_step(step)``: after each optimiser step (mask updates, schedules);
- ``selectable(epoch) -> bool``: whether the model just evaluated after ``epoch`` may be chosen
  as the best one (e.g. not before the final sparsity is reached); asked before ``on_epoch_end``;
- ``on_epoch_end(epoch)``: may change the masks (e.g. choose layers), which the next epoch's
  evaluation then sees;
- ``state_dict()`` / ``load_state_dict(state)``: saved in the checkpoint.

Each epoch appends one JSON line to ``metrics.jsonl``: training loss and metric (over the
training batches' predictions as they were made), validation metric and loss, test metric,
learning rate. The best epoch is the one with the best validation metric; ties go to the lower
validation loss, then to the later epoch (a tiny validation split often ties at the top). Only
epochs from ``select_from`` on, and that the hooks call selectable, may be chosen; until one has
been, the records say ``best_epoch: -1``.

Under ``torchrun`` (:mod:`gtsp.train.distributed`) each rank trains on its share of every batch
through ``DistributedDataParallel``; every rank's loss is weighted by its share of the batch's
labels, so the averaged gradient is the one of the whole batch's mean loss. Evaluation splits
the batches between ranks and gathers the predictions, so metrics are those of the whole split.
Rank 0 alone writes checkpoints and ``metrics.jsonl``.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Batch
from tqdm import tqdm

from gtsp.data.batching import eval_batches, train_loader
from gtsp.data.info import DatasetInfo
from gtsp.data.registry import GraphDataset
from gtsp.errors import GtspError
from gtsp.train import distributed
from gtsp.train.metrics import predictions, score, task_loss
from gtsp.train.run_folder import CHECKPOINT, METRICS, atomic_write_text, load_checkpoint, save_checkpoint
from gtsp.train.schedule import warmup_cosine

log = logging.getLogger("gtsp.train")


@dataclass
class FitResult:
    """What a finished run learned: the best epoch and its validation and test metric."""

    best_epoch: int
    val: float
    test: float
    train_seconds: float
    epoch_seconds: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """Trains ``model`` on ``data`` with AdamW, warm-up + cosine schedule, model selection on validation.

    Args:
        model: a backbone from :mod:`gtsp.models`.
        data: the loaded dataset.
        out: run folder (checkpoint, ``metrics.jsonl``).
        epochs, batch_size, lr, weight_decay, warmup_epochs, grad_clip, seed: the usual.
        bucket_pool: batches per size-sorted pool of the training sampler (1 = no bucketing).
        device: ``torch.device`` to train on (this rank's, under torchrun).
        hooks: optional sparsifier following the protocol in the module docstring.
        progress: show a progress bar.
        run_info: what the run is (config, provenance, resumes), saved in every checkpoint as ``"run"``.
        unused_parameters: some parameters may get no gradient on a step (layer pruning skips layers);
            data-parallel training must then look for them (:func:`gtsp.train.distributed.wrap`).
        select_from: the first epoch whose model may be chosen as the best (``--select-from``).
    """

    def __init__(self, model: nn.Module, data: GraphDataset, out: Path, *, epochs: int, batch_size: int,
                 lr: float, weight_decay: float, warmup_epochs: int, grad_clip: float, seed: int,
                 bucket_pool: int = 1, device: torch.device = torch.device("cpu"), hooks: Any = None,
                 progress: bool = True, run_info: dict[str, Any] | None = None,
                 unused_parameters: bool = False, select_from: int = 1) -> None:
        self.select_from = select_from
        self.model, self.data, self.out, self.device = model.to(device), data, Path(out), device
        self.epochs, self.grad_clip, self.hooks, self.progress = epochs, grad_clip, hooks, progress
        self.lr, self.run_info, self.seed = lr, run_info or {}, seed
        self.train_model = distributed.wrap(self.model, device, unused_parameters)  # the model itself if alone
        self.loader = train_loader(data.train, batch_size, seed, bucket_pool)  # global batches
        self.valid_batches = eval_batches(data.valid, batch_size)
        self.test_batches = eval_batches(data.test, batch_size)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        steps = epochs * len(self.loader)
        self.scheduler = warmup_cosine(self.optimizer, warmup_epochs * len(self.loader), steps)
        self.state = {"epoch": 0, "step": 0, "best_epoch": -1, "best_val": None, "best_val_loss": None,
                      "best_test": None, "train_seconds": 0.0, "epoch_seconds": [], "history": []}
        self.best_model_state: dict | None = None
        self.out.mkdir(parents=True, exist_ok=True)

    # ---- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Write the whole training state atomically (rank 0); the previous checkpoint is kept as a fallback."""
        if not distributed.is_main():
            return
        save_checkpoint(self.out, {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "trainer": self.state, "best_model": self.best_model_state,
            "rng": _rng_state(), "hooks": self._hook("state_dict"), "run": self.run_info})

    def load_checkpoint(self) -> bool:
        """Restore from the latest readable checkpoint in ``out``; False when there is none."""
        state = load_checkpoint(self.out, self.device)
        if state is None:
            return False
        self.restore(state)
        return True

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's ``state`` (as :func:`gtsp.train.run_folder.load_checkpoint` returns)."""
        if state["hooks"] is not None:
            self._hook("load_state_dict", state["hooks"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self._continue_schedule()
        self.state, self.best_model_state = state["trainer"], state["best_model"]
        _set_rng_state(state["rng"])
        log.info("resumed from %s after epoch %d", state.get("loaded_from", self.out / CHECKPOINT), self.state["epoch"])

    def _continue_schedule(self) -> None:
        """Put this trainer's peak lr and length on the restored schedule, from the restored step on.

        Unchanged settings give back the very learning rate that was saved; a changed ``lr`` (or
        ``epochs``) takes effect from the first step after the resume, on the same warm-up + cosine shape.
        """
        step = self.scheduler.last_epoch
        self.scheduler.base_lrs = [self.lr for _ in self.optimizer.param_groups]
        for group, factor in zip(self.optimizer.param_groups, self.scheduler.lr_lambdas):
            group["initial_lr"] = self.lr
            group["lr"] = self.lr * factor(step)

    # ---- loop --------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> FitResult:
        """Train the remaining epochs (all, or those after the checkpoint with ``resume``)."""
        if resume and not self.load_checkpoint():
            log.warning("--resume: no checkpoint in %s, starting from scratch", self.out)
        main = distributed.is_main()
        if main:
            # metrics.jsonl holds exactly the epochs of the state trained from: none lost, none repeated
            atomic_write_text(self.out / METRICS, "".join(json.dumps(r) + "\n" for r in self.state["history"]))
        bar = tqdm(total=self.epochs, initial=self.state["epoch"], desc="train", unit="epoch",
                   disable=not (self.progress and main), dynamic_ncols=True)
        with bar, open(self.out / METRICS, "a") if main else contextlib.nullcontext() as metrics_file:
            for epoch in range(self.state["epoch"] + 1, self.epochs + 1):
                record = self._run_epoch(epoch)
                if metrics_file is not None:
                    metrics_file.write(json.dumps(record) + "\n")
                    metrics_file.flush()
                if main:
                    bar.write(json.dumps(record))
                bar.set_postfix(loss=f"{record['loss']:.4f}", val=f"{record['val']:.4f}")
                bar.update(1)
        if self.best_model_state is not None:
            self.model.load_state_dict(self.best_model_state)
        distributed.unwrap(self.model)
        s = self.state
        if s["best_val"] is None:
            raise GtspError(f"none of the {self.epochs} epochs evaluated the final pruned model (the pruning "
                            "schedule had not ended), so there is no model to report: raise --epochs")
        return FitResult(s["best_epoch"], s["best_val"], s["best_test"], s["train_seconds"],
                         s["epoch_seconds"], s["history"])

    def _run_epoch(self, epoch: int) -> dict[str, Any]:
        start = time.perf_counter()
        loss, train_metric = self._train_one_epoch(epoch)
        seconds = time.perf_counter() - start
        (val, val_loss), (test, _) = self.evaluate(self.valid_batches), self.evaluate(self.test_batches)
        # Ask before on_epoch_end: a mask chosen there was not part of the model just evaluated.
        selectable = epoch >= self.select_from and self._hook("selectable", epoch) is not False
        self._hook("on_epoch_end", epoch)
        distributed.average_buffers(self.model)  # rank 0's checkpoint then holds every rank's state
        s = self.state
        if selectable and self._is_better(val, val_loss):
            s["best_epoch"], s["best_val"], s["best_val_loss"], s["best_test"] = epoch, val, val_loss, test
            self.best_model_state = copy.deepcopy(self.model.state_dict())
        s["epoch"], s["train_seconds"] = epoch, s["train_seconds"] + seconds
        s["epoch_seconds"].append(seconds)
        record = {"epoch": epoch, "loss": loss, "train_metric": train_metric, "val": val, "val_loss": val_loss,
                  "test": test, "lr": self.optimizer.param_groups[0]["lr"], "epoch_seconds": round(seconds, 3),
                  "best_epoch": s["best_epoch"]}
        s["history"].append(record)
        self.save_checkpoint()
        if s["best_epoch"] == -1 and epoch == 1 and distributed.is_main():
            log.info("best_epoch is -1 until an epoch may be chosen as the best model: %s",
                     f"--select-from {self.select_from}" if self.select_from > 1
                     else "a pruned model is chosen only once its pruning schedule has ended")
        return record

    def _train_one_epoch(self, epoch: int) -> tuple[float, float]:
        """Mean training loss and the metric of the predictions made on the training batches (all ranks')."""
        self.train_model.train()
        sampler = self.loader.batch_sampler
        sampler.set_epoch(epoch)
        if distributed.world_size() > 1:
            distributed.seed_epoch(self.seed, epoch)
        total, graphs, all_logits, all_labels = 0.0, 0, [], []
        for indices in sampler:
            mine, padding = distributed.shard(indices)
            batch = Batch.from_data_list([self.data.train[i] for i in mine]).to(self.device)
            logits = self.train_model(batch)
            task = task_loss(self.data.info, logits, batch.y)
            extra = self._hook("extra_loss")
            loss = task if extra is None else task + extra
            weight = self._shard_weight(batch, padding, loss, epoch)
            objective = task if weight == 1.0 else task * weight
            self.optimizer.zero_grad(set_to_none=True)
            (objective if extra is None else objective + extra).backward()
            if self.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.state["step"] += 1
            self._hook("on_step", self.state["step"])
            if not padding:
                total += loss.item() * batch.num_graphs
                graphs += batch.num_graphs
                all_logits.append(logits.detach().float().cpu())
                all_labels.append(batch.y.cpu())
        total, graphs = distributed.sum_over_ranks([total, graphs], self.device)
        parts = distributed.all_gather((all_logits, all_labels))
        logits = torch.cat([t for part_logits, _ in parts for t in part_logits])
        labels = torch.cat([t for _, part_labels in parts for t in part_labels])
        return total / graphs, self._score(logits, labels)

    def _shard_weight(self, batch: Batch, padding: bool, loss: torch.Tensor, epoch: int) -> float:
        """The factor on this rank's mean task loss that makes the gradient averaged over ranks the one
        of the mean loss over the whole batch: ``ranks * labels here / labels in the batch`` (1 in
        one process); stops every rank when the loss of any rank is not finite."""
        ranks = distributed.world_size()
        if ranks == 1:
            if not torch.isfinite(loss):
                raise GtspError(self._nan_message(loss.item(), epoch))
            return 1.0
        here = 0.0 if padding else _label_count(self.data.info, batch)
        finite = bool(torch.isfinite(loss))
        labels, broken = distributed.sum_over_ranks([here, 0.0 if finite else 1.0], self.device)
        if broken:
            raise GtspError(self._nan_message(loss.item() if not finite else float("nan"), epoch))
        return ranks * here / labels if labels else 0.0

    def _nan_message(self, value: float, epoch: int) -> str:
        """The NaN stop: what happened, the two settings that help, and how to continue."""
        clip = (f"set a smaller --grad-clip (now {self.grad_clip:g})" if self.grad_clip > 0
                else "set --grad-clip (e.g. 1; now 0 = off)")
        done = self.state["epoch"]
        where = (f"from the last good checkpoint {self.out / CHECKPOINT} (after epoch {done})" if done
                 else "from scratch (no epoch had finished)")
        return (f"the loss became {value} at epoch {epoch}, step {self.state['step']}: lower --lr or {clip}, "
                f"then run again with --resume, which continues {where} with the new --lr and --grad-clip")

    @torch.no_grad()
    def evaluate(self, batches_and_order) -> tuple[float, float]:
        """The dataset's metric and the mean task loss of the current model over ``(batches, order)``."""
        logits, labels = self.predict(batches_and_order)
        return self._score(logits, labels), float(task_loss(self.data.info, logits, labels))

    def _score(self, logits: torch.Tensor, labels: torch.Tensor) -> float:
        return score(self.data.info, labels, predictions(self.data.info, logits), self.data.evaluator)

    def predict(self, batches_and_order) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and labels in the split's original order (the batches shared out between ranks)."""
        return predict(self.model, batches_and_order, self.device, sharded=True)

    def _is_better(self, val: float, val_loss: float) -> bool:
        """A better validation metric; on a tie, a validation loss at least as low (later epochs win ties)."""
        best, best_loss = self.state["best_val"], self.state.get("best_val_loss")
        if best is None:
            return True
        if val != best:
            return val > best if self.data.info.higher_is_better else val < best
        return best_loss is None or val_loss <= best_loss

    def _hook(self, name: str, *args):
        method = getattr(self.hooks, name, None) if self.hooks is not None else None
        return method(*args) if method is not None else None


def _label_count(info: DatasetInfo, batch: Batch) -> float:
    """How many terms the mean task loss of ``batch`` averages: graphs, or known labels (multi-task)."""
    if info.task == "multiclass":
        return float(batch.num_graphs)
    return float((~torch.isnan(batch.y.float())).sum())


@torch.no_grad()
def predict(model: nn.Module, batches_and_order, device: torch.device,
            sharded: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of ``model`` over pre-collated ``(batches, order)``, in the split's original order.

    ``sharded``: under torchrun each rank runs every ``ranks``-th batch and the logits are gathered,
    so every rank returns those of the whole split.
    """
    batches, order = batches_and_order
    model.eval()
    positions = distributed.rank_share(len(batches)) if sharded else range(len(batches))
    mine = {i: model(batches[i].to(device)).float().cpu() for i in positions}
    if sharded and distributed.world_size() > 1:
        mine = {i: part[i] for part in distributed.all_gather(mine) for i in part}
    logits = torch.cat([mine[i] for i in range(len(batches))])
    labels = torch.cat([b.y.cpu() for b in batches])
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel())
    return logits[inverse], labels[inverse]


def _rng_state() -> dict[str, Any]:
    """Every generator's state as tensors and plain values, so ``torch.load(weights_only=True)`` reads it."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = torch.from_numpy(numpy_state["state"]["key"].astype(np.int64))
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = {**numpy_state["state"], "key": np.asarray(numpy_state["state"]["key"], dtype=np.uint32)}
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        # map_location moved the saved generator states onto the GPU; they must be CPU bytes
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
