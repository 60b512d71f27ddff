"""The main job's cost: wall time and peak memory of `synthloom run examples/sms_spam.yaml`.

Runs the demo into a fresh directory (every answer paid for), then again into
the same directory (every answer from the cache), each as its own process,
and prints wall time, peak resident memory and what the run produced.

    python benchmarks/demo.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "demo"


def run_once() -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one `synthloom run` process."""
    script = Path(sys.executable).parent / "synthloom"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(script), "run", str(ROOT / "examples" / "sms_spam.yaml"), "--out", str(OUT), "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"the demo failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    fresh = run_once()
    manifest = json.loads((OUT / "manifest.json").read_text())
    metrics = json.loads((OUT / "metrics.json").read_text())
    cached = run_once()
    again = json.loads((OUT / "manifest.json").read_text())
    tokens = manifest["model_calls"]["tokens"]["completion"]
    print("\nThe demo (examples/sms_spam.yaml on the embedded model)")
    print(f"{'run':>8} {'wall s':>8} {'peak RSS MB':>12} {'model calls':>12} {'from cache':>11}")
    print(f"{'fresh':>8} {fresh[0]:8.1f} {fresh[1]:12.0f} {manifest['model_calls']['model_calls']:12d} "
          f"{manifest['model_calls']['served_from_cache']:11d}")
    print(f"{'resumed':>8} {cached[0]:8.1f} {cached[1]:12.0f} {again['model_calls']['model_calls']:12d} "
          f"{again['model_calls']['served_from_cache']:11d}")
    t = manifest["timings"]
    print(f"\nfresh run: {manifest['counts']['generated']} generated, {manifest['counts']['failed']} failed, "
          f"{manifest['counts']['curated']} kept; generation {t['generate_s']:.0f} s "
          f"({tokens / t['generate_s']:.0f} completion tokens/s), curation {t['curate_s']:.1f} s, "
          f"evaluation {t['evaluate_s']:.0f} s")
    down = metrics.get("downstream", {})
    if "macro_f1" in down:
        print(f"downstream on the real SMS test split ({down['n_test']} messages): "
              f"accuracy {down['accuracy']:.3f}, macro-F1 {down['macro_f1']:.3f}")
    else:
        print(f"downstream: {down.get('skipped')}")


if __name__ == "__main__":
    main()
