"""Compaction plans: one fragment per dimension, and model files of the earlier flat format still load."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch

from gtsp.data.registry import load_dataset
from gtsp.errors import GtspError
from gtsp.models.files import load_model, read_spec
from gtsp.sparsify import CompactionPlan, registry

LEGACY = Path(__file__).parent / "fixtures" / "legacy_plan"


@pytest.mark.parametrize("backbone", ["gps", "graphormer"])
def test_a_model_file_with_the_flat_plan_loads_and_computes_what_it_did(backbone, cache_root):
    model, spec = load_model(LEGACY / f"{backbone}.safetensors")
    assert "kept_heads" in spec["plan"]  # the file really is in the earlier format
    plan = CompactionPlan.from_dict(spec["plan"])
    assert plan.get("layer").kept == spec["plan"]["kept_layers"] and len(model.layers) == len(plan.get("layer").kept)
    assert plan.get("head").kept == spec["plan"]["kept_heads"]
    assert plan.get("weight").density == spec["plan"]["weight_density"]
    assert [a.num_heads for _, a in model.attention_modules()] == [1]  # one head kept, its layer kept
    data = load_dataset("MUTAG", cache_root=str(cache_root), features=spec["features"], seed=0)
    with torch.no_grad():
        logits = model(Batch.from_data_list(data.test[:8]))
    expected = torch.tensor(json.loads((LEGACY / "logits.json").read_text())[backbone])
    assert torch.allclose(logits, expected, atol=1e-6)


def test_plans_round_trip_per_dimension_and_refuse_unknown_entries():
    plan = CompactionPlan.from_dict(read_spec(LEGACY / "gps.safetensors")["plan"])
    written = plan.to_dict()
    assert CompactionPlan.from_dict(written).to_dict() == written and "kept_layers" not in written
    assert list(written) == [d for d in registry.names() if d in written] and len(written) == 5
    with pytest.raises(GtspError, match="unknown entries"):
        CompactionPlan.from_dict({"branch": {"kept": [0]}})
    with pytest.raises(GtspError, match="decided"):
        plan.merged(CompactionPlan({"layer": plan.get("layer")}))
