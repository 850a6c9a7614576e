"""Where a run's numbers came from: package versions, source revision, command line, data split.

Recorded in ``results.json`` (key ``provenance``) and in every checkpoint, so a result can be
traced to the code and the exact train/valid/test indices that produced it.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

# distribution names as pip knows them
PACKAGES = ("torch", "torch_geometric", "ogb", "rdkit", "gtsp")
SPLITS = ("train", "valid", "test")


def package_versions() -> dict[str, str | None]:
    """Installed version of python and of each package gtsp's results depend on (None when absent)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision(source: Path | None = None) -> dict[str, Any] | None:
    """``{"sha", "dirty"}`` of the git checkout gtsp runs from; None outside one.

    ``source`` defaults to the installed package's folder. Only a checkout that tracks this
    package counts (an installed copy inside some other repository does not); ``dirty`` means
    the package's own files differ from the commit.
    """
    source = source or Path(__file__).resolve().parent
    marker = source / "__init__.py"
    if _git(source, "ls-files", "--error-unmatch", str(marker)) is None:
        return None
    sha = _git(source, "rev-parse", "HEAD")
    status = _git(source, "status", "--porcelain", "--", str(source))
    if sha is None or status is None:
        return None
    return {"sha": sha, "dirty": bool(status)}


def _git(cwd: Path, *args: str) -> str | None:
    """Stripped stdout of ``git args`` run in ``cwd``; None when git is missing or fails."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def split_hash(split: Mapping[str, Any]) -> str | None:
    """SHA-256 over the train, valid and test index arrays (as little-endian int64), None without a split.

    Equal hashes mean the very same graphs in each split, whatever produced the indices.
    """
    if not split:
        return None
    digest = hashlib.sha256()
    for name in SPLITS:
        index = np.asarray(split[name], dtype="<i8")
        digest.update(f"{name}:{index.size}:".encode())
        digest.update(index.tobytes())
    return digest.hexdigest()


def provenance(split: Mapping[str, Any], argv: list[str] | None = None) -> dict[str, Any]:
    """Everything above in one JSON-ready record."""
    return {"versions": package_versions(), "git": git_revision(),
            "argv": list(sys.argv if argv is None else argv), "split_sha256": split_hash(split)}
