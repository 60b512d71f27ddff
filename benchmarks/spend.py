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
3. Batch mode vs online, against the loopback Files + Batches stand-in
   (`tests/batch_server.py`, whose batch lines are answered like its online
   chat endpoint): the same recipe (200 records, price 1 / 2 per million
   tokens, batch_discount 0.5), online and `mode: batch`, alternating, 2
   rounds each. Rule, written before the run: met when every batch run gives
   exactly the records of the online run (ids and texts), its money is the
   online money times 0.5 (within 1e-9), and the stand-in saw no line
   submitted twice. Wall time is reported too (batch mode waits for polls).
4. Prompt-prefix reuse, against the scripted server reporting cached tokens
   like a provider's prefix cache (`--prefix-cache`): a few-shot recipe with
   conditions (60 records, concurrency 1), `prompt_order` as before vs
   `shared_first`. Rule: met when `shared_first` raises the cached share of
   prompt tokens.
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
BATCH_SERVER = ROOT / "tests" / "batch_server.py"
BATCH_RECIPE = """\
name: batch-vs-online
model:
  backend: openai
  base_url: http://127.0.0.1:{port}/v1
  model: fake
  mode: {mode}
  concurrency: 16
  batch: {{poll_seconds: 0.2, collect_seconds: 0.2, max_lines: 80}}
  price: {{input_per_mtok: 1.0, output_per_mtok: 2.0, batch_discount: 0.5}}
task: {{description: short notes, labels: [a, b]}}
conditions: {{topic: [sports, food, travel, work]}}
generation: {{records: 200, seed: {seed}, max_tokens: 30}}
curation: []
evaluation: []
"""
PREFIX_RECIPE = """\
name: prefix
model: {{backend: openai, base_url: "http://127.0.0.1:{port}/v1", model: fake, concurrency: 1}}
task: {{description: short notes, labels: [a, b]}}
conditions: {{topic: [sports, food, travel, work], tone: [dry, warm]}}
demonstrations: {{path: demos.jsonl, k: 3, selection: stratified}}
generation: {{records: 60, seed: 7, max_tokens: 30{order}}}
curation: []
evaluation: []
"""


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


def one_thread(recipe: str) -> Path:
    """A copy of `recipe` beside it (its relative paths hold) with the embedded model at 1 thread and no
    evaluation stages: the figures are generation's; the machine is shared."""
    import yaml

    source = ROOT / recipe
    data = yaml.safe_load(source.read_text())
    if data.get("model", {}).get("backend") == "llamacpp":
        data["model"]["n_threads"] = 1
    data["evaluation"] = []
    copy = source.with_name(f"_spend_bench_{source.name}")
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    return copy


def estimates(recipes: list[str], limit: int) -> list[dict]:
    rows = []
    for name in recipes:
        copy = one_thread(name)
        recipe = str(copy)
        try:
            rows.append(estimate(recipe, name, limit))
        finally:
            copy.unlink()
    return rows


def estimate(recipe: str, name: str, limit: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="spend-") as tmp:
        out = Path(tmp) / "run"
        before = plan(recipe, limit)["stages"][0]
        first = max(1, math.ceil(0.05 * limit))
        run(recipe, first, out)
        after = plan(recipe, limit, out)["stages"][0]
        manifest = run(recipe, limit, out)
        actual = manifest["spend"]["stages"]["generation"]
        return {
            "recipe": Path(name).stem, "records": limit, "calls": actual["calls_paid"] + actual["calls_replayed"],
            "planned_calls": before["calls"],
            "prompt_actual": actual["prompt_tokens"], "prompt_estimate": before["prompt_tokens"],
            "prompt_counted": before["prompt_counted"],
            "completion_actual": actual["completion_tokens"], "completion_bound": before["completion_tokens"],
            "completion_after_5pct": after["completion_tokens"], "first": first,
        }


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


def start(script: Path, *args: str) -> tuple[subprocess.Popen, int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(script), "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{script.name} did not start")


def records_of(out: Path) -> list:
    import pyarrow.parquet as pq

    return sorted((r["id"], r["text"]) for r in pq.read_table(out / "generated.parquet").to_pylist())


def batch_vs_online(rounds: int = 2) -> list[dict]:
    import urllib.request

    server, port = start(BATCH_SERVER)
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="spend-") as tmp:
            for i in range(rounds):
                for mode in ("online", "batch"):
                    recipe = Path(tmp) / f"{mode}.yaml"
                    recipe.write_text(BATCH_RECIPE.format(port=port, mode=mode, seed=7 + i))  # a new seed per round: new lines
                    out = Path(tmp) / f"{mode}-{i}"
                    t0 = time.time()
                    done = synthloom("run", str(recipe), "--out", str(out), "--no-progress")
                    seconds = time.time() - t0
                    if done.returncode:
                        raise SystemExit(done.stderr[-2000:])
                    manifest = json.loads((out / "manifest.json").read_text())
                    stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/_batch_stats").read())
                    rows.append({"round": i + 1, "mode": mode, "records": records_of(out), "seconds": seconds,
                                 "money": manifest["spend"]["total"]["money"], "calls": manifest["model_calls"]["model_calls"],
                                 "batches": manifest.get("batches", {}).get("batches", 0), "twice": stats["submitted_more_than_once"]})
    finally:
        server.terminate()
        server.wait()
    return rows


def prefix_reuse() -> list[dict]:
    server, port = start(FAKE_SERVER, "--prefix-cache")
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="spend-") as tmp:
            (Path(tmp) / "demos.jsonl").write_text("".join(
                json.dumps({"text": f"a short note, number {i}, about one thing or another", "label": "ab"[i % 2]}) + "\n"
                for i in range(12)))
            for order in ("conditions_in_system", "shared_first"):
                recipe = Path(tmp) / f"{order}.yaml"
                recipe.write_text(PREFIX_RECIPE.format(port=port, order=f", prompt_order: {order}"))
                out = Path(tmp) / order
                done = synthloom("run", str(recipe), "--out", str(out), "--no-progress")
                if done.returncode:
                    raise SystemExit(done.stderr[-2000:])
                total = json.loads((out / "manifest.json").read_text())["spend"]["total"]
                rows.append({"order": order, "prompt": total["prompt_tokens"], "cached": total["cached_prompt_tokens"],
                             "share": total["cached_prompt_share"]})
    finally:
        server.terminate()
        server.wait()
    return rows


def report_batch(rows: list[dict]) -> None:
    print("\nBatch mode vs online, loopback Files + Batches stand-in (200 records, batch_discount 0.5)\n")
    print("| round | mode | records | model calls | batches | money | money / online | same records | wall s | lines sent twice |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    met = True
    for r in rows:
        online = next(o for o in rows if o["round"] == r["round"] and o["mode"] == "online")
        ratio = r["money"] / online["money"]
        same = r["records"] == online["records"]
        if r["mode"] == "batch":
            met &= same and abs(r["money"] - 0.5 * online["money"]) <= 1e-9 and r["twice"] == 0
        print(f"| {r['round']} | {r['mode']} | {len(r['records'])} | {r['calls']} | {r['batches']} | {r['money']:.6f} | "
              f"{ratio:.4f} | {'yes' if same else 'NO'} | {r['seconds']:.1f} | {r['twice']} |")
    print(f"\nsame records, money x 0.5, no line twice: {'met' if met else 'not met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="*", default=RECIPES)
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--skip-estimates", action="store_true")
    parser.add_argument("--skip-overshoot", action="store_true")
    args = parser.parse_args()
    report_batch(batch_vs_online())
    rows = prefix_reuse()
    print("\nPrompt-prefix reuse, scripted server reporting cached tokens (few-shot, 60 records)\n")
    print("| prompt_order | prompt tokens | cached by the provider | share |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['order']} | {r['prompt']:,} | {r['cached']:,} | {r['share']:.3f} |")
    print(f"\nshared_first raises the cached share: {'met' if rows[1]['share'] > rows[0]['share'] else 'not met'}")
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
    if args.skip_overshoot:
        return
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
