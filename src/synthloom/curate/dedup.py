"""Near-duplicate and semantic dedup: MinHash with LSH, and embedding cosine.

Near duplicates (`near_dedup`). Each text becomes a set of shingles (word or
character n-grams), hashed once to 64 bits with a stable hash, so decisions
do not change between runs. Signatures are one-permutation MinHash with
optimal densification (Shrivastava, 2017): each shingle's hash picks one of
`num_perm` bins and the bin keeps its smallest value; an empty bin borrows
the value of a bin picked by a hash of (bin, attempt), the same for every
text. Like classic MinHash (one permutation per value), two texts agree in a
bin with probability equal to their Jaccard similarity, but a text costs
O(shingles) instead of O(shingles x num_perm), and everything runs in numpy
over all texts at once (benchmarks/near_dedup.py measures it against
datasketch and rensa with the same parameters).

Signatures are cut into `bands` bands of `num_perm / bands` rows; texts that
share a band are candidates, kept as pairs when their estimated Jaccard (the
share of equal bins) reaches `threshold`. Kept pairs are joined into
clusters (connected components); the first record of each cluster is kept,
the others dropped, and every member's `meta["near_dedup_cluster"]` names the
cluster (the id of its first record) so a person can inspect it.

Semantic duplicates (`semantic_dedup`): a record is dropped when the cosine
of its embedding with an earlier kept record's is at least `threshold`,
compared block by block so memory stays at block x records, never a full
similarity matrix.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..recipe import NearDedupSpec, SemanticDedupSpec
from ..records import Record
from .base import DROP, KEEP, SpecStage, stage_for

__all__ = [
    "MinHashResult",
    "NearDedup",
    "SemanticDedup",
    "minhash_dedup",
    "minhash_signatures",
    "semantic_duplicates",
    "shingle_hashes",
]

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_EMPTY = np.uint32(0xFFFFFFFF)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fast, well-spread 64-bit hash of 64-bit integers."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _stable_hashes(items: Sequence[str]) -> np.ndarray:
    return np.frombuffer(
        b"".join(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest() for s in items), dtype=np.uint64
    ).copy()


def _word_tokens(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every text's lower-cased words (runs of letters, digits and _) as stable 64-bit hashes,
    flat, with the number of words of each text. Split and encoded in Arrow's C++ kernels."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lists = pc.split_pattern_regex(pc.utf8_lower(pa.array(list(texts), pa.large_string())), r"[^\p{L}\p{N}_]+")
    flat = pc.list_flatten(lists)
    nonempty = pc.greater(pc.binary_length(flat), 0)
    parents = pc.list_parent_indices(lists).filter(nonempty).to_numpy()
    encoded = pc.dictionary_encode(flat.filter(nonempty))
    hashes = _stable_hashes(encoded.dictionary.to_pylist())[encoded.indices.to_numpy()]
    return hashes, np.bincount(parents, minlength=len(texts))


def _char_tokens(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every text's characters (lower-cased, runs of spaces made one) as 64-bit hashes, flat."""
    normal = [" ".join(t.lower().split()) for t in texts]
    codes = np.frombuffer("".join(normal).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    return _mix(codes + np.uint64(0x9E3779B97F4A7C15)), np.array([len(t) for t in normal], dtype=np.int64)


def shingle_hashes(texts: Sequence[str], ngram: int = 3, shingle: str = "word") -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every text's n-gram shingles, flat, with offsets: text i owns
    `hashes[offsets[i]:offsets[i + 1]]`. A text shorter than n is one shingle of what it has.

    Tokens are lower-cased words (runs of Unicode letters, digits and _) or
    characters; a word's hash is a stable blake2b, an n-gram's a mix of its
    tokens' hashes and positions: the same text gives the same shingles in
    every run.
    """
    token_hash, counts = _word_tokens(texts) if shingle == "word" else _char_tokens(texts)
    if not len(texts):
        return np.zeros(0, np.uint64), np.zeros(1, np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)])
    # Shingle p of a text combines tokens p .. p+n-1; short texts use all they have.
    grams = np.where(counts > 0, np.maximum(counts - ngram + 1, 1), 0)
    offsets = np.concatenate([[0], np.cumsum(grams)])
    owner = np.repeat(np.arange(len(texts)), grams)
    position = np.arange(offsets[-1]) - offsets[owner] + starts[owner]
    end = starts[owner + 1]
    combined = np.zeros(offsets[-1], dtype=np.uint64)
    last = max(len(token_hash) - 1, 0)
    with np.errstate(over="ignore"):
        for k in range(ngram):
            index = position + k
            part = _mix(token_hash[np.minimum(index, last)] + np.uint64(k + 1) * np.uint64(0x9E3779B97F4A7C15))
            combined = np.where(index < end, combined * np.uint64(31) + part, combined)
    return _mix(combined), offsets


def minhash_signatures(hashes: np.ndarray, offsets: np.ndarray, num_perm: int = 128, seed: int = 1) -> np.ndarray:
    """One-permutation MinHash signatures with optimal densification, `(texts, num_perm)` uint32.

    A text with no shingles has a signature of all 0xFFFFFFFF.
    """
    n = len(offsets) - 1
    x = _mix(hashes ^ _mix(np.array([seed], dtype=np.uint64)))
    bins = ((x >> np.uint64(32)) * np.uint64(num_perm)) >> np.uint64(32)
    values = (x & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    owner = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
    signature = np.full(n * num_perm, _EMPTY, dtype=np.uint32)
    np.minimum.at(signature, owner * num_perm + bins.astype(np.int64), values)
    signature = signature.reshape(n, num_perm)
    filled = signature != _EMPTY
    has_any = filled.any(axis=1)
    rows, cols = np.nonzero(~filled & has_any[:, None])
    source = np.full(rows.size, -1, dtype=np.int64)
    attempt = 0
    while rows.size and (source < 0).any():
        attempt += 1
        todo = np.flatnonzero(source < 0)
        key = cols[todo].astype(np.uint64) * np.uint64(1_000_003) + np.uint64(attempt) + np.uint64(seed) * np.uint64(7919)
        pick = (_mix(key) % np.uint64(num_perm)).astype(np.int64)
        ok = filled[rows[todo], pick]
        source[todo[ok]] = pick[ok]
    signature[rows, cols] = signature[rows, source]
    return signature


def _band_pairs(signature: np.ndarray, bands: int, usable: np.ndarray) -> np.ndarray:
    """Candidate pairs (i < j) of texts that share at least one band, as an (m, 2) array."""
    n, num_perm = signature.shape
    rows = num_perm // bands
    index = np.flatnonzero(usable)
    pairs = []
    for b in range(bands):
        block = signature[index, b * rows : (b + 1) * rows].astype(np.uint64)
        key = np.zeros(index.size, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for r in range(rows):
                key = _mix(key ^ block[:, r])
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        same = sorted_key[1:] == sorted_key[:-1]
        if not same.any():
            continue
        # Each member with the bucket's first member, and with the member before it.
        starts = np.flatnonzero(np.concatenate([[True], ~same]))
        bucket_first = np.repeat(starts, np.diff(np.concatenate([starts, [len(order)]])))
        members = np.flatnonzero(np.concatenate([[False], same]))
        a = index[order[bucket_first[members]]]
        b_ = index[order[members]]
        c = index[order[members - 1]]
        pairs.append(np.stack([a, b_], axis=1))
        pairs.append(np.stack([c, b_], axis=1))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    both = np.concatenate(pairs)
    both = np.sort(both, axis=1)
    both = both[both[:, 0] != both[:, 1]]
    return np.unique(both, axis=0)


@dataclass
class MinHashResult:
    """Per text: its cluster (index of the cluster's first text), whether it is kept,
    the best estimated Jaccard with a text of its cluster (0 when alone) and that text."""

    cluster: np.ndarray
    keep: np.ndarray
    similarity: np.ndarray
    partner: np.ndarray


def minhash_dedup(
    texts: Sequence[str],
    num_perm: int = 128,
    bands: int = 16,
    threshold: float = 0.7,
    ngram: int = 3,
    shingle: str = "word",
    seed: int = 1,
) -> MinHashResult:
    """Near-duplicate clusters by MinHash LSH; the first text of each cluster is kept."""
    if num_perm % bands:
        raise ValueError(f"num_perm ({num_perm}) must be a multiple of bands ({bands})")
    signature, nonempty = minhash_of(texts, num_perm, ngram, shingle, seed)
    return minhash_clusters(signature, nonempty, bands, threshold)


def minhash_of(texts: Sequence[str], num_perm: int, ngram: int, shingle: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The per-text part: each text's MinHash signature row, and whether it has any shingle."""
    hashes, offsets = shingle_hashes(texts, ngram, shingle)
    return minhash_signatures(hashes, offsets, num_perm, seed), np.diff(offsets) > 0


def minhash_clusters(signature: np.ndarray, nonempty: np.ndarray, bands: int, threshold: float) -> MinHashResult:
    """The global part: LSH banding over all signatures, then clusters in text order."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(signature)
    pairs = _band_pairs(signature, bands, nonempty)
    similarity = np.zeros(n)
    partner = np.full(n, -1, dtype=np.int64)
    kept_pairs = np.zeros((0, 2), dtype=np.int64)
    estimates = np.zeros(0)
    if len(pairs):
        chunks = [
            (signature[pairs[s : s + 65536, 0]] == signature[pairs[s : s + 65536, 1]]).mean(axis=1)
            for s in range(0, len(pairs), 65536)
        ]
        estimate = np.concatenate(chunks)
        good = estimate >= threshold
        kept_pairs, estimates = pairs[good], estimate[good]
    graph = coo_matrix((np.ones(len(kept_pairs)), (kept_pairs[:, 0], kept_pairs[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    first = np.full(component.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(first, component, np.arange(n))
    cluster = first[component]
    for side, other in ((0, 1), (1, 0)):
        order = np.argsort(estimates, kind="stable")  # larger estimates written last win
        idx, oth = kept_pairs[order, side], kept_pairs[order, other]
        better = estimates[order] >= similarity[idx]
        similarity[idx[better]] = estimates[order][better]
        partner[idx[better]] = oth[better]
    return MinHashResult(cluster=cluster, keep=cluster == np.arange(n), similarity=similarity, partner=partner)


@stage_for(NearDedupSpec)
class NearDedup(SpecStage):
    """Drops near duplicates found by MinHash LSH, keeping the first record of each cluster."""

    name = "near_dedup"

    def features(self, records: Sequence[Record]) -> list[tuple[np.ndarray, bool]]:
        """The per-record part (parallel on a cluster): each record's MinHash signature."""
        s = self.spec
        signature, nonempty = minhash_of([r.text(self.field) for r in records], s.num_perm, s.ngram, s.shingle, s.seed)
        return list(zip(signature, nonempty.tolist()))

    def decide(self, records: Sequence[Record], features: Sequence[tuple[np.ndarray, bool]]) -> Sequence[Record]:
        """The global part: LSH banding and clusters over every record, in record order."""
        if not records:
            return records
        signature = np.stack([row for row, _ in features])
        nonempty = np.array([flag for _, flag in features], dtype=bool)
        result = minhash_clusters(signature, nonempty, self.spec.bands, self.spec.threshold)
        sizes = np.bincount(result.cluster, minlength=len(records))
        for i, record in enumerate(records):
            rep = records[int(result.cluster[i])]
            size = int(sizes[result.cluster[i]])
            if size > 1:
                record.meta["near_dedup_cluster"] = rep.id
            reason = ""
            if not result.keep[i]:
                partner = records[int(result.partner[i])].id
                reason = (
                    f"near duplicate of {rep.id} (cluster of {size}; "
                    f"Jaccard ~{result.similarity[i]:.2f} with {partner})"
                )
            record.decide(self.name, KEEP if result.keep[i] else DROP, float(result.similarity[i]), reason)
        return records

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        return self.decide(records, self.features(records))


def semantic_duplicates(vectors: np.ndarray, threshold: float, block: int = 4096) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For L2-normalised rows, in order: keep a row unless its cosine with an earlier kept row
    is >= threshold. Returns (keep, best cosine with an earlier kept row, that row or -1)."""
    n = len(vectors)
    keep = np.zeros(n, dtype=bool)
    best = np.zeros(n, dtype=np.float32)
    nearest = np.full(n, -1, dtype=np.int64)
    kept_rows: list[int] = []
    for start in range(0, n, block):
        stop = min(start + block, n)
        chunk = vectors[start:stop]
        if kept_rows:
            earlier = np.asarray(kept_rows)
            sims = chunk @ vectors[earlier].T
            arg = sims.argmax(axis=1)
            best[start:stop] = sims[np.arange(len(chunk)), arg]
            nearest[start:stop] = earlier[arg]
        inner = chunk @ chunk.T
        local_keep = keep[start:stop]
        for i in range(stop - start):
            earlier = np.flatnonzero(local_keep[:i])  # rows of this block kept so far
            if earlier.size:
                j = earlier[np.argmax(inner[i, earlier])]
                if inner[i, j] > best[start + i]:
                    best[start + i], nearest[start + i] = inner[i, j], start + j
            keep[start + i] = best[start + i] < threshold
            if keep[start + i]:
                kept_rows.append(start + i)
    return keep, best, nearest


@stage_for(SemanticDedupSpec)
class SemanticDedup(SpecStage):
    """Drops records whose embedding is nearly the same as an earlier kept record's."""

    name = "semantic_dedup"

    def __call__(self, records: Sequence[Record]) -> Sequence[Record]:
        vectors = self.context.get_embedder().encode([r.text(self.field) for r in records], progress=self.context.progress)
        keep, best, nearest = semantic_duplicates(vectors, self.spec.threshold, self.spec.block)
        for i, record in enumerate(records):
            reason = "" if keep[i] else f"cosine {best[i]:.3f} with {records[int(nearest[i])].id}"
            record.decide(self.name, KEEP if keep[i] else DROP, float(best[i]), reason)
        return records
