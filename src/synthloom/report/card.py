"""The dataset card: `README.md` of a run directory in the Hugging Face card format.

YAML metadata (size category, task category, tags, the data file of the
curated split) followed by what a reader of a dataset needs: what a record
is, how it was made (model, task specification, conditions,
demonstrations, curation with its funnel), how good it measured, and its
limits. Built only from the run directory's files, like the report, so that
`synthloom report DIR` rebuilds both.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..records import Record, atomic_write_text, read_records


def size_category(n: int) -> str:
    for limit, name in [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]:
        if n < limit:
            return name
    return "n>1M"


def _metadata(name: str, n: int, task_kind: str, has_rejected: bool) -> str:
    files = [{"split": "train", "path": "curated.parquet"}]
    meta: dict[str, Any] = {
        "pretty_name": name,
        "size_categories": [size_category(n)],
        "task_categories": ["text-classification" if task_kind == "classification" else "text-generation"],
        "tags": ["synthetic", "synthloom"],
        "configs": [{"config_name": "default", "data_files": files}],
    }
    if has_rejected:
        meta["configs"].append({"config_name": "rejected", "data_files": [{"split": "train", "path": "rejected.parquet"}]})
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


SETTING_NAMES = {
    "majority": "majority-class baseline",
    "few_real": "few real examples alone",
    "synthetic": "synthetic records alone",
    "few_real_plus_synthetic": "few real + synthetic",
    "real": "all real training data",
}

# Direct measures shown beside the same measures of the real reference: (key, name, format)
DIRECT = [
    ("records", "texts", "{:,.0f}"),
    ("words_mean", "words per text, mean", "{:.1f}"),
    ("words_median", "words per text, median", "{:.0f}"),
    ("distinct_1", "distinct-1", "{:.3f}"),
    ("distinct_2", "distinct-2", "{:.3f}"),
    ("distinct_3", "distinct-3", "{:.3f}"),
    ("self_bleu", "self-BLEU (lower: more varied)", "{:.3f}"),
    ("mean_pairwise_cosine", "mean pairwise cosine (lower: more varied)", "{:.3f}"),
    ("vendi_score", "Vendi score (higher: more varied)", "{:.1f}"),
]


def setting_name(name: str) -> str:
    """What a downstream setting was trained on, in words."""
    return SETTING_NAMES.get(name, name.replace("_", " "))


def chosen(s: dict[str, Any]) -> str:
    """How a setting's classifier was regularised: the C cross-validation chose, or why none."""
    sel = s.get("selection") or {}
    if s.get("trainer") == "majority":
        return "–"
    if "C" in sel:
        return f"C={sel['C']:g}" + (f" ({sel['folds']}-fold CV)" if sel.get("folds") else " (fixed: too few per class)")
    if sel.get("epochs"):
        return f"{sel['epochs']} epochs, lr {sel['learning_rate']:g} (fixed)"
    return ""


def headline(downstream: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The best-informed setting measured (few real + synthetic, else synthetic) and its scores."""
    settings = downstream.get("settings") or {}
    name = downstream.get("headline") or ("few_real_plus_synthetic" if "few_real_plus_synthetic" in settings else "synthetic")
    return (name, settings[name]) if name in settings else None


def downstream_summary(downstream: dict[str, Any]) -> str:
    """One line: macro-F1 of every setting, with intervals, on the same test rows (the CLI prints it)."""
    parts = []
    for name, s in (downstream.get("settings") or {}).items():
        ci = s.get("macro_f1_ci")
        parts.append(f"{setting_name(name)} {s['macro_f1']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
    return f"downstream macro-F1 on {downstream.get('n_test', '?')} real test rows: " + "; ".join(parts)


def _downstream_lines(d: dict[str, Any]) -> list[str]:
    top = headline(d)
    if top is None:
        return []
    name, h = top
    ci = h.get("macro_f1_ci")
    out = [
        f"**Downstream**: a classifier (`{d.get('trainer')}`) trained on each set below and tested on the same "
        f"{d.get('n_test', 0):,} real rows of {d.get('test_data', 'real data')}. Headline: macro-F1 **{h['macro_f1']:.3f}**"
        + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "") + f", {setting_name(name)}.\n",
        "| trained on | records | macro-F1 | 95% interval | accuracy | regularisation |",
        "|---|---|---|---|---|---|",
    ]
    for key, s in d["settings"].items():
        ci = s.get("macro_f1_ci")
        label = setting_name(key) + (f" (always `{s['label']}`)" if key == "majority" and s.get("label") else "")
        out.append(
            f"| {'**' + label + '**' if key == name else label} | {s['n_train']:,} | {s['macro_f1']:.3f} | "
            + (f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "") + f" | {s['accuracy']:.3f} | {chosen(s)} |"
        )
    if d.get("few_real_source"):
        out.append(f"\nFew real examples: {d['few_real_source']}. Intervals: 95% bootstrap over the test rows; "
                   "each classifier's C chosen by cross-validation on its own training data only.\n")
    return out


def direct_rows(diversity: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, synthetic, real reference) rows of the direct measures; the real column may be empty."""
    real = diversity.get("real") or {}
    rows = []
    for key, name, fmt in DIRECT:
        if key in diversity:
            rows.append((name, fmt.format(diversity[key]), fmt.format(real[key]) if key in real else ""))
    shares, real_shares = diversity.get("label_shares") or {}, real.get("label_shares") or {}
    for label in sorted(set(shares) | set(real_shares)):
        rows.append((f"share of label {label}", f"{shares.get(label, 0):.1%}", f"{real_shares[label]:.1%}" if real_shares else ""))
    return rows


def _direct_lines(diversity: dict[str, Any]) -> list[str]:
    rows = direct_rows(diversity)
    if not rows:
        return []
    real = diversity.get("real")
    if not real:
        return ["| measure | synthetic |", "|---|---|", *[f"| {m} | {v} |" for m, v, _ in rows], ""]
    return [
        f"Direct measures, beside the same measures of the real reference ({real.get('source', 'real data')}, "
        f"a seeded sample of {real.get('records', 0):,} texts, as many as the synthetic set where it has them):\n",
        "| measure | synthetic | real |", "|---|---|---|", *[f"| {m} | {v} | {r} |" for m, v, r in rows], "",
    ]


def _metric_lines(metrics: dict[str, Any]) -> list[str]:
    lines = []
    for key, a in metrics.items():
        if key.startswith("answering") and "settings" in a:
            lines.append(f"| answering {a['benchmark']} (synthetic records as worked examples, {a['shots']} per question) | "
                         + answering_scores(a) + f" on {a.get('test_data', 'real questions')} |")
    f = metrics.get("faithfulness", {}).get("faithful")
    if f and f.get("share") is not None:
        lines.append(f"| faithful (judge, n={f['n']}) | {f['share']:.1%} [{f['interval'][0]:.1%}, {f['interval'][1]:.1%}] |")
    div = metrics.get("diversity", {})
    if div.get("coverage", {}).get("coverage") is not None:
        c = div["coverage"]
        lines.append(f"| condition coverage | {c['covered']} of {c['combinations']} combinations |")
    fid = metrics.get("fidelity", {})
    if "two_sample_auc" in fid:
        lines.append(f"| two-sample AUC vs real (0.5 = indistinguishable) | {fid['two_sample_auc']:.3f} |")
        lines.append(f"| k-NN precision / recall vs real | {fid['precision']:.3f} / {fid['recall']:.3f} |")
    return lines


def answering_scores(answering: dict[str, Any]) -> str:
    """An `answering` stage's scores, setting by setting, on one line (the card and the CLI)."""
    return "; ".join(_answering_cell(name, s) for name, s in answering["settings"].items())


def _answering_cell(name: str, s: dict[str, Any]) -> str:
    parts = []
    if s.get("exact_match") is not None:
        ci = s.get("exact_match_ci")
        parts.append(f"exact match {s['exact_match']:.1%}" + (f" [{ci[0]:.1%}, {ci[1]:.1%}]" if ci else "")
                     + f", token F1 {s['token_f1']:.3f}")
    if (s.get("judge_correct") or {}).get("share") is not None:
        j = s["judge_correct"]
        parts.append(f"judge: {j['share']:.1%} correct [{j['interval'][0]:.1%}, {j['interval'][1]:.1%}]")
    return ("with the examples" if name == "synthetic_shots" else "zero-shot") + f" (n={s['n']}): " + ", ".join(parts or ["no scores"])


# Curation stages that check records by running them (curate/verifiers.py, the tool checks) or by Evol-Instruct's elimination rules.
VERIFIERS = ("python_exec", "sql_exec", "math_answer", "evol_elimination", "tool_format", "tool_execution", "tool_semantic")


def verification_lines(manifest: dict[str, Any]) -> list[str]:
    """Which verifiers ran and their pass rates, from the curation funnel (Markdown table rows)."""
    funnel = (manifest.get("curation") or {}).get("funnel") or []
    steps = [f for f in funnel if f.get("stage") in VERIFIERS]
    if not steps:
        return []
    out = ["| verifier | checked | passed | pass rate |", "|---|---|---|---|"]
    for f in steps:
        rate = f"{f['kept'] / f['seen']:.1%}" if f["seen"] else "-"
        out.append(f"| {f['stage']} | {f['seen']:,} | {f['kept']:,} | {rate} |")
    return out


def _evolution_lines(manifest: dict[str, Any]) -> list[str]:
    evolution = ((manifest.get("generation") or {}).get("rounds") or {}).get("evolution")
    if not evolution:
        return []
    eliminated = evolution.get("eliminated") or {}
    gone = ", ".join(f"{reason} {n}" for reason, n in eliminated.items()) or "none"
    return [f"- Evol-Instruct: {evolution.get('evolved', 0)} evolved instructions, eliminated: {gone}"]


def cost_lines(spend: dict[str, Any]) -> list[str]:
    """The run's cost as Markdown: per stage, per kept record, and what curation threw away."""
    stages = spend.get("stages") or {}
    if not stages:
        return []
    currency = spend.get("currency", "USD")

    def money(value: Any) -> str:
        return "-" if value is None else f"{value:.4f} {currency}"

    out = ["| stage | calls paid | answers from the cache | prompt tokens | completion tokens | money |", "|---|---|---|---|---|---|"]
    for name, row in [*stages.items(), ("total", spend["total"])]:
        out.append(f"| {name} | {row['calls_paid']:,} | {row['calls_replayed']:,} | {row['prompt_tokens']:,} | "
                   f"{row['completion_tokens']:,} | {money(row.get('money'))} |")
    if spend.get("money_per_kept_record") is not None:
        out.append(f"\nPer kept record: {money(spend['money_per_kept_record'])}.")
    if spend.get("money_dropped_by_curation") is not None:
        out.append(f"Spent on records curation dropped: {money(spend['money_dropped_by_curation'])}"
                   " (the generation's cost in the share of records dropped).")
    total = spend.get("total") or {}
    if total.get("cached_prompt_tokens"):
        out.append(f"Prompt tokens the provider read from its prompt cache: {total['cached_prompt_tokens']:,} "
                   f"({total['cached_prompt_share']:.1%} of the prompt tokens).")
    if total.get("batch_calls"):
        out.append(f"Answers through the provider's batch API: {total['batch_calls']:,} (priced at its batch discount).")
    if spend.get("stopped"):
        stop = spend["stopped"]
        out.append(f"\nThe run stopped at its budget in {stop['stage']}: {stop['reason']} ({stop['cap']}).")
    return out


def render_card(manifest: dict[str, Any], metrics: dict[str, Any], curated: Sequence[Record], has_rejected: bool = False) -> str:
    recipe = manifest.get("recipe", {})
    task = recipe.get("task", {})
    name = recipe.get("name") or manifest.get("source", "dataset")
    labels = collections.Counter(r.label for r in curated if r.label is not None)
    out = [_metadata(name, len(curated), task.get("kind", "classification"), has_rejected)]
    out.append(f"# {name}\n")
    out.append(
        (recipe.get("description") or f"Synthetic {task.get('description', 'text examples')}.")
        + f" {len(curated):,} records, generated by a language model and curated with synthloom.\n"
    )
    stop = (manifest.get("spend") or {}).get("stopped") if manifest.get("status") == "stopped" else None
    if stop:
        out.append(f"> **Incomplete:** the run stopped at `{stop.get('stage')}` at its budget (`{stop.get('cap')}`), so the "
                   "figures of that stage and the stages after it are missing. Raise the budget and run the same command "
                   "again to finish; every answer already paid for is replayed.\n")
    out.append("## Dataset structure\n")
    fields = task.get("fields") or ({k: "" for k in curated[0].fields} if curated else {})
    out.append("| column | what |\n|---|---|")
    out += [f"| `{k}` | {v} |" for k, v in fields.items()]
    out.append(f"| `{task.get('label_field', 'label')}` | the label |")
    out.append("| `conditions` | the conditions the record was generated under |")
    out.append("| `weight` | the record's training weight from curation (1.0 unless re-weighted) |")
    out.append("| `<stage>_score`, `<stage>_flag`, `<stage>_reason` | each curation stage's score, decision and reason |\n")
    if labels:
        out.append("| label | records |\n|---|---|")
        out += [f"| {label} | {count:,} |" for label, count in labels.most_common()]
        out.append("")
    out.append("## How it was made\n")
    model = manifest.get("model") or {}
    if model:
        out.append(f"- Model: `{model.get('backend')}` {model.get('model') or model.get('model_path') or '(bundled SmolLM2-135M-Instruct)'}")
    if task.get("description"):
        out.append(f"- Task: {task['description']}" + (f"; written as {task['role']}" if task.get("role") else ""))
    for key, values in (recipe.get("conditions") or {}).items():
        out.append(f"- Condition `{key}`: {', '.join(map(str, values))}")
    demos = recipe.get("demonstrations")
    if demos:
        out.append(f"- Demonstrations: {demos.get('k')} per prompt from `{Path(demos['path']).name}` ({manifest.get('counts', {}).get('support', '?')} support records)")
    gen = recipe.get("generation") or {}
    if gen:
        out.append(f"- Generation: {gen.get('records')} records planned, temperature {gen.get('temperature')}, seed {gen.get('seed')}")
    funnel = manifest.get("curation", {}).get("funnel", [])
    if funnel:
        out.append("\nCuration, in order:\n\n| stage | seen | kept | dropped |\n|---|---|---|---|")
        out += [f"| {f['stage']} | {f['seen']:,} | {f['kept']:,} | {f['dropped']:,} |" for f in funnel]
        for f in funnel:
            notes = f.get("notes") or {}
            if "chosen" in notes:  # support_choice: what cross-validation on the support set picked, and why
                scores = ", ".join(f"{k} {v:.3f}" for k, v in sorted(notes.get("scores", {}).items(), key=lambda kv: -kv[1]))
                out.append(f"\n{f['stage']} chose **{notes['chosen']}** x{notes.get('factor', 1):g} by {notes.get('folds')}-fold "
                           f"cross-validation on the support set ({notes.get('repeats', 1)} draw(s)); held-out macro-F1: {scores}")
                if notes.get("gain_over_baseline") is not None:
                    baseline = notes["baseline"]
                    kept = notes["best_scored"] == f"{notes['chosen']} x{notes.get('factor', 1):g}"
                    alone = "the support set alone" if baseline.startswith("none ") else baseline
                    out.append(f"{notes['best_scored']} scored best, {notes['gain_over_baseline']:+.3f} over {baseline} with a "
                               f"standard error of {notes['gain_standard_error']:.3f}: "
                               + ("more than one standard error, so it was kept." if kept else
                                  f"not more than one standard error, so {alone} was kept."))
                shares = notes.get("held_out_shares")
                if shares:
                    out.append("Held-out records weighted to the class shares " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
                               + " (the task's `label_weights`; equal when none are stated).")
    out += _evolution_lines(manifest)
    verified = verification_lines(manifest)
    if verified:
        out.append("\nVerified by execution (a record that fails is dropped):\n")
        out += verified
    cost = cost_lines(manifest.get("spend") or {})
    if cost:
        out.append("\nWhat it cost (answers from the cache were paid for by an earlier run of the same directory):\n")
        out += cost
    out.append("\n## Evaluation\n")
    downstream = _downstream_lines(metrics.get("downstream") or {})
    direct = _direct_lines(metrics.get("diversity") or {})
    lines = _metric_lines(metrics)
    out += downstream + [""] if downstream else []
    out += direct
    out += ["| measure | value |", "|---|---|", *lines] if lines else []
    if not (downstream or direct or lines):
        out.append("No evaluation was run.")
    out.append("\nThe run's `report.html` has the plots and a browsable sample of records.\n")
    out.append("## Limitations\n")
    out.append(
        "Every text was written by a language model. It may contain factual errors, wrong labels "
        "(see the faithfulness estimate above, if measured) and the model's biases, and is less varied "
        "than real data. Check it against real data before relying on it, and do not use it to describe real people.\n"
    )
    out.append("## Reproducing\n")
    out.append(f"`synthloom run recipe.yaml --out DIR` with the recipe recorded in `manifest.json` (synthloom {manifest.get('versions', {}).get('synthloom', '')}).\n")
    return "\n".join(out)


def build_card(run_dir: str | Path, curated: Sequence[Record] | None = None) -> Path:
    """Write the dataset card `README.md` in a run directory from its files."""
    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    if curated is None:
        curated = read_records(run_dir / "curated.parquet") if (run_dir / "curated.parquet").exists() else []
    path = run_dir / "README.md"
    atomic_write_text(path, render_card(manifest, metrics, curated, (run_dir / "rejected.parquet").exists()))
    return path


__all__ = [
    "SETTING_NAMES", "VERIFIERS", "answering_scores", "build_card", "chosen", "cost_lines", "direct_rows",
    "downstream_summary", "headline", "render_card", "setting_name", "size_category",
    "verification_lines",
]
