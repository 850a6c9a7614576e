"""Kept-fraction histograms of adaptive and fixed token keeping, from the runs' results.json.

Usage: python studies/token-adaptive/histogram.py   (writes studies/token-adaptive/kept_fractions.png)
Each run's ``sparsifier.token.kept_fraction_histogram`` counts (test graph, attention layer) pairs
per tenth of the node tokens kept; folds present in both studies are summed per rule.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
SOURCES = {"adaptive": HERE / "runs", "per_graph (fixed 0.5)": HERE.parent / "nci1-gps-pruning" / "runs"}


def histograms() -> dict[str, tuple[list[float], list[int], list[int], float]]:
    """Per rule: bin edges, summed counts, folds, mean kept token fraction over those folds."""
    found = {}
    for rule, root in SOURCES.items():
        runs = [json.loads(p.read_text()) for p in sorted(root.glob("fold-*_prune-token=0.5*/results.json"))]
        if not runs:
            continue
        tokens = [r["sparsifier"]["token"] for r in runs]
        counts = [sum(c) for c in zip(*(_histogram(r)["graph_layers"] for r in runs))]
        mean = sum(t["kept_token_fraction"] for t in tokens) / len(tokens)
        found[rule] = (_histogram(runs[0])["edges"], counts, [r["config"]["fold"] for r in runs], mean)
    return found


def _histogram(results: dict) -> dict:
    """The run's own histogram, or (runs made before it was recorded) the per-graph rule's, which
    depends on the test graphs' sizes alone: ``ceil((1 - ratio) * n) / n`` in every layer."""
    token = results["sparsifier"]["token"]
    if "kept_fraction_histogram" in token:
        return token["kept_fraction_histogram"]
    if token["rule"] != "per_graph":
        raise ValueError(f"no kept-fraction histogram in a {token['rule']} run")
    import torch

    from gtsp.data.registry import load_dataset
    from gtsp.sparsify.token_selector import tokens_to_keep

    cfg = results["config"]
    data = load_dataset(cfg["dataset"], features=(), seed=cfg["seed"], folds=cfg["folds"], fold=cfg["fold"])
    fractions = torch.tensor([tokens_to_keep(1 - token["ratio"], g.num_nodes) / g.num_nodes for g in data.test])
    layers = token["attention_layers"]
    counts = torch.histc(fractions.float(), bins=10, min=0.0, max=1.0) * layers
    return {"edges": [i / 10 for i in range(11)], "graph_layers": [int(c) for c in counts.tolist()]}


def main() -> None:
    found = histograms()
    fig, ax = plt.subplots(figsize=(7, 4))
    for rule, (edges, counts, folds, mean) in found.items():
        total = sum(counts)
        ax.stairs([c / total for c in counts], edges, linewidth=2,
                  label=f"{rule}: folds {folds}, mean kept {mean:.3f}")
    ax.set_xlabel("fraction of a graph's node tokens kept (per test graph and attention layer)")
    ax.set_ylabel("share of (graph, layer) pairs")
    ax.set_title("NCI1, GraphGPS, token ratio 0.5: kept fractions per graph")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "kept_fractions.png", dpi=120)
    print(json.dumps({rule: {"folds": f, "mean_kept": m, "counts": c} for rule, (_, c, f, m) in found.items()}))


if __name__ == "__main__":
    main()
