"""A graph over chunks, and drawing linked chunks from different sections or documents.

Two chunks are linked when they share a keyphrase or when their embeddings
are close:

- keyphrases: the top `keyphrases` phrases of each chunk by YAKE (one to
  three words, statistical, no model), lower-cased; a phrase found in more
  than `max_phrase_share` of all chunks ("rust", "code") links nothing, and
  a pair needs one shared phrase of two or more words or two shared single
  words ("type" alone is not a topic), so links come from phrases that say
  what a chunk is about; and the pair's cosine similarity must be at least
  `phrase_min_similarity` (phrases like "shown in listing" recur in
  unrelated passages);
- embeddings: each chunk is linked to its `neighbours` nearest chunks by
  cosine similarity of the bundled MiniLM's vectors, if at least
  `min_similarity`.

Every link carries both signals: the cosine similarity of the pair and the
phrases they share. Multi-hop questions need two chunks that belong
together but are not the same passage: `draw_pairs` draws linked pairs
whose chunks sit in different sections (or different documents), and
`draw_paths` walks such links; both are deterministic for a seed.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import numpy as np

from ..records import Record

Across = Literal["section", "document"]


@dataclass(frozen=True)
class Link:
    a: str  # chunk ids, a < b
    b: str
    similarity: float
    shared: tuple[str, ...] = ()

    @property
    def strength(self) -> float:
        """How much the pair belongs together: the similarity, plus a little for each shared phrase."""
        return max(self.similarity, 0.0) + 0.1 * len(self.shared)


@dataclass
class ChunkGraph:
    chunks: dict[str, Record]
    links: dict[tuple[str, str], Link]
    phrases: dict[str, list[str]] = field(default_factory=dict)  # chunk id -> its keyphrases

    def neighbours(self, chunk_id: str) -> list[Link]:
        return [link for key, link in self.links.items() if chunk_id in key]

    def apart(self, a: str, b: str, across: Across = "section") -> bool:
        """Are two chunks in different sections (or, with across="document", different documents)?"""
        ma, mb = self.chunks[a].meta, self.chunks[b].meta
        if across == "document":
            return ma.get("document") != mb.get("document")
        return (ma.get("document"), ma.get("section_path")) != (mb.get("document"), mb.get("section_path"))


def keyphrases(texts: Sequence[str], top: int = 8) -> list[list[str]]:
    """The top keyphrases of each text by YAKE, lower-cased."""
    import yake

    extractor = yake.KeywordExtractor(lan="en", n=3, top=top, dedup_lim=0.7)
    out = []
    for text in texts:
        phrases = [phrase.lower() for phrase, _ in extractor.extract_keywords(text)] if text.strip() else []
        out.append(list(dict.fromkeys(phrases)))
    return out


def _default_embed(texts: Sequence[str]) -> np.ndarray:
    from ..embed import Embedder

    return Embedder.shared().encode(texts)


def build_graph(
    chunks: Sequence[Record],
    embed: Callable[[Sequence[str]], np.ndarray] | None = None,
    neighbours: int = 5,
    min_similarity: float = 0.5,
    phrases_per_chunk: int = 8,
    max_phrase_share: float = 0.1,
    phrase_min_similarity: float = 0.3,
    field_name: str = "text",
) -> ChunkGraph:
    """Link chunks by shared keyphrases and by embedding similarity (see the module's docstring)."""
    ids = [c.id for c in chunks]
    if len(set(ids)) != len(ids):
        raise ValueError("chunk ids must be unique")
    texts = [c.text(field_name) for c in chunks]
    vectors = np.asarray((embed or _default_embed)(texts), dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    phrases = keyphrases(texts, phrases_per_chunk)

    shared: dict[tuple[int, int], list[str]] = defaultdict(list)
    holders: dict[str, list[int]] = defaultdict(list)
    for i, found in enumerate(phrases):
        for phrase in found:
            holders[phrase].append(i)
    limit = max(2, int(max_phrase_share * len(chunks)))
    for phrase in sorted(holders):
        members = holders[phrase]
        if 2 <= len(members) <= limit:
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    shared[(members[x], members[y])].append(phrase)

    pairs = {(i, j) for (i, j), common in shared.items()
             if (len(common) >= 2 or any(" " in p for p in common))
             and float(vectors[i] @ vectors[j]) >= phrase_min_similarity}
    for start in range(0, len(chunks), 512):  # nearest neighbours a block of rows at a time
        sims = vectors[start:start + 512] @ vectors.T
        for row, i in enumerate(range(start, min(start + 512, len(chunks)))):
            sims[row, i] = -np.inf
            for j in np.argsort(-sims[row], kind="stable")[:neighbours]:
                if sims[row, j] >= min_similarity:
                    pairs.add((min(i, int(j)), max(i, int(j))))

    links = {}
    for i, j in sorted(pairs):
        a, b = sorted((ids[i], ids[j]))
        links[(a, b)] = Link(a, b, float(vectors[i] @ vectors[j]), tuple(shared.get((i, j), ())))
    return ChunkGraph(dict(zip(ids, chunks)), links, dict(zip(ids, phrases)))


def draw_pairs(graph: ChunkGraph, n: int, seed: int = 0, across: Across = "section") -> list[tuple[Record, Record, Link]]:
    """Up to n distinct linked pairs from different sections (or documents), the stronger links likelier.

    Weighted sampling without replacement (each link's key is u ** (1 / strength),
    u uniform from a generator seeded with `seed`; the n largest keys win), over
    the links in id order: the same graph and seed give the same pairs.
    """
    _check_across(across)
    rng = random.Random(seed)
    eligible = [link for key, link in sorted(graph.links.items()) if graph.apart(link.a, link.b, across)]
    keyed = sorted(((rng.random() ** (1.0 / max(link.strength, 1e-6)), link) for link in eligible),
                   key=lambda item: item[0], reverse=True)
    return [(graph.chunks[link.a], graph.chunks[link.b], link) for _, link in keyed[:n]]


def draw_paths(graph: ChunkGraph, n: int, length: int = 3, seed: int = 0, across: Across = "section",
               tries: int = 20) -> list[list[Record]]:
    """Up to n walks of `length` chunks, each step along a link to a chunk apart from all before it.

    A walk starts at a chunk drawn by the seeded generator and steps to a
    neighbour drawn in proportion to the link's strength; a walk that cannot
    go on is dropped (`tries` starts per path wanted). No two paths are the same.
    """
    _check_across(across)
    if length < 2:
        raise ValueError("a path needs at least 2 chunks")
    rng = random.Random(seed)
    adjacency: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for (a, b), link in sorted(graph.links.items()):
        adjacency[a].append((b, link.strength))
        adjacency[b].append((a, link.strength))
    starts = sorted(adjacency)
    paths: list[list[str]] = []
    for _ in range(n * tries):
        if len(paths) >= n or not starts:
            break
        path = [rng.choice(starts)]
        while len(path) < length:
            options = [(c, w) for c, w in adjacency[path[-1]] if all(graph.apart(c, p, across) for p in path)]
            if not options:
                break
            path.append(rng.choices([c for c, _ in options], weights=[max(w, 1e-6) for _, w in options])[0])
        if len(path) == length and path not in paths:
            paths.append(path)
    return [[graph.chunks[c] for c in path] for path in paths]


def _check_across(across: str) -> None:
    if across not in ("section", "document"):
        raise ValueError(f"across: expected 'section' or 'document', got {across!r}")
