"""Reports: the self-contained HTML report and the dataset card of a run directory."""

from .card import build_card, render_card
from .html import build_report
from .plots import bar_chart, heatmap, histogram, interval_chart, line_chart, scatter

__all__ = ["bar_chart", "build_card", "build_report", "heatmap", "histogram", "interval_chart", "line_chart", "render_card", "scatter"]
