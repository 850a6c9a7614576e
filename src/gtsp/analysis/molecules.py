"""Test graphs as RDKit molecules, and grids of them with chosen atoms highlighted.

Where a graph's molecule comes from:

- OGB-layout datasets (``ogbg-mol*`` and ``gtsp data build-mol``): the SMILES in the dataset's
  ``mapping/mol.csv.gz``, row = graph index. OGB's ``smiles2graph`` numbers nodes in RDKit's atom
  order, so node ``i`` is atom ``i`` of ``MolFromSmiles``;
- TU datasets whose node and edge labels name atoms and bonds (MUTAG, by its README): the molecule is
  rebuilt from the one-hot labels (hydrogens were removed from the data, so none are added).

Anything else (or a molecule whose atom count differs from the graph) has no molecule: callers
draw the graph instead.
"""
from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd
from rdkit import Chem, RDLogger
from rdkit.Chem.Draw import rdMolDraw2D
from torch_geometric.data import Data

from gtsp.data.mol_build import custom_folder
from gtsp.data.paths import cache_root as resolve_cache

# TU datasets whose labels are atoms and bonds, as their README lists them
TU_MOLECULES = {
    "MUTAG": (("C", "N", "O", "F", "I", "Cl", "Br"),
              (Chem.BondType.AROMATIC, Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE)),
}
HIGHLIGHT = (0.9, 0.25, 0.2)
PANEL = 260


def molecule(dataset: str, graph: Data, index: int | None, cache_root: str | None = None,
             molecular: bool = False) -> Chem.Mol | None:
    """The molecule of ``graph`` (dataset index ``index``), or None when it cannot be known."""
    if molecular and index is not None:
        smiles = smiles_table(dataset, str(resolve_cache(cache_root)))
        mol = Chem.MolFromSmiles(smiles[index]) if smiles is not None and index < len(smiles) else None
    elif dataset in TU_MOLECULES:
        mol = _from_labels(graph, *TU_MOLECULES[dataset])
    else:
        mol = None
    return mol if mol is not None and mol.GetNumAtoms() == graph.num_nodes else None


@functools.lru_cache(maxsize=4)
def smiles_table(dataset: str, cache: str) -> list[str] | None:
    """The SMILES of every graph of an OGB-layout dataset in the cache, or None when not found."""
    root = Path(cache)
    folders = [custom_folder(dataset, root)] if not dataset.startswith("ogbg-") else [
        root / "ogb" / dataset.replace("-", "_"), root / "ogb" / (dataset.replace("-", "_") + "_pyg")]
    for folder in folders:
        table = folder / "mapping" / "mol.csv.gz"
        if table.is_file():
            return pd.read_csv(table, usecols=["smiles"])["smiles"].astype(str).tolist()
    return None


def _from_labels(graph: Data, atoms: tuple[str, ...], bonds: tuple) -> Chem.Mol | None:
    """A molecule from one-hot atom and bond labels (drawn as given: not sanitised)."""
    if graph.x is None or graph.x.size(-1) != len(atoms) or graph.edge_attr is None:
        return None
    editable = Chem.RWMol()
    for label in graph.x.argmax(-1).tolist():
        atom = Chem.Atom(atoms[label])
        atom.SetNoImplicit(True)
        editable.AddAtom(atom)
    for (u, v), label in zip(graph.edge_index.t().tolist(), graph.edge_attr.argmax(-1).tolist()):
        if u < v and editable.GetBondBetweenAtoms(u, v) is None:
            editable.AddBond(u, v, bonds[label])
            if bonds[label] == Chem.BondType.AROMATIC:
                for atom in (u, v):
                    editable.GetAtomWithIdx(atom).SetIsAromatic(True)
                editable.GetBondBetweenAtoms(u, v).SetIsAromatic(True)
    mol = editable.GetMol()
    mol.UpdatePropertyCache(strict=False)
    return mol


def molecule_grid(mols: list[Chem.Mol], highlighted: list[list[int]], legends: list[str], per_row: int) -> bytes:
    """PNG bytes of a grid of ``mols`` (``per_row`` a row), atoms ``highlighted[i]`` of each in red."""
    rows = -(-len(mols) // per_row)
    drawer = rdMolDraw2D.MolDraw2DCairo(PANEL * per_row, PANEL * rows, PANEL, PANEL)
    options = drawer.drawOptions()
    options.prepareMolsBeforeDrawing = False
    options.legendFontSize = 14
    RDLogger.DisableLog("rdApp.*")
    try:
        prepared = [rdMolDraw2D.PrepareMolForDrawing(mol, kekulize=False) for mol in mols]
    finally:
        RDLogger.EnableLog("rdApp.*")
    colours = [{atom: HIGHLIGHT for atom in atoms} for atoms in highlighted]
    drawer.DrawMolecules(prepared, highlightAtoms=highlighted, highlightAtomColors=colours,
                         highlightBonds=[[] for _ in mols], legends=legends)
    drawer.FinishDrawing()
    return drawer.GetDrawingText()
