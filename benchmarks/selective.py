"""Selective annotation on real data: choosing what people label vs choosing at random.

For sms_spam and banking77 (from $SYNTHLOOM_DATA, default ../shared/data),
a sample of the test texts is labelled by the embedded model
(SmolLM2-135M-Instruct, a few labelled demonstrations from the training
side, label probability from the label tokens' log-probabilities, by
default calibrated against an empty input). The gold labels stand in for
the human. At budgets of 5, 10 and 20% of the records:

- random:    the same number of records chosen at random (mean over 20 draws);
- selective: `select_for_humans` (least confident first, with MiniLM diversity);
- uncertain: least confident first, no diversity (to show what diversity costs or buys).

One draw is not a result: each seed draws another test sample and other
demonstrations (so the model's labels change too), and every arm is scored
on every seed. The table gives each arm's mean accuracy of the final labels
(gold for the records people got, the model's label for the rest) with a
95% t-interval over seeds, and the paired difference (seed by seed) of
selective and uncertain to random and of selective to uncertain; a "beats"
needs the whole interval of the difference above 0, otherwise "no
difference shown". The raw per-seed numbers go to
benchmarks/results/seeds/selective-*.json.

The diversity weight is chosen before, on a dataset that is not reported
(ag_news by default, --tune-seeds draws of --tune-n records): the weight of
--weights with the best mean accuracy over the budgets and draws (ties to
the smaller weight). The reported datasets never see that choice.

All model answers go to a cache (benchmarks/results/selective-cache.sqlite):
a rerun costs seconds.

    python benchmarks/selective.py [--datasets sms_spam banking77] [--n 150 100] [--seeds 0 1 2 3 4]
        [--tune-on ag_news] [--weights 0 0.1 0.2 0.5 1]
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
if not DATA.exists():
    DATA = Path("/work/shared/data")
RESULTS = ROOT / "benchmarks" / "results"
SEEDS_DIR = RESULTS / "seeds"
BUDGETS = (0.05, 0.10, 0.20)
RANDOM_DRAWS = 20
SMS_LABELS = {"spam": "unsolicited advertising, prizes, premium-rate numbers", "ham": "an ordinary personal message"}
AG_LABELS = {"World": "world news and politics", "Sports": "sport", "Business": "business and the economy",
             "Sci/Tech": "science and technology"}


def load(name: str, n: int, demos: int, seed: int):
    """(test records with gold labels, demonstration records, labels, description) for one draw."""
    from synthloom.records import Record

    rng = random.Random(seed)
    if name in ("sms_spam", "ag_news"):
        if name == "sms_spam":
            rows = [line.split("\t", 1) for line in (DATA / "sms_spam" / "SMSSpamCollection").read_text(encoding="utf-8").splitlines() if line]
            pairs = [(text, label) for label, text in rows]
            labels, description = SMS_LABELS, "SMS text messages"
        else:
            names = (DATA / "ag_news" / "classes.txt").read_text(encoding="utf-8").split()
            pairs = [(f"{title}. {body}".replace("\\", " "), names[int(c) - 1])
                     for c, title, body in csv.reader(open(DATA / "ag_news" / "test.csv", encoding="utf-8"))]
            labels, description = AG_LABELS, "news headlines with their first sentence"
        rng.shuffle(pairs)
        # the test sample is a prefix of the draw's shuffle; demonstrations come from its far end
        test, pool = pairs[:n], pairs[-1000:]
        per_label = max(1, demos // len(labels))
        demo_pairs = [p for l in labels for p in [q for q in pool if q[1] == l][:per_label]]
        rng.shuffle(demo_pairs)
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


class Backend:
    """One embedded model for the whole run, loaded on first use."""

    def __init__(self, threads: int):
        self.threads, self._backend = threads, None

    def get(self):
        if self._backend is None:
            from synthloom.llm import LlamaCppBackend, LlamaCppConfig

            self._backend = LlamaCppBackend(LlamaCppConfig(n_ctx=4096, n_threads=self.threads))
        return self._backend


def label_draw(name: str, n: int, seed: int, args, cache, backend: Backend):
    """The model's labels of one draw: (records, model labels, unit MiniLM vectors, stats)."""
    import numpy as np

    from synthloom.embed import Embedder
    from synthloom.progress import RecordProgress
    from synthloom.review import ModelLabeller

    records, demos, labels, description = load(name, n, args.demos, seed)
    descriptions = labels if isinstance(labels, dict) else {}
    bar = RecordProgress(len(records), f"labelling {name} (seed {seed})", enabled=not args.quiet)
    done = []

    def advance(result) -> None:
        bar.advance(result)
        done.append(result)
        if args.quiet and len(done) % 25 == 0:
            print(f"{name} seed {seed}: {len(done)}/{len(records)} labelled", file=sys.stderr, flush=True)

    labeller = ModelLabeller(backend.get(), list(labels), label_descriptions=descriptions, description=description,
                             demonstrations=demos, method=args.method, calibrate=args.calibrate, cache=cache,
                             on_record=advance)
    t0 = time.time()
    with bar:
        model_labels = labeller.label([type(r)(id=r.id, fields=r.fields) for r in records])
    seconds = time.time() - t0
    vectors = Embedder.shared().encode([r.text() for r in records])
    gold = {r.id: r.label for r in records}
    correct = np.array([gold[m.record_id] == m.label for m in model_labels])
    conf = np.array([m.confidence for m in model_labels])
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(correct, conf) if 0 < correct.sum() < len(correct) else float("nan")
    print(f"{name} seed {seed}: {len(records)} records labelled in {seconds:.0f} s; model alone "
          f"{correct.mean():.3f} accurate; AUC of its confidence for being right {auc:.3f}", file=sys.stderr, flush=True)
    return records, model_labels, vectors, {"model_only": float(correct.mean()), "auc": float(auc), "label_seconds": seconds}


def score_arms(records, model_labels, vectors, share: float, diversity: float) -> dict[str, float]:
    """Accuracy of the final labels for each arm at one budget."""
    from synthloom.review import budget_records, select_for_humans, select_random

    b = budget_records(share, len(records))
    selective = select_for_humans(model_labels, b, vectors, diversity=diversity)
    uncertain = select_for_humans(model_labels, b)
    randoms = [accuracy(records, model_labels, select_random(model_labels, b, seed=s)) for s in range(RANDOM_DRAWS)]
    return {
        "random": statistics.mean(randoms),
        "selective": accuracy(records, model_labels, selective.human),
        "uncertain": accuracy(records, model_labels, uncertain.human),
        "expected_selective": selective.expected_accuracy,
    }


def choose_diversity(args, cache, backend: Backend) -> tuple[float, dict[float, float]]:
    """The weight with the best mean accuracy over budgets and draws on the tuning dataset."""
    draws = [label_draw(args.tune_on, args.tune_n, 1000 + s, args, cache, backend) for s in range(args.tune_seeds)]
    means = {}
    for w in args.weights:
        scores = [score_arms(*draw[:3], share, w)["selective"] for draw in draws for share in BUDGETS]
        means[w] = statistics.mean(scores)
    best = max(sorted(args.weights), key=lambda w: (round(means[w], 9), -w))
    return best, means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["sms_spam", "banking77"])
    parser.add_argument("--n", type=int, nargs="+", default=[150, 100],
                        help="test records per dataset and draw, in --datasets order")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                        help="draws: each seed draws another test sample and other demonstrations")
    parser.add_argument("--demos", type=int, default=8, help="labelled demonstrations shown to the model")
    parser.add_argument("--method", default="logprob", choices=["logprob", "votes", "both"])
    parser.add_argument("--tune-on", default="ag_news", help="the dataset the diversity weight is chosen on (not reported)")
    parser.add_argument("--tune-n", type=int, default=100)
    parser.add_argument("--tune-seeds", type=int, default=2)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.5, 1.0])
    parser.add_argument("--diversity", type=float, default=None,
                        help="use this weight instead of choosing one on --tune-on")
    parser.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=True,
                        help="divide out the model's leaning on an empty input (contextual calibration)")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (1 copes best with a busy machine)")
    parser.add_argument("--cache", type=Path, default=RESULTS / "selective-cache.sqlite",
                        help="the cache of model answers (one per process)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"no benchmark data at {DATA} (set SYNTHLOOM_DATA)")
    if args.tune_on in args.datasets and args.diversity is None:
        raise SystemExit(f"--tune-on {args.tune_on} is among the reported --datasets: choose the weight elsewhere")

    from synthloom.evaluate.seeds import markdown_table, summarize, write_per_seed
    from synthloom.llm import CompletionCache

    RESULTS.mkdir(parents=True, exist_ok=True)
    cache = CompletionCache(args.cache)
    backend = Backend(args.threads)
    if args.diversity is None:
        diversity, tuned = choose_diversity(args, cache, backend)
        print(f"\nDiversity weight chosen on {args.tune_on} ({args.tune_seeds} draws of {args.tune_n}; mean accuracy "
              f"over budgets {', '.join(f'{b:.0%}' for b in BUDGETS)}):")
        print("| weight | mean accuracy |\n|---|---|")
        for w, m in tuned.items():
            print(f"| {w:g}{' (chosen)' if w == diversity else ''} | {m:.4f} |", flush=True)
    else:
        diversity, tuned = args.diversity, {}
    sizes = args.n if len(args.n) == len(args.datasets) else [args.n[0]] * len(args.datasets)
    settings = {"demos": args.demos, "method": args.method, "calibrate": args.calibrate, "diversity": diversity,
                "diversity_chosen_on": None if not tuned else args.tune_on, "tuning": {str(k): v for k, v in tuned.items()},
                "random_draws": RANDOM_DRAWS}
    for name, n in zip(args.datasets, sizes):
        per_budget: dict[float, dict[int, dict[str, float]]] = {b: {} for b in BUDGETS}
        stats_by_seed = {}
        for seed in args.seeds:
            records, model_labels, vectors, stats = label_draw(name, n, seed, args, cache, backend)
            stats_by_seed[seed] = stats
            for share in BUDGETS:
                arms = score_arms(records, model_labels, vectors, share, diversity)
                per_budget[share][seed] = {"model only": stats["model_only"], "random": arms["random"],
                                           "selective": arms["selective"], "uncertain": arms["uncertain"]}
        only = [s["model_only"] for s in stats_by_seed.values()]
        print(f"\n## {name}: {n} records a draw, {len(args.seeds)} draws (seeds {args.seeds}); model alone "
              f"{statistics.mean(only):.3f} accurate on average; diversity weight {diversity:g}")
        for share in BUDGETS:
            per_seed = per_budget[share]
            print(f"\n### budget {share:.0%} (accuracy of the final labels)\n")
            print(markdown_table(summarize(per_seed, baseline="random"), metric="accuracy"))
            from synthloom.evaluate.seeds import paired_difference

            d = paired_difference(per_seed, "selective", "uncertain")
            print(f"\nselective - uncertain: {d.difference.mean:+.3f} [{d.difference.low:+.3f}, {d.difference.high:+.3f}]: "
                  f"{d.verdict}")
            write_per_seed(SEEDS_DIR / f"selective-{name}-{int(round(share * 100))}pct.json", per_seed,
                           metric="accuracy of the final labels", baseline="random",
                           settings={**settings, "dataset": name, "n": n, "budget": share,
                                     "draw_stats": {str(k): v for k, v in stats_by_seed.items()}})
    cache.close()


if __name__ == "__main__":
    main()
