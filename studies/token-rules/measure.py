"""Real node tokens kept by the per-graph rule and the authors' padded-batch rule on a TU dataset.

Usage: python studies/token-rules/measure.py [--dataset NCI1] [--ratios 0.25,0.5,0.75] [--out FILE.json]
Counts on the training split's shuffled batches of 128 (as gtsp train draws them) with an untrained
selector: k depends on graph sizes only (gtsp.analysis.token_rules).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from gtsp.analysis.token_rules import compare_rules
from gtsp.data.registry import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="NCI1")
    parser.add_argument("--ratios", default="0.25,0.5,0.75", help="fractions REMOVED")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", type=Path, help="JSON file for the counts")
    args = parser.parse_args()
    data = load_dataset(args.dataset)
    rows = [count for ratio in map(float, args.ratios.split(","))
            for count in compare_rules(data.train, ratio, args.batch_size)]
    print("| ratio removed | rule | graphs | real tokens kept | mean per-graph kept fraction | graphs keeping all |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.ratio} | {r.rule} | {r.graphs} | {r.kept_share:.3f} | {r.mean_graph_fraction:.3f} | "
              f"{r.all_kept_share:.3f} |")
    if args.out:
        args.out.write_text(json.dumps({"dataset": args.dataset, "split": "train", "batch_size": args.batch_size,
                                        "rows": [r.to_dict() for r in rows]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
