"""The diversity suite on 10,000 real texts: seconds per measure, embeddings excluded.

Texts: the first 10,000 of BANKING77's training split. Embeddings (the
bundled MiniLM) are computed once before timing and kept in
benchmarks/results/diversity_embeddings.npy. Goal: every measure together
under 10 s on this machine. Times are CPU seconds of the process (wall
seconds are printed too): the machine is shared, and under load wall time
measures the neighbours more than the code.

Where synthloom has its own implementation, the well-kept reference runs
side by side in the same process, alternating, and the ratio is printed:

- self-BLEU: NLTK's `sentence_bleu` of each sampled text against all the
  others (same values; NLTK is timed on a smaller sample and scaled per text);
- the Vendi score: the `vendi-score` package's dual form (`score_dual`);
- mean pairwise cosine: scikit-learn's `cosine_similarity` matrix, on a
  2,000-text subset (the full matrix would need 400 MB) and scaled by n^2.

    SYNTHLOOM_DATA=/path/to/shared/data python benchmarks/diversity_speed.py
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from synthloom.embed import Embedder
from synthloom.evaluate import load_benchmark
from synthloom.evaluate.diversity import (
    compression_ratio,
    condition_coverage,
    distinct_ns,
    mean_pairwise_cosine,
    ngram_entropy,
    self_bleu,
    tokenize,
    vendi_score,
    vocabulary,
)

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("SYNTHLOOM_DATA") or ROOT.parent / "shared" / "data")
CACHE = ROOT / "benchmarks" / "results" / "diversity_embeddings.npy"


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """CPU seconds of this process: on a shared, busy machine wall time mostly measures the neighbours."""
    t0 = time.process_time()
    value = fn()
    return time.process_time() - t0, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--self-bleu-sample", type=int, default=500)
    parser.add_argument("--nltk-sample", type=int, default=10)
    parser.add_argument("--embeddings", choices=["minilm", "random"], default="minilm",
                        help="random: unit vectors of MiniLM's shape (384), for when embedding 10,000 texts is too slow; "
                             "the timed measures depend on the shape only")
    args = parser.parse_args()
    records = load_benchmark("banking77", "train", DATA / "banking77")[: args.texts]
    texts = [r.text() for r in records]
    if CACHE.exists() and np.load(CACHE).shape[0] == len(texts):
        emb = np.load(CACHE)
    elif args.embeddings == "random":
        emb = np.random.default_rng(0).normal(size=(len(texts), 384)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    else:
        emb = Embedder.shared().encode(texts, progress=True)
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        np.save(CACHE, emb)
    conditions = [{"label": r.label or ""} for r in records]

    rows: list[tuple[str, float, float]] = []
    total = wall_total = 0.0

    def measure(name: str, fn: Callable[[], object]) -> object:
        nonlocal total, wall_total
        w0 = time.perf_counter()
        seconds, value = timed(fn)
        wall = time.perf_counter() - w0
        total += seconds
        wall_total += wall
        rows.append((name, seconds, wall))
        return value

    tokens = measure("tokenize", lambda: [tokenize(t) for t in texts])
    measure("vocabulary size", lambda: vocabulary(tokens))
    measure("distinct-1/2/3", lambda: distinct_ns(tokens, [1, 2, 3]))
    measure("n-gram entropy 1/2/3", lambda: [ngram_entropy(tokens, n) for n in (1, 2, 3)])
    measure("compression ratio", lambda: compression_ratio(texts))
    mine_bleu = measure(f"self-BLEU ({args.self_bleu_sample} sampled against all)", lambda: self_bleu(tokens, sample=args.self_bleu_sample))
    measure("mean pairwise cosine", lambda: mean_pairwise_cosine(emb))
    mine_vendi = measure("Vendi score (dual form)", lambda: vendi_score(emb))
    measure("condition coverage", lambda: condition_coverage(conditions))

    # references, side by side
    refs: list[tuple[str, float, float, str]] = []
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    smooth = SmoothingFunction().method1
    chosen = np.random.default_rng(0).choice(len(tokens), size=args.nltk_sample, replace=False)
    nltk_s, _ = timed(lambda: [sentence_bleu([t for j, t in enumerate(tokens) if j != i], tokens[i], smoothing_function=smooth) for i in chosen])
    ours_s = next(s for n, s, _ in rows if n.startswith("self-BLEU"))
    refs.append(("self-BLEU", ours_s, nltk_s * args.self_bleu_sample / args.nltk_sample,
                 f"NLTK timed on {args.nltk_sample} texts, scaled to {args.self_bleu_sample}"))
    from vendi_score import vendi

    ref_s, ref_vendi = timed(lambda: vendi.score_dual(emb))
    refs.append(("Vendi score", next(s for n, s, _ in rows if n.startswith("Vendi")), ref_s,
                 f"vendi-score score_dual; values {mine_vendi:.3f} vs {ref_vendi:.3f}"))
    from sklearn.metrics.pairwise import cosine_similarity

    sub = emb[:2000]
    sk_s, _ = timed(lambda: cosine_similarity(sub).mean())
    refs.append(("mean pairwise cosine", next(s for n, s, _ in rows if n.startswith("mean pairwise")),
                 sk_s * (len(emb) / len(sub)) ** 2, "scikit-learn cosine_similarity on 2,000, scaled by n^2"))

    source = "MiniLM" if args.embeddings == "minilm" or CACHE.exists() else "random unit vectors of MiniLM's shape"
    print(f"\ndiversity suite on {len(texts):,} real texts (BANKING77 train), embeddings ({source}) excluded; self-BLEU {mine_bleu:.3f}")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| measure | CPU seconds | wall seconds |")
    print("|---|---|---|")
    for name, seconds, wall in rows:
        print(f"| {name} | {seconds:.3f} | {wall:.3f} |")
    print(f"| **all together** | **{total:.2f}** | **{wall_total:.2f}** |")
    print(f"goal (all under 10 s of CPU): {'met' if total < 10 else 'MISSED'}")
    print("\n| measure | synthloom CPU s | reference CPU s | reference / synthloom | reference |")
    print("|---|---|---|---|---|")
    for name, ours, ref, note in refs:
        print(f"| {name} | {ours:.3f} | {ref:.3f} | {ref / ours:.1f}x | {note} |")


if __name__ == "__main__":
    main()
