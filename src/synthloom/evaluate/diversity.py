"""Diversity measures: plain functions of a list of texts (or of their embeddings).

Lexical measures look at tokens and n-grams (vocabulary, distinct-n, n-gram
entropy, compression ratio, self-BLEU); semantic ones at sentence embeddings
(mean pairwise cosine, the Vendi score); coverage at the conditions each
record was made under. All of them together take a few seconds on 10,000
texts (see benchmarks/diversity_speed.py): every pairwise quantity is
computed in closed form or from corpus-wide counts, never pair by pair.
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections import Counter
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens, the unit of every n-gram measure here."""
    return _TOKEN.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> Iterable[tuple[str, ...]]:
    return zip(*(tokens[i:] for i in range(n)))


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct n-grams over all n-grams in the corpus (Li et al., 2016); 0 for no n-grams."""
    return distinct_ns([tokenize(t) for t in texts], [n])[n]


def distinct_ns(token_lists: Sequence[Sequence[str]], ns: Sequence[int]) -> dict[int, float]:
    """distinct-n for several n over texts tokenized once."""
    return {n: _distinct(_ngram_counts(token_lists, n)) for n in ns}


def _ngram_counts(token_lists: Sequence[Sequence[str]], n: int) -> Counter:
    counts: Counter = Counter()
    for tokens in token_lists:
        if len(tokens) >= n:
            counts.update(ngrams(tokens, n) if n > 1 else tokens)
    return counts


def _distinct(counts: Counter) -> float:
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


def vocabulary_size(texts: Sequence[str]) -> int:
    return vocabulary([tokenize(t) for t in texts])


def vocabulary(token_lists: Sequence[Sequence[str]]) -> int:
    return len({tok for tokens in token_lists for tok in tokens})


def ngram_entropy(token_lists: Sequence[Sequence[str]], n: int = 1) -> float:
    """Shannon entropy (bits) of the corpus's n-gram distribution; higher is more varied."""
    return _entropy(_ngram_counts(token_lists, n))


def _entropy(counts: Counter) -> float:
    total = sum(counts.values())
    if not total:
        return 0.0
    p = np.fromiter(counts.values(), dtype=np.float64, count=len(counts)) / total
    return float(-(p * np.log2(p)).sum())


def compression_ratio(texts: Sequence[str]) -> float:
    """Size of the texts joined by newlines over their zlib-compressed size.

    Repetitive corpora compress well, so a higher ratio means less diversity.
    """
    raw = "\n".join(texts).encode("utf-8")
    if not raw:
        return 0.0
    return len(raw) / len(zlib.compress(raw, 6))


def self_bleu(
    token_lists: Sequence[Sequence[str]], sample: int = 500, max_n: int = 4, seed: int = 0
) -> float:
    """Mean BLEU-`max_n` of sampled texts against all the other texts (Zhu et al., 2018).

    Each sampled text is a hypothesis, every other text a reference: the
    same quantity as NLTK's `sentence_bleu(others, text)` with uniform
    weights and add-epsilon smoothing (method1, epsilon 0.1). The clipped
    count of an n-gram is its highest count in any other text, read from
    corpus-wide counts (how many texts hold it, and the few texts that hold
    it more than once), so a text never matches itself; the brevity penalty
    uses the closest other length. Higher means more alike: 0 for a corpus
    with no shared n-grams.
    """
    texts = [t if isinstance(t, list) else list(t) for t in token_lists]
    if len(texts) < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(texts), size=min(sample, len(texts)), replace=False).tolist())
    stats = [_GramStats(texts, n) for n in range(1, max_n + 1)]
    lengths = np.sort(np.array([len(t) for t in texts]))
    scores = []
    for i in chosen:
        hyp = texts[i]
        if not hyp:
            continue
        log_p = 0.0
        for n, gram_stats in enumerate(stats, start=1):
            counts = Counter(ngrams(hyp, n)) if n > 1 else Counter(hyp)
            matched = gram_stats.matched(counts, i)
            if n == 1 and not matched:
                log_p = -math.inf
                break
            log_p += math.log((matched or 0.1) / max(1, len(hyp) - n + 1)) / max_n
        if log_p == -math.inf:
            scores.append(0.0)
            continue
        ref_len = _closest_other_length(lengths, len(hyp))
        brevity = 1.0 if len(hyp) > ref_len else math.exp(1 - ref_len / len(hyp))
        scores.append(brevity * math.exp(log_p))
    return float(np.mean(scores)) if scores else 0.0


class _GramStats:
    """For one n: in how many texts each n-gram occurs, and its counts where a text repeats it.

    Most n-grams occur at most once per text, so the highest count of an
    n-gram among the texts other than one is 1 or 0 depending only on how
    many texts hold it. For the rarer n-grams some text repeats, the two
    highest counts are kept (and the text with the highest), so a text is
    never matched against itself. Counting is done by `Counter` over sets
    (in C), which is what makes self-BLEU cheap.
    """

    def __init__(self, texts: Sequence[Sequence[str]], n: int):
        # n-gram -> [highest count in one text, that text, second highest], counts over 1 only
        self.repeats: dict[Any, list[int]] = {}
        distinct_per_text = []
        for i, tokens in enumerate(texts):
            grams = list(ngrams(tokens, n)) if n > 1 else tokens
            distinct = set(grams)
            distinct_per_text.append(distinct)
            if len(distinct) < len(grams):
                for gram, c in Counter(grams).items():
                    if c > 1:
                        top = self.repeats.get(gram)
                        if top is None:
                            self.repeats[gram] = [c, i, 0]
                        elif c > top[0]:
                            top[0], top[1], top[2] = c, i, top[0]
                        elif c > top[2]:
                            top[2] = c
        self.texts_with = Counter(itertools.chain.from_iterable(distinct_per_text))

    def matched(self, counts: Mapping[Any, int], i: int) -> int:
        """Clipped matches of text `i`'s n-gram `counts` against every other text."""
        texts_with, repeats = self.texts_with, self.repeats
        matched = 0
        for gram, c in counts.items():
            top = repeats.get(gram)
            if top is None:  # every text holding it holds it once, text i too
                matched += texts_with[gram] > 1
                continue
            best = top[2] if top[1] == i else top[0]
            if not best:  # text i alone repeats it: do others hold it once?
                best = 1 if texts_with[gram] - 1 > 0 else 0
            matched += min(c, best)
        return matched


def _closest_other_length(sorted_lengths: np.ndarray, length: int) -> int:
    """The length closest to `length` among all texts but one of that length (ties: shorter)."""
    at = int(np.searchsorted(sorted_lengths, length))
    hi = int(np.searchsorted(sorted_lengths, length, side="right"))
    if hi - at >= 2:
        return length  # another text has the very same length
    candidates = []
    if at > 0:
        candidates.append(int(sorted_lengths[at - 1]))
    if hi < len(sorted_lengths):
        candidates.append(int(sorted_lengths[hi]))
    return min(candidates, key=lambda x: (abs(x - length), x))


def mean_pairwise_cosine(embeddings: np.ndarray) -> float:
    """Mean cosine similarity over all pairs of distinct rows; lower is more diverse.

    For unit vectors, sum over i != j of x_i . x_j = |sum x|^2 - n: O(n d), not O(n^2 d).
    """
    x = _unit_rows(embeddings)
    n = len(x)
    if n < 2:
        return 0.0
    total = x.sum(axis=0, dtype=np.float64)
    return float((total @ total - n) / (n * (n - 1)))


def vendi_score(embeddings: np.ndarray) -> float:
    """The Vendi score (Friedman & Dieng, 2023) with the cosine kernel: the effective number of distinct texts.

    exp of the Shannon entropy of the eigenvalues of K/n, K = X X^T. When there
    are more texts than dimensions the dual form is used: X^T X / n has the
    same non-zero eigenvalues and is only d x d.
    """
    x = _unit_rows(embeddings).astype(np.float64)
    n = len(x)
    if n == 0:
        return 0.0
    gram = (x.T @ x) / n if n > x.shape[1] else (x @ x.T) / n
    eig = np.linalg.eigvalsh(gram)
    eig = eig[eig > 1e-12]
    eig = eig / eig.sum()
    return float(np.exp(-(eig * np.log(eig)).sum()))


def _unit_rows(embeddings: np.ndarray) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


def condition_coverage(
    conditions: Sequence[Mapping[str, str]], space: Mapping[str, Sequence[str]] | None = None
) -> dict[str, Any]:
    """How much of the grid of condition combinations the records cover.

    `space` is each condition's possible values (from the recipe); without
    it, the values seen in the records. Returns the share of combinations
    with at least one record, per-condition shares, and the count of each
    combination seen (`cells`, keyed "key=value|key=value").
    """
    keys = list(space) if space else sorted({k for c in conditions for k in c})
    if not keys:
        return {"conditions": [], "combinations": 0, "covered": 0, "coverage": None}
    values = {k: list(space[k]) if space else sorted({c[k] for c in conditions if k in c}) for k in keys}
    cells = Counter("|".join(f"{k}={c.get(k, '')}" for k in keys) for c in conditions)
    grid = ["|".join(f"{k}={v}" for k, v in zip(keys, combo)) for combo in itertools.product(*values.values())]
    covered = sum(1 for cell in grid if cells.get(cell))
    per_key = {
        k: len({c.get(k) for c in conditions} & set(values[k])) / len(values[k]) if values[k] else None
        for k in keys
    }
    return {
        "conditions": keys,
        "values": values,
        "combinations": len(grid),
        "covered": covered,
        "coverage": covered / len(grid) if grid else None,
        "coverage_by_condition": per_key,
        "cells": dict(cells),
    }


def lexical_measures(texts: Sequence[str], ns: Sequence[int] = (1, 2, 3), self_bleu_sample: int = 500, seed: int = 0) -> dict[str, float]:
    """Every token-level measure of one set of texts, tokenized once."""
    return lexical_measures_of_tokens(texts, [tokenize(t) for t in texts], ns, self_bleu_sample, seed)


def lexical_measures_of_tokens(
    texts: Sequence[str], tokens: Sequence[list[str]], ns: Sequence[int] = (1, 2, 3),
    self_bleu_sample: int = 500, seed: int = 0,
) -> dict[str, float]:
    """`lexical_measures` of texts already tokenized (e.g. a subset of a corpus tokenized once)."""
    out: dict[str, float] = {"records": len(texts), "vocabulary": vocabulary(tokens)}
    for n in ns:
        counts = _ngram_counts(tokens, n)
        out[f"distinct_{n}"] = _distinct(counts)
        out[f"entropy_{n}"] = _entropy(counts)
    out["compression_ratio"] = compression_ratio(texts)
    if self_bleu_sample:
        out["self_bleu"] = self_bleu(tokens, sample=self_bleu_sample, seed=seed)
    return out


def semantic_measures(embeddings: np.ndarray) -> dict[str, float]:
    return {"mean_pairwise_cosine": mean_pairwise_cosine(embeddings), "vendi_score": vendi_score(embeddings)}


__all__ = [
    "compression_ratio",
    "condition_coverage",
    "distinct_n",
    "distinct_ns",
    "lexical_measures",
    "lexical_measures_of_tokens",
    "mean_pairwise_cosine",
    "ngram_entropy",
    "ngrams",
    "self_bleu",
    "semantic_measures",
    "tokenize",
    "vendi_score",
    "vocabulary",
    "vocabulary_size",
]
