"""The run report: one self-contained HTML file, no network, assets inlined.

It is built only from files in the run directory (manifest, metrics, plot
data and the Parquet files), so `synthloom report DIR` can rebuild it at
any time. Charts are inline SVG (see `plots`); the only script is a few
inline lines that filter the table of records.
"""

from __future__ import annotations

import collections
import functools
import json
from pathlib import Path
from typing import Any, Sequence

import jinja2

from ..records import Record, atomic_write_text, read_records
from .card import chosen, direct_rows, headline, setting_name
from .plots import GREEN, bar_chart, coverage_strips, heatmap, histogram, interval_chart, line_chart, scatter


@functools.lru_cache(maxsize=None)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("synthloom.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        bytecode_cache=_bytecode_cache(),
    )
    env.filters["fmt"] = _fmt
    env.filters["pct"] = lambda v: "–" if v is None else f"{100 * v:.1f}%"
    env.filters["setting"] = setting_name
    env.filters["chosen"] = chosen
    return env


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiling the report's template costs more than rendering it: keep the compiled code
    in jinja2's per-user folder under the system's temporary directory (none when that fails)."""
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"[{value[0]:.3f}, {value[1]:.3f}]"
    return str(value)


def _sample(records: Sequence[Record], n: int) -> list[Record]:
    if len(records) <= n:
        return list(records)
    step = len(records) / n
    return [records[int(i * step)] for i in range(n)]


def _read(path: Path) -> list[Record]:
    return read_records(path) if path.exists() else []


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def coverage_chart(coverage: dict[str, Any] | None) -> str:
    """The first two conditions as a grid of record counts (summed over any others)."""
    if not coverage or not coverage.get("conditions"):
        return ""
    keys, values, cells = coverage["conditions"], coverage["values"], coverage["cells"]
    rows_key = keys[0]
    cols_key = keys[1] if len(keys) > 1 else None
    rows, cols = values[rows_key], values[cols_key] if cols_key else ["records"]
    grid = [[0] * len(cols) for _ in rows]
    for cell, count in cells.items():
        parts = dict(p.split("=", 1) for p in cell.split("|"))
        if parts.get(rows_key) in rows and (cols_key is None or parts.get(cols_key) in cols):
            grid[rows.index(parts[rows_key])][cols.index(parts[cols_key]) if cols_key else 0] += count
    return heatmap(rows, cols, grid)


def downstream_charts(downstream: dict[str, Any] | None) -> dict[str, str]:
    if not downstream or "settings" not in downstream:
        return {}
    rows = [
        (setting_name(name), s["macro_f1"], *(s.get("macro_f1_ci") or [s["macro_f1"], s["macro_f1"]]))
        for name, s in downstream["settings"].items()
    ]
    out = {"settings": interval_chart(rows)}
    curve = downstream.get("learning_curve") or []
    if curve:
        points = {
            metric: [(p["n_train"], p[metric], *(p.get(f"{metric}_ci") or [p[metric], p[metric]])) for p in curve]
            for metric in ("accuracy", "macro_f1")
        }
        out["curve"] = line_chart(points, xlabel="synthetic training records", ylabel="score")
    return out


FINETUNE_ARMS = {"base": "base model, zero-shot", "finetuned": "fine-tuned on the synthetic records",
                 "finetuned_real": "fine-tuned on as many real records", "minilm_logreg": "MiniLM + logistic regression (synthetic)"}


ANSWER_SCORES = {"exact_match": "exact match", "math": "final answer correct (sympy)", "code": "pass@1 (tests in the sandbox)"}


def finetune_charts(result: dict[str, Any] | None) -> dict[str, str]:
    """The finetune stage's arms (macro-F1 or win rate with intervals) and its learning curve."""
    if not result or "learning_curve" not in result:
        return {}
    out: dict[str, str] = {}
    if result.get("task") == "classification":
        out["arms"] = interval_chart([
            (FINETUNE_ARMS.get(name, name), a["macro_f1"], *(a.get("macro_f1_ci") or [a["macro_f1"], a["macro_f1"]]))
            for name, a in result["arms"].items() if "macro_f1" in a
        ])
        metric, label = "macro_f1", "macro-F1"
    elif result.get("task") == "answers":
        out["arms"] = interval_chart([
            (FINETUNE_ARMS.get(name, name), a["score"], *(a.get("score_ci") or [a["score"], a["score"]]))
            for name, a in result["arms"].items() if "score" in a
        ])
        metric, label = "score", ANSWER_SCORES.get(result.get("scoring", ""), "score")
    else:
        metric, label = "win_rate", "win rate over base"
    points = [(p["records"], p[metric], *(p.get(f"{metric}_ci") or [p[metric], p[metric]]))
              for p in result["learning_curve"] if p.get(metric) is not None]
    if points:
        out["curve"] = line_chart({label: points}, xlabel="records fine-tuned on", ylabel=label)
    return out


def build_report(
    run_dir: str | Path,
    sample_size: int = 60,
    curated: Sequence[Record] | None = None,
    rejected: Sequence[Record] | None = None,
) -> Path:
    """Write `report.html` in a run directory from the files already there.

    A run passes the records it holds in memory, saving a read of its own files.
    """
    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    metrics = _read_json(run_dir / "metrics.json")
    plots = _read_json(run_dir / "plots.json")
    curated = _read(run_dir / "curated.parquet") if curated is None else curated
    rejected = _read(run_dir / "rejected.parquet") if rejected is None else rejected
    label_counts = collections.Counter(r.label for r in curated if r.label is not None)
    funnel = manifest.get("curation", {}).get("funnel", [])
    counts = manifest.get("counts", {})
    funnel_chart = bar_chart(
        [("generated", counts.get("generated", len(curated)))] + [(f["stage"], f["kept"]) for f in funnel], color=GREEN
    ) if funnel else ""
    lengths = plots.get("lengths", {})
    embedding_map = plots.get("map", {})
    recipe = manifest.get("recipe", {})
    model = manifest.get("model") or {}
    documents = _read_json(run_dir / "documents.json")  # a run over documents
    charts = {
        "labels": bar_chart(sorted(label_counts.items(), key=lambda kv: -kv[1])),
        "funnel": funnel_chart,
        "lengths": histogram({k: v for k, v in lengths.items() if v}),
        "map": scatter({k: embedding_map[k] for k in ("real", "synthetic") if embedding_map.get(k)}),
        "coverage": coverage_chart(metrics.get("diversity", {}).get("coverage")),
        "documents": coverage_strips(documents.get("coverage", {}).get("documents", {})),
        **{f"downstream_{k}": v for k, v in downstream_charts(metrics.get("downstream")).items()},
        **{f"finetune_{k}": v for k, v in finetune_charts(metrics.get("finetune")).items()},
    }
    html = _env().get_template("report.html.j2").render(
        title=recipe.get("name") or manifest.get("source", run_dir.name),
        subtitle=" · ".join(
            x for x in [
                recipe.get("task", {}).get("description"),
                f"model: {model.get('backend')} {model.get('model') or model.get('model_path') or ('(bundled SmolLM2-135M-Instruct)' if model.get('backend') == 'llamacpp' else '')}" if model else None,
                manifest.get("status"),
            ] if x
        ),
        manifest=manifest,
        counts=counts,
        metrics=metrics,
        charts=charts,
        map_variance=embedding_map.get("explained_variance"),
        funnel=funnel,
        documents=documents,
        sample=_sample(curated, sample_size),
        rejected=_sample(rejected, min(sample_size, 30)),
        notes=manifest.get("notes", []),
        headline=headline(metrics.get("downstream") or {}),
        direct=direct_rows(metrics.get("diversity") or {}),
        finetune_arms=FINETUNE_ARMS,
        answer_scores=ANSWER_SCORES,
    )
    path = run_dir / "report.html"
    atomic_write_text(path, html)
    return path
