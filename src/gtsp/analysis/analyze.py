"""``gtsp analyze``: every analysis of one trained model, or the curves of a folder of runs.

For a run folder or model file: head redundancy, layer redundancy (before compaction and
delivered), attention received, kept tokens (token-pruned models) and, for a run folder, its
training vs test curve, each a PNG plus its numbers as JSON in ``out``, all on the same fixed
sample of test graphs. For a folder holding several runs: their training vs test curves (e.g.
a weight-sparsity series, the paper's Fig. 6).
"""
from __future__ import annotations

import logging
from pathlib import Path

from gtsp.analysis.attention_received import analyse_attention_received
from gtsp.analysis.capture import capture
from gtsp.analysis.curves import analyse_curves, find_runs
from gtsp.analysis.figures import write_outputs
from gtsp.analysis.heads import analyse_heads, head_labels
from gtsp.analysis.kept_tokens import analyse_kept_tokens, has_selectors
from gtsp.analysis.layers import LayerView, analyse_layers, layer_view
from gtsp.analysis.subject import Subject, load_subject, original_layers
from gtsp.analysis.subject import kept as kept_units

log = logging.getLogger(__name__)
BEFORE, AFTER = "before compaction", "delivered"


def analyze(source: str | Path, out: str | Path, graphs: int = 32, data_root: str | None = None,
            cache_root: str | None = None) -> list[Path]:
    """Run every analysis that applies to ``source`` and return the files written to ``out``."""
    source, out = Path(source), Path(out)
    if source.is_dir() and not (source / "results.json").is_file():
        return analyse_curves(find_runs(source), out)
    subject = load_subject(source, graphs, data_root, cache_root)
    written = analyse_model(subject, out)
    if source.is_dir() and (source / "metrics.jsonl").is_file():
        written += analyse_curves([source], out)
    return written


def analyse_model(subject: Subject, out: Path) -> list[Path]:
    """The model analyses of ``subject`` (heads, layers, attention received, kept tokens)."""
    batch = subject.batch()
    after = capture(subject.after, batch)
    before = capture(subject.before, batch) if subject.before is not None else None
    after_layers = original_layers(subject)
    written = write_outputs(out, "sample", None, _sample_numbers(subject))
    if after.attentions:
        if before is not None:
            labels = head_labels(before, list(range(len(before.layer_outputs))), subject.plan, uncompacted=True)
            written += analyse_heads(before, labels, BEFORE, out)
        else:
            labels = head_labels(after, after_layers, subject.plan, uncompacted=False)
            written += analyse_heads(after, labels, AFTER, out)
        layer_names = [f"L{after_layers[r.layer]}" for r in after.attentions]
        written += analyse_attention_received(after, subject.graphs, subject.sample, layer_names, out)
    else:
        log.warning("the model has no attention: head, attention and token analyses do not apply")
    written += analyse_layers(_layer_views(subject, batch, after, before), out)
    if has_selectors(subject.after):
        written += analyse_kept_tokens(subject, out)
    return written


def _layer_views(subject: Subject, batch, after, before) -> list[LayerView]:
    views = []
    kept = kept_units(subject.plan, "layer")
    if before is not None:
        count = len(before.layer_outputs)
        removed = [kept is not None and i not in kept for i in range(count)]
        views.append(layer_view(before, BEFORE, "in context", list(range(count)), removed))
        views.append(layer_view(capture(subject.before, batch, same_input=True), BEFORE, "same input",
                                list(range(count)), removed))
    layers = original_layers(subject)
    views.append(layer_view(after, AFTER, "in context", layers, [False] * len(layers)))
    if before is None:
        views.append(layer_view(capture(subject.after, batch, same_input=True), AFTER, "same input", layers,
                                [False] * len(layers)))
    return views


def _sample_numbers(subject: Subject) -> dict:
    return {"source": str(subject.source), "dataset": subject.spec["dataset"], "backbone": subject.spec["backbone"],
            "plan": subject.plan.to_dict(), "uncompacted_model": subject.before is not None,
            "test_positions": subject.sample, "nodes": [g.num_nodes for g in subject.graphs],
            "selection": "positions spread evenly over the test split (numpy.linspace), the same for every run"}
