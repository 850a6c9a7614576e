"""Provenance: versions, git revision of the package's own checkout, command line, split hash."""
import importlib.metadata
import platform
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from gtsp.data.registry import load_dataset
from gtsp.provenance import git_revision, package_versions, provenance, split_hash


def test_versions_are_the_installed_ones():
    versions = package_versions()
    assert versions["python"] == platform.python_version()
    assert versions["torch"] == torch.__version__
    assert versions["torch_geometric"] == importlib.metadata.version("torch-geometric")
    assert set(versions) == {"python", "torch", "torch_geometric", "ogb", "rdkit", "gtsp"}


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_revision_of_a_checkout_that_tracks_the_package(tmp_path):
    repo = tmp_path / "repo"
    package = repo / "src" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    git(repo, "init", "-q")
    assert git_revision(package) is None  # the package is not tracked yet
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    sha = git(repo, "rev-parse", "HEAD")
    assert git_revision(package) == {"sha": sha, "dirty": False}
    (repo / "notes.txt").write_text("outside the package: not dirty\n")
    assert git_revision(package) == {"sha": sha, "dirty": False}
    (package / "__init__.py").write_text("x = 2\n")
    assert git_revision(package) == {"sha": sha, "dirty": True}


def test_no_git_revision_outside_a_checkout(tmp_path):
    (tmp_path / "__init__.py").write_text("")
    assert git_revision(tmp_path) is None


def test_split_hash_identifies_the_exact_indices():
    split = {"train": np.array([0, 1, 2, 5]), "valid": np.array([3]), "test": np.array([4])}
    same = {"test": np.array([4], dtype=np.int32), "valid": [3], "train": np.array([0, 1, 2, 5], dtype=np.int64)}
    moved = {"train": np.array([0, 1, 2]), "valid": np.array([3]), "test": np.array([4, 5])}
    boundary = {"train": np.array([0, 1, 2, 5, 3]), "valid": np.array([], dtype=int), "test": np.array([4])}
    assert split_hash(split) == split_hash(same)
    assert len({split_hash(split), split_hash(moved), split_hash(boundary)}) == 3
    assert split_hash({}) is None


def test_provenance_of_a_real_split(cache_root):
    seed0 = load_dataset("MUTAG", cache_root=str(cache_root), features=("rwse",), seed=0)
    seed1 = load_dataset("MUTAG", cache_root=str(cache_root), features=("rwse",), seed=1)
    record = provenance(seed0.split, argv=["gtsp", "train"])
    assert record["argv"] == ["gtsp", "train"] and record["split_sha256"] == split_hash(seed0.split)
    assert split_hash(seed0.split) != split_hash(seed1.split)
    assert provenance(seed0.split)["argv"] == sys.argv
