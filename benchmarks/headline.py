"""The headline table: what synthetic data from the embedded model is worth on real test sets.

On SMS spam and BANKING77 restricted to 20 intents, an embedding +
logistic-regression classifier is trained on

  (a) the real training split,
  (b) 10 real examples per class (the support set),
  (c) synthetic data from the embedded model with (b) as demonstrations, uncurated,
  (d) the same data curated,
  (e) (b) + (d),

and scored on the real test split: accuracy and macro-F1 with 95% bootstrap
intervals. The 20 intents are the 20 most frequent in BANKING77's training
split, ties broken alphabetically (`restrict_labels`). The support set is
`few_per_class(train, 10, seed=0)`; SMS spam has no official split and uses
the registry's fixed, seeded, stratified 80/20 split.

The synthetic data comes from the project's own path: a recipe run with
`synthloom.run` (generation, curation, evaluation, report) into
benchmarks/results/<dataset>/run, so the table improves by itself as
generation and curation improve. Optional recipe features (nearest
demonstrations, coverage sampling, more curation stages) are used when this
version of synthloom accepts them. The cache in the run directory makes a
rerun cost nothing.

    SYNTHLOOM_DATA=/path/to/shared/data python benchmarks/headline.py [--records-sms 240] [--per-intent 20]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

import synthloom
from synthloom.evaluate import few_per_class, fit_and_score, load_benchmark, restrict_labels
from synthloom.recipe import CurationStage, RecipeError, recipe_from_dict
from synthloom.records import read_records, write_records

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DATA = Path(os.environ.get("SYNTHLOOM_DATA") or ROOT.parent / "shared" / "data")
# One llama.cpp thread: on a shared, busy machine more threads spin against each other
# (measured here: 40 tokens in 24 s with one thread, 198 s with two, under a load of 15).
N_THREADS = int(os.environ.get("SYNTHLOOM_THREADS", "1"))

# Curation stages tried in order; those this version of synthloom does not know are left out.
CURATION = [
    {"stage": "exact_dedup"},
    {"stage": "length_filter", "min_chars": 12, "max_chars": 320},
    {"stage": "garbage_filter"},
    {"stage": "meta_talk_filter"},
    {"stage": "label_leak_filter"},
    {"stage": "near_dedup"},
    {"stage": "aux_confidence"},
    {"stage": "cross_partition"},
]
# Generation settings tried one by one on top of the base recipe, kept when they validate.
OPTIONAL = [
    ("demonstrations", "selection", "nearest"),
    ("generation", "condition_sampling", "coverage"),
]

SMS = {
    "description": "short SMS text messages like the ones people in the UK get on their phones",
    "role": "a mobile phone user who writes and receives text messages",
    "labels": {
        "spam": "unsolicited advertising, prizes, premium-rate numbers, offers to reply to",
        "ham": "an ordinary personal message between people who know each other",
    },
    "conditions": {
        "topic": ["money", "a phone", "meeting up", "food", "work", "family", "travel", "shopping", "a prize", "a delivery"],
        "tone": {"casual": 3, "urgent": 1, "friendly": 2},
    },
}
BANKING = {
    "description": "short messages that customers type into their bank's online help chat",
    "role": "a customer of a bank with a card, an app and an account",
    "conditions": {
        "tone": {"polite": 2, "frustrated": 1, "brief": 2},
        "detail": ["a short question", "a sentence with some context"],
    },
}


def known_curation() -> list[dict[str, Any]]:
    adapter = TypeAdapter(CurationStage)
    out = []
    for stage in CURATION:
        try:
            adapter.validate_python(stage, context={"base_dir": str(ROOT)})
            out.append(stage)
        except ValidationError:
            pass
    return out


def build_recipe(name: str, spec: dict[str, Any], labels: dict[str, str], support: Path, test: Path,
                 benchmark: dict[str, Any], records: int) -> tuple[Any, list[str]]:
    base: dict[str, Any] = {
        "name": name,
        "model": {"backend": "llamacpp", "n_threads": N_THREADS},
        "task": {"description": spec["description"], "role": spec["role"], "fields": {"text": "the message"}, "labels": labels},
        "conditions": spec["conditions"],
        "demonstrations": {"path": str(support), "k": 3},
        "generation": {"records": records, "temperature": 0.9, "max_tokens": 48, "seed": 7},
        "curation": known_curation(),
        "evaluation": [
            {"stage": "diversity"},
            {"stage": "fidelity", "reference": {"path": str(test)}},
            {"stage": "downstream", "benchmark": benchmark, "settings": ["synthetic", "real", "few_real_plus_synthetic"]},
        ],
    }
    accepted = []
    for section, key, value in OPTIONAL:
        trial = json.loads(json.dumps(base))
        trial[section][key] = value
        try:
            recipe_from_dict(trial, base_dir=ROOT)
        except RecipeError:
            continue
        base = trial
        accepted.append(f"{section}.{key}: {value}")
    return recipe_from_dict(base, base_dir=ROOT), accepted


def row(name: str, scores: dict[str, Any]) -> dict[str, Any]:
    return {"setting": name, "n_train": scores["n_train"], "accuracy": scores["accuracy"], "accuracy_ci": scores["accuracy_ci"],
            "macro_f1": scores["macro_f1"], "macro_f1_ci": scores["macro_f1_ci"]}


def run_dataset(key: str, records: int, limit: int | None = None) -> dict[str, Any]:
    out = RESULTS / key
    out.mkdir(parents=True, exist_ok=True)
    if key == "sms_spam":
        name, path, spec = "sms_spam", DATA / "sms_spam", SMS
        train, test = load_benchmark(name, "train", path), load_benchmark(name, "test", path)
        labels = spec["labels"]
        benchmark = {"name": name, "path": str(path)}
    else:
        name, path, spec = "banking77", DATA / "banking77", BANKING
        train, kept = restrict_labels(load_benchmark(name, "train", path), 20)
        test = [r for r in load_benchmark(name, "test", path) if r.label in set(kept)]
        labels = {label: label.replace("_", " ") for label in kept}
        benchmark = {"name": name, "path": str(path), "labels": 20}
    support = few_per_class(train, 10, seed=0)
    write_records(out / "support.jsonl", support, prompts=False)
    write_records(out / "test.jsonl", test, prompts=False)
    recipe, options = build_recipe(f"headline-{key}", spec, labels, out / "support.jsonl", out / "test.jsonl", benchmark, records)
    t0 = time.time()
    result = synthloom.run(recipe, out / "run", limit=limit, progress=True)
    elapsed = time.time() - t0
    settings = result.metrics["downstream"]["settings"]
    generated = read_records(out / "run" / "generated.parquet")
    uncurated, _ = fit_and_score(generated, test, seed=0)
    table = [
        row("(a) real train", settings["real"]),
        row("(b) 10 real per class", settings["few_real"]),
        row("(c) synthetic, uncurated", uncurated),
        row("(d) synthetic, curated", settings["synthetic"]),
        row("(e) 10 per class + curated", settings["few_real_plus_synthetic"]),
    ]
    return {
        "dataset": key, "classes": len(labels), "n_test": len(test), "run_s": round(elapsed, 1),
        "model_calls": result.manifest["model_calls"]["model_calls"],
        "served_from_cache": result.manifest["model_calls"]["served_from_cache"],
        "generated": len(generated), "curated": result.manifest["counts"]["curated"],
        "curation": [s["stage"] for s in recipe.model_dump()["curation"]],
        "recipe_options": options,
        "table": table,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records-sms", type=int, default=240)
    parser.add_argument("--per-intent", type=int, default=20, help="synthetic records per BANKING77 intent")
    parser.add_argument("--only", choices=["sms_spam", "banking77_20"])
    parser.add_argument("--limit", type=int, help="generate only the first N planned records (the same plan, so the cache still serves them)")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"real data not found at {DATA}; set SYNTHLOOM_DATA")
    results = []
    for key, records in [("sms_spam", args.records_sms), ("banking77_20", 20 * args.per_intent)]:
        if args.only and key != args.only:
            continue
        results.append(run_dataset(key, records, args.limit))
        (RESULTS / f"headline-{key}.json").write_text(json.dumps(results[-1], indent=2) + "\n")
    for res in results:
        print(f"\n{res['dataset']}: {res['classes']} classes, {res['n_test']} test rows; {res['generated']} generated, "
              f"{res['curated']} kept by {', '.join(res['curation'])}; {res['model_calls']} model calls "
              f"({res['served_from_cache']} from cache), run {res['run_s']} s; options: {', '.join(res['recipe_options']) or 'none'}")
        print("| training data | records | accuracy | 95% CI | macro-F1 | 95% CI |")
        print("|---|---|---|---|---|---|")
        for r in res["table"]:
            print(f"| {r['setting']} | {r['n_train']} | {r['accuracy']:.3f} | [{r['accuracy_ci'][0]:.3f}, {r['accuracy_ci'][1]:.3f}] "
                  f"| {r['macro_f1']:.3f} | [{r['macro_f1_ci'][0]:.3f}, {r['macro_f1_ci'][1]:.3f}] |")
        t = {r["setting"][:3]: r["macro_f1"] for r in res["table"]}
        print(f"goals: (d) > (c): {'met' if t['(d)'] > t['(c)'] else 'MISSED'} ({t['(d)']:.3f} vs {t['(c)']:.3f}); "
              f"(e) > (b): {'met' if t['(e)'] > t['(b)'] else 'MISSED'} ({t['(e)']:.3f} vs {t['(b)']:.3f})")


if __name__ == "__main__":
    main()
