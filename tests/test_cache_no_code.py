"""A processed-data cache is read as data only: a pickle payload in it is refused, never executed."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from gtsp.data.registry import load_dataset
from gtsp.errors import GtspError


class _Payload:
    """Unpickling this creates ``marker`` (what a hostile cache file would do, harmlessly)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("file", ["data.pt", "pre_transform.pt"])
def test_a_pickle_payload_in_the_cache_is_refused_and_named(tmp_path, monkeypatch, file):
    cache = tmp_path / "cache"
    load_dataset("MUTAG", cache_root=str(cache))  # a real processed cache
    target = cache / "TUDataset" / "MUTAG" / "processed_plain" / file
    assert target.is_file()
    marker = tmp_path / "code-ran"
    torch.save(_Payload(marker), target)
    with pytest.raises(pickle.UnpicklingError):  # the payload is a real one: the safe load refuses it
        torch.load(target, weights_only=True)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # even a user's opt-out does not weaken it
    with pytest.raises(GtspError) as err:
        load_dataset("MUTAG", cache_root=str(cache))
    assert not marker.exists(), "the cache file's code ran"
    assert str(target) in str(err.value) and "delete it" in str(err.value)
    assert os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "1"  # the switch is restored after the load
    assert "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ

    target.unlink()  # the fix the error names: the dataset is rebuilt and loads
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    data = load_dataset("MUTAG", cache_root=str(cache))
    assert len(data.train) + len(data.valid) + len(data.test) == 188
