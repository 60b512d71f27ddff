"""The cheap half of the soak and fault suite (benchmarks/soak.py runs it at full size).

A server that misbehaves in every way at once, a run killed again and again,
a disk that fills up in the middle of a run: nothing is lost, nothing is paid
for twice that had been saved, and the counts say exactly what happened.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

import synthloom
from synthloom.llm import CompletionCache

from conftest import run_cli, synthloom_cmd
from kill_ledger import KillLedger

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
  labels: [a, b, c]
conditions:
  topic: [x, y, z, w]
generation:
  records: {records}
  seed: 11
evaluation: []
"""


def write(folder: Path, url: str, records: int, concurrency: int = 32, timeout: float = 2.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recipe.yaml"
    path.write_text(RECIPE.format(url=url, records=records, concurrency=concurrency, timeout=timeout))
    return path


def rows(path: Path) -> list[dict]:
    return pq.read_table(path).select(["id", "text", "label"]).to_pylist()


def test_fault_mix_loses_nothing_and_the_manifest_counts_what_the_server_did(tmp_path, fake_server):
    server = fake_server(
        latency=0.005,
        faults={"rates": {"429": 0.05, "500": 0.05, "garbage": 0.02, "hang": 0.01}, "seed": 4, "hang_seconds": 6.0},
    )
    result = synthloom.run(write(tmp_path, server.url, records=600, timeout=2.0), tmp_path / "out", progress=False)
    counts, calls = result.manifest["counts"], result.manifest["model_calls"]
    ids = [r["id"] for r in rows(tmp_path / "out" / "generated.parquet")]
    failed = [f["id"] for f in result.manifest["failures"]["records"]]
    assert sorted(ids + failed) == [f"soak-{i:06d}" for i in range(600)]  # every record accounted for
    assert counts["failed"] == 0
    stats = server.stats()
    assert stats["answered_more_than_once"] == 0  # none paid twice
    assert stats["answered"] == calls["model_calls"] == 600
    by_kind = calls["failed_tries_by_kind"]
    faults = stats["faults"]
    assert by_kind.get("rate_limited", 0) == faults.get("429", 0) > 0
    assert by_kind.get("server_error", 0) == faults.get("500", 0) > 0
    assert by_kind.get("bad_response", 0) == faults.get("garbage", 0) > 0
    # A try that timed out before the server even saw it is a timeout the server cannot count.
    unseen = calls["model_calls"] + sum(by_kind.values()) - stats["requests"]
    assert by_kind.get("timeout", 0) == faults.get("hang", 0) + unseen and faults.get("hang", 0) > 0
    assert stats["requests"] == stats["answered"] + sum(faults.values())


def cached(out: Path) -> int:
    """Answers saved in the run's cache (in SQLite or still in its pending file)."""
    cache = CompletionCache(out / "cache.sqlite")
    try:
        return len(cache)
    finally:
        cache.close()


def test_killed_three_times_then_the_same_dataset_as_an_uninterrupted_run(tmp_path, fake_server):
    server = fake_server(latency=0.02)
    concurrency = 8
    recipe = write(tmp_path, server.url, records=400, concurrency=concurrency)
    out = tmp_path / "out"
    rng = random.Random(7)
    ledger = KillLedger()
    for _ in range(3):
        before = sum(server.answered.values())
        proc = subprocess.Popen(synthloom_cmd("run", str(recipe), "--out", str(out), "--no-progress"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = before + rng.randint(20, 90)
        deadline = time.time() + 120
        while sum(server.answered.values()) < target and time.time() < deadline:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(0.2)  # the server finishes what was in flight
        kill = ledger.after_kill(server.answered, cached(out))
        assert kill.sent >= 20 and kill.saved > 0  # the run was killed mid-way, not before it started
    done = run_cli("run", str(recipe), "--out", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    final = ledger.complete(server.answered, cached(out))
    assert server.stats()["distinct_answered"] == 400 == final.cached
    assert final.lost == 0  # the uninterrupted resume saved every answer it was sent
    # Per kill: the requests asked again are exactly the answers lost (sent, never saved),
    # and those are at most the requests in flight.
    assert ledger.problems(in_flight=concurrency) == [], ledger.table()
    assert sum(k.reasked for k in ledger.kills) == server.stats()["answered"] - 400

    reference = fake_server()
    synthloom.run(write(tmp_path / "ref", reference.url, records=400), tmp_path / "ref" / "out", progress=False)
    assert rows(out / "curated.parquet") == rows(tmp_path / "ref" / "out" / "curated.parquet")


def test_the_kill_ledger_catches_saved_answers_paid_again_and_more_lost_than_in_flight():
    """The per-kill checks fail when a resume re-asks saved answers, or a kill loses more than was in flight."""
    ledger = KillLedger()
    ledger.after_kill({"r1": 1, "r2": 1, "r3": 1}, cached=2)  # r3 in flight at the kill: lost
    ledger.after_kill({"r1": 2, "r2": 1, "r3": 2, "r4": 1}, cached=4)  # r1 had been saved but was asked again
    ledger.complete({"r1": 2, "r2": 1, "r3": 2, "r4": 1, "r5": 1}, cached=5)
    assert [(k.sent, k.saved, k.lost, k.reasked) for k in ledger.kills] == [(3, 2, 1, 2), (3, 2, 1, 0)]
    assert ledger.problems(in_flight=1) == ["kill 1: 1 answers lost but 2 requests asked again",
                                            "kill 2: 1 answers lost but 0 requests asked again"]
    sound = KillLedger()
    sound.after_kill({"r1": 1, "r2": 1, "r3": 1}, cached=1)
    sound.complete({"r1": 1, "r2": 2, "r3": 2}, cached=3)
    assert sound.problems(in_flight=2) == [] and sound.problems(in_flight=1) == [
        "kill 1: 2 answers lost, more than the 1 requests in flight"]


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (needs root); `grow()` gives it room again."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)

    try:
        yield SimpleNamespace(path=mount, grow=grow)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_disk_full_mid_run_is_a_clear_error_and_resume_works_once_space_is_back(tmp_path, fake_server, small_disk):
    server = fake_server(latency=0.002, responder=lambda body: "a long note " * 40)
    recipe = write(tmp_path, server.url, records=3000, concurrency=16)
    out = small_disk.path / "out"
    done = run_cli("run", str(recipe), "--out", str(out), "--no-progress")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "no space left on device" in done.stderr and "rerun the same command to resume" in done.stderr
    # The run directory is still readable: a whole manifest, a sound cache.
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] in ("running", "failed")
    db = sqlite3.connect(out / "cache.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    answered_before = server.stats()["answered"]

    small_disk.grow()
    saved = cached(out)  # in SQLite, or in the pending file when the disk filled before they were folded in
    assert 0 < saved < 3000
    done = run_cli("run", str(recipe), "--out", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["generated"] == 3000
    assert manifest["model_calls"]["served_from_cache"] == saved
    stats = server.stats()
    assert stats["distinct_answered"] == 3000
    # Only answers that could not be saved were paid again: those in flight
    # when the disk filled, and those sent before the run had stopped them all.
    assert stats["answered_more_than_once"] == answered_before - saved <= 2 * 16
