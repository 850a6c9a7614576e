"""How many real node tokens each token rule keeps on real batches of a dataset.

gtsp's token selector keeps ``k_i = ceil((1 - ratio) * n_i)`` of each graph's own ``n_i`` nodes
(rule ``"per_graph"``); the authors' released code takes one ``k`` from the padded length of the
batch (rule ``"padded_batch"``), so every graph smaller than ``k`` keeps all of its nodes. How
many that is depends only on the graph sizes in each batch, not on the scores: this module runs
an untrained :class:`gtsp.sparsify.token_selector.TokenSelector` (eval mode) on the training
batches exactly as ``gtsp train`` draws them (:func:`gtsp.data.batching.train_loader`) and counts
the kept node tokens per graph. ``studies/token-rules/measure.py`` prints the comparison.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch_geometric.data import Data

from gtsp.data.batching import train_loader
from gtsp.nn.sequences import Sequences
from gtsp.sparsify.token_selector import SIZE_RULES, TokenSelector


@dataclass
class RuleCount:
    """Kept node tokens of one rule over a dataset's batches."""

    rule: str
    ratio: float
    graphs: int
    kept_share: float          # kept node tokens / real node tokens, over all graphs
    mean_graph_fraction: float  # mean over graphs of kept / own nodes
    all_kept_share: float      # share of graphs that keep every node

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def kept_by_rule(graphs: list[Data], ratio: float, rule: str, batch_size: int = 128, seed: int = 0) -> RuleCount:
    """Count the node tokens ``rule`` keeps at ``ratio`` on shuffled batches of ``graphs``."""
    if rule not in SIZE_RULES:
        raise ValueError(f"unknown size rule {rule!r}: choose one of {SIZE_RULES}")
    selector = TokenSelector(dim=1, ratio=ratio, rule=rule).eval()
    kept_counts, sizes = [], []
    for batch in train_loader(graphs, batch_size, seed):
        seq = Sequences.from_batch(batch.batch, batch.num_graphs)
        tokens = torch.zeros(seq.batch_size, seq.max_len, 1)
        _, kept, _ = selector(tokens, None if seq.is_full else seq.mask, 0)
        kept_counts.append(kept.sum(1))
        sizes.append(seq.lengths)
    kept_all, size_all = torch.cat(kept_counts).double(), torch.cat(sizes).double()
    return RuleCount(rule, ratio, int(size_all.numel()), float(kept_all.sum() / size_all.sum()),
                     float((kept_all / size_all).mean()), float((kept_all == size_all).double().mean()))


def compare_rules(graphs: list[Data], ratio: float, batch_size: int = 128, seed: int = 0) -> list[RuleCount]:
    """:func:`kept_by_rule` for every rule that decides from sizes alone (not the learned adaptive one)."""
    return [kept_by_rule(graphs, ratio, rule, batch_size, seed) for rule in SIZE_RULES]
