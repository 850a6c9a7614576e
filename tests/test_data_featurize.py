"""Featurising new molecules exactly as the training data, never failing on a bad SMILES."""
from __future__ import annotations

import ogb
import pytest
import torch
from ogb.utils import smiles2graph

from gtsp.data.featurize import FEATURIZER_NAME, featurize_smiles, featurizer_id
from gtsp.data.mol_build import build_custom
from gtsp.data.ogb_load import load_mol_dataset

UNSANITISABLE = "Cc1ccc([B-2]2(c3ccc(C)cc3)=NCCO2)cc1"  # a real HIV row recent RDKit refuses to sanitise


def test_invalid_smiles_are_reported_by_position_not_raised():
    smiles = ["CCO", "C1CC(", "", None, "c1ccccc1O", "[Xx]", " CCN "]
    graphs, invalid = featurize_smiles(smiles)
    assert invalid == [1, 2, 3, 5]
    assert [g.num_nodes for g in graphs] == [3, 7, 3]


def test_graphs_equal_ogb_smiles2graph():
    for smiles in ("CC(=O)Nc1ccc(O)cc1", "C[C@H](N)C(=O)O", "[Na+].[Cl-]", "C"):
        (graph,), _ = featurize_smiles([smiles])
        expected = smiles2graph(smiles)
        assert graph.x.dtype == torch.long and graph.edge_attr.dtype == torch.long
        assert torch.equal(graph.x, torch.from_numpy(expected["node_feat"]))
        assert torch.equal(graph.edge_index, torch.from_numpy(expected["edge_index"]))
        assert torch.equal(graph.edge_attr, torch.from_numpy(expected["edge_feat"]))


def test_same_graphs_as_a_built_dataset_including_partial_sanitisation(tmp_path):
    smiles = [UNSANITISABLE, "CCO", "c1ccncc1", "CCCl", "OCC(O)CO", "CCCCCC"] * 4
    csv = tmp_path / "m.csv"
    csv.write_text("smiles,y\n" + "".join(f"{s},{i % 3 * 0.5 + i / 7:.3f}\n" for i, s in enumerate(smiles)))
    build_custom(csv, smiles_col="smiles", label_cols=["y"], name="m", cache_root=tmp_path, split="random",
                 seed=1)
    dataset, _, _ = load_mol_dataset("m", cache_root=tmp_path)
    graphs, invalid = featurize_smiles(smiles[:6])
    assert invalid == []
    for built, fresh in zip(dataset, graphs):
        for key in ("x", "edge_index", "edge_attr"):
            assert torch.equal(built[key], fresh[key]), key


def test_model_encodings_are_added_on_request():
    (graph,), _ = featurize_smiles(["c1ccccc1CCO"], features=("rwse",))
    assert graph.rwse.shape == (graph.num_nodes, 20)


def test_featurizer_id_names_the_ogb_version():
    ident = featurizer_id()
    assert ident["name"] == FEATURIZER_NAME == "ogb-smiles2graph"
    assert f"ogb {ogb.__version__}" in ident["version"] and "rdkit" in ident["version"]


def test_unknown_encoding_is_a_clear_error():
    from gtsp.errors import GtspError

    with pytest.raises(GtspError, match="unknown precomputed feature"):
        featurize_smiles(["CCO"], features=("colour",))
