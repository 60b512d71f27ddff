"""Near-duplicate (MinHash LSH) and semantic dedup on planted duplicates."""

from __future__ import annotations

import random

import numpy as np

from synthloom.curate import DROP, KEEP, curate, minhash_dedup, semantic_duplicates
from synthloom.curate.dedup import minhash_signatures, shingle_hashes
from synthloom.recipe import NearDedupSpec, SemanticDedupSpec
from synthloom.records import Record

VOCAB = [f"w{i}" for i in range(3000)]


def planted(n_base=400, n_copies=60, seed=0):
    rng = random.Random(seed)
    base = [" ".join(rng.choice(VOCAB) for _ in range(rng.randint(30, 60))) for _ in range(n_base)]
    texts, origin = list(base), list(range(n_base))
    for _ in range(n_copies):
        o = rng.randrange(n_base)
        words = base[o].split()
        words[rng.randrange(len(words))] = rng.choice(VOCAB)  # one word replaced
        texts.append(" ".join(words).upper() if rng.random() < 0.3 else " ".join(words))
        origin.append(o)
    order = list(range(len(texts)))
    rng.shuffle(order)
    return [texts[i] for i in order], [origin[i] for i in order]


def test_minhash_finds_exactly_the_planted_near_duplicates():
    texts, origin = planted()
    result = minhash_dedup(texts)
    first_of: dict[int, int] = {}
    expected_keep = []
    for i, o in enumerate(origin):
        expected_keep.append(o not in first_of)
        first_of.setdefault(o, i)
    assert result.keep.tolist() == expected_keep
    for i, o in enumerate(origin):
        assert result.cluster[i] == first_of[o]


def test_signatures_estimate_jaccard():
    rng = random.Random(1)
    words = [rng.choice(VOCAB) for _ in range(400)]
    a, b = " ".join(words[:300]), " ".join(words[100:])  # 3-gram Jaccard about 198 / 398
    hashes, offsets = shingle_hashes([a, b], ngram=3)
    sig = minhash_signatures(hashes, offsets, num_perm=512, seed=3)
    sa, sb = set(hashes[offsets[0] : offsets[1]].tolist()), set(hashes[offsets[1] : offsets[2]].tolist())
    truth = len(sa & sb) / len(sa | sb)
    assert abs((sig[0] == sig[1]).mean() - truth) < 0.07


def test_shingles_are_stable_and_case_insensitive():
    one, _ = shingle_hashes(["Hello, World again!"])
    two, _ = shingle_hashes(["hello world AGAIN"])
    assert one.tolist() == two.tolist()
    chars, offsets = shingle_hashes(["ab", "abcd"], ngram=3, shingle="char")
    assert offsets.tolist() == [0, 1, 3]


def test_near_dedup_stage_keeps_clusters_for_inspection():
    base = "the parcel you ordered last week is waiting at the depot on high street for collection"
    records = [
        Record("a", {"text": base}),
        Record("b", {"text": "Please call me back when you get home tonight, it is about dinner"}),
        Record("c", {"text": base + " today"}),
        Record("d", {"text": base.replace("depot", "depot now")}),
        Record("e", {"text": ""}),
    ]
    result = curate(records, [NearDedupSpec(threshold=0.6)])
    assert [r.id for r in result.kept] == ["a", "b", "e"]
    assert [r.meta.get("near_dedup_cluster") for r in records] == ["a", None, "a", "a", None]
    assert records[2].flags["near_dedup"] == DROP
    assert records[2].reasons["near_dedup"].startswith("near duplicate of a (cluster of 3")
    assert records[1].scores["near_dedup"] == 0.0


def naive_semantic(vectors, threshold):
    keep = []
    for i in range(len(vectors)):
        sims = [float(vectors[i] @ vectors[j]) for j in range(i) if keep[j]]
        keep.append(not sims or max(sims) < threshold)
    return keep


def test_blockwise_semantic_dedup_equals_the_full_comparison():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(60, 16))
    vectors = np.concatenate([base, base[rng.integers(0, 60, 40)] + rng.normal(scale=0.08, size=(40, 16))])
    vectors = vectors[rng.permutation(len(vectors))]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    keep, best, nearest = semantic_duplicates(vectors.astype(np.float32), 0.97, block=16)
    assert keep.tolist() == naive_semantic(vectors, 0.97)
    assert 50 < keep.sum() < 100
    dropped = np.flatnonzero(~keep)
    assert (best[dropped] >= 0.97).all() and keep[nearest[dropped]].all()


def test_semantic_dedup_with_the_bundled_embeddings():
    texts = [
        "How do I reset my password?",
        "How can I reset my password?",
        "What time does the bank open on Saturday?",
        "my card payment was declined at the shop",
    ]
    records = [Record(f"r{i}", {"text": t}) for i, t in enumerate(texts)]
    curate(records, [SemanticDedupSpec(threshold=0.9)])
    assert [r.flags["semantic_dedup"] for r in records] == [KEEP, DROP, KEEP, KEEP]
    assert records[1].reasons["semantic_dedup"].endswith("with r0")
