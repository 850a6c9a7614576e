"""The seams the backbone/sparsifier contract promises, checked on the source itself.

Sparsifiers reach blocks only through the contract of :class:`gtsp.models.base.GraphTransformer`:
they name no backbone class or attribute, import no other sparsifier, read no private name of
``gtsp.nn`` and install no forward pre-hooks. No source file grows past ~400 lines.
"""
from __future__ import annotations

import ast
import re
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


# ---- the dimension plugin contract ------------------------------------------------------------------
ANALYSES = SRC / "analysis"  # analyses study what particular dimensions removed (heads, layers, tokens)


def _plugin_files() -> set[Path]:
    import importlib

    return {Path(importlib.import_module(m).__file__).resolve() for m in registry.BUILTIN_MODULES}


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_only_a_dimension_plugin_and_the_registry_name_a_dimension(path):
    """Everything else reads dimensions from the registry, so a new one is added in one file."""
    if path.resolve() in _plugin_files() or ANALYSES in path.parents:
        return
    names = set(registry.names())
    tree = ast.parse(path.read_text())
    named = sorted({n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in names})
    assert not named, f"{path.relative_to(SRC)} names the dimension(s) {named}: ask the registry instead"


def _import_graph() -> dict[str, set[str]]:
    """Module -> gtsp modules it imports (at module level or inside functions)."""
    modules = {_module_name(p).removesuffix(".__init__"): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gtsp"):
                edges.update(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                             for a in node.names)
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in modules)
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    """No gtsp module imports itself through others, not even inside a function (the CLI runs the budget
    search, then training; training never calls back into the search)."""
    assert _cycles(_import_graph()) == []


def test_the_circle_check_is_not_vacuous():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_blocks_are_found_by_the_capabilities_they_declare():
    """No code asks a block's class what it can do: it declares its capabilities (``gtsp.nn.capabilities``)."""
    blocks = {"MultiHeadSelfAttention", "FeedForward", "TransformerLayer"}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2:
                named = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                assert not (named & blocks), f"{path.relative_to(SRC)}:{node.lineno} checks a block's class"


OPTUNA_PRIVATE = re.compile(r"\.(_trial_id|_storage|_study_id|_cached_frozen_trial)\b")


def test_no_optuna_private_names():
    """Studies and trials are reached through Optuna's public API only (private names change between releases)."""
    offenders = [f"{path.relative_to(SRC)}:{i}" for path in sorted(SRC.rglob("*.py"))
                 for i, line in enumerate(path.read_text().splitlines(), 1) if OPTUNA_PRIVATE.search(line)]
    assert offenders == []
    assert OPTUNA_PRIVATE.search("storage.set_trial_state_values(trial._trial_id, state)")
