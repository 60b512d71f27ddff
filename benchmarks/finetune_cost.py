"""What does fine-tuning SmolLM2-135M on the demo's records cost on this machine: LoRA vs every weight?

The records: the SMS spam demo's (`synthloom run examples/sms_spam.yaml`,
240 records asked for), taken from the run directory: its curated records,
topped up from the generated ones to `--records` (default 240) when curation
kept fewer. Each record becomes the finetune stage's classification row (the
message, clipped to `--chars`, and the label set in a user turn; the label as
the answer), as `benchmarks/finetune.py` trains on.

Arms, trained one after the other in child processes (a fresh process each,
so one arm's memory never counts for the other), alternating which goes
first round by round:

- `lora`: LoRA SFT (r=8, every linear layer), the default;
- `full`: SFT of every weight (float32, AdamW).

Per arm: records, epochs, optimizer steps, the child's wall time (start of
the process to exit: imports, model load, training, saving), the training
loop's own time, seconds per step, and the child's peak resident memory
(its own `getrusage(RUSAGE_SELF).ru_maxrss`, cross-checked by sampling the
child's RSS with psutil every 0.2 s), with the load average before and
after. `--full-steps N` caps the full arm at N steps and projects its time for
the whole epoch from the measured time per step (labelled as a projection).

MET (written before the run): the `lora` arm's wall time for one epoch over
the 240 records, on both cores of the 2-core machine with nothing else
running (`/work/logs/cpu2`), is under 600 s. The full arm has no goal; its
time and memory are reported beside it.

    python benchmarks/finetune_cost.py --run /tmp/ft-demo-run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

LABELS = {"spam": None, "ham": None}
TASK = "SMS spam detection"


def demo_rows(run: Path, n: int, chars: int) -> list[dict]:
    """`n` classification rows from a run: its curated records first, then generated ones it dropped."""
    from synthloom.records import read_records
    from synthloom.train.lm_use import classification_row

    curated = [r for r in read_records(run / "curated.parquet") if r.label in LABELS]
    seen = {r.id for r in curated}
    generated = []
    for name in ("generated.parquet", "raw.parquet", "records.parquet"):
        if (run / name).exists():
            generated = [r for r in read_records(run / name) if r.label in LABELS and r.id not in seen]
            break
    records = (curated + generated)[:n]
    rows = [classification_row([r.text()[:chars]], str(r.label), LABELS, TASK, r.weight or 1.0) for r in records]
    return rows, min(len(curated), n)


def child(arm: str, rows_path: Path, out: Path, epochs: float, batch: int, max_length: int, max_steps: int) -> None:
    from synthloom.train.lm import LMSettings, train_lm

    rows = json.loads(rows_path.read_text())
    settings = LMSettings(lora=arm == "lora", epochs=epochs, batch_size=batch, max_length=max_length, max_steps=max_steps, seed=0)
    result = train_lm(rows, out, settings, data_name=f"SMS spam demo ({len(rows)} records)")
    print(json.dumps({"steps": result.steps, "train_s": round(result.seconds, 1), "loss": [result.first_loss, result.last_loss],
                      "lr": settings.lr(), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


def measure(arm: str, rows_path: Path, out: Path, args: argparse.Namespace, max_steps: int) -> dict:
    import psutil

    load_before = os.getloadavg()
    command = [sys.executable, __file__, "--child", arm, "--rows", str(rows_path), "--out", str(out), "--epochs", str(args.epochs),
               "--batch-size", str(args.batch_size), "--max-length", str(args.max_length), "--max-steps", str(max_steps)]
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampled = [0]

    def sample() -> None:
        try:
            p = psutil.Process(proc.pid)
            while proc.poll() is None:
                sampled[0] = max(sampled[0], p.memory_info().rss)
                time.sleep(0.2)
        except psutil.Error:
            pass

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"{arm} arm failed:\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {"arm": arm, **result, "wall_s": round(wall, 1), "s_per_step": round(result["train_s"] / max(1, result["steps"]), 2),
            "sampled_rss_mb": round(sampled[0] / 2**20), "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="the demo's run directory (synthloom run examples/sms_spam.yaml --out DIR)")
    ap.add_argument("--records", type=int, default=240)
    ap.add_argument("--chars", type=int, default=120)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=1, help="each round trains both arms; rounds alternate which goes first")
    ap.add_argument("--full-steps", type=int, default=-1, help="cap the full arm at this many steps and project the epoch")
    ap.add_argument("--arms", nargs="+", default=["lora", "full"])
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "synthloom-finetune-cost")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--max-steps", type=int, default=-1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.rows, args.out, args.epochs, args.batch_size, args.max_length, args.max_steps)
        return
    if args.run is None:
        ap.error("--run is required")
    rows, curated = demo_rows(args.run, args.records, args.chars)
    args.out.mkdir(parents=True, exist_ok=True)
    rows_path = args.out / "rows.json"
    rows_path.write_text(json.dumps(rows))
    threads = os.environ.get("SYNTHLOOM_THREADS", "torch default")
    print(f"{len(rows)} rows ({curated} curated, {len(rows) - curated} generated but dropped by curation) from {args.run}; "
          f"torch threads {threads}", file=sys.stderr)
    epoch_steps = -(-len(rows) // args.batch_size) * args.epochs
    results = []
    for r in range(args.rounds):
        order = args.arms if r % 2 == 0 else list(reversed(args.arms))
        for arm in order:
            cap = args.full_steps if arm == "full" else -1
            result = measure(arm, rows_path, args.out / f"round{r}-{arm}", args, cap)
            result.update(round=r, records=len(rows), epochs=args.epochs)
            if cap > 0 and result["steps"] < epoch_steps:
                result["projected_epoch_train_s"] = round(result["s_per_step"] * epoch_steps)
            results.append(result)
            print(json.dumps(result), file=sys.stderr)

    print(f"\nSFT cost, SmolLM2-135M-Instruct on {len(rows)} SMS demo records, batch {args.batch_size}, max length {args.max_length}, "
          f"torch threads {threads}")
    print("| round | arm | records | epochs | steps | wall s | train s | s/step | peak RSS MB (sampled) | load before | load after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for x in results:
        proj = f" (epoch projected: {x['projected_epoch_train_s']} s)" if "projected_epoch_train_s" in x else ""
        print(f"| {x['round']} | {x['arm']} | {x['records']} | {x['epochs']:g} | {x['steps']} | {x['wall_s']:.0f} | {x['train_s']:.0f}{proj} | "
              f"{x['s_per_step']:.1f} | {x['peak_rss_mb']} ({x['sampled_rss_mb']}) | {' '.join(map(str, x['load_before']))} | "
              f"{' '.join(map(str, x['load_after']))} |")
    by = {a: [x for x in results if x["arm"] == a] for a in args.arms}
    if by.get("lora") and by.get("full"):
        fs = sum(x["s_per_step"] for x in by["full"]) / len(by["full"])
        ls = sum(x["s_per_step"] for x in by["lora"]) / len(by["lora"])
        lm = max(x["peak_rss_mb"] for x in by["lora"])
        fm = max(x["peak_rss_mb"] for x in by["full"])
        print(f"\nfull / lora: {fs / ls:.2f}x the time per step, {fm / lm:.2f}x the peak memory")
    if by.get("lora"):
        worst = max(x["wall_s"] for x in by["lora"])
        print(f"MET: {'yes' if worst < 600 else 'no'} (LoRA wall time {worst:.0f} s for {len(rows)} records, {args.epochs:g} epoch; needs < 600 s)")
    path = ROOT / "benchmarks" / "results" / "seeds" / "finetune_cost.json"
    path.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items() if k not in ("child", "rows", "max_steps")},
                                "rows": len(rows), "curated": curated, "threads": threads, "results": results}, indent=2) + "\n")
    print(f"per-arm numbers: {path}")


if __name__ == "__main__":
    main()
