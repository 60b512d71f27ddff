"""The run report: one self-contained HTML file, no network, assets inlined.

It is built only from files in the run directory (manifest, metrics and
the Parquet files), so `synthloom report DIR` can rebuild it at any time.
Charts are inline SVG drawn here: no JavaScript library to ship or fetch.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any, Sequence

import jinja2
from markupsafe import escape

from ..records import Record, atomic_write_text, read_records


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("synthloom.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["fmt"] = _fmt
    return env


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def bar_chart(counts: Sequence[tuple[str, float]], width: int = 420, bar: int = 18, color: str = "#4C78A8") -> str:
    """A horizontal bar chart as an SVG string."""
    if not counts:
        return ""
    top = max(v for _, v in counts) or 1
    label_w = min(180, 8 * max(len(k) for k, _ in counts) + 10)
    height = bar * len(counts) + 6
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + label_w + 60}" height="{height}" role="img">']
    for i, (name, value) in enumerate(counts):
        y = i * bar + 3
        w = max(1.0, width * value / top)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + bar * 0.7:.1f}" text-anchor="end" font-size="12">{escape(name)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar - 4}" fill="{color}"><title>{escape(name)}: {value:g}</title></rect>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + bar * 0.7:.1f}" font-size="12">{_fmt(value)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _sample(records: Sequence[Record], n: int) -> list[Record]:
    if len(records) <= n:
        return list(records)
    step = len(records) / n
    return [records[int(i * step)] for i in range(n)]


def _read(path: Path) -> list[Record]:
    return read_records(path) if path.exists() else []


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
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    curated = _read(run_dir / "curated.parquet") if curated is None else curated
    rejected = _read(run_dir / "rejected.parquet") if rejected is None else rejected
    label_counts = collections.Counter(r.label for r in curated if r.label is not None)
    funnel = manifest.get("curation", {}).get("funnel", [])
    funnel_chart = bar_chart(
        [("generated", manifest["counts"].get("generated", 0))] + [(f["stage"], f["kept"]) for f in funnel],
        color="#54A24B",
    )
    html = _env().get_template("report.html.j2").render(
        manifest=manifest,
        metrics=metrics,
        label_chart=bar_chart(sorted(label_counts.items(), key=lambda kv: -kv[1])),
        funnel_chart=funnel_chart,
        funnel=funnel,
        sample=_sample(curated, sample_size),
        rejected=_sample(rejected, min(sample_size, 30)),
        notes=manifest.get("notes", []),
    )
    path = run_dir / "report.html"
    atomic_write_text(path, html)
    return path
