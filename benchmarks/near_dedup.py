"""Near-duplicate dedup (MinHash LSH) on 100,000 real-text documents with planted near duplicates.

How the documents are made (fixed seed 0, from $SYNTHLOOM_DATA, default ../shared/data):

1. Texts: every SMS of sms_spam, every banking77 request (train and test),
   every ag_news title + description, every imdb review, every RTE sentence
   (both sentences, all splits). Each source's texts are cut at sentence
   ends into chunks of 10 to 40 words (short sentences and texts are joined
   with the ones that follow them in the same source; longer ones are cut);
   chunks that repeat (after lower-casing) are removed.
2. 90,000 base documents, each 4 chunks drawn at random, with no pair of
   chunks ever in two documents. So two base documents share at most one
   chunk, and their Jaccard similarity stays far below the threshold:
   chunks are reused in different company, but no base document is a near
   duplicate of another.
3. 10,000 planted near duplicates: copies of base documents drawn with
   replacement (so some clusters have three or more members), each with 1%
   to 4% of its words edited (at least one edit): a word deleted, a random
   corpus word inserted, a word replaced, or two neighbours swapped.
4. The 100,000 documents are shuffled. The truth: the planted clusters; a
   perfect dedup drops every member of a cluster but the first in order.

Every arm does the whole job from the texts, with the same parameters:
lower-cased `\\w+` words, word 3-gram shingles, num_perm 128, 16 bands of 8
rows, and a candidate pair counts when its estimated Jaccard is >= 0.7;
pairs are joined into clusters (connected components) and all but the
first member of a cluster are dropped (the same numpy code for every arm):

- synthloom: `synthloom.curate.dedup.minhash_dedup`;
- rensa: `RMinHash.from_token_sets` + `RMinHashLSH.insert_many/query_all`;
- datasketch: `MinHash.bulk` + `MinHashLSH(params=(16, 8))` insert/query.

Precision, recall and F1 are over the dropped documents. Every arm runs
`--rounds` times (3 unless told), the order rotated each round so no arm
always goes first; documents/s is the median, and the ratios are taken
round by round. The rule, fixed before the run (RULE below): every arm must
reach the F1 target (0.98), and synthloom "is faster" than a library only
when its F1 is at least the library's and it is faster in every round;
"slower" when slower in every round; otherwise "no difference shown". The
machine's load average is printed beside the figures.

    python benchmarks/near_dedup.py [--docs 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import time
from pathlib import Path

import numpy as np

from synthloom.curate.dedup import minhash_dedup
from synthloom.records import read_rows

DATA = Path(os.environ.get("SYNTHLOOM_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
if not DATA.exists():
    DATA = Path("/work/shared/data")

NUM_PERM, BANDS, THRESHOLD, NGRAM, SEED = 128, 16, 0.7, 3, 1
F1_TARGET = 0.98
RULE = (f"rule (fixed before the run): every arm must reach F1 >= {F1_TARGET}; synthloom is faster than a library "
        "when its F1 >= the library's and it is faster in every round (order rotated each round); slower when "
        "slower in every round; otherwise no difference shown")
_WORD = re.compile(r"\w+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def source_texts() -> list[list[str]]:
    sms = [row["text"] for row in read_rows(DATA / "sms_spam" / "SMSSpamCollection", "tsv", ["label", "text"])]
    banking = [row["text"] for part in ("train", "test") for row in read_rows(DATA / "banking77" / f"{part}.csv")]
    news = [f"{r['title']}. {r['description']}" for r in read_rows(DATA / "ag_news" / "test.csv", "csv", ["label", "title", "description"])]
    imdb = [row["text"] for row in read_rows(DATA / "imdb" / "imdb_small.csv")]
    rte = [row[k] for part in ("train", "dev", "test") for row in read_rows(DATA / "rte" / f"{part}.tsv") for k in ("sentence1", "sentence2")]
    return [sms, banking, news, imdb, rte]


def chunks() -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for texts in source_texts():
        pending: list[str] = []
        for text in texts:
            for sentence in _SENTENCE.split(" ".join(text.replace("\\", " ").split())):
                words = sentence.split()
                while len(words) > 40:
                    pending, words = pending + words[:40], words[40:]
                    if len(pending) >= 10:
                        out.append(" ".join(pending[:40]))
                        pending = pending[40:]
                pending += words
                if len(pending) >= 10:
                    out.append(" ".join(pending[:40]))
                    pending = pending[40:]
    unique = []
    for c in out:
        key = " ".join(_WORD.findall(c.lower()))
        if key not in seen:
            seen.add(key)
            unique.append(c)
    return unique


def edit(text: str, rng: random.Random, vocabulary: list[str]) -> str:
    words = text.split()
    for _ in range(max(1, round(len(words) * rng.uniform(0.01, 0.04)))):
        op, i = rng.random(), rng.randrange(len(words))
        if op < 0.25 and len(words) > 1:
            del words[i]
        elif op < 0.5:
            words.insert(i, rng.choice(vocabulary))
        elif op < 0.75:
            words[i] = rng.choice(vocabulary)
        elif i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def build(docs: int, planted_share: float = 0.1) -> tuple[list[str], np.ndarray]:
    """The documents in order, and the planted cluster of each (-1: none)."""
    rng = random.Random(0)
    pool = chunks()
    vocabulary = sorted({w for c in pool[:20000] for w in c.split()})
    n_base = docs - int(docs * planted_share)
    used_pairs: set[tuple[int, int]] = set()
    base: list[str] = []
    while len(base) < n_base:
        parts = rng.sample(range(len(pool)), 4)
        pairs = {(min(a, b), max(a, b)) for a in parts for b in parts if a != b}
        if pairs & used_pairs:
            continue
        used_pairs |= pairs
        base.append(" ".join(pool[p] for p in parts))
    documents = [(text, i) for i, text in enumerate(base)]
    originals = [rng.randrange(n_base) for _ in range(docs - n_base)]
    documents += [(edit(base[o], rng, vocabulary), o) for o in originals]
    rng.shuffle(documents)
    planted = set(originals)
    texts = [t for t, _ in documents]
    cluster = np.array([o if o in planted else -1 for _, o in documents])
    return texts, cluster


def truth_drops(cluster: np.ndarray) -> np.ndarray:
    drop = np.zeros(len(cluster), dtype=bool)
    seen: set[int] = set()
    for i, c in enumerate(cluster.tolist()):
        if c >= 0:
            drop[i] = c in seen
            seen.add(c)
    return drop


def shingle_sets(texts: list[str]) -> list[list[str]]:
    out = []
    for text in texts:
        w = _WORD.findall(text.lower())
        out.append([" ".join(w[i : i + NGRAM]) for i in range(max(1, len(w) - NGRAM + 1))])
    return out


def clusters_from_candidates(candidates: list[tuple[int, int]], digests: np.ndarray) -> np.ndarray:
    """Drops from candidate pairs: verify the estimated Jaccard, join clusters, keep each first member."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(digests)
    pairs = np.unique(np.sort(np.asarray(candidates, dtype=np.int64).reshape(-1, 2), axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    estimate = (digests[pairs[:, 0]] == digests[pairs[:, 1]]).mean(axis=1) if len(pairs) else np.zeros(0)
    pairs = pairs[estimate >= THRESHOLD]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    first = np.full(component.max() + 1, n)
    np.minimum.at(first, component, np.arange(n))
    return first[component] != np.arange(n)


def run_synthloom(texts: list[str]) -> np.ndarray:
    return ~minhash_dedup(texts, NUM_PERM, BANDS, THRESHOLD, NGRAM, "word", SEED).keep


def run_rensa(texts: list[str]) -> np.ndarray:
    import rensa

    minhashes = rensa.RMinHash.from_token_sets(shingle_sets(texts), NUM_PERM, SEED)
    lsh = rensa.RMinHashLSH(THRESHOLD, NUM_PERM, BANDS)
    lsh.insert_many(minhashes)
    candidates = [(i, j) for i, found in enumerate(lsh.query_all(minhashes)) for j in found if j != i]
    digests = np.array([m.digest() for m in minhashes], dtype=np.uint32)
    return clusters_from_candidates(candidates, digests)


def run_datasketch(texts: list[str]) -> np.ndarray:
    from datasketch import MinHash, MinHashLSH

    sets = [[s.encode("utf-8") for s in shingles] for shingles in shingle_sets(texts)]
    minhashes = MinHash.bulk(sets, num_perm=NUM_PERM, seed=SEED)
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, params=(BANDS, NUM_PERM // BANDS))
    with lsh.insertion_session() as session:
        for i, m in enumerate(minhashes):
            session.insert(i, m, check_duplication=False)
    candidates = [(i, j) for i, m in enumerate(minhashes) for j in lsh.query(m) if j != i]
    digests = np.array([m.hashvalues for m in minhashes], dtype=np.uint64)
    return clusters_from_candidates(candidates, digests)


def scores(drop: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    tp = int((drop & truth).sum())
    precision = tp / max(1, int(drop.sum()))
    recall = tp / max(1, int(truth.sum()))
    return precision, recall, 2 * precision * recall / max(1e-12, precision + recall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-datasketch", action="store_true")
    args = parser.parse_args()
    texts, cluster = build(args.docs)
    truth = truth_drops(cluster)
    words = sum(len(t.split()) for t in texts) / len(texts)
    print(f"{len(texts)} documents ({words:.0f} words on average), {int((cluster >= 0).sum())} in planted clusters, "
          f"{int(truth.sum())} to drop; num_perm {NUM_PERM}, {BANDS} bands x {NUM_PERM // BANDS} rows, "
          f"word {NGRAM}-grams, Jaccard >= {THRESHOLD}")
    print(RULE, flush=True)
    arms = {"synthloom": run_synthloom, "rensa": run_rensa}
    if not args.skip_datasketch:
        arms["datasketch"] = run_datasketch
    for fn in arms.values():  # imports and first-call set-up are not part of the measure
        fn(texts[:2000])
    names = list(arms)
    times: dict[str, list[float]] = {name: [] for name in arms}
    drops: dict[str, np.ndarray] = {}
    loads = [os.getloadavg()[0]]
    for round_ in range(args.rounds):
        k = round_ % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            drops[name] = arms[name](texts)
            times[name].append(time.perf_counter() - t0)
        loads.append(os.getloadavg()[0])
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {times[n][-1]:.1f} s" for n in names)
              + f" (load average {loads[-1]:.1f})", flush=True)
    rates = {name: len(texts) / statistics.median(t) for name, t in times.items()}
    fastest_other = max(rate for name, rate in rates.items() if name != "synthloom")
    f1 = {name: scores(drops[name], truth)[2] for name in arms}
    print(f"\nload average (1 min) during the run: {min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} cores")
    print()
    print("| arm | precision | recall | F1 | documents/s (median of rounds) | vs fastest library | "
          "synthloom / arm, per round | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for name in arms:
        p, r, f = scores(drops[name], truth)
        if name == "synthloom":
            ratio, verdict = "", ""
        else:
            per_round = [b / a for a, b in zip(times["synthloom"], times[name])]  # > 1: synthloom faster
            ratio = " / ".join(f"{x:.2f}" for x in per_round)
            if f1["synthloom"] < F1_TARGET or f < F1_TARGET:
                verdict = "F1 target missed"
            elif all(x > 1 for x in per_round) and f1["synthloom"] >= f:
                verdict = "synthloom faster at equal or better F1"
            elif all(x > 1 for x in per_round):
                verdict = f"synthloom faster every round, but at lower F1 ({f1['synthloom'] - f:+.4f}): not a win by the rule"
            elif all(x < 1 for x in per_round):
                verdict = "synthloom slower"
            else:
                verdict = "no difference shown"
        print(f"| {name} | {p:.4f} | {r:.4f} | {f:.4f} | {rates[name]:,.0f} | {rates[name] / fastest_other:.2f}x | "
              f"{ratio} | {verdict} |")


if __name__ == "__main__":
    main()
