"""The race: throughput through a loopback OpenAI-compatible server, synthloom against its peers.

The same 2,000 distinct chat requests (the prompts of one synthloom recipe)
go through each client, each in its own process, alternating, round after
round, against one scripted server on 127.0.0.1 that answers after 0.2 s:

- synthloom:  a whole run of the recipe (cache, records, files, report): the
               same work as the peers, which generate and save
- synthloom+div: the same run with the diversity evaluation of the 2,000
               records (lexical measures, self-BLEU, per label) on top
- aiohttp:    a bare aiohttp client with a semaphore (the reference)
- openai:     the openai SDK's AsyncOpenAI with a semaphore, on its default httpx transport
- openai-aiohttp: the same on the aiohttp transport the SDK documents for
               high concurrency (`openai[aiohttp]`, `http_client=DefaultAioHttpClient()`)
- distilabel: distilabel the documented way: a Pipeline, LoadDataFromDicts >>
               TextGeneration, OpenAILLM with its own retries (max_retries=6),
               input_batch_size = the concurrency (see benchmarks/peers.py)
- curator:    bespokelabs curator's online OpenAI processor, concurrency capped, rate limits off

The peers run from their own virtualenvs (.peers/NAME, made here from PyPI
on first use). Three mixes of server behaviour: clean; 5% 429 + 5% 500; 2%
truncated JSON bodies with status 200. The reference clients retry up to 6
times; the frameworks use their own retries. The ceiling is concurrency /
latency. Reports requests/s, client CPU per request and peak memory, as
ratios to the bare aiohttp client (these machines are shared and noisy, so
only ratios from one run side by side mean much), and records lost.

Everything runs in a private network namespace whose only device is
loopback (when `unshare` is allowed, e.g. as root): whatever a peer tries to
send elsewhere (telemetry, hub look-ups) cannot leave the machine.

    python benchmarks/throughput.py [--requests 2000] [--concurrency 64 256] [--rounds 3]
        [--mixes clean faults truncated] [--arms aiohttp openai synthloom synthloom+div distilabel curator]

The verdicts follow RULES below, written before the run and printed at its
start: the arms, the order (rotated each round, so no arm always runs first
or last), the rounds, and what "met" and "ahead" mean.

synthloom's modules are compiled to bytecode first, as an installed package
has them: where PYTHONDONTWRITEBYTECODE is set, every run would otherwise
compile some seventy modules inside the timed window.
"""

from __future__ import annotations

import argparse
import compileall
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
FAKE_SERVER = HERE.parent / "tests" / "fake_server.py"  # the scripted, fault-injecting server the tests use
PEERS_DIR = HERE.parent / ".peers"
PEERS = {
    "distilabel": ["distilabel[openai]==1.5.3", "requests"],
    "curator": ["bespokelabs-curator==0.1.31"],
}
MIXES = {
    "clean": [],
    "faults": ["--rate-429", "0.05", "--rate-500", "0.05"],
    "truncated": ["--rate-truncated", "0.02"],
}
MIX_TITLES = {"clean": "no faults", "faults": "5% 429 + 5% 500", "truncated": "2% truncated JSON bodies (status 200)"}

RECIPE = """\
name: throughput
model:
  backend: openai
  base_url: {url}
  model: fake
  concurrency: {concurrency}
  max_attempts: 6     # the reference clients' budget too
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
evaluation: {evaluation}
"""
DIVERSITY = """
  - stage: diversity
    embeddings: false   # lexical measures: encoding 2,000 texts with MiniLM is not the client's cost
"""


RULES = """\
Rules, fixed before the run:
- arms: every --arms entry, each in its own process; rounds: --rounds (3 unless told);
  in round r the arms run in --arms order rotated by r (round 0 from the first arm,
  round 1 from the second, ...), so no arm always runs first or last.
- a figure is the median over rounds; ratios are to the bare aiohttp client of the same mix
  and concurrency.
- clean mix, "met": synthloom's median rate >= 0.90 x the bare client's, and its median CPU
  per request <= 2.0 x the bare client's.
- fault mixes, "met": synthloom's median wall time <= 1.20 x the bare client's, and no record
  lost in any round.
- synthloom "ahead of" a peer: synthloom's rate is above the peer's in every round (round by
  round, the same round's runs); "behind" when below in every round; otherwise "mixed".
"""


def run_order(arms: list[str], round_: int) -> list[str]:
    """The arms of one round: --arms rotated by the round number."""
    k = round_ % len(arms)
    return arms[k:] + arms[:k]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peer_python(name: str) -> Path:
    """The python of the peer's own virtualenv, made from PyPI the first time."""
    venv = PEERS_DIR / name
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    wanted = " ".join(PEERS[name])
    if not stamp.exists() or stamp.read_text() != wanted:
        print(f"making the {name} virtualenv in {venv} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEERS[name]], check=True)
        stamp.write_text(wanted)
    return python


def start_server(latency: float, extra: list[str] = ()) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(FAKE_SERVER), "--port", str(port), "--latency", str(latency), *extra],
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
    recipe_path.write_text(RECIPE.format(url=url, concurrency=concurrency, seeds=seeds, records=records, evaluation="[]"))
    with_diversity = work / f"recipe-{concurrency}-div.yaml"
    with_diversity.write_text(RECIPE.format(url=url, concurrency=concurrency, seeds=seeds, records=records, evaluation=DIVERSITY))
    recipe = synthloom.load_recipe(recipe_path)
    plans = Generator(recipe, load_support(recipe)).plan()
    bodies = [chat_body(p.request, "fake", "none") for p in plans]
    assert len({json.dumps(b, sort_keys=True) for b in bodies}) == len(bodies), "prompts must be distinct"
    bodies_path = work / "bodies.json"
    bodies_path.write_text(json.dumps(bodies))
    return recipe_path, bodies_path


def run_arm(arm: str, url: str, concurrency: int, bodies: Path, recipe: Path, out: Path) -> dict:
    common = ["--url", url, "--concurrency", str(concurrency), "--bodies", str(bodies)]
    if arm in PEERS:
        cmd = [str(PEERS_DIR / arm / "bin" / "python"), str(HERE / "peers.py"), arm, *common]
    elif arm == "synthloom+div":
        div = recipe.with_name(recipe.stem + "-div.yaml")
        cmd = [sys.executable, str(HERE / "clients.py"), "synthloom", *common, "--recipe", str(div), "--out", str(out)]
    else:
        cmd = [sys.executable, str(HERE / "clients.py"), arm, *common, "--recipe", str(recipe), "--out", str(out)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=out.parent, timeout=1800)
    if done.returncode != 0 and arm in PEERS:
        # The peer itself failed (the harness did not): every record of the run is lost, and the
        # race goes on. Its last error line is kept for the table.
        last = [line for line in done.stderr.strip().splitlines() if line.strip()][-1:] or ["?"]
        print(f"  {arm} failed (exit {done.returncode}): {last[0].strip()[:200]}", file=sys.stderr)
        return {"arm": arm, "wall": time.perf_counter() - t0, "cpu": float("nan"), "done": 0, "rss_mb": 0.0,
                "failed": last[0].strip()[:200]}
    if done.returncode != 0:
        raise RuntimeError(f"arm {arm} failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def isolate(argv: list[str]) -> int | None:
    """Run this script again in private network and PID namespaces; None when that is not allowed here."""
    from synthloom.execute.local_cluster import can_isolate, namespaced

    reason = can_isolate()
    if reason:
        print(f"note: running without a private network namespace ({reason})", file=sys.stderr)
        return None
    env = dict(os.environ, SYNTHLOOM_BENCH_ISOLATED="1")
    return subprocess.run(namespaced([sys.executable, *argv]), env=env).returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mixes", nargs="+", default=list(MIXES), choices=list(MIXES))
    parser.add_argument("--arms", nargs="+",
                        default=["aiohttp", "openai", "openai-aiohttp", "synthloom", "synthloom+div", *PEERS])
    args = parser.parse_args()
    compileall.compile_dir(str(HERE.parent / "src" / "synthloom"), quiet=1)

    if not os.environ.get("SYNTHLOOM_BENCH_ISOLATED"):
        for arm in args.arms:
            if arm in PEERS:
                peer_python(arm)  # needs PyPI: before the network goes away
        code = isolate(sys.argv)
        if code is not None:
            sys.exit(code)
        dropped = [a for a in args.arms if a in PEERS]
        if dropped:
            print(f"note: leaving out {', '.join(dropped)}: only run inside a loopback-only namespace", file=sys.stderr)
        args.arms = [a for a in args.arms if a not in PEERS]
    else:
        from synthloom.execute.local_cluster import loopback_up

        loopback_up()

    print(RULES, flush=True)
    print(f"load average at the start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    results: dict[tuple[str, str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for mix in args.mixes:
            server, url = start_server(args.latency, MIXES[mix])
            try:
                for concurrency in args.concurrency:
                    recipe, bodies = write_inputs(work, url, args.requests, concurrency)
                    for round_ in range(args.rounds):
                        for arm in run_order(args.arms, round_):
                            out = work / f"run-{mix}-{arm}-{concurrency}-{round_}"
                            r = run_arm(arm, url, concurrency, bodies, recipe, out)
                            results.setdefault((mix, arm, concurrency), []).append(r)
                            print(f"  {mix} c={concurrency} round {round_ + 1} {arm:13s} {r['done'] / r['wall']:7.0f} req/s "
                                  f"{1000 * r['cpu'] / max(1, r['done']):.2f} ms CPU/req, {args.requests - r['done']} lost",
                                  file=sys.stderr)
                            time.sleep(0.5)
            finally:
                server.terminate()
                server.wait()

    print(f"\nThe race: {args.requests} distinct requests, {args.latency * 1000:.0f} ms latency, "
          f"median of {args.rounds} alternating rounds, ratios to the bare aiohttp client; load average at the end "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for mix in args.mixes:
        print(f"\n{MIX_TITLES[mix]}")
        print(f"{'concurrency':>11} {'client':>14} {'req/s':>8} {'ceiling':>8} {'CPU ms/req':>11} "
              f"{'req/s vs aiohttp':>17} {'CPU vs aiohttp':>15} {'peak RSS MB':>12} {'lost':>6}")
        for concurrency in args.concurrency:
            base = results[(mix, "aiohttp", concurrency)]
            base_rate = statistics.median(r["done"] / r["wall"] for r in base)
            base_cpu = statistics.median(r["cpu"] / max(1, r["done"]) for r in base)
            for arm in args.arms:
                rows = results[(mix, arm, concurrency)]
                rate = statistics.median(r["done"] / r["wall"] for r in rows)
                cpu = statistics.median(r["cpu"] / max(1, r["done"]) for r in rows)
                rss = max(r["rss_mb"] for r in rows)
                lost = max(args.requests - r["done"] for r in rows)
                print(f"{concurrency:>11} {arm:>14} {rate:8.0f} {concurrency / args.latency:8.0f} {1000 * cpu:11.2f} "
                      f"{rate / base_rate:17.2f} {cpu / base_cpu:15.2f} {rss:12.0f} {lost:6d}")
    print("\nVerdicts (RULES above)")
    for mix in args.mixes:
        for concurrency in args.concurrency:
            for line in verdicts(results, mix, concurrency, args.arms, args.requests):
                print(f"{mix} c={concurrency}: {line}")


def verdicts(results, mix: str, concurrency: int, arms: list[str], requests: int) -> list[str]:
    """The goal and the head-to-head lines for one mix and concurrency, by RULES."""
    if "synthloom" not in arms or "aiohttp" not in arms:
        return []
    ours, base = results[(mix, "synthloom", concurrency)], results[(mix, "aiohttp", concurrency)]
    lines = []
    if mix == "clean":
        rate = statistics.median(r["done"] / r["wall"] for r in ours) / statistics.median(r["done"] / r["wall"] for r in base)
        cpu = (statistics.median(r["cpu"] / max(1, r["done"]) for r in ours)
               / statistics.median(r["cpu"] / max(1, r["done"]) for r in base))
        met = rate >= 0.90 and cpu <= 2.0
        lines.append(f"goal (rate >= 0.90x, CPU <= 2.0x the bare client): rate {rate:.2f}x, CPU {cpu:.2f}x: "
                     f"{'met' if met else 'NOT met'}")
    else:
        wall = statistics.median(r["wall"] for r in ours) / statistics.median(r["wall"] for r in base)
        lost = max(requests - r["done"] for r in ours)
        met = wall <= 1.20 and lost == 0
        lines.append(f"goal (wall time <= 1.20x the bare client, nothing lost): {wall:.2f}x, {lost} lost at most: "
                     f"{'met' if met else 'NOT met'}")
    for arm in arms:
        if arm in ("synthloom", "synthloom+div", "aiohttp"):
            continue
        peer = results[(mix, arm, concurrency)]
        above = [a["done"] / a["wall"] > b["done"] / b["wall"] for a, b in zip(ours, peer)]
        word = "ahead of" if all(above) else "behind" if not any(above) else "mixed against"
        lines.append(f"synthloom {word} {arm} ({sum(above)} of {len(above)} rounds faster)")
    return lines


if __name__ == "__main__":
    main()
