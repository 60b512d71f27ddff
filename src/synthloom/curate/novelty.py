"""Novelty against a pool: the Self-Instruct ROUGE-L rule, exact and fast.

Self-Instruct keeps a new instruction only if its ROUGE-L F-measure with
every instruction already in the pool (the seeds and the instructions kept
so far) is at most a threshold (0.7). The reference implementation scores
each new text against the whole pool with `rouge-score`, one pure-Python
dynamic programme per pair, which is quadratic in the pool and slow.

`rouge_l_novelty` gives the same decisions and the same scores as that loop
(the same tokenizer, the same LCS, the same floating-point formula), by
never computing most pairs:

- every text becomes a set of (token, k-th occurrence) features, so that the
  dot product of two texts' feature vectors is the size of the multiset
  intersection of their tokens, an upper bound on their LCS. One sparse
  matrix product per block of texts gives the bound for every pair, and
  from it the bound 2*I/(m+n) on the F-measure;
- pairs are then scored exactly (a bit-parallel LCS on Python integers) in
  order of decreasing bound, stopping as soon as the next bound cannot beat
  the best score found. That yields the exact maximum ROUGE-L of each text
  against the pool, hence the exact decision.

Like `rouge-score` without a stemmer (what Self-Instruct and Alpaca use),
texts are lower-cased and split on anything but ASCII letters and digits,
so a text with no such characters has no tokens and a score of 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..recipe import NoveltySpec
from ..records import Record, load_dataset
from .base import DROP, KEEP, SpecStage, stage_for

__all__ = ["NoveltyResult", "Novelty", "rouge_l", "rouge_l_novelty", "rouge_tokens"]

_NON_ALPHANUM = re.compile(r"[^a-z0-9]+")
_SPACES = re.compile(r"\s+")
_VALID = re.compile(r"^[a-z0-9]+$")
_BLOCK = 512
_SLACK = 1e-9  # the bound is computed with a different float formula; never let rounding prune a pair


def rouge_tokens(text: str) -> list[str]:
    """The tokens `rouge-score` (no stemmer) sees: lower-case ASCII letters and digits."""
    pieces = _SPACES.split(_NON_ALPHANUM.sub(" ", text.lower()))
    return [p for p in pieces if _VALID.match(p)]


def _f_measure(lcs: int, m: int, n: int) -> float:
    """ROUGE-L F-measure exactly as `rouge-score` computes it (the same float operations)."""
    if lcs == 0:
        return 0.0
    precision = lcs / n
    recall = lcs / m
    return 2 * precision * recall / (precision + recall)


def _position_masks(ids: Sequence[int]) -> dict[int, int]:
    masks: dict[int, int] = {}
    for position, token in enumerate(ids):
        masks[token] = masks.get(token, 0) | (1 << position)
    return masks


def _lcs(a: Sequence[int], b_masks: dict[int, int], b_len: int) -> int:
    """Length of the longest common subsequence, bit-parallel (Allison-Dix / Hyyro)."""
    full = (1 << b_len) - 1
    row = full
    for token in a:
        match = b_masks.get(token)
        if match:
            u = row & match
            row = ((row + u) | (row - u)) & full
    return b_len - row.bit_count()


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F-measure of two texts, equal to `rouge_scorer.RougeScorer(["rougeL"]).score(a, b)`."""
    ta, tb = rouge_tokens(a), rouge_tokens(b)
    if not ta or not tb:
        return 0.0
    vocab: dict[str, int] = {}
    ia = [vocab.setdefault(t, len(vocab)) for t in ta]
    ib = [vocab.setdefault(t, len(vocab)) for t in tb]
    return _f_measure(_lcs(ia, _position_masks(ib), len(ib)), len(ia), len(ib))


@dataclass
class NoveltyResult:
    """Per candidate: kept or not, its best ROUGE-L against what it was compared with, and which text.

    `nearest[i]` indexes the concatenation `pool + candidates` (None when the
    best score is 0).
    """

    keep: np.ndarray
    score: np.ndarray
    nearest: list[int | None]


class _Texts:
    """Token ids, position masks and the sparse occurrence-feature matrix of all texts."""

    def __init__(self, texts: Sequence[str]):
        from scipy.sparse import csr_matrix

        vocab: dict[str, int] = {}
        features: dict[tuple[int, int], int] = {}
        self.ids: list[list[int]] = []
        indptr, indices = [0], []
        for text in texts:
            ids = [vocab.setdefault(t, len(vocab)) for t in rouge_tokens(text)]
            self.ids.append(ids)
            seen: dict[int, int] = {}
            for token in ids:
                k = seen.get(token, 0)
                seen[token] = k + 1
                indices.append(features.setdefault((token, k), len(features)))
            indptr.append(len(indices))
        self.lengths = np.diff(np.asarray(indptr, dtype=np.int64))
        data = np.ones(len(indices), dtype=np.float32)
        self.matrix = csr_matrix(
            (data, np.asarray(indices, dtype=np.int64), np.asarray(indptr, dtype=np.int64)),
            shape=(len(texts), max(1, len(features))),
        )
        self._masks: dict[int, dict[int, int]] = {}

    def masks(self, i: int) -> dict[int, int]:
        masks = self._masks.get(i)
        if masks is None:
            masks = self._masks[i] = _position_masks(self.ids[i])
        return masks

    def exact(self, i: int, j: int) -> float:
        return _f_measure(_lcs(self.ids[i], self.masks(j), len(self.ids[j])), len(self.ids[i]), len(self.ids[j]))


def rouge_l_novelty(
    candidates: Sequence[str], pool: Sequence[str] = (), threshold: float = 0.7
) -> NoveltyResult:
    """The Self-Instruct rule, in order: candidate i is kept when its ROUGE-L F-measure with
    every pool text and every earlier *kept* candidate is at most `threshold`.

    Decisions and scores are those of scoring every pair with `rouge-score`.
    """
    texts = _Texts(list(pool) + list(candidates))
    n_pool, n = len(pool), len(pool) + len(candidates)
    lengths = texts.lengths.astype(np.float64)
    active = np.zeros(n, dtype=bool)  # texts a later candidate is compared with
    active[:n_pool] = True
    keep = np.zeros(len(candidates), dtype=bool)
    score = np.zeros(len(candidates), dtype=np.float64)
    nearest: list[int | None] = [None] * len(candidates)
    for start in range(n_pool, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        overlap = (texts.matrix[start:stop] @ texts.matrix[:stop].T).toarray()
        for i in range(start, stop):
            row = overlap[i - start, :i]
            columns = np.flatnonzero(active[:i] & (row > 0))
            best, best_j = 0.0, None
            if columns.size and lengths[i] > 0:
                bound = 2.0 * row[columns] / (lengths[i] + lengths[columns])
                # Score the most promising pair first, then only pairs whose bound can beat it.
                first = int(np.argmax(bound))
                best, best_j = texts.exact(i, int(columns[first])), int(columns[first])
                rest = np.flatnonzero(bound > best - _SLACK)
                rest = rest[np.argsort(-bound[rest], kind="stable")]
                for j, b in zip(columns[rest].tolist(), bound[rest].tolist()):
                    if b <= best - _SLACK:
                        break
                    f = texts.exact(i, j)
                    if f > best:
                        best, best_j = f, j
                if best == 0.0:
                    best_j = None
            c = i - n_pool
            score[c], nearest[c] = best, best_j
            keep[c] = active[i] = best <= threshold
    return NoveltyResult(keep=keep, score=score, nearest=nearest)


@stage_for(NoveltySpec)
class Novelty(SpecStage):
    """Drops records too similar (ROUGE-L) to a pool or to an earlier kept record."""

    name = "novelty"

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        pool = load_dataset(self.spec.pool) if self.spec.pool is not None else []
        names = [r.id for r in pool] + [r.id for r in records]
        result = rouge_l_novelty(
            [r.text(self.field) for r in records], [r.text() for r in pool], self.spec.threshold
        )
        for record, kept, score, nearest in zip(records, result.keep, result.score, result.nearest):
            reason = ""
            if not kept:
                reason = f"ROUGE-L {score:.3f} > {self.spec.threshold} with {names[nearest]}"
            record.decide(self.name, KEEP if kept else DROP, float(score), reason)
        return records
