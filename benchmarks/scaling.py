"""Scaling the Ray executor: 1 -> 2 -> 4 workers against as many servers.

Weak scaling, so that the ideal is known and the machine's two cores do not
decide the result: each worker gets the same work (`--per-worker` requests)
and its own server, and the recipe's concurrency grows with the workers
(`--concurrency` in flight per worker). Each server answers after a fixed
latency, so with k workers the ideal rate is k * concurrency / latency and
the ideal time is the same for every k. What keeps a run from the ideal is
synthloom's own overhead (planning, shipping shards, the answer store, the
client's CPU per request) plus Ray's; efficiency per doubling is
rate(2k) / (2 * rate(k)).

The rate is measured at the servers, from the first request any of them saw
to the last (the steady state of generation), and also end to end over the
generation phase (which adds the fixed cost of starting the shard tasks).
Runs inside a loopback-only local cluster of a head and 4 worker nodes
(separate processes, private network and PID namespaces).

    python benchmarks/scaling.py [--workers 1 2 4] [--per-worker 1000] [--concurrency 16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from soak import Server, synthloom

RECIPE = """\
name: scaling
model:
  backend: openai
  base_url: {urls}
  model: fake
  concurrency: {concurrency}
task:
  description: short notes
  labels: [a, b, c, d]
conditions:
  topic: [money, food, travel, work, family, sport, music, weather]
generation:
  records: {records}
  seed: 2
curation: []
evaluation: []
"""


def one_run(work: Path, k: int, args: argparse.Namespace, round_: int) -> dict:
    servers = [Server(args.latency) for _ in range(k)]
    try:
        folder = work / f"k{k}-r{round_}"
        folder.mkdir()
        recipe = folder / "recipe.yaml"
        recipe.write_text(RECIPE.format(urls=json.dumps([s.url for s in servers]),
                                        concurrency=k * args.concurrency, records=k * args.per_worker))
        done = subprocess.run(synthloom("run", str(recipe), "--out", str(folder / "out"), "--no-progress",
                                        "--executor", "ray", "--workers", str(k)), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"k={k}: {done.stderr[-2000:]}")
        stats = [s.stats() for s in servers]
    finally:
        for s in servers:
            s.stop()
    manifest = json.loads((folder / "out" / "manifest.json").read_text())
    answered = sum(s["answered"] for s in stats)
    span = max(s["last_arrival"] for s in stats) - min(s["first_arrival"] for s in stats) + args.latency
    return {
        "steady": answered / span,
        "end_to_end": answered / manifest["timings"]["generate_s"],
        "per_server": [s["answered"] for s in stats],
        "shards": manifest["executor"]["shards"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--per-worker", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not os.environ.get("SYNTHLOOM_LOCAL_CLUSTER"):
        from synthloom.execute.local_cluster import can_isolate, isolated_command

        reason = can_isolate()
        if reason:
            sys.exit(f"error: a loopback-only Ray cluster cannot be made here: {reason}")
        sys.exit(subprocess.run(isolated_command([sys.executable, *sys.argv], workers=max(args.workers))).returncode)

    results: dict[int, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            order = args.workers if round_ % 2 == 0 else list(reversed(args.workers))
            for k in order:
                r = one_run(Path(tmp), k, args, round_)
                results.setdefault(k, []).append(r)
                print(f"  round {round_ + 1} k={k}: {r['steady']:.0f} req/s steady, {r['end_to_end']:.0f} end to end, "
                      f"per server {r['per_server']}", file=sys.stderr)

    print(f"\nScaling the Ray executor: {args.per_worker} requests and {args.concurrency} in flight per worker, "
          f"one server per worker at {args.latency * 1000:.0f} ms latency; median of {args.rounds} alternating rounds")
    print(f"{'workers':>7} {'ideal req/s':>12} {'steady req/s':>13} {'vs ideal':>9} {'per doubling':>13} "
          f"{'end-to-end req/s':>17} {'per doubling':>13}")
    previous = None
    for k in args.workers:
        steady = statistics.median(r["steady"] for r in results[k])
        e2e = statistics.median(r["end_to_end"] for r in results[k])
        ideal = k * args.concurrency / args.latency
        doubling = "" if previous is None else f"{steady / (2 * previous[0]):.2f}"
        doubling_e2e = "" if previous is None else f"{e2e / (2 * previous[1]):.2f}"
        print(f"{k:>7} {ideal:12.0f} {steady:13.0f} {steady / ideal:9.2f} {doubling:>13} {e2e:17.0f} {doubling_e2e:>13}")
        previous = (steady, e2e)


if __name__ == "__main__":
    main()
