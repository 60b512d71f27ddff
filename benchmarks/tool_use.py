"""Tool-use trajectories: pass rate per verification stage on three tool sets, and judge vs execution.

Arms (one run, in rounds that alternate the arms: each round adds records to every arm in turn):

- `python`: calculator tools from Python functions (examples/tools/calculator.py), schema from signatures;
- `schema`: a unit converter and a temperature converter declared as JSON schemas, implemented in
  examples/tools/units.py;
- `mcp`: a shop's stock from an MCP server over stdio (examples/tools/store_server.py, SQLite);
- `python-free`: the `python` tools with the calls unconstrained (`constrain: none`), to see what the
  format check catches when the backend's JSON-schema support is not used;
- `python-http` (with --server): the `python` arm through the OpenAI-compatible backend, pointed at
  `python -m llama_cpp.server` on 127.0.0.1 serving the same GGUF.

All with the embedded SmolLM2-135M (1 llama.cpp thread). A larger model cannot be measured here: its
weights would have to be downloaded, which this machine does not allow; the `python-http` arm shows
that the same run goes through the OpenAI-compatible path such a model would be served on.

Per arm: generated records, then the share passing each stage of those it saw (format, execution,
semantic), the share of records a naive pipeline without execution would keep (format passed) that
execution rejects, and the drop reasons. Then the judge (tool_semantic) is asked about every record
that passed the format check, also those execution rejected, and its verdict is compared with
execution's (ground truth: the calls ran and returned something): agreement with a Wilson 95%
interval and Cohen's kappa.

"Met" rules, written before the run:
- format: with the schema constraint, at least 80% of records pass tool_format on each tool set
  (the calls are grammar-constrained; truncation is the only expected failure);
- execution: reported as measured (it depends on what the model asks for), no threshold;
- judge: agreement's Wilson lower bound above 0.5 and kappa above 0.2 (better than chance);
- http: the `python-http` arm generates records and all three stages run.

    nice -n 10 python benchmarks/tool_use.py [--records 8] [--server]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "tool_use"
TOOLS = ROOT / "examples" / "tools"
STAGES = ("tool_format", "tool_execution", "tool_semantic")

UNITS = ["km", "m", "cm", "mi", "ft", "in", "kg", "g", "lb", "oz", "l", "ml", "gal"]
SOURCES = {
    "python": [{"python": f"{TOOLS}/calculator.py:{n}"} for n in ("add", "multiply", "square_root")],
    "schema": [
        {"function": {"name": "convert", "description": "Convert a quantity between units of the same dimension.",
                      "parameters": {"type": "object", "required": ["value", "from_unit", "to_unit"], "properties": {
                          "value": {"type": "number"}, "from_unit": {"type": "string", "enum": UNITS},
                          "to_unit": {"type": "string", "enum": UNITS}}}},
         "implementation": f"{TOOLS}/units.py:convert"},
        {"function": {"name": "celsius_to_fahrenheit", "description": "Degrees Celsius in degrees Fahrenheit.",
                      "parameters": {"type": "object", "required": ["celsius"],
                                     "properties": {"celsius": {"type": "number"}}}},
         "implementation": f"{TOOLS}/units.py:celsius_to_fahrenheit"},
    ],
    "mcp": [{"mcp": {"command": "python", "args": [f"{TOOLS}/store_server.py"]}}],
}
DESCRIPTIONS = {
    "python": "people ask an assistant to compute sums, products and square roots",
    "schema": "people ask an assistant to convert units and temperatures",
    "mcp": "people ask a shop's assistant about products, prices and stock",
}


def recipe(arm: str, tools: str, model: dict, records: int, constrain: str = "schema") -> dict:
    return {
        "name": f"tool_use_{arm}".replace("-", "_"),
        "model": model,
        "task": {"kind": "tool_use", "description": DESCRIPTIONS[tools]},
        "tools": {"sources": SOURCES[tools], "constrain": constrain, "max_calls": 3},
        "conditions": {"persona": ["a student", "a cook", "a shop assistant", "a hiker"]},
        "generation": {"records": records, "temperature": 0.8, "seed": 11},
        "curation": [{"stage": "tool_format"}, {"stage": "tool_execution"},
                     {"stage": "tool_semantic", "model": model}],
        "evaluation": [],
    }


def start_server(threads: int) -> tuple[subprocess.Popen, str]:
    import socket

    from synthloom.llm import bundled_model_path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_model_path()),
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                             "--n_threads", str(threads), "--logits_all", "true"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not start")


def stage_table(name: str, result, seconds: float) -> dict:
    from synthloom.curate.tool_checks import reason_counts

    records = list(result.curated) + list(read_rejected(result.out))
    funnel = {s["stage"]: s for s in result.manifest["curation"]["funnel"]}
    row = {"arm": name, "generated": result.manifest["counts"]["generated"],
           "failed": result.manifest["counts"]["failed"], "seconds": round(seconds, 1)}
    for stage in STAGES:
        f = funnel.get(stage, {"seen": 0, "kept": 0})
        row[stage] = (f["kept"], f["seen"])
        row[f"{stage}_reasons"] = reason_counts(records, stage)
    fmt_kept, exe = row["tool_format"][0], row["tool_execution"]
    row["naive_kept_exec_rejects"] = ((exe[1] - exe[0]), fmt_kept)
    return row


def read_rejected(out: Path):
    from synthloom.records import read_records

    path = out / "rejected.parquet"
    return read_records(path) if path.exists() else []


def judge_vs_execution(results: dict) -> dict:
    """Ask the judge about every record that passed the format check; compare with execution's verdict."""
    from sklearn.metrics import cohen_kappa_score

    from synthloom.curate import CurationContext, curate
    from synthloom.evaluate import wilson_interval
    from synthloom.recipe import ToolSemanticSpec

    pairs = []
    for name, (result, model) in results.items():
        records = [r for r in list(result.curated) + list(read_rejected(result.out))
                   if r.flags.get("tool_format") == "keep" and r.flags.get("tool_execution") in ("keep", "drop")
                   and not r.reasons.get("tool_execution", "").startswith("not run")]
        for r in records:
            r.flags.pop("tool_semantic", None)
        curate(records, [ToolSemanticSpec(model=model)], CurationContext(cache_path=result.out / "cache.sqlite"))
        for r in records:
            if r.scores.get("tool_semantic") is not None:
                pairs.append((r.flags["tool_execution"] == "keep", r.flags["tool_semantic"] == "keep", name))
    n = len(pairs)
    agree = sum(a == b for a, b, _ in pairs)
    low, high = wilson_interval(agree, n) if n else (0.0, 0.0)
    truth, judged = [a for a, _, _ in pairs], [b for _, b, _ in pairs]
    kappa = cohen_kappa_score(truth, judged) if n and len(set(truth) | set(judged)) > 1 else float("nan")
    table = collections.Counter((a, b) for a, b, _ in pairs)
    return {"n": n, "agreement": agree / n if n else 0.0, "low": low, "high": high, "kappa": kappa,
            "confusion": {f"exec_{'pass' if a else 'fail'}_judge_{'yes' if b else 'no'}": c for (a, b), c in table.items()}}


def share(kept: int, seen: int) -> str:
    return f"{kept}/{seen} = {kept / seen:.0%}" if seen else "0/0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=8, help="records per arm (the free and http arms: half)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds the arms alternate in")
    parser.add_argument("--server", action="store_true", help="add the arm through llama_cpp.server (OpenAI-compatible)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("SYNTHLOOM_THREADS", "1")))
    args = parser.parse_args()
    from synthloom.execute.run import run
    from synthloom.recipe import recipe_from_dict

    OUT.mkdir(parents=True, exist_ok=True)
    local = {"backend": "llamacpp", "n_threads": args.threads}
    arms = {"python": ("python", local, args.records, "schema"), "schema": ("schema", local, args.records, "schema"),
            "mcp": ("mcp", local, args.records, "schema"), "python-free": ("python", local, max(1, args.records // 2), "none")}
    server = None
    if args.server:
        server, url = start_server(args.threads)
        arms["python-http"] = ("python", {"backend": "openai", "base_url": url, "model": "smollm2"}, max(1, args.records // 2), "schema")
    seconds = collections.Counter()
    results = {}
    try:
        for k in range(1, args.rounds + 1):
            for name, (tools, model, n, constrain) in arms.items():
                limit = -(-n * k // args.rounds)
                rec = recipe_from_dict(recipe(name, tools, model, n, constrain), base_dir=ROOT)
                t0 = time.time()
                results[name] = (run(rec, OUT / name, limit=limit, progress=False), model)
                seconds[name] += time.time() - t0
                print(f"round {k}: {name} {limit} records, {seconds[name]:.0f} s so far", flush=True)
        rows = [stage_table(name, res, seconds[name]) for name, (res, _) in results.items()]
        agreement = judge_vs_execution(results)
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
    print("\nPass rate per stage (kept/seen at that stage; each stage sees what the one before kept)")
    print("| arm | generated | format | execution | semantic | naive keeps, execution rejects | seconds |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arm']} | {r['generated']} (+{r['failed']} failed) | {share(*r['tool_format'])} | "
              f"{share(*r['tool_execution'])} | {share(*r['tool_semantic'])} | {share(*r['naive_kept_exec_rejects'])} | "
              f"{r['seconds']} |")
    print("\nDrop reasons")
    print("| arm | format | execution | semantic |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['arm']} | {r['tool_format_reasons'] or '-'} | {r['tool_execution_reasons'] or '-'} | "
              f"{r['tool_semantic_reasons'] or '-'} |")
    a = agreement
    print("\nJudge (tool_semantic, SmolLM2-135M) vs execution (ground truth) on records that passed format")
    print("| n | agreement | Wilson 95% | Cohen's kappa | confusion |")
    print("|---|---|---|---|---|")
    print(f"| {a['n']} | {a['agreement']:.2f} | [{a['low']:.2f}, {a['high']:.2f}] | {a['kappa']:.2f} | {a['confusion']} |")
    fmt_met = all(r["tool_format"][1] and r["tool_format"][0] / r["tool_format"][1] >= 0.8
                  for r in rows if r["arm"] in ("python", "schema", "mcp"))
    judge_met = a["n"] > 0 and a["low"] > 0.5 and a["kappa"] > 0.2
    print(f"\nmet: format >= 80% on every constrained tool set: {'yes' if fmt_met else 'no'}; "
          f"judge better than chance (lower bound > 0.5, kappa > 0.2): {'yes' if judge_met else 'no'}")
    if "python-http" in results:
        http = next(r for r in rows if r["arm"] == "python-http")
        ok = http["generated"] > 0 and all(http[s][1] > 0 or s != "tool_format" for s in STAGES)
        print(f"met: the OpenAI-compatible path (llama_cpp.server) generates and checks records: {'yes' if ok else 'no'}")
    (OUT / "summary.json").write_text(json.dumps({"rows": rows, "agreement": agreement}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
