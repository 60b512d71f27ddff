"""How far reviewers agree, on the records two of them both decided.

Two views per pair of reviewers, each with the raw share of agreement and
Cohen's kappa (agreement beyond chance):

- `outcome`: the record's fate, i.e. its final label, or `rejected`;
- `accept`: whether the record was accepted as it was shown (yes/no).

Kappa is None when it is undefined (both reviewers gave one same answer
throughout). The overall figures weight each pair by its shared records.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from typing import Any, Mapping

from .store import Decision


def _kappa(a: list[str], b: list[str]) -> float | None:
    if len(set(a) | set(b)) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    return round(float(cohen_kappa_score(a, b)), 4)


def _outcome(decision: Decision) -> str:
    return "rejected" if decision.action == "reject" else f"label:{decision.final_label}"


def _view(a: list[str], b: list[str]) -> dict[str, Any]:
    same = sum(x == y for x, y in zip(a, b))
    return {"agreement": round(same / len(a), 4), "kappa": _kappa(a, b)}


def agreement(current: Mapping[tuple[str, str], Decision]) -> dict[str, Any]:
    """Agreement between every pair of reviewers, from `ReviewStore.current()`."""
    by_reviewer: dict[str, dict[str, Decision]] = defaultdict(dict)
    for (record_id, reviewer), decision in current.items():
        by_reviewer[reviewer][record_id] = decision
    pairs = []
    for first, second in combinations(sorted(by_reviewer), 2):
        shared = sorted(set(by_reviewer[first]) & set(by_reviewer[second]))
        if not shared:
            continue
        a = [by_reviewer[first][r] for r in shared]
        b = [by_reviewer[second][r] for r in shared]
        pairs.append(
            {
                "reviewers": [first, second],
                "records": len(shared),
                "outcome": _view([_outcome(d) for d in a], [_outcome(d) for d in b]),
                "accept": _view([str(d.action == "accept") for d in a], [str(d.action == "accept") for d in b]),
                "disagreements": [r for r, x, y in zip(shared, a, b) if _outcome(x) != _outcome(y)][:50],
            }
        )
    total = sum(p["records"] for p in pairs)
    overall: dict[str, Any] = {"records": total}
    for view in ("outcome", "accept"):
        overall[view] = (
            round(sum(p[view]["agreement"] * p["records"] for p in pairs) / total, 4) if total else None
        )
    return {"reviewers": sorted(by_reviewer), "pairs": pairs, "overall": overall}
