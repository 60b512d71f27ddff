"""Reports: the self-contained HTML report of a run directory."""

from .html import bar_chart, build_report

__all__ = ["bar_chart", "build_report"]
