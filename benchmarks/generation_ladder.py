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

Arms 1 and 2 use no support data, so they are generated once per dataset
and evaluated with every seed's support set. Run directories (with their
caches: a rerun costs no model calls) go under benchmarks/results/ladder.

    python benchmarks/generation_ladder.py [--sms-calls 40] [--banking-calls 60] [--seeds 0 1 2]
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
                       "seed": 11},
        "curation": [],
        "evaluation": [],
    }
    if arm != "zero-shot":
        data["conditions"] = SMS_CONDITIONS if sms else BANKING_CONDITIONS
        data["generation"]["condition_sampling"] = "coverage"
    if arm in ("+nearest", "+rounds"):
        data["demonstrations"] = {"path": str(support), "k": 4, "selection": "nearest", "candidates": 7}
        data["generation"]["seed"] = 11 + 1000 * seed
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
    shared: dict[str, list[Record]] = {}
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
            elif arm in ("zero-shot", "+conditions"):  # no support data: generated once, scored per seed
                if arm not in shared:
                    shared[arm], used = run_arm(dataset, arm, calls, None, 0, root / f"{dataset}-{arm.strip('+')}", limit)
                    model_calls[arm] += used["model_calls"] + used["served_from_cache"]
                made[arm] = shared[arm]
            else:
                made[arm], used = run_arm(dataset, arm, calls, support_path, seed, folder / arm.strip("+"), limit)
                model_calls[arm] += used["model_calls"] + used["served_from_cache"]
            rows[arm].append(scorer(made[arm], limit or calls))
    return {"rows": rows, "baseline": baselines, "calls": model_calls}


def mean(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.mean(values) if values else float("nan")


def print_table(dataset: str, result: dict[str, Any], seeds: list[int], calls: int) -> None:
    rows, baseline = result["rows"], result["baseline"]
    print(f"\n{dataset}: {calls} records asked per arm, support 10 per class, mean of {len(seeds)} seed(s) {seeds}")
    print(f"{'arm':12s} {'usable':>7s} {'dist-2':>7s} {'mean cos':>9s} {'near-copy':>10s} "
          f"{'acc (a)':>8s} {'F1 (a)':>7s} {'acc (b)':>8s} {'F1 (b)':>7s} {'calls':>6s}")
    for arm in ARMS:
        r = {k: mean([row[k] for row in rows[arm]]) for k in rows[arm][0]}
        print(f"{arm:12s} {r['usable']:7.2f} {r['distinct_2']:7.3f} {r['mean_cos']:9.3f} {r['near_copies']:10.3f} "
              f"{100 * r['acc_alone']:8.1f} {100 * r['f1_alone']:7.1f} {100 * r['acc_plus']:8.1f} {100 * r['f1_plus']:7.1f} "
              f"{result['calls'][arm] if arm != '+curation' else 0:6d}")
    acc = mean([b["accuracy"] for b in baseline])
    f1 = mean([b["macro_f1"] for b in baseline])
    print(f"{'support only':12s} {'':7s} {'':7s} {'':9s} {'':10s} {'':8s} {'':7s} {100 * acc:8.1f} {100 * f1:7.1f}")
    if len(seeds) > 1:
        spread = {arm: statistics.pstdev([row["f1_plus"] for row in rows[arm]]) for arm in ARMS}
        print("  std of F1 (b) over seeds: " + ", ".join(f"{a} {100 * s:.1f}" for a, s in spread.items())
              + f", support only {100 * statistics.pstdev([b['macro_f1'] for b in baseline]):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["sms", "banking"], choices=["sms", "banking"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--banking-seeds", nargs="+", type=int, default=[0])
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
    for dataset, (result, seeds, calls) in results.items():
        print_table(dataset, result, seeds, calls)
    print(f"\n{time.time() - started:.0f} s in all")


if __name__ == "__main__":
    main()
