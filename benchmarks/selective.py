"""Selective annotation on real data: choosing what people label vs choosing at random.

For sms_spam and banking77 (from $SYNTHLOOM_DATA, default ../shared/data),
a fixed-seed sample of the test texts is labelled by the embedded model
(SmolLM2-135M-Instruct, a few labelled demonstrations from the training
side, label probability from the label tokens' log-probabilities, by
default calibrated against an empty input). The gold
labels stand in for the human. At budgets of 5, 10 and 20% of the records:

- random:    the same number of records chosen at random (mean over 20 draws);
- selective: `select_for_humans` (least confident first, with MiniLM diversity);
- uncertain: least confident first, no diversity (to show what diversity costs or buys).

The final labels are the gold label for the records people got and the
model's label for the rest; the table gives their accuracy and the expected
accuracy the selection reported beforehand. All model answers go to a cache
(benchmarks/results/selective-cache.sqlite): a rerun costs seconds.

    python benchmarks/selective.py [--datasets sms_spam banking77] [--n 150 100]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("SYNTHLOOM_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "benchmarks" / "results"
BUDGETS = (0.05, 0.10, 0.20)
SMS_LABELS = {"spam": "unsolicited advertising, prizes, premium-rate numbers", "ham": "an ordinary personal message"}


def load(name: str, n: int, demos: int, seed: int):
    """(test records with gold labels, demonstration records, labels, description) for one dataset."""
    from synthloom.records import Record

    rng = random.Random(seed)
    if name == "sms_spam":
        rows = [line.split("\t", 1) for line in (DATA / "sms_spam" / "SMSSpamCollection").read_text(encoding="utf-8").splitlines() if line]
        pairs = [(text, label) for label, text in rows]
        rng.shuffle(pairs)
        # the test sample is a prefix of one fixed shuffle; demonstrations come from its far end
        test, pool = pairs[:n], pairs[-1000:]
        by_label = {l: [p for p in pool if p[1] == l] for l in SMS_LABELS}
        demo_pairs = [p for l in SMS_LABELS for p in by_label[l][: demos // 2]]
        rng.shuffle(demo_pairs)
        labels, description = SMS_LABELS, "SMS text messages"
    elif name == "banking77":
        read = lambda f: [(r["text"], r["category"]) for r in csv.DictReader(open(DATA / "banking77" / f, encoding="utf-8"))]
        test = read("test.csv")
        rng.shuffle(test)
        test = test[:n]
        pool = read("train.csv")
        rng.shuffle(pool)
        demo_pairs = pool[:demos]
        labels = json.loads((DATA / "banking77" / "categories.json").read_text())
        description = "questions customers ask their online bank"
    else:
        raise SystemExit(f"unknown dataset {name}")
    records = [Record(id=f"{name}-{i}", fields={"text": t}, label=l) for i, (t, l) in enumerate(test)]
    demos_ = [Record(id=f"demo-{i}", fields={"text": t}, label=l) for i, (t, l) in enumerate(demo_pairs)]
    return records, demos_, labels, description


def accuracy(records, model_labels, human_ids) -> float:
    gold = {r.id: r.label for r in records}
    human = set(human_ids)
    right = sum(gold[m.record_id] == (gold[m.record_id] if m.record_id in human else m.label) for m in model_labels)
    return right / len(records)


def run_dataset(name: str, n: int, args, cache) -> list[dict]:
    import numpy as np

    from synthloom.embed import Embedder
    from synthloom.llm import LlamaCppBackend, LlamaCppConfig
    from synthloom.progress import RecordProgress
    from synthloom.review import ModelLabeller, budget_records, select_for_humans, select_random

    records, demos, labels, description = load(name, n, args.demos, args.seed)
    label_names = list(labels)
    descriptions = labels if isinstance(labels, dict) else {}
    backend = LlamaCppBackend(LlamaCppConfig(n_ctx=4096, n_threads=args.threads))
    bar = RecordProgress(len(records), f"labelling {name}", enabled=not args.quiet)
    done = []

    def advance(result) -> None:
        bar.advance(result)
        done.append(result)
        if args.quiet and len(done) % 10 == 0:
            print(f"{name}: {len(done)}/{len(records)} labelled", file=sys.stderr, flush=True)

    labeller = ModelLabeller(backend, label_names, label_descriptions=descriptions, description=description,
                             demonstrations=demos, method=args.method, calibrate=args.calibrate, cache=cache,
                             on_record=advance)
    unlabelled = [type(r)(id=r.id, fields=r.fields) for r in records]
    t0 = time.time()
    with bar:
        model_labels = labeller.label(unlabelled)
    seconds = time.time() - t0
    vectors = Embedder.shared().encode([r.text() for r in records])
    gold = {r.id: r.label for r in records}
    correct = np.array([gold[m.record_id] == m.label for m in model_labels])
    conf = np.array([m.confidence for m in model_labels])
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(correct, conf) if 0 < correct.sum() < len(correct) else float("nan")
    print(f"{name}: {len(records)} records labelled in {seconds:.0f} s; model alone {correct.mean():.3f} accurate; "
          f"AUC of its confidence for being right {auc:.3f}", file=sys.stderr)
    rows = []
    for share in BUDGETS:
        b = budget_records(share, len(records))
        selective = select_for_humans(model_labels, b, vectors, diversity=args.diversity)
        uncertain = select_for_humans(model_labels, b)
        randoms = [accuracy(records, model_labels, select_random(model_labels, b, seed=s)) for s in range(20)]
        rows.append({
            "dataset": name, "n": len(records), "budget": share, "B": b,
            "model_only": float(correct.mean()),
            "random": statistics.mean(randoms), "random_sd": statistics.pstdev(randoms),
            "selective": accuracy(records, model_labels, selective.human),
            "uncertain": accuracy(records, model_labels, uncertain.human),
            "expected_selective": selective.expected_accuracy,
            "auc": auc, "label_seconds": seconds,
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["sms_spam", "banking77"])
    parser.add_argument("--n", type=int, nargs="+", default=[150, 100],
                        help="test records per dataset, in --datasets order (a fixed-seed sample)")
    parser.add_argument("--demos", type=int, default=8, help="labelled demonstrations shown to the model")
    parser.add_argument("--method", default="logprob", choices=["logprob", "votes", "both"])
    parser.add_argument("--diversity", type=float, default=0.2)
    parser.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=True,
                        help="divide out the model's leaning on an empty input (contextual calibration)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (1 copes best with a busy machine)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"no benchmark data at {DATA} (set SYNTHLOOM_DATA)")

    from synthloom.llm import CompletionCache

    RESULTS.mkdir(parents=True, exist_ok=True)
    cache = CompletionCache(RESULTS / "selective-cache.sqlite")
    sizes = args.n if len(args.n) == len(args.datasets) else [args.n[0]] * len(args.datasets)
    rows = [row for name, n in zip(args.datasets, sizes) for row in run_dataset(name, n, args, cache)]
    cache.close()
    (RESULTS / f"selective-{'-'.join(args.datasets)}.json").write_text(json.dumps(rows, indent=2))

    print(f"\nSelective annotation: accuracy of the final labels (gold for the records people got, "
          f"the embedded model for the rest); {args.demos} demonstrations, confidence by {args.method}"
          f"{', calibrated' if args.calibrate else ''}")
    print(f"{'dataset':>10} {'n':>4} {'budget':>6} {'B':>4} {'model only':>10} {'random':>13} "
          f"{'selective':>9} {'vs random':>9} {'uncertain':>9} {'expected':>8}")
    for r in rows:
        print(f"{r['dataset']:>10} {r['n']:>4} {r['budget']:>6.0%} {r['B']:>4} {r['model_only']:>10.3f} "
              f"{r['random']:>7.3f}±{r['random_sd']:.3f} {r['selective']:>9.3f} {r['selective'] - r['random']:>+9.3f} "
              f"{r['uncertain']:>9.3f} {r['expected_selective']:>8.3f}")


if __name__ == "__main__":
    main()
