"""Throughput through an OpenAI-compatible loopback server with fixed latency.

The same 2,000 distinct chat requests (the prompts of one synthloom recipe)
go through three clients, each in its own process, alternating, against one
scripted server on 127.0.0.1 that answers after 0.2 s:

- synthloom: a whole run of the recipe (cache, records, curation, files)
- aiohttp:   a bare aiohttp client with a semaphore (the reference)
- openai:    the openai SDK's AsyncOpenAI client with a semaphore

The ceiling is concurrency / latency. Reports requests/s and client CPU per
request, as ratios to the bare aiohttp client (these machines are noisy, so
only ratios from one run side by side mean much).

    python benchmarks/throughput.py [--requests 2000] [--concurrency 64 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

RECIPE = """\
name: throughput
model:
  backend: openai
  base_url: {url}
  model: fake
  concurrency: {concurrency}
task:
  description: short notes
  labels: [a, b, c, d]
conditions:
  topic: [money, food, travel, work, family, sport, music, weather]
  tone: [calm, urgent, friendly]
demonstrations:
  path: {seeds}
  k: 2
generation:
  records: {records}
  max_tokens: 64
  seed: 1
evaluation:
  - stage: diversity
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "synthloom.llm.fake_server", "--port", str(port), "--latency", str(latency)],
        stdout=subprocess.PIPE, text=True,
    )
    proc.stdout.readline()  # "listening on ..."
    return proc, f"http://127.0.0.1:{port}/v1"


def write_inputs(work: Path, url: str, records: int, concurrency: int) -> tuple[Path, Path]:
    import synthloom
    from synthloom.generate import Generator, load_support
    from synthloom.llm.wire import chat_body

    seeds = work / "seeds.jsonl"
    seeds.write_text("".join(
        json.dumps({"text": f"seed note {i} about {lab}", "label": lab}) + "\n" for lab in "abcd" for i in range(5)
    ))
    recipe_path = work / f"recipe-{concurrency}.yaml"
    recipe_path.write_text(RECIPE.format(url=url, concurrency=concurrency, seeds=seeds, records=records))
    recipe = synthloom.load_recipe(recipe_path)
    plans = Generator(recipe, load_support(recipe)).plan()
    bodies = [chat_body(p.request, "fake", "none") for p in plans]
    assert len({json.dumps(b, sort_keys=True) for b in bodies}) == len(bodies), "prompts must be distinct"
    bodies_path = work / "bodies.json"
    bodies_path.write_text(json.dumps(bodies))
    return recipe_path, bodies_path


def run_arm(arm: str, url: str, concurrency: int, bodies: Path, recipe: Path, out: Path) -> dict:
    cmd = [sys.executable, str(HERE / "clients.py"), arm, "--url", url, "--concurrency", str(concurrency),
           "--bodies", str(bodies), "--recipe", str(recipe), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--arms", nargs="+", default=["aiohttp", "openai", "synthloom"])
    args = parser.parse_args()

    server, url = start_server(args.latency)
    results: dict[tuple[str, int], list[dict]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for concurrency in args.concurrency:
                recipe, bodies = write_inputs(work, url, args.requests, concurrency)
                for round_ in range(args.rounds):
                    for arm in args.arms:
                        out = work / f"run-{arm}-{concurrency}-{round_}"
                        r = run_arm(arm, url, concurrency, bodies, recipe, out)
                        assert r["done"] == args.requests, r
                        results.setdefault((arm, concurrency), []).append(r)
                        print(f"  c={concurrency} round {round_ + 1} {arm:9s} {r['done'] / r['wall']:7.0f} req/s "
                              f"{1000 * r['cpu'] / r['done']:.2f} ms CPU/req", file=sys.stderr)
                        time.sleep(0.5)
    finally:
        server.terminate()

    print(f"\nThroughput, {args.requests} distinct requests, {args.latency * 1000:.0f} ms latency, "
          f"median of {args.rounds} alternating rounds")
    print(f"{'concurrency':>11} {'client':>10} {'req/s':>8} {'ceiling':>8} {'CPU ms/req':>11} "
          f"{'req/s vs aiohttp':>17} {'CPU vs aiohttp':>15} {'peak RSS MB':>12}")
    for concurrency in args.concurrency:
        base = results[("aiohttp", concurrency)]
        base_rate = statistics.median(r["done"] / r["wall"] for r in base)
        base_cpu = statistics.median(r["cpu"] / r["done"] for r in base)
        for arm in args.arms:
            rows = results[(arm, concurrency)]
            rate = statistics.median(r["done"] / r["wall"] for r in rows)
            cpu = statistics.median(r["cpu"] / r["done"] for r in rows)
            rss = max(r["rss_mb"] for r in rows)
            print(f"{concurrency:>11} {arm:>10} {rate:8.0f} {concurrency / args.latency:8.0f} {1000 * cpu:11.2f} "
                  f"{rate / base_rate:17.2f} {cpu / base_cpu:15.2f} {rss:12.0f}")


if __name__ == "__main__":
    main()
