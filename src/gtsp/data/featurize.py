"""Molecules -> graphs with OGB's features, for training data and for new molecules alike.

Atom and bond features are OGB's ``atom_to_feature_vector`` / ``bond_to_feature_vector``
(9 and 3 categorical columns), the ones ``ogb.utils.smiles2graph`` uses, with its bond
order: every bond once as (i, j) in OGB's files, and as (i, j), (j, i) in a graph.

Sanitisation policy (the same for building a dataset and for predicting): a SMILES
that RDKit sanitises is used as is; one that recent RDKit refuses to sanitise (e.g.
six-bonded Al or five-bonded B in HIV's metal complexes, which the official datasets
contain) is *partially* sanitised: every sanitisation step that succeeds is applied,
the failing ones skipped. Only a SMILES that does not even parse, or has no atom, is
invalid.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from ogb.utils.features import atom_to_feature_vector, bond_to_feature_vector
from rdkit import Chem, rdBase
from rdkit.Chem.Scaffolds import MurckoScaffold
from torch_geometric.data import Data

FEATURIZER_NAME = "ogb-smiles2graph"
NUM_ATOM_FEATURES = 9
NUM_BOND_FEATURES = 3


def featurizer_version() -> str:
    """Versions that fix the features: OGB's feature vocabularies and RDKit's chemistry."""
    import ogb
    import rdkit

    return f"ogb {ogb.__version__}, rdkit {rdkit.__version__}"


def featurizer_id() -> dict[str, str]:
    """Name and version of the featuriser, for a dataset's meta-info or a model file."""
    return {"name": FEATURIZER_NAME, "version": featurizer_version()}


def to_mol(smiles: str) -> tuple[Chem.Mol | None, bool]:
    """The RDKit molecule of ``smiles`` (None when invalid) and whether it was partially sanitised."""
    if not isinstance(smiles, str) or not smiles.strip():
        return None, False
    smiles = smiles.strip()
    with rdBase.BlockLogs():  # RDKit would print one line per refused molecule
        mol = Chem.MolFromSmiles(smiles)
        partial = mol is None
        if partial:
            mol = _partially_sanitised(smiles)
    if mol is None or mol.GetNumAtoms() == 0:
        return None, False
    return mol, partial


def _partially_sanitised(smiles: str) -> Chem.Mol | None:
    """``smiles`` sanitised with every RDKit step that succeeds; None if it does not even parse."""
    flags = Chem.SanitizeFlags.SANITIZE_ALL
    for _ in range(16):  # each round drops one failing step; RDKit has fewer steps than that
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
        if mol is None:
            return None
        # Non-strict: computes implicit valences (needed for the H-count feature) without raising.
        mol.UpdatePropertyCache(strict=False)
        failed = Chem.SanitizeMol(mol, flags, catchErrors=True)
        if failed == Chem.SanitizeFlags.SANITIZE_NONE:
            break
        flags ^= failed
    if not flags & Chem.SanitizeFlags.SANITIZE_SYMMRINGS:
        Chem.FastFindRings(mol)  # ring perception was dropped: the in-ring feature still needs rings
    return mol


def scaffold(mol: Chem.Mol) -> str:
    """Bemis-Murcko scaffold SMILES with chirality, as MoleculeNet/OGB compute it."""
    try:
        return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=True)
    except ValueError:
        # RDKit's helper re-checks valences strictly; for partially sanitised molecules
        # take the same decomposition with a lenient property update.
        core = Chem.MurckoDecompose(mol)
        core.UpdatePropertyCache(strict=False)
        Chem.GetSymmSSSR(core)
        return Chem.MolToSmiles(core, isomericSmiles=True)


@dataclass
class MolGraphs:
    """Molecules as OGB's flat arrays (bonds stored once), with the CSV rows they came from."""

    node_feat: list[list[int]] = field(default_factory=list)
    edges: list[tuple[int, int]] = field(default_factory=list)
    edge_feat: list[list[int]] = field(default_factory=list)
    num_nodes: list[int] = field(default_factory=list)
    num_edges: list[int] = field(default_factory=list)
    scaffolds: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    partial_rows: list[int] = field(default_factory=list)
    invalid_rows: list[int] = field(default_factory=list)

    def add(self, mol: Chem.Mol, row: int) -> None:
        self.node_feat.extend(atom_to_feature_vector(atom) for atom in mol.GetAtoms())
        for bond in mol.GetBonds():
            self.edges.append((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()))
            self.edge_feat.append(bond_to_feature_vector(bond))
        self.num_nodes.append(mol.GetNumAtoms())
        self.num_edges.append(mol.GetNumBonds())
        self.scaffolds.append(scaffold(mol))
        self.rows.append(row)


def featurize_table(smiles: Sequence[str]) -> MolGraphs:
    """Every valid molecule of ``smiles`` in OGB's flat layout; invalid rows are only recorded."""
    graphs = MolGraphs()
    with rdBase.BlockLogs():  # scaffolds of partially sanitised molecules make RDKit complain
        for row, text in enumerate(smiles):
            mol, partial = to_mol(text)
            if mol is None:
                graphs.invalid_rows.append(row)
                continue
            if partial:
                graphs.partial_rows.append(row)
            graphs.add(mol, row)
    return graphs


def mol_to_data(mol: Chem.Mol) -> Data:
    """One molecule as a PyG graph, tensor for tensor what OGB's dataset loader gives for it."""
    x = torch.tensor([atom_to_feature_vector(a) for a in mol.GetAtoms()], dtype=torch.long)
    pairs, feats = [], []
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        feat = bond_to_feature_vector(bond)
        pairs += [(i, j), (j, i)]
        feats += [feat, feat]
    edge_index = torch.tensor(np.array(pairs, dtype=np.int64).reshape(-1, 2).T.copy())
    edge_attr = torch.tensor(np.array(feats, dtype=np.int64).reshape(-1, NUM_BOND_FEATURES))
    return Data(x=x.view(-1, NUM_ATOM_FEATURES), edge_index=edge_index, edge_attr=edge_attr,
                num_nodes=mol.GetNumAtoms())


def featurize_smiles(smiles: Sequence[str], features: Sequence[str] = ()) -> tuple[list[Data], list[int]]:
    """Graphs of the valid molecules among ``smiles`` and the positions of the invalid ones.

    Uses exactly the training data's featurisation and sanitisation policy, plus the
    precomputed encodings ``features`` a model needs (e.g. ``("rwse",)``, as
    ``model.required_features`` names them). Never raises for a bad SMILES: it is left
    out and its position (0-based, into ``smiles``) reported, so callers can align
    ``graphs[k]`` with ``[i for i in range(len(smiles)) if i not in invalid][k]``.
    """
    from gtsp.data.transforms import pre_transform_for

    transform, _ = pre_transform_for(features)
    graphs, invalid = [], []
    for position, text in enumerate(smiles):
        mol, _ = to_mol(text)
        if mol is None:
            invalid.append(position)
            continue
        graph = mol_to_data(mol)
        graphs.append(transform(graph) if transform is not None else graph)
    return graphs, invalid
