"""Results over repeated draws: one draw is not a result.

A benchmark that compares arms (support alone vs support + synthetic, one
curation method vs another) runs several seeds, each varying the draw of the
real data and the generation seed, and scores every arm on each. This module
turns those per-seed scores into what a reviewer reads:

- each arm's mean with a 95% Student-t interval over seeds;
- for a claimed win, the **paired** difference (arm minus baseline, seed by
  seed) with its 95% t-interval, and a verdict that says "beats" only when
  the whole interval is above 0 ("worse" when below, "no difference shown"
  otherwise);
- the raw per-seed numbers written as JSON beside the table, so a reader can
  recompute every figure.

It has no opinion on what a score is: any float per (seed, arm).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scipy import stats

BEATS = "beats"
WORSE = "worse"
NO_DIFFERENCE = "no difference shown"


@dataclass(frozen=True)
class Interval:
    """A mean over seeds with its two-sided t-interval (`low == high == mean` for one seed)."""

    mean: float
    low: float
    high: float
    n: int

    def format(self, digits: int = 3) -> str:
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class PairedDifference:
    """Arm minus baseline over the seeds both were scored on, with its interval and verdict."""

    arm: str
    baseline: str
    difference: Interval
    verdict: str
    per_seed: tuple[float, ...]


def mean_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """The mean of `values` with a Student-t interval (the spread of seeds, not of test rows)."""
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("mean_interval: no values")
    n = len(xs)
    mean = sum(xs) / n
    if n == 1:
        return Interval(mean, mean, mean, 1)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired_difference(per_seed: Mapping[Any, Mapping[str, float]], arm: str, baseline: str,
                      level: float = 0.95, higher_is_better: bool = True) -> PairedDifference:
    """`arm - baseline` seed by seed, over the seeds that scored both; the verdict needs the
    whole interval on one side of 0 (and at least 2 seeds). For a score where lower is better
    (an error rate, residual noise) an interval below 0 is the win."""
    seeds = [s for s, scores in per_seed.items() if arm in scores and baseline in scores]
    if not seeds:
        raise ValueError(f"paired_difference: no seed scored both {arm!r} and {baseline!r}")
    diffs = tuple(float(per_seed[s][arm]) - float(per_seed[s][baseline]) for s in seeds)
    interval = mean_interval(diffs, level)
    above, below = interval.n >= 2 and interval.low > 0, interval.n >= 2 and interval.high < 0
    if above or below:
        verdict = BEATS if above == higher_is_better else WORSE
    else:
        verdict = NO_DIFFERENCE
    return PairedDifference(arm, baseline, interval, verdict, diffs)


def summarize(per_seed: Mapping[Any, Mapping[str, float]], baseline: str | None = None,
              level: float = 0.95, higher_is_better: bool = True) -> list[dict[str, Any]]:
    """One row per arm (in first-seen order): mean and interval, and the paired difference to
    `baseline` with its verdict when one is named."""
    arms: list[str] = []
    for scores in per_seed.values():
        arms.extend(a for a in scores if a not in arms)
    rows = []
    for arm in arms:
        values = [scores[arm] for scores in per_seed.values() if arm in scores]
        row: dict[str, Any] = {"arm": arm, "score": mean_interval(values, level)}
        if baseline is not None and arm != baseline:
            row["vs_baseline"] = paired_difference(per_seed, arm, baseline, level, higher_is_better)
        rows.append(row)
    return rows


def markdown_table(rows: Sequence[Mapping[str, Any]], metric: str = "macro-F1", digits: int = 3) -> str:
    """The rows of `summarize` as a Markdown table (what the README and the closing notes show)."""
    lines = [f"| arm | seeds | {metric}, mean [95% CI] | paired difference to baseline [95% CI] | verdict |",
             "|---|---|---|---|---|"]
    for row in rows:
        score: Interval = row["score"]
        diff: PairedDifference | None = row.get("vs_baseline")
        if diff is None:
            lines.append(f"| {row['arm']} | {score.n} | {score.format(digits)} | (baseline) | |")
        else:
            d = diff.difference
            lines.append(f"| {row['arm']} | {score.n} | {score.format(digits)} | "
                         f"{d.mean:+.{digits}f} [{d.low:+.{digits}f}, {d.high:+.{digits}f}] | {diff.verdict} |")
    return "\n".join(lines)


def write_per_seed(path: str | Path, per_seed: Mapping[Any, Mapping[str, float]], *,
                   metric: str, baseline: str | None = None, settings: Mapping[str, Any] | None = None,
                   higher_is_better: bool = True) -> Path:
    """The raw per-seed scores and their summary as JSON, so a reader can recompute the table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = []
    for row in summarize(per_seed, baseline, higher_is_better=higher_is_better):
        entry: dict[str, Any] = {"arm": row["arm"], "score": asdict(row["score"])}
        if "vs_baseline" in row:
            entry["vs_baseline"] = asdict(row["vs_baseline"])
        summary.append(entry)
    payload = {"metric": metric, "higher_is_better": higher_is_better, "baseline": baseline, "settings": dict(settings or {}),
               "per_seed": {str(seed): dict(scores) for seed, scores in per_seed.items()},
               "summary": summary}
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
