"""Spend control, measured: the plan's estimate against what the model counted, and the budget stop's overshoot.

    python benchmarks/spend.py [--recipes examples/sms_spam.yaml ...] [--limit 60]

1. Estimate vs actual, with the embedded model: for each recipe, `plan`
   before anything is asked; then a run of the first 5% of the records;
   `plan` again on that directory (completion tokens from the observed
   mean); then the whole run. The actual tokens are the ones the model
   reported (the manifest's `spend`). Rule, written before the run: met when
   the prompt-token estimate is within 10% of the actual before the run and
   the completion-token estimate within 25% after the first 5% of answers.
2. Budget overshoot, against the scripted loopback server (`tests/fake_server.py`)
   at concurrency 16: money spent past the cap, against the cost of the
   requests in flight when the cap was reached (at most the concurrency
   times the mean cost of a request). Rule: met when the overshoot is at
   most that bound, in each of 3 runs.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FAKE_SERVER = ROOT / "tests" / "fake_server.py"
RECIPES = ["examples/sms_spam.yaml", "examples/rte_pairs.yaml", "examples/qa_cot.yaml"]


def synthloom(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthloom", *args], capture_output=True, text=True, cwd=ROOT)


def plan(recipe: str, limit: int, out: Path | None = None) -> dict:
    args = ["plan", recipe, "--limit", str(limit), "--json"] + (["--out", str(out)] if out else [])
    done = synthloom(*args)
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout)


def run(recipe: str, limit: int, out: Path) -> dict:
    done = synthloom("run", recipe, "--limit", str(limit), "--out", str(out), "--no-progress")
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    return json.loads((out / "manifest.json").read_text())


def estimates(recipes: list[str], limit: int) -> list[dict]:
    rows = []
    for recipe in recipes:
        with tempfile.TemporaryDirectory(prefix="spend-") as tmp:
            out = Path(tmp) / "run"
            before = plan(recipe, limit)["stages"][0]
            first = max(1, math.ceil(0.05 * limit))
            run(recipe, first, out)
            after = plan(recipe, limit, out)["stages"][0]
            manifest = run(recipe, limit, out)
            actual = manifest["spend"]["stages"]["generation"]
            rows.append({
                "recipe": Path(recipe).stem, "records": limit, "calls": actual["calls_paid"] + actual["calls_replayed"],
                "planned_calls": before["calls"],
                "prompt_actual": actual["prompt_tokens"], "prompt_estimate": before["prompt_tokens"],
                "prompt_counted": before["prompt_counted"],
                "completion_actual": actual["completion_tokens"], "completion_bound": before["completion_tokens"],
                "completion_after_5pct": after["completion_tokens"], "first": first,
            })
    return rows


def overshoot(rounds: int = 3, concurrency: int = 16, records: int = 400) -> list[dict]:
    import socket

    rows = []
    for i in range(rounds):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([sys.executable, str(FAKE_SERVER), "--port", str(port), "--latency", "0.05"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.0)
            with tempfile.TemporaryDirectory(prefix="spend-") as tmp:
                recipe = Path(tmp) / "recipe.yaml"
                cap = 1.0
                recipe.write_text(f"""\
name: overshoot
model:
  backend: openai
  base_url: http://127.0.0.1:{port}/v1
  model: fake
  concurrency: {concurrency}
  price: {{input_per_mtok: 1000, output_per_mtok: 1000}}
  budget: {{money: {cap}}}
task: {{description: short notes, labels: [a, b]}}
generation: {{records: {records}, seed: {i}, max_tokens: 20}}
""")
                out = Path(tmp) / "run"
                done = subprocess.run([sys.executable, "-m", "synthloom", "run", str(recipe), "--out", str(out), "--no-progress"],
                                      capture_output=True, text=True, cwd=ROOT)
                manifest = json.loads((out / "manifest.json").read_text())
                total = manifest["spend"]["total"]
                per_call = total["money"] / max(1, total["calls_paid"])
                rows.append({"round": i + 1, "exit": done.returncode, "cap": cap, "spent": total["money"],
                             "calls": total["calls_paid"], "overshoot": total["money"] - cap,
                             "bound": concurrency * per_call})
        finally:
            server.terminate()
            server.wait()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="*", default=RECIPES)
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--skip-estimates", action="store_true")
    args = parser.parse_args()
    if not args.skip_estimates:
        rows = estimates(args.recipes, args.limit)
        print("\nEstimate vs what the model counted (generation, embedded model)\n")
        print("| recipe | records | calls (planned) | prompt actual | prompt estimate | ratio | completion actual | bound (max_tokens) | after 5% | ratio |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            p = r["prompt_estimate"]
            pr = "-" if p is None else f"{p / r['prompt_actual']:.3f}"
            print(f"| {r['recipe']} | {r['records']} | {r['calls']} ({r['planned_calls']}) | {r['prompt_actual']:,} | "
                  f"{'?' if p is None else f'{p:,}'} ({r['prompt_counted']}) | {pr} | {r['completion_actual']:,} | "
                  f"{r['completion_bound']:,} | {r['completion_after_5pct']:,} (first {r['first']}) | "
                  f"{r['completion_after_5pct'] / r['completion_actual']:.3f} |")
        met = all(r["prompt_estimate"] is not None and abs(r["prompt_estimate"] / r["prompt_actual"] - 1) <= 0.10
                  and abs(r["completion_after_5pct"] / r["completion_actual"] - 1) <= 0.25 for r in rows)
        print(f"\nprompt within 10% and completion within 25% after 5%: {'met' if met else 'not met'}")
    rows = overshoot()
    print("\nBudget stop against the loopback server (concurrency 16, cap 1.0)\n")
    print("| round | exit | spent | calls paid | overshoot | bound (16 x mean call) | within |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['round']} | {r['exit']} | {r['spent']:.4f} | {r['calls']} | {r['overshoot']:.4f} | {r['bound']:.4f} | "
              f"{'yes' if r['overshoot'] <= r['bound'] else 'no'} |")
    print(f"\novershoot at most the requests in flight in every run: {'met' if all(r['overshoot'] <= r['bound'] for r in rows) else 'not met'}")


if __name__ == "__main__":
    main()
