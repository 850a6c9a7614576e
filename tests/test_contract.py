"""The seams the backbone/sparsifier contract promises, checked on the source itself.

Sparsifiers reach blocks only through the contract of :class:`gtsp.models.base.GraphTransformer`:
they name no backbone class or attribute, import no other sparsifier, read no private name of
``gtsp.nn`` and install no forward pre-hooks. No source file grows past ~400 lines.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gtsp.models import MODELS
from gtsp.sparsify import registry

SRC = Path(__file__).resolve().parents[1] / "src" / "gtsp"
SPARSIFY = SRC / "sparsify"
SPARSIFIER_MODULES = set(registry.BUILTIN_MODULES)
MAX_LINES = 400


def _imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _module_name(path: Path) -> str:
    return "gtsp." + ".".join(path.relative_to(SRC).with_suffix("").parts)


@pytest.mark.parametrize("path", sorted(SPARSIFY.glob("*.py")), ids=lambda p: p.name)
def test_a_sparsifier_reaches_models_only_through_the_contract(path):
    tree = ast.parse(path.read_text())
    imports = _imports(tree)
    own = _module_name(path)
    if own in SPARSIFIER_MODULES:
        assert not (imports & (SPARSIFIER_MODULES - {own})), f"{path.name} imports another sparsifier"
    assert not any(m.startswith("gtsp.models") for m in imports), f"{path.name} imports a backbone module"
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    attributes = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    backbones = {cls.__name__ for cls in MODELS.values()}
    assert not (names & backbones), f"{path.name} names a backbone class"
    # backbone-specific attributes the contract replaced (GraphTrans's gnn stack, Graphormer's bias)
    assert not (attributes & {"gnn", "compact_bias", "bias_heads", "_forward_pre_hooks"}), path.name
    assert "register_forward_pre_hook" not in attributes, f"{path.name} installs a forward pre-hook"
    private_nn = {a for a in attributes if a.startswith("_") and not a.startswith("__")}
    assert not (private_nn & {"_attend", "_attend_grouped", "_attend_selected"}), path.name


def test_the_contract_check_would_catch_a_cross_import(tmp_path):
    """The check above is not vacuous: a file importing a sibling sparsifier is caught."""
    tree = ast.parse("from gtsp.sparsify.layer import LayerSparsifier\n")
    assert _imports(tree) & SPARSIFIER_MODULES


def test_no_source_file_is_over_the_size_limit():
    sizes = {str(p.relative_to(SRC)): len(p.read_text().splitlines()) for p in SRC.rglob("*.py")}
    assert len(sizes) > 50
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}, "split these files"


def test_importing_gtsp_has_no_side_effects(tmp_path):
    """gtsp registers nothing with torch on import (PyG and OGB register their own classes)."""
    import subprocess
    import sys

    code = ("import torch, torch_geometric, ogb.graphproppred; before = torch.serialization.get_safe_globals(); import gtsp, gtsp.cli, "
            "gtsp.data.registry; assert torch.serialization.get_safe_globals() == before; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
