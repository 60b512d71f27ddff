"""Demonstrations e_demo: the in-context examples drawn from the support data D_sup.

Selectors: `random`; `nearest` (the support examples closest to the
record's query in embedding space: its conditions, or a field it already
has); `mmr` (maximal marginal relevance: close to the query but not to the
examples already chosen); `stratified` (spread over the labels, for
annotation and multi-label prompts). `same_label` restricts any of them to
the record's own label. k = 0 is zero-shot.

Every choice is a function of the record's own random generator and the
pool, so plans stay pure functions of (seed, index).
"""

from __future__ import annotations

import random
from typing import Callable, Mapping, Sequence

import numpy as np

from ..recipe import DemonstrationsSpec
from ..records import Record

Encode = Callable[[Sequence[str]], np.ndarray]


class DemonstrationPool:
    """Support records, grouped by label, with their vectors when a selector needs them."""

    def __init__(self, records: Sequence[Record], encode: Encode | None = None, text_field: str | None = None):
        self.records = list(records)
        self.encode = encode
        self.text_field = text_field
        self.by_label: dict[str | None, list[int]] = {}
        for i, record in enumerate(self.records):
            self.by_label.setdefault(record.label, []).append(i)
        self._matrix: np.ndarray | None = None
        self._texts: set[str] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def texts(self) -> set[str]:
        """The records' texts (what a query is compared with to leave a record out of its own demonstrations)."""
        if self._texts is None:
            self._texts = {r.text(self.text_field) for r in self.records}
        return self._texts

    def _indices(self, label: str | None) -> list[int]:
        """The record's label's examples when it has any, else all."""
        if label is not None and self.by_label.get(label):
            return self.by_label[label]
        return list(range(len(self.records)))

    def matrix(self) -> np.ndarray:
        if self._matrix is None:
            if self.encode is None:
                raise ValueError("this selection needs embeddings, but the pool has no encoder")
            self._matrix = self.encode([r.text(self.text_field) for r in self.records])
        return self._matrix

    def random(self, k: int, rng: random.Random, label: str | None = None) -> list[Record]:
        """k distinct records at random; of `label` when it has any, else from all."""
        pool = self._indices(label)
        return [self.records[i] for i in rng.sample(pool, min(k, len(pool)))]

    def nearest(self, k: int, query: np.ndarray, label: str | None = None,
                rng: random.Random | None = None, candidates: int | None = None) -> list[Record]:
        """The k most similar to `query`; or k at random among the `candidates` most similar."""
        pool = np.asarray(self._indices(label))
        sims = self.matrix()[pool] @ query
        order = pool[np.argsort(-sims, kind="stable")]
        if candidates and rng is not None and candidates > k:
            top = [int(i) for i in order[:candidates]]
            return [self.records[i] for i in sorted(rng.sample(top, min(k, len(top))), key=top.index)]
        return [self.records[int(i)] for i in order[:k]]

    def mmr(self, k: int, query: np.ndarray, label: str | None = None, lam: float = 0.5) -> list[Record]:
        """Maximal marginal relevance: lam * sim(query) - (1 - lam) * max sim(already chosen)."""
        pool = self._indices(label)
        vectors = self.matrix()[pool]
        relevance = vectors @ query
        chosen: list[int] = []
        redundancy = np.full(len(pool), -np.inf)
        for _ in range(min(k, len(pool))):
            score = lam * relevance - (1 - lam) * np.where(np.isinf(redundancy), 0.0, redundancy)
            if chosen:
                score[chosen] = -np.inf
            best = int(np.argmax(score))
            chosen.append(best)
            redundancy = np.maximum(redundancy, vectors @ vectors[best])
        return [self.records[pool[i]] for i in chosen]

    def stratified(self, k: int, rng: random.Random, first: str | None = None) -> list[Record]:
        """k records spread over the labels (round robin in a random label order), `first` first."""
        labels = [label for label in self.by_label if label is not None] or [None]
        rng.shuffle(labels)
        if first in labels:
            labels.remove(first)
            labels.insert(0, first)
        queues = {label: rng.sample(self.by_label[label], len(self.by_label[label])) for label in labels}
        out: list[int] = []
        while len(out) < min(k, len(self.records)):
            for label in labels:
                if queues[label] and len(out) < k:
                    out.append(queues[label].pop())
        rng.shuffle(out)
        return [self.records[i] for i in out]


class DemonstrationSelector:
    """Chooses a record's demonstrations as a recipe's `demonstrations` section says."""

    def __init__(self, spec: DemonstrationsSpec | None, pool: DemonstrationPool,
                 label_descriptions: Mapping[str, str | None] | None = None):
        self.spec = spec
        self.pool = pool
        self.label_descriptions = dict(label_descriptions or {})
        self.k = spec.k if spec is not None else 0

    @property
    def needs_vectors(self) -> bool:
        return self.spec is not None and self.k > 0 and self.spec.selection in ("nearest", "mmr")

    def query_text(self, label: str | None, conditions: Mapping[str, str], fields: Mapping[str, object]) -> str:
        spec = self.spec
        assert spec is not None
        if spec.query != "conditions":
            return str(fields.get(spec.query) or "")
        parts = [str(v) for v in conditions.values()]
        description = self.label_descriptions.get(label) if label is not None else None
        if description and (not spec.same_label or not parts):
            parts.insert(0, description)
        return ". ".join(parts)

    def select(
        self,
        rng: random.Random,
        label: str | None,
        conditions: Mapping[str, str],
        fields: Mapping[str, object] | None = None,
        k: int | None = None,
    ) -> list[Record]:
        k = self.k if k is None else k
        if not k or not len(self.pool):
            return []
        spec = self.spec
        assert spec is not None
        # A record that already has the query field (annotation: the input to label) is never its own
        # demonstration: labelling a support example with itself shown, answered, would say nothing.
        itself = str((fields or {}).get(spec.query) or "") if spec.query != "conditions" else ""
        if itself and itself in self.pool.texts():
            return [r for r in self._select(rng, label, conditions, fields, k + 1) if r.text(self.pool.text_field) != itself][:k]
        return self._select(rng, label, conditions, fields, k)

    def _select(self, rng: random.Random, label: str | None, conditions: Mapping[str, str],
                fields: Mapping[str, object] | None, k: int) -> list[Record]:
        spec = self.spec
        assert spec is not None
        own = label if spec.same_label else None
        if spec.selection == "random":
            return self.pool.random(k, rng, own)
        if spec.selection == "stratified":
            return self.pool.stratified(k, rng, first=label)
        text = self.query_text(label, conditions, fields or {})
        if not text or self.pool.encode is None:
            return self.pool.random(k, rng, own)
        query = self.pool.encode([text])[0]
        if spec.selection == "nearest":
            return self.pool.nearest(k, query, own, rng, spec.candidates)
        return self.pool.mmr(k, query, own, spec.mmr_lambda)


__all__ = ["DemonstrationPool", "DemonstrationSelector"]
