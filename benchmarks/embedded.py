"""Embedded model: tokens/s through synthloom against llama-cpp-python called directly.

The same chat requests (the first prompts of examples/sms_spam.yaml, with their
seeds) go through two arms, alternating, each with its own loaded model:

- direct:    `Llama.create_chat_completion` in a loop
- synthloom: `LlamaCppBackend` under the `Scheduler` (no cache), as a run uses it

Both decode the same tokens (same seeds), so the ratio is pure overhead.

    python benchmarks/embedded.py [--prompts 12] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def requests(n: int):
    import synthloom
    from synthloom.generate import Generator, load_support

    recipe = synthloom.load_recipe(ROOT / "examples" / "sms_spam.yaml")
    return [p.request for p in Generator(recipe, load_support(recipe)).plan(limit=n)]


def direct_arm(llama, reqs) -> tuple[int, float]:
    tokens, start = 0, time.perf_counter()
    for r in reqs:
        answer = llama.create_chat_completion(
            messages=list(r.messages), temperature=r.temperature, max_tokens=r.max_tokens,
            seed=r.seed, stop=list(r.stop) if r.stop else [],
        )
        tokens += answer["usage"]["completion_tokens"]
    return tokens, time.perf_counter() - start


def synthloom_arm(backend, reqs) -> tuple[int, float]:
    from synthloom.llm import Scheduler

    async def main():
        scheduler = Scheduler(backend)
        outcomes = await asyncio.gather(*(scheduler.complete(r) for r in reqs))
        return sum(o.completion.usage.completion_tokens for o in outcomes)

    start = time.perf_counter()
    tokens = asyncio.run(main())
    return tokens, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from llama_cpp import Llama

    from synthloom.llm import LlamaCppBackend, LlamaCppConfig, bundled_model_path

    reqs = requests(args.prompts)
    backend = LlamaCppBackend(LlamaCppConfig())
    backend.warm_up()
    llama = Llama(model_path=str(bundled_model_path()), n_ctx=2048, n_threads=backend._model(False).n_threads, verbose=False)
    rates: dict[str, list[float]] = {"direct": [], "synthloom": []}
    for round_ in range(args.rounds):
        for name, arm in (("direct", lambda: direct_arm(llama, reqs)), ("synthloom", lambda: synthloom_arm(backend, reqs))):
            tokens, seconds = arm()
            rates[name].append(tokens / seconds)
            print(f"  round {round_ + 1} {name:9s} {tokens} tokens in {seconds:.2f} s = {tokens / seconds:.1f} tokens/s", file=sys.stderr)
    base = statistics.median(rates["direct"])
    print(f"\nEmbedded SmolLM2-135M-Instruct, {args.prompts} prompts, median of {args.rounds} alternating rounds")
    print(f"{'arm':>10} {'tokens/s':>9} {'vs direct':>10}")
    for name in ("direct", "synthloom"):
        rate = statistics.median(rates[name])
        print(f"{name:>10} {rate:9.1f} {rate / base:10.2f}")


if __name__ == "__main__":
    main()
