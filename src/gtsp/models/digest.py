"""Digests that tie a model file's weights and spec to what gtsp wrote: a changed byte is refused on load.

A model file's safetensors header carries, beside the spec, the SHA-256 of the spec text and of
the weights (every tensor's name, dtype, shape and bytes, in name order). Loading recomputes both
and refuses a file where either differs (flipped weight bytes, a spec edited to other heads or
pooling). Files written before digests existed carry none and load unchecked.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any

import torch

from gtsp.errors import GtspError

WEIGHTS_KEY = "gtsp_weights_sha256"
SPEC_DIGEST_KEY = "gtsp_spec_sha256"


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors of ``state`` (name, dtype, shape and raw bytes of each, names sorted)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def spec_digest(text: str) -> str:
    """SHA-256 of the spec exactly as stored."""
    return hashlib.sha256(text.encode()).hexdigest()


def digest_metadata(state: dict[str, torch.Tensor], spec_text: str) -> dict[str, str]:
    """The header entries that :func:`check_spec` and :func:`check_weights` verify."""
    return {WEIGHTS_KEY: weights_digest(state), SPEC_DIGEST_KEY: spec_digest(spec_text)}


def check_spec(path: str | os.PathLike, metadata: dict[str, Any], spec_text: str) -> None:
    """Refuse a spec whose text differs from the digest written with it (none recorded: unchecked)."""
    recorded = metadata.get(SPEC_DIGEST_KEY)
    if recorded is not None and recorded != spec_digest(spec_text):
        raise GtspError(f"the spec in {path} was changed after gtsp wrote it (its digest differs): the model "
                        "would be rebuilt differently from how it was trained; export it again from its run "
                        "(gtsp export RUN --out FILE)")


def check_weights(path: str | os.PathLike, metadata: dict[str, Any], state: dict[str, torch.Tensor]) -> None:
    """Refuse weights whose bytes differ from the digest written with them (none recorded: unchecked)."""
    recorded = metadata.get(WEIGHTS_KEY)
    if recorded is not None and recorded != weights_digest(state):
        raise GtspError(f"the weights in {path} differ from those gtsp wrote (their digest differs: the file is "
                        "damaged or was edited): export it again from its run (gtsp export RUN --out FILE)")
