"""Charts for the report as inline SVG strings: no JavaScript library to ship or fetch.

Each function takes plain numbers and returns one `<svg>` element (empty
string when there is nothing to draw). Every mark has a `<title>` so the
browser shows its value on hover.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from markupsafe import escape

BLUE, ORANGE, GREEN, GREY = "#4C78A8", "#F58518", "#54A24B", "#9AA4AE"
PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC"]


def _fmt(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"


def _open(width: float, height: float, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(label)}" font-family="system-ui, sans-serif">'
    )


def bar_chart(counts: Sequence[tuple[str, float]], width: int = 420, bar: int = 18, color: str = BLUE) -> str:
    """A horizontal bar chart."""
    if not counts:
        return ""
    top = max(v for _, v in counts) or 1
    label_w = min(180, 8 * max(len(k) for k, _ in counts) + 10)
    height = bar * len(counts) + 6
    parts = [_open(width + label_w + 60, height, "bar chart")]
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


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> str:
    out = []
    for i, (name, color) in enumerate(items):
        yy = y + i * 16
        out.append(
            f'<rect x="{x}" y="{yy - 9}" width="10" height="10" fill="{color}" fill-opacity="0.8"/>'
            f'<text x="{x + 14}" y="{yy}" font-size="11">{escape(name)}</text>'
        )
    return "".join(out)


def _axes(x0: float, y0: float, w: float, h: float, xlabel: str, ylabel: str) -> str:
    return (
        f'<line x1="{x0}" y1="{y0 + h}" x2="{x0 + w}" y2="{y0 + h}" stroke="#57606a"/>'
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y0 + h}" stroke="#57606a"/>'
        f'<text x="{x0 + w / 2}" y="{y0 + h + 30}" text-anchor="middle" font-size="11">{escape(xlabel)}</text>'
        f'<text x="{x0 - 34}" y="{y0 + h / 2}" text-anchor="middle" font-size="11" transform="rotate(-90 {x0 - 34} {y0 + h / 2})">{escape(ylabel)}</text>'
    )


def histogram(series: dict[str, Sequence[float]], bins: int = 24, width: int = 560, height: int = 220, xlabel: str = "words") -> str:
    """Overlaid histograms (as shares of each series, so sets of different sizes compare)."""
    series = {k: np.asarray(v, dtype=float) for k, v in series.items() if len(v)}
    if not series:
        return ""
    edges = np.histogram_bin_edges(np.concatenate(list(series.values())), bins=bins)
    shares = {k: np.histogram(v, edges)[0] / len(v) for k, v in series.items()}
    top = max(s.max() for s in shares.values()) or 1
    x0, y0, w, h = 50, 10, width - 190, height - 50
    parts = [_open(width, height, "histogram"), _axes(x0, y0, w, h, xlabel, "share")]
    bw = w / bins
    for si, (name, s) in enumerate(shares.items()):
        color = [BLUE, ORANGE][si % 2]
        for i, value in enumerate(s):
            bh = h * value / top
            parts.append(
                f'<rect x="{x0 + i * bw:.1f}" y="{y0 + h - bh:.1f}" width="{max(bw - 1, 1):.1f}" height="{bh:.1f}" '
                f'fill="{color}" fill-opacity="0.55"><title>{escape(name)}: {edges[i]:.0f}-{edges[i + 1]:.0f} {xlabel}, {value:.1%}</title></rect>'
            )
    for i in (0, bins // 2, bins):
        parts.append(f'<text x="{x0 + i * bw:.1f}" y="{y0 + h + 14}" text-anchor="middle" font-size="10">{edges[i]:.0f}</text>')
    parts.append(f'<text x="{x0 - 4}" y="{y0 + 8}" text-anchor="end" font-size="10">{top:.0%}</text>')
    parts.append(_legend([(f"{k} (n={len(series[k])})", [BLUE, ORANGE][i % 2]) for i, k in enumerate(shares)], x0 + w + 14, y0 + 12))
    parts.append("</svg>")
    return "".join(parts)


def scatter(series: dict[str, Sequence[Sequence]], width: int = 560, height: int = 380) -> str:
    """Points `[x, y, label]` per named set; sets are told apart by colour, labels by hover.

    Sets are drawn in order, so the last one is on top: pass the real data first.
    """
    series = {k: v for k, v in series.items() if v}
    if not series:
        return ""
    xs = np.array([p[0] for pts in series.values() for p in pts], dtype=float)
    ys = np.array([p[1] for pts in series.values() for p in pts], dtype=float)
    x0, y0, w, h = 20, 10, width - 150, height - 30
    span_x = (xs.max() - xs.min()) or 1
    span_y = (ys.max() - ys.min()) or 1
    parts = [_open(width, height, "embedding map"), f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="#fafbfc" stroke="#d0d7de"/>']
    colors = {name: {"synthetic": BLUE, "real": ORANGE}.get(name, PALETTE[i % len(PALETTE)]) for i, name in enumerate(series)}
    for name, pts in series.items():
        color = colors[name]
        radius = 3.2 if name == "synthetic" else 2.4
        for x, y, label in pts:
            cx = x0 + 4 + (w - 8) * (x - xs.min()) / span_x
            cy = y0 + 4 + (h - 8) * (1 - (y - ys.min()) / span_y)
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{radius}" fill="{color}" fill-opacity="0.6">'
                f"<title>{escape(name)}{': ' + escape(str(label)) if label is not None else ''}</title></circle>"
            )
    parts.append(_legend([(f"{k} (n={len(v)})", colors[k]) for k, v in series.items()], x0 + w + 12, y0 + 12))
    parts.append("</svg>")
    return "".join(parts)


def heatmap(rows: Sequence[str], columns: Sequence[str], values: Sequence[Sequence[float]], cell: int = 26, title: str = "records") -> str:
    """A grid of counts: white for none, deeper blue for more; empty cells are outlined in red."""
    if not rows or not columns:
        return ""
    v = np.asarray(values, dtype=float)
    top = v.max() or 1
    label_w = min(170, 7 * max(len(r) for r in rows) + 12)
    head_h = min(120, 6 * max(len(c) for c in columns) + 16)
    width, height = label_w + cell * len(columns) + head_h, head_h + cell * len(rows) + 10
    parts = [_open(width, height, "coverage heatmap")]
    for j, col in enumerate(columns):
        x = label_w + j * cell + cell / 2
        parts.append(f'<text x="{x:.1f}" y="{head_h - 6}" font-size="11" transform="rotate(-50 {x:.1f} {head_h - 6})">{escape(col)}</text>')
    for i, row in enumerate(rows):
        y = head_h + i * cell
        parts.append(f'<text x="{label_w - 6}" y="{y + cell * 0.65:.1f}" text-anchor="end" font-size="11">{escape(row)}</text>')
        for j, col in enumerate(columns):
            value = v[i, j]
            t = 0.15 + 0.85 * value / top if value else 0.0
            fill = "rgb(" + ",".join(str(int(255 + (c - 255) * t)) for c in (76, 120, 168)) + ")"
            stroke = "#E45756" if value == 0 else "#fff"
            parts.append(
                f'<rect x="{label_w + j * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{fill}" stroke="{stroke}">'
                f"<title>{escape(row)} × {escape(col)}: {value:g} {title}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(series: dict[str, Sequence[tuple[float, float, float, float]]], width: int = 520, height: int = 240, xlabel: str = "", ylabel: str = "") -> str:
    """Lines of (x, y, low, high) points with their interval as a shaded band."""
    series = {k: v for k, v in series.items() if v}
    if not series:
        return ""
    xs = [p[0] for pts in series.values() for p in pts]
    lows = [p[2] for pts in series.values() for p in pts]
    highs = [p[3] for pts in series.values() for p in pts]
    x_min, x_max = min(xs), max(xs)
    y_min, y_max = min(0.0, min(lows)), max(1.0, max(highs))
    x0, y0, w, h = 50, 10, width - 170, height - 50
    sx = lambda x: x0 + w * ((x - x_min) / ((x_max - x_min) or 1))  # noqa: E731
    sy = lambda y: y0 + h * (1 - (y - y_min) / ((y_max - y_min) or 1))  # noqa: E731
    parts = [_open(width, height, "line chart"), _axes(x0, y0, w, h, xlabel, ylabel)]
    for tick in (0.0, 0.5, 1.0):
        parts.append(f'<text x="{x0 - 4}" y="{sy(tick) + 4:.1f}" text-anchor="end" font-size="10">{tick:g}</text>')
    for x in sorted(set(xs)):
        parts.append(f'<text x="{sx(x):.1f}" y="{y0 + h + 14}" text-anchor="middle" font-size="10">{x:g}</text>')
    for si, (name, pts) in enumerate(series.items()):
        color = PALETTE[si % len(PALETTE)]
        pts = sorted(pts)
        band = [(sx(x), sy(hi)) for x, _, _, hi in pts] + [(sx(x), sy(lo)) for x, _, lo, _ in reversed(pts)]
        parts.append(f'<polygon points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in band)}" fill="{color}" fill-opacity="0.15"/>')
        parts.append(f'<polyline points="{" ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y, _, _ in pts)}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y, lo, hi in pts:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{color}"><title>{escape(name)} at {x:g}: {y:.3f} [{lo:.3f}, {hi:.3f}]</title></circle>')
    parts.append(_legend([(k, PALETTE[i % len(PALETTE)]) for i, k in enumerate(series)], x0 + w + 14, y0 + 12))
    parts.append("</svg>")
    return "".join(parts)


def interval_chart(rows: Sequence[tuple[str, float, float, float]], width: int = 520, bar: int = 22, color: str = BLUE) -> str:
    """One row per setting: a point with its interval on a 0-1 axis."""
    if not rows:
        return ""
    label_w = min(220, 7 * max(len(r[0]) for r in rows) + 12)
    w = width - label_w - 60
    height = bar * len(rows) + 24
    parts = [_open(width, height, "scores with intervals")]
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        x = label_w + w * t
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 16}" stroke="#eaeef2"/><text x="{x:.1f}" y="{height - 4}" text-anchor="middle" font-size="10">{t:g}</text>')
    for i, (name, value, low, high) in enumerate(rows):
        y = i * bar + bar / 2
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="12">{escape(name)}</text>'
            f'<line x1="{label_w + w * low:.1f}" y1="{y:.1f}" x2="{label_w + w * high:.1f}" y2="{y:.1f}" stroke="{color}" stroke-width="3" stroke-opacity="0.5"/>'
            f'<circle cx="{label_w + w * value:.1f}" cy="{y:.1f}" r="5" fill="{color}"><title>{escape(name)}: {value:.3f} [{low:.3f}, {high:.3f}]</title></circle>'
            f'<text x="{label_w + w + 8}" y="{y + 4:.1f}" font-size="11">{value:.3f}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["bar_chart", "heatmap", "histogram", "interval_chart", "line_chart", "scatter"]


def coverage_strips(documents: dict[str, dict], cell: int = 9, width: int = 640) -> str:
    """A map of documents: one row per document, one square per chunk in order, filled when a kept question cites it."""
    if not documents:
        return ""
    label_w = min(200, 7 * max(len(name) for name in documents) + 10)
    per_row = max(1, (width - label_w) // (cell + 1))
    rows = [(name, doc.get("cells", "")) for name, doc in documents.items()]
    heights = [max(1, -(-len(cells) // per_row)) for _, cells in rows]
    height = sum(h * (cell + 1) + 8 for h in heights) + 4
    out = [_open(width, height, "coverage of the documents by kept questions")]
    y = 4
    for (name, cells), h in zip(rows, heights):
        doc = documents[name]
        out.append(f'<text x="0" y="{y + cell}" font-size="11">{escape(name)}</text>')
        for i, mark in enumerate(cells):
            x = label_w + (i % per_row) * (cell + 1)
            cy = y + (i // per_row) * (cell + 1)
            fill = GREEN if mark == "1" else "#E6E8EB"
            out.append(f'<rect x="{x}" y="{cy}" width="{cell}" height="{cell}" fill="{fill}">'
                       f'<title>{escape(name)} chunk {i}: {"covered" if mark == "1" else "no kept question"}</title></rect>')
        out.append(f'<title>{escape(name)}: {doc.get("covered", 0)} of {doc.get("chunks", 0)} chunks</title>')
        y += h * (cell + 1) + 8
    out.append("</svg>")
    return "".join(out)
