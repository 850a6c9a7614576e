"""Reading processed data from the cache without ever unpickling code.

PyG and OGB store processed datasets as pickles read by ``torch.load``. Some of their load paths
allow arbitrary pickles: PyG's ``fs.torch_load`` retries with ``weights_only=False`` when the
safe load fails, and PyG reads ``pre_transform.pt`` / ``pre_filter.pt`` with ``weights_only=False``.
A file in a shared or tampered cache could then run code. While :func:`cache_loads_data_only` is
active, every ``torch.load`` is forced to ``weights_only=True`` (torch's own
``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` switch) with PyG's plain data classes allow-listed; a file that
holds anything else is refused with an error naming it and saying to delete it (it is rebuilt).
Processing that fails (a full disk, a read-only cache) leaves no partial processed folder behind
(:func:`whole_or_nothing`).
"""
from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import traceback
from collections.abc import Iterator
from pathlib import Path

import torch
from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
from torch_geometric.data.storage import GlobalStorage

from gtsp.errors import GtspError

FORCE, NO_FORCE = "TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
# plain containers PyG pickles next to its tensors (allowed by PyG's own registration or here)
PYG_DATA_CLASSES = [DataEdgeAttr, DataTensorAttr, GlobalStorage]


@contextlib.contextmanager
def cache_loads_data_only(cache: Path) -> Iterator[None]:
    """Within the block, ``torch.load`` reads tensors and PyG data only; a refused file under ``cache`` is named."""
    saved = {key: os.environ.get(key) for key in (FORCE, NO_FORCE)}
    os.environ[FORCE] = "1"
    os.environ.pop(NO_FORCE, None)
    try:
        with torch.serialization.safe_globals(PYG_DATA_CLASSES):
            yield
    except pickle.UnpicklingError as err:
        file = _file_being_loaded(err) or cache
        raise GtspError(f"the cached file {file} holds more than data (pickled objects gtsp never loads, "
                        f"possibly code): delete it (rm -r {file}) and run again to rebuild it from the "
                        "original data") from None
    except (RuntimeError, EOFError, ValueError) as err:  # a cut-short or foreign file (zip, EOF, ...)
        file = _file_being_loaded(err)
        if file is None:
            raise
        first = str(err).splitlines()[0] if str(err) else ""
        raise GtspError(f"the cached file {file} is unreadable ({type(err).__name__}: {first}): delete it "
                        f"(rm -r {file}) and run again to rebuild it from the original data") from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _file_being_loaded(err: BaseException) -> str | None:
    """The path ``torch.load`` was reading when ``err`` was raised (from its frame), if it can be told."""
    for frame, _ in reversed(list(traceback.walk_tb(err.__traceback__))):
        if frame.f_code.co_name == "load" and frame.f_globals.get("__name__") == "torch.serialization":
            f = frame.f_locals.get("f")
            name = f if isinstance(f, (str, os.PathLike)) else getattr(f, "path", None) or getattr(f, "name", None)
            return str(name) if name else None
    return None


@contextlib.contextmanager
def whole_or_nothing(processed_dir: Path) -> Iterator[None]:
    """Around a dataset's processing: when it fails, remove ``processed_dir`` so no partial file is read later."""
    try:
        yield
    except BaseException:
        shutil.rmtree(processed_dir, ignore_errors=True)
        raise


class QuietProcessing:
    """Mixin for a PyG dataset class: PyG's "Processing... Done!" lines replaced by one gtsp log line.

    PyG prints them when the dataset's ``log`` attribute is true, which its constructor sets; this
    property keeps it false whatever is assigned.
    """

    @property
    def log(self) -> bool:
        return False

    @log.setter
    def log(self, value: bool) -> None:
        pass
