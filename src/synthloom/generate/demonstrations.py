"""Demonstrations e_demo: the in-context examples drawn from the support data D_sup."""

from __future__ import annotations

import random
from typing import Sequence

from ..records import Record


class DemonstrationPool:
    """Support records, grouped by label for draws of the record's own label."""

    def __init__(self, records: Sequence[Record]):
        self.records = list(records)
        self.by_label: dict[str | None, list[Record]] = {}
        for record in self.records:
            self.by_label.setdefault(record.label, []).append(record)

    def __len__(self) -> int:
        return len(self.records)

    def random(self, k: int, rng: random.Random, label: str | None = None) -> list[Record]:
        """k distinct records at random; of `label` when it has any, else from all."""
        pool = self.by_label.get(label) if label is not None else None
        if not pool:
            pool = self.records
        return rng.sample(pool, min(k, len(pool)))
