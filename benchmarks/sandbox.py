"""Sandbox overhead: executions per second of a trivial program, sandboxed vs a bare subprocess.run.

The program is `print(sum(range(100)))`. Arms, run one execution at a time
and alternating (arm A, arm B, arm A, ... within each round), `--rounds`
rounds of `--runs` executions per arm:

- bare: `subprocess.run([sys.executable, "-c", code], capture_output=True)`;
- sandbox: `Sandbox().run(code)`, every wall this machine allows (the walls
  in force are printed);
- with `--breakdown`, the sandbox with one wall at a time replaced by its
  fallback (no network namespace; no Landlock), and a bare
  `subprocess.run([sys.executable, "-I", "-S", "-c", code])` (the
  interpreter flags the sandbox uses: no `site`, whose .pth files cost a
  third of a short program's start), to show where the time goes.

Then a batch of `--runs` executions with two at a time, once per round and
alternating: `Sandbox(parallel=2).run_many` vs a two-thread pool of bare
`subprocess.run` (reported beside the rule, not part of it).

Rule, written before the first run: the goal is met when the median over
the rounds of (sandbox executions/s / bare executions/s) is >= 0.8.

    python benchmarks/sandbox.py [--runs 40] [--rounds 3] [--breakdown]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import time

from synthloom.sandbox import Sandbox, probe

CODE = "print(sum(range(100)))"


def bare(*flags: str) -> None:
    done = subprocess.run([sys.executable, *flags, "-c", CODE], capture_output=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and done.stdout == b"4950\n"


def sandboxed(box: Sandbox):
    def run() -> None:
        result = box.run(CODE)
        assert result.status == "ok" and result.stdout == "4950\n", result
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--breakdown", action="store_true")
    args = parser.parse_args()
    walls = probe(sys.executable)
    print(f"walls in force: {walls}")
    boxes = {"sandbox": Sandbox(parallel=1)}
    if args.breakdown:
        boxes["sandbox, no netns"] = Sandbox(parallel=1, walls=dataclasses.replace(walls, network="audit_hook"))
        boxes["sandbox, no landlock"] = Sandbox(parallel=1, walls=dataclasses.replace(walls, files="audit_hook"))
    arms = {"bare subprocess.run": bare, **{name: sandboxed(box) for name, box in boxes.items()}}
    if args.breakdown:
        arms["bare subprocess.run, -I -S"] = lambda: bare("-I", "-S")
    for arm in arms.values():  # warm up: imports, the probe, cgroups
        arm()
    rates: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(args.rounds):
        seconds = {name: 0.0 for name in arms}
        for _ in range(args.runs):
            for name, arm in arms.items():
                started = time.perf_counter()
                arm()
                seconds[name] += time.perf_counter() - started
        for name in arms:
            rates[name].append(args.runs / seconds[name])
    base = rates["bare subprocess.run"]
    print(f"\n{args.rounds} rounds x {args.runs} executions per arm, one at a time, alternating\n")
    print("| arm | executions/s (median) | rounds | ms per execution | ratio to bare (median) |")
    print("|---|---|---|---|---|")
    for name, values in rates.items():
        ratios = [v / b for v, b in zip(values, base)]
        print(f"| {name} | {statistics.median(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} | "
              f"{1000 / statistics.median(values):.1f} | {statistics.median(ratios):.2f} |")
    ratio = statistics.median(v / b for v, b in zip(rates["sandbox"], base))
    print(f"\ngoal: sandbox / bare >= 0.8 -> {ratio:.2f}: {'met' if ratio >= 0.8 else 'NOT met'}")
    for box in boxes.values():
        box.close()
    batch(args.runs, args.rounds)


def batch(runs: int, rounds: int) -> None:
    """Two at a time: run_many against a two-thread pool of bare subprocess.run."""
    from concurrent.futures import ThreadPoolExecutor

    rates: dict[str, list[float]] = {"bare, 2 threads": [], "sandbox run_many, parallel=2": []}
    with Sandbox(parallel=2) as box, ThreadPoolExecutor(2) as pool:
        box.run_many([CODE, CODE])  # warm up both slots
        for _ in range(rounds):
            started = time.perf_counter()
            list(pool.map(lambda _: bare(), range(runs)))
            rates["bare, 2 threads"].append(runs / (time.perf_counter() - started))
            started = time.perf_counter()
            results = box.run_many([CODE] * runs)
            rates["sandbox run_many, parallel=2"].append(runs / (time.perf_counter() - started))
            assert all(r.ok for r in results)
    base = rates["bare, 2 threads"]
    print(f"\nbatch of {runs}, two at a time, {rounds} rounds, alternating\n")
    print("| arm | executions/s (median) | rounds | ratio to bare (median) |")
    print("|---|---|---|---|")
    for name, values in rates.items():
        ratios = [v / b for v, b in zip(values, base)]
        print(f"| {name} | {statistics.median(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} | "
              f"{statistics.median(ratios):.2f} |")


if __name__ == "__main__":
    main()
