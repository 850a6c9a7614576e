"""The Python API's documentation runs: every public name has an example, every example and the
README's Python section execute (on MUTAG, a few epochs)."""
from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

import gtsp.api

README = Path(__file__).resolve().parents[1] / "README.md"
API_MODULES = sorted({f"gtsp.api.{module}" for module in gtsp.api.WHERE.values()})


@pytest.fixture
def quiet_cache(cache_root, tmp_path, monkeypatch):
    """Examples load datasets from the session cache and write files in a scratch folder."""
    monkeypatch.setenv("GTSP_CACHE", str(cache_root))
    monkeypatch.chdir(tmp_path)


def test_every_public_name_has_a_docstring_with_an_example():
    for name in gtsp.api.WHERE:
        doc = getattr(gtsp, name).__doc__ or ""
        assert ">>>" in doc, f"gtsp.{name} has no example in its docstring"


@pytest.mark.parametrize("module", API_MODULES)
def test_docstring_examples_run(module, quiet_cache):
    tests = doctest.DocTestFinder().find(importlib.import_module(module))
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0, f"{module}: {result.failed} example(s) failed"


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of the README's "## Python" section."""
    section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_python_section_runs(quiet_cache):
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 5
    namespace: dict = {}
    for block in blocks:  # one session, as a reader would type them
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["difference"] < 1e-5
    assert namespace["pruned"].results["start_weights"]["source"] == "runs/mutag-dense/model.safetensors"
    assert Path("mutag-small.safetensors").is_file() and Path("from-pyg.safetensors").is_file()
