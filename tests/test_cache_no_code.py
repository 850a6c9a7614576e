"""A processed-data cache is read as data only: a pickle payload in it is refused, never executed."""
from __future__ import annotations

import errno
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


def test_a_full_disk_while_processing_leaves_no_partial_cache(tmp_path, monkeypatch):
    from torch_geometric.io import fs

    real_save = fs.torch_save

    def save_half_then_fail(data, path):
        real_save(data, path)
        with open(path, "r+b") as handle:  # what a full disk leaves: the start of the file
            handle.truncate(100)
        raise OSError(errno.ENOSPC, "No space left on device", path)

    cache = tmp_path / "cache"
    monkeypatch.setattr(fs, "torch_save", save_half_then_fail)
    with pytest.raises(GtspError) as err:
        load_dataset("MUTAG", cache_root=str(cache))
    assert "No space left on device" in str(err.value) and str(cache) in str(err.value)
    assert "--cache-root" in str(err.value)
    assert not (cache / "TUDataset" / "MUTAG" / "processed_plain").exists()  # nothing half-written is kept
    monkeypatch.setattr(fs, "torch_save", real_save)
    assert len(load_dataset("MUTAG", cache_root=str(cache)).train) > 0


def test_a_cut_short_cache_file_is_named(tmp_path):
    cache = tmp_path / "cache"
    load_dataset("MUTAG", cache_root=str(cache))
    target = cache / "TUDataset" / "MUTAG" / "processed_plain" / "data.pt"
    target.write_bytes(target.read_bytes()[:200])
    with pytest.raises(GtspError, match="is unreadable") as err:
        load_dataset("MUTAG", cache_root=str(cache))
    assert str(target) in str(err.value) and "rm -r" in str(err.value)
