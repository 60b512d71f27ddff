"""Support-anchored curation on one draw: support alone vs support + synthetic, plain and support-curated.

Given a run directory (its generated.parquet) and the run's recipe (its
support set and downstream test data), every arm trains the downstream
classifier (embedding_logreg) and scores it on the same real test data:

  support               the real support set alone
  synthetic             the records after the recipe's other stages (the filters)
  support+plain         support + those records, every weight 1
  support+anchored      support + those records after support_filter, support_weight, support_mix
  synthetic(anchored)   the anchored records alone

One draw of the support set and of the generation: an interval is the
bootstrap over the test set only, never the variation over draws.

    python benchmarks/support_curation.py RUN_DIR RECIPE
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from synthloom.curate import CurationContext, curate
from synthloom.evaluate import fit_and_score
from synthloom.recipe import SUPPORT_STAGES, load_recipe
from synthloom.records import load_dataset, read_records


def fresh(records):
    for r in records:
        r.flags, r.scores, r.reasons, r.weight = {}, {}, {}, 1.0
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("recipe", type=Path)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    downstream = next(s for s in recipe.evaluation if s.stage == "downstream")
    support = load_dataset(recipe.demonstrations)
    test = load_dataset(downstream.test)
    context = CurationContext(recipe.text_field, recipe.task.label_field, labels=recipe.task.label_names,
                              support=recipe.demonstrations)
    filters = [s for s in recipe.curation if s.stage not in SUPPORT_STAGES]
    anchored_stages = [s for s in recipe.curation if s.stage in SUPPORT_STAGES]
    plain = curate(fresh(read_records(args.run_dir / "generated.parquet")), filters, context, check=False).kept
    plain = fresh(plain)
    anchored_in = fresh(read_records(args.run_dir / "generated.parquet"))
    anchored = curate(anchored_in, filters + anchored_stages, context, check=False)
    kept = anchored.kept
    for step in anchored.funnel[len(filters):]:
        print(f"{step.stage}: seen {step.seen}, dropped {step.dropped}, relabelled {step.relabelled}, reweighted {step.reweighted}")
        reasons = [ex["reason"] for ex in step.examples[:1]] or [r.reasons.get(step.stage, "") for r in kept[:1]]
        for reason in reasons:
            print(f"  e.g. {reason[:260]}")
    arms = {
        "support": list(support),
        "synthetic": plain,
        "synthetic(anchored)": kept,
        "support+plain": list(support) + plain,
        "support+anchored": list(support) + kept,
    }
    print(f"\nsupport {len(support)} real, synthetic {len(plain)} after filters, test {len(test)} real")
    print(f"{'arm':22} {'n':>5} {'macro-F1':>9} {'95% CI (test bootstrap)':>24} {'accuracy':>9}")
    scores = {}
    for name, train in arms.items():
        result, _ = fit_and_score(train, test, "embedding_logreg", [recipe.text_field], seed=0, resamples=1000)
        scores[name] = result["macro_f1"]
        ci = result["macro_f1_ci"]
        print(f"{name:22} {len(train):5d} {result['macro_f1']:9.3f} {f'[{ci[0]:.3f}, {ci[1]:.3f}]':>24} {result['accuracy']:9.3f}")
    base = scores["support"]
    print("\nratios to support alone (macro-F1):")
    for name in arms:
        print(f"  {name:22} {scores[name] / base:.3f}  (difference {scores[name] - base:+.3f})")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
