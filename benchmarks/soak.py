"""The soak and fault suite: faults by the thousand, kill -9 again and again, a full disk.

Bounded in time and on loopback only (when allowed, in private network, PID
and mount namespaces, so nothing can leave the machine and the small disk
disappears with the run):

- faults: 20,000 requests against a server injecting 5% 429, 5% 500, 2%
  garbage bodies and 1% hangs (the client gives up after 8 s): every record
  accounted for, none lost, none paid twice, the manifest's failure counts
  equal to the server's.
- kill:   `kill -9` at 10 random points of a run, resuming each time: the
  final dataset equals an uninterrupted run's; a table with one row per
  kill: answers the server sent in that run, answers in the cache after the
  kill, the answers lost (sent, never saved) and the requests a later run
  asked again; per kill these two must be equal and at most the requests in
  flight (the concurrency), and the final resume loses none.
- disk:   the run directory on a 2 MiB tmpfs that fills up mid-run: a clear
  one-line error, a readable run directory, and a resume that completes once
  the disk has room again.

    python benchmarks/soak.py [--parts faults kill disk] [--requests 20000] [--kills 10] [--kill-records 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq

from throughput import FAKE_SERVER, free_port

from synthloom.llm import CompletionCache

sys.path.insert(0, str(FAKE_SERVER.parent))
from kill_ledger import KillLedger  # noqa: E402  (tests/: the same per-kill accounting as tests/test_faults.py)

RECIPE = """\
name: soak
model:
  backend: openai
  base_url: {url}
  model: fake
  concurrency: {concurrency}
  timeout: {timeout}
  max_attempts: 6
task:
  description: short notes
  labels: [a, b, c, d]
conditions:
  topic: [money, food, travel, work, family, sport, music, weather]
  tone: [calm, urgent, friendly]
generation:
  records: {records}
  seed: 21
evaluation: []
"""


# The client gives up on a hung request after this many seconds: long enough
# that no ordinary answer on a loaded 2-core machine takes as long (else it
# would be paid twice), short enough to keep the suite bounded.
HANG_TIMEOUT = 8.0


class Server:
    """A fake OpenAI-compatible server in its own process; its counters over HTTP."""

    def __init__(self, latency: float, *flags: str):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(FAKE_SERVER), "--port", str(self.port), "--latency", str(latency), *flags],
            stdout=subprocess.PIPE, text=True,
        )
        self.proc.stdout.readline()
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def stats(self, answered: bool = False) -> dict:
        query = "?answered=1" if answered else ""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_stats{query}", timeout=30) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def synthloom(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("synthloom")), *args]


def write_recipe(folder: Path, url: str, records: int, concurrency: int, timeout: float = 30.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recipe.yaml"
    path.write_text(RECIPE.format(url=url, records=records, concurrency=concurrency, timeout=timeout))
    return path


def dataset(path: Path) -> list[dict]:
    return pq.read_table(path).select(["id", "text", "label"]).to_pylist()


def cached(out: Path) -> int:
    """Answers saved in the run's cache (in SQLite or still in its pending file)."""
    cache = CompletionCache(out / "cache.sqlite")
    try:
        return len(cache)
    finally:
        cache.close()


def check(ok: bool, what: str, failures: list[str]) -> str:
    """`ok` or `FAILED`; a failure is also listed under `what` at the end."""
    if not ok:
        failures.append(what)
    return "ok" if ok else "FAILED"


def faults(work: Path, requests: int, failures: list[str]) -> None:
    server = Server(0.01, "--rate-429", "0.05", "--rate-500", "0.05", "--rate-garbage", "0.02",
                    "--rate-hang", "0.01", "--hang-seconds", "30", "--seed", "3")
    try:
        recipe = write_recipe(work / "faults", server.url, requests, concurrency=256, timeout=HANG_TIMEOUT)
        t0 = time.time()
        done = subprocess.run(synthloom("run", str(recipe), "--out", str(work / "faults" / "out"), "--no-progress"),
                              capture_output=True, text=True)
        wall = time.time() - t0
        stats = server.stats()
    finally:
        server.stop()
    if done.returncode != 0:
        failures.append(f"faults: the run failed: {done.stderr[-500:]}")
        return
    manifest = json.loads((work / "faults" / "out" / "manifest.json").read_text())
    counts, calls = manifest["counts"], manifest["model_calls"]
    ids = {r["id"] for r in dataset(work / "faults" / "out" / "generated.parquet")}
    failed_ids = {f["id"] for f in manifest["failures"]["records"]}
    accounted = ids | failed_ids == {f"soak-{i:06d}" for i in range(requests)} and len(ids) + counts["failed"] == requests
    by_kind = calls["failed_tries_by_kind"]
    server_faults = stats["faults"]
    print(f"\nfaults: {requests} requests, 5% 429, 5% 500, 2% garbage, 1% hangs ({HANG_TIMEOUT:g} s timeout); {wall:.0f} s, "
          f"{stats['requests']} requests at the server")
    print(f"  records generated {counts['generated']} + failed {counts['failed']} = {len(ids) + counts['failed']} "
          f"of {requests} planned, each id once: {check(accounted, 'faults: records not accounted for', failures)}")
    print(f"  records missing from the dataset: {requests - counts['generated']} (0 wanted): "
          f"{check(counts['generated'] == requests, 'faults: records missing', failures)}")
    print(f"  answers the manifest paid for {calls['model_calls']}, answers the server sent {stats['answered']}; "
          f"requests answered more than once {stats['answered_more_than_once']} (0 wanted): "
          f"{check(stats['answered_more_than_once'] == 0 and stats['answered'] == calls['model_calls'], 'faults: paid twice', failures)}")
    # Tries the client made that never reached the server's handler (it gave
    # up while still connecting, on a loaded machine) are timeouts too.
    tries = calls["model_calls"] + sum(by_kind.values())
    unseen = tries - stats["requests"]
    print(f"  {'fault':>10} {'server sent':>12} {'manifest counted':>17} {'equal':>6}")
    for fault, kind in [("429", "rate_limited"), ("500", "server_error"), ("garbage", "bad_response"), ("hang", "timeout")]:
        sent, counted = server_faults.get(fault, 0), by_kind.get(kind, 0)
        expected = sent + unseen if fault == "hang" else sent
        print(f"  {fault:>10} {sent:12d} {counted:17d} {check(expected == counted, f'faults: {fault} counts differ', failures):>6}")
    print(f"  tries the client made {tries}, requests the server saw {stats['requests']}: "
          f"{unseen} timed out before reaching it (counted as timeouts above)")


def kills(work: Path, records: int, times: int, failures: list[str]) -> None:
    server = Server(0.02)
    rng = random.Random(5)
    out = work / "kill" / "out"
    concurrency = 64
    recipe = write_recipe(work / "kill", server.url, records, concurrency=concurrency)
    ledger = KillLedger()
    try:
        for _ in range(times):
            before = server.stats()["answered"]
            proc = subprocess.Popen(synthloom("run", str(recipe), "--out", str(out), "--no-progress"),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            target = before + rng.randint(1, max(2, (records - cached(out) if out.exists() else records) // 6))
            deadline = time.time() + 300
            while server.stats()["answered"] < target and time.time() < deadline and proc.poll() is None:
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            time.sleep(0.3)  # the server finishes what was in flight
            ledger.after_kill(server.stats(answered=True)["answered_by_request"], cached(out))
        done = subprocess.run(synthloom("run", str(recipe), "--out", str(out), "--no-progress"), capture_output=True, text=True)
        stats = server.stats(answered=True)
    finally:
        server.stop()
    if done.returncode != 0:
        failures.append(f"kill: the final resume failed: {done.stderr[-500:]}")
        return
    final = ledger.complete(stats["answered_by_request"], cached(out))
    reference = Server(0.0)
    try:
        ref_recipe = write_recipe(work / "kill-ref", reference.url, records, concurrency=concurrency)
        subprocess.run(synthloom("run", str(ref_recipe), "--out", str(work / "kill-ref" / "out"), "--no-progress"),
                       check=True, capture_output=True)
    finally:
        reference.stop()
    ours, theirs = dataset(out / "generated.parquet"), dataset(work / "kill-ref" / "out" / "generated.parquet")
    equal_rows = sum(a == b for a, b in zip(ours, theirs))
    same = len(ours) == len(theirs) == equal_rows and dataset(out / "curated.parquet") == dataset(work / "kill-ref" / "out" / "curated.parquet")
    print(f"\nkill -9: {records} records, concurrency {concurrency}, killed at {times} random points, resumed each time\n")
    print(ledger.table())
    print(f"| final resume | {final.sent} | {final.sent_total} | {final.cached} | {final.saved} | {final.lost} | - |\n")
    problems = ledger.problems(in_flight=concurrency)
    for problem in problems:
        failures.append(f"kill: {problem}")
    print(f"  per kill, requests asked again = answers lost (sent, never saved) <= {concurrency} in flight: "
          f"{len(ledger.kills) - len({p.split(':')[0] for p in problems})} of {len(ledger.kills)} kills: "
          f"{'ok' if not problems else 'FAILED'}")
    print(f"  answers the final resume was sent and did not save: {final.lost} (0 wanted): "
          f"{check(final.lost == 0, 'kill: the final resume lost answers', failures)}")
    print(f"  requests answered at least once {stats['distinct_answered']} of {records}: "
          f"{check(stats['distinct_answered'] == records == final.cached, 'kill: requests never answered', failures)}")
    print(f"  answers sent in all {stats['answered']} = {records} requests + {sum(k.reasked for k in ledger.kills)} asked again "
          f"after a kill: {check(stats['answered'] == records + sum(k.reasked for k in ledger.kills), 'kill: answers paid twice outside the kills', failures)}")
    print(f"  generated rows equal to an uninterrupted run's {equal_rows} of {len(theirs)} (and the curated set equal): "
          f"{check(same, 'kill: datasets differ', failures)}")


def disk(work: Path, failures: list[str]) -> None:
    if os.geteuid() != 0:
        print("\ndisk full: skipped (mounting a tmpfs needs root)")
        return
    mount = work / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    server = Server(0.002, "--seed", "1")
    records = 6000
    try:
        recipe = write_recipe(work / "disk", server.url, records, concurrency=32)
        out = mount / "out"
        full = subprocess.run(synthloom("run", str(recipe), "--out", str(out), "--no-progress"), capture_output=True, text=True)
        message = full.stderr.strip().splitlines()[-1] if full.stderr.strip() else ""
        readable = json.loads((out / "manifest.json").read_text())["status"] in ("running", "failed")
        db = sqlite3.connect(out / "cache.sqlite")
        sound = db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        subprocess.run(["mount", "-o", "remount,size=256m", str(mount)], check=True)
        saved = cached(out)  # in SQLite, or still in the pending file if the disk filled first
        resumed = subprocess.run(synthloom("run", str(recipe), "--out", str(out), "--no-progress"), capture_output=True, text=True)
        manifest = json.loads((out / "manifest.json").read_text())
        stats = server.stats()
    finally:
        server.stop()
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
    print(f"\ndisk full: run directory on a 2 MiB tmpfs, {records} records")
    clear = full.returncode == 1 and "no space left on device" in message and "Traceback" not in full.stderr
    print(f"  exit status {full.returncode} (1 wanted), last line says no space left, no traceback: "
          f"{check(clear, 'disk: no clear error', failures)}: {message}")
    print(f"  manifest readable: {readable}, cache integrity_check ok: {sound}, answers saved {saved} (> 0 wanted): "
          f"{check(readable and sound and saved > 0, 'disk: run directory unreadable', failures)}")
    ok = resumed.returncode == 0 and manifest["counts"]["generated"] == records and manifest["model_calls"]["served_from_cache"] == saved
    print(f"  resume once space is back: exit {resumed.returncode}, generated {manifest['counts']['generated']} of {records}, "
          f"served from the cache {manifest['model_calls']['served_from_cache']} of {saved} saved, "
          f"{manifest['model_calls']['model_calls']} paid: {check(ok, 'disk: resume failed', failures)}")
    print(f"  requests answered more than once {stats['answered_more_than_once']} (the answers that arrived "
          f"after the disk filled, never saved)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["faults", "kill", "disk"], choices=["faults", "kill", "disk"])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--kill-records", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=10)
    args = parser.parse_args()
    if not os.environ.get("SYNTHLOOM_BENCH_ISOLATED"):
        from throughput import isolate

        code = isolate(sys.argv)
        if code is not None:
            sys.exit(code)
    else:
        from synthloom.execute.local_cluster import loopback_up

        loopback_up()
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "faults" in args.parts:
            faults(work, args.requests, failures)
        if "kill" in args.parts:
            kills(work, args.kill_records, args.kills, failures)
        if "disk" in args.parts:
            disk(work, failures)
    print("\nall checks passed" if not failures else "\nFAILED: " + "; ".join(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
