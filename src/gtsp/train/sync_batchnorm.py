"""Batch norm over the global batch when several ranks each hold a part of it.

With data parallelism every rank sees ``B / N`` graphs of a batch of ``B``. Plain batch norm
would normalise each part with its own statistics, so ``N`` ranks would not train the model one
process trains on the whole batch. On GPUs ``torch.nn.SyncBatchNorm`` computes the statistics
of the whole batch; torch refuses it on CPUs, so :class:`GlobalBatchNorm` does the same there
with two differentiable all-reduces (torch's functional collectives): the sums
that give the mean, then the squared deviations from it that give the (biased) variance, as
batch norm defines them (Ioffe & Szegedy, ICML 2015). Running statistics follow the usual
update with the unbiased variance of the whole batch, so they are equal on every rank.

:func:`synced_batch_norm` converts a model's batch norms for training, :func:`plain_batch_norm`
turns them back (same parameters and running statistics) for evaluation, compaction and saving.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as collectives
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


class GlobalBatchNorm(nn.BatchNorm1d):
    """``BatchNorm1d`` whose training statistics are those of the batch summed over all ranks (CPU)."""

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        local_count = x.new_full((1,), x.numel() / x.size(1))
        totals = _summed(torch.cat([x.sum(dims), local_count]))
        count = totals[-1].detach()
        mean = totals[:-1] / count
        centred = x - mean.view(shape)
        var = _summed(centred.square().sum(dims)) / count
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            self._update_running(mean.detach(), var.detach(), float(count))
        return out

    @torch.no_grad()
    def _update_running(self, mean: Tensor, var: Tensor, count: float) -> None:
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * count / max(count - 1.0, 1.0)
        self.running_mean.mul_(1.0 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1.0 - factor).add_(unbiased, alpha=factor)


def _summed(tensor: Tensor) -> Tensor:
    """Sum of ``tensor`` over all ranks; its gradient is the sum of the ranks' gradients."""
    return collectives.all_reduce(tensor, "sum", dist.group.WORLD)


def _replace(model: nn.Module, convert) -> None:
    for name, child in model.named_children():
        replacement = convert(child)
        if replacement is not child:
            setattr(model, name, replacement)
        else:
            _replace(child, convert)


def _copy_state(source: _BatchNorm, target: _BatchNorm) -> _BatchNorm:
    """``target`` holding ``source``'s very parameters and buffers (shared, not copied)."""
    if source.affine:
        target.weight, target.bias = source.weight, source.bias
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        setattr(target, name, getattr(source, name))
    return target.train(source.training)


def synced_batch_norm(model: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm1d`` of ``model`` (in place) by one over the global batch: torch's
    ``SyncBatchNorm`` for parameters on a GPU, :class:`GlobalBatchNorm` on the CPU."""
    def convert(module: nn.Module) -> nn.Module:
        if type(module) is not nn.BatchNorm1d:
            return module
        on_gpu = any(t.is_cuda for t in (*module.parameters(recurse=False), *module.buffers(recurse=False)))
        cls = nn.SyncBatchNorm if on_gpu else GlobalBatchNorm
        return _copy_state(module, cls(module.num_features, module.eps, module.momentum, module.affine,
                                       module.track_running_stats))
    _replace(model, convert)
    return model


def plain_batch_norm(model: nn.Module) -> nn.Module:
    """Turn the batch norms :func:`synced_batch_norm` made back into ``BatchNorm1d`` (in place)."""
    def convert(module: nn.Module) -> nn.Module:
        if not isinstance(module, (nn.SyncBatchNorm, GlobalBatchNorm)):
            return module
        return _copy_state(module, nn.BatchNorm1d(module.num_features, module.eps, module.momentum,
                                                  module.affine, module.track_running_stats))
    _replace(model, convert)
    return model
