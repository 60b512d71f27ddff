"""Lexical diversity measures: plain functions of a list of texts."""

from __future__ import annotations

import re
from typing import Iterable, Sequence

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
    out = {}
    for n in ns:
        seen: set[tuple[str, ...]] = set()
        total = 0
        for tokens in token_lists:
            if len(tokens) >= n:
                total += len(tokens) - n + 1
                seen.update(ngrams(tokens, n))
        out[n] = len(seen) / total if total else 0.0
    return out


def vocabulary_size(texts: Sequence[str]) -> int:
    return len({tok for text in texts for tok in tokenize(text)})


def vocabulary(token_lists: Sequence[Sequence[str]]) -> int:
    return len({tok for tokens in token_lists for tok in tokens})
