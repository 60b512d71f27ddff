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
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        grams = list(ngrams(tokenize(text), n))
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def vocabulary_size(texts: Sequence[str]) -> int:
    return len({tok for text in texts for tok in tokenize(text)})
