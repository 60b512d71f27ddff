"""The headline table: what synthetic data from the embedded model is worth on real test sets.

On SMS spam and BANKING77 restricted to 20 intents, an embedding +
logistic-regression classifier is trained on

  (a) the real training split,
  (b) 10 real examples per class (the support set),
  (c) synthetic data from the embedded model with (b) as demonstrations, uncurated,
  (d) the same data curated,
  (e) (b) + (d),

and scored on the real test split: accuracy and macro-F1 with 95% bootstrap
intervals.

Data, intents, support set and recipe are the generation ladder's
(`benchmarks/generation_ladder.py`): the same fixed 80/20 split of SMS spam,
the same 20 intents (sorted(intents)[::4]) with their hand-written
descriptions, the support set of seed 0, and the recipe of one of its arms
(`--arm`, default +rounds: conditions by the coverage sampler, the 4
nearest demonstrations, three dataset-wise rounds). The records come from
the project's own path, `synthloom.run`, into benchmarks/results/<dataset>/run,
and the run's curation stages (below) make (d). The cache in the run
directory makes a rerun cost nothing.

    SYNTHLOOM_DATA=/path/to/shared/data python benchmarks/headline.py [--records-sms 240] [--per-intent 12]
"""


from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import synthloom
from synthloom.evaluate import fit_and_score
from synthloom.recipe import recipe_from_dict
from synthloom.records import read_records, write_records

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generation_ladder as ladder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DATA = Path(os.environ.get("SYNTHLOOM_DATA") or ROOT.parent / "shared" / "data")
os.environ["SYNTHLOOM_DATA"] = str(DATA)  # the ladder's data functions read it
# One llama.cpp thread: on a shared, busy machine more threads spin against each other
# (measured here: 40 tokens in 24 s with one thread, 198 s with two, under a load of 15).
N_THREADS = int(os.environ.get("SYNTHLOOM_THREADS", "1"))

# The curation stages of the run that makes (d). The label-leak filter only for SMS: intent
# names ("top up limits", "card arrival") are words real banking customers use.
CURATION = [
    {"stage": "garbage_filter"},
    {"stage": "meta_talk_filter"},
    {"stage": "label_leak_filter", "only": "sms"},
    {"stage": "exact_dedup"},
    {"stage": "near_dedup"},
    {"stage": "length_filter", "min_chars": 8, "max_chars": 400},
    {"stage": "cross_partition"},
]


def build_recipe(dataset: str, arm: str, records: int, support: Path, out: Path) -> Any:
    data = ladder.recipe_for(dataset, arm, records, support, 0)
    data["name"] = f"headline-{dataset}"
    data["model"]["n_threads"] = N_THREADS
    data["curation"] = [{k: v for k, v in stage.items() if k != "only"} for stage in CURATION
                        if stage.get("only", dataset) == dataset]
    return recipe_from_dict(data, base_dir=out)


def row(name: str, scores: dict[str, Any]) -> dict[str, Any]:
    return {"setting": name, "n_train": scores["n_train"], "accuracy": scores["accuracy"], "accuracy_ci": scores["accuracy_ci"],
            "macro_f1": scores["macro_f1"], "macro_f1_ci": scores["macro_f1_ci"]}


def run_dataset(key: str, records: int, arm: str, limit: int | None = None) -> dict[str, Any]:
    out = RESULTS / key
    out.mkdir(parents=True, exist_ok=True)
    dataset = "sms" if key == "sms_spam" else "banking"
    train, test = ladder.sms_data() if dataset == "sms" else ladder.banking_data()
    support = ladder.support_set(train, 10, 0)
    support_path = out / "support.jsonl"
    write_records(support_path, support, prompts=False)
    recipe = build_recipe(dataset, arm, records, support_path, out)
    t0 = time.time()
    result = synthloom.run(recipe, out / "run", limit=limit, progress=True)
    elapsed = time.time() - t0
    generated = read_records(out / "run" / "generated.parquet")
    curated = read_records(out / "run" / "curated.parquet")
    score = lambda train_set: fit_and_score(train_set, test, seed=0)[0]  # noqa: E731
    table = [
        row("(a) real train", score(train)),
        row("(b) 10 real per class", score(support)),
        row("(c) synthetic, uncurated", score(generated)),
        row("(d) synthetic, curated", score(curated)),
        row("(e) 10 per class + curated", score(support + curated)),
    ]
    return {
        "dataset": key, "classes": len({r.label for r in test}), "n_test": len(test), "run_s": round(elapsed, 1),
        "arm": arm,
        "model_calls": result.manifest["model_calls"]["model_calls"],
        "served_from_cache": result.manifest["model_calls"]["served_from_cache"],
        "generated": len(generated), "curated": len(curated),
        "curation": [s.stage for s in recipe.curation],
        "table": table,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records-sms", type=int, default=240)
    parser.add_argument("--per-intent", type=int, default=12, help="synthetic records per BANKING77 intent")
    parser.add_argument("--arm", default="+rounds", choices=["+conditions", "+nearest", "+rounds"], help="the ladder arm whose recipe makes the data")
    parser.add_argument("--only", choices=["sms_spam", "banking77_20"])
    parser.add_argument("--limit", type=int, help="generate only the first N planned records (the same plan, so the cache still serves them)")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"real data not found at {DATA}; set SYNTHLOOM_DATA")
    results = []
    for key, records in [("sms_spam", args.records_sms), ("banking77_20", 20 * args.per_intent)]:
        if args.only and key != args.only:
            continue
        results.append(run_dataset(key, records, args.arm, args.limit))
        (RESULTS / f"headline-{key}.json").write_text(json.dumps(results[-1], indent=2) + "\n")
    for res in results:
        print(f"\n{res['dataset']}: {res['classes']} classes, {res['n_test']} test rows; {res['generated']} generated, "
              f"{res['curated']} kept by {', '.join(res['curation'])}; {res['model_calls']} model calls "
              f"({res['served_from_cache']} from cache), run {res['run_s']} s; recipe: the ladder's {res['arm']} arm")
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
