"""Whole runs against a loopback server: the run directory, resume, kill -9, secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pyarrow.parquet as pq

import synthloom
from synthloom.llm import CompletionCache
from synthloom.recipe import load_recipe

from conftest import run_cli, synthloom_cmd

RECIPE = """\
name: notes
model:
  backend: openai
  base_url: {url}
  model: fake
  concurrency: {concurrency}
  api_key_env: {key_env}
task:
  description: short notes
  labels: [a, b]
conditions:
  topic: [x, y, z]
demonstrations:
  path: seeds.jsonl
  k: 2
generation:
  records: {records}
  seed: 3
evaluation:
  - stage: diversity
"""


def write(tmp_path, url, records=30, concurrency=4, key_env="SYNTHLOOM_TEST_KEY"):
    (tmp_path / "seeds.jsonl").write_text(
        '{"text": "a seed note", "label": "a"}\n{"text": "b seed note", "label": "b"}\n'
    )
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(url=url, records=records, concurrency=concurrency, key_env=key_env))
    return path


def dataset(path):
    return pq.read_table(path).select(["id", "text", "label"]).to_pylist()


def test_run_writes_the_whole_run_directory(tmp_path, fake_server, monkeypatch):
    monkeypatch.setenv("SYNTHLOOM_TEST_KEY", "sk-very-secret-123")
    server = fake_server()
    result = synthloom.run(write(tmp_path, server.url), tmp_path / "out", progress=False)
    out = tmp_path / "out"
    for name in ["manifest.json", "generated.parquet", "curated.parquet", "rejected.parquet",
                 "metrics.json", "report.html", "cache.sqlite"]:
        assert (out / name).exists(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["counts"]["generated"] == 30
    assert manifest["model_calls"]["model_calls"] == 30
    assert manifest["model_calls"]["served_from_cache"] == 0
    assert set(manifest["versions"]) >= {"synthloom", "python"}
    rows = pq.read_table(out / "generated.parquet").to_pylist()
    row = rows[0]
    assert row["label"] in ("a", "b") and row["text"].startswith("Reply")
    assert row["conditions"]["topic"] in ("x", "y", "z")
    assert len(row["demonstrations"]) == 1  # one seed per label
    assert json.loads(row["prompt"])[0]["role"] == "system"
    assert result.metrics["diversity"]["records"] == manifest["counts"]["curated"]
    # the key is sent to the server but written nowhere
    for path in out.iterdir():
        assert b"sk-very-secret-123" not in path.read_bytes(), path.name


def test_rerun_pays_for_nothing_and_gives_the_same_dataset(tmp_path, fake_server, monkeypatch):
    monkeypatch.setenv("SYNTHLOOM_TEST_KEY", "k")
    server = fake_server()
    recipe = write(tmp_path, server.url)
    synthloom.run(recipe, tmp_path / "out", progress=False)
    first = dataset(tmp_path / "out" / "curated.parquet")
    again = synthloom.run(recipe, tmp_path / "out", progress=False)
    assert again.manifest["model_calls"]["model_calls"] == 0
    assert again.manifest["model_calls"]["served_from_cache"] == 30
    assert dataset(tmp_path / "out" / "curated.parquet") == first
    assert server.stats()["answered_more_than_once"] == 0


def test_limit_caps_records(tmp_path, fake_server, monkeypatch):
    monkeypatch.setenv("SYNTHLOOM_TEST_KEY", "k")
    server = fake_server()
    result = synthloom.run(write(tmp_path, server.url), tmp_path / "out", limit=7, progress=False)
    assert result.manifest["counts"]["generated"] == 7
    assert server.requests == 7


def test_kill_9_mid_run_then_resume_pays_nothing_twice(tmp_path, fake_server, monkeypatch):
    monkeypatch.setenv("SYNTHLOOM_TEST_KEY", "k")
    server = fake_server(latency=0.05)
    recipe = write(tmp_path, server.url, records=150, concurrency=4)
    env = dict(os.environ, SYNTHLOOM_TEST_KEY="k")
    proc = subprocess.Popen(
        synthloom_cmd("run", str(recipe), "--out", str(tmp_path / "out"), "--no-progress"),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.time() + 60
    while sum(server.answered.values()) < 40 and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.3)  # let the server finish the requests that were in flight
    answered_before = sum(server.answered.values())
    assert 40 <= answered_before < 150
    cache = CompletionCache(tmp_path / "out" / "cache.sqlite")  # what is on disk, pending answers included
    cached_before = len(cache)
    cache.close()
    # Every answer but the few in flight at the moment of the kill is on disk.
    assert answered_before - 4 <= cached_before <= answered_before

    done = run_cli("run", str(recipe), "--out", str(tmp_path / "out"), "--no-progress", env={"SYNTHLOOM_TEST_KEY": "k"})
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["model_calls"]["served_from_cache"] == cached_before
    assert manifest["model_calls"]["model_calls"] == 150 - cached_before
    stats = server.stats()
    # At the server: the resume sent exactly the requests whose answers were
    # not on disk; only answers lost in flight at the kill were asked twice.
    assert stats["answered"] == answered_before + 150 - cached_before
    assert stats["distinct_answered"] == 150
    assert stats["answered_more_than_once"] == answered_before - cached_before

    # The same dataset as a run that was never interrupted.
    reference_server = fake_server(latency=0.0)
    (tmp_path / "ref").mkdir()
    reference = write(tmp_path / "ref", reference_server.url, records=150)
    synthloom.run(load_recipe(reference), tmp_path / "ref" / "out", progress=False)
    assert dataset(tmp_path / "out" / "curated.parquet") == dataset(tmp_path / "ref" / "out" / "curated.parquet")


def test_failed_run_keeps_finished_work_and_says_how_to_resume(tmp_path, fake_server):
    server = fake_server(faults={"rates": {"500": 1.0}})
    recipe = write(tmp_path, server.url, records=60)
    done = run_cli("run", str(recipe), "--out", str(tmp_path / "out"), "--no-progress", env={"SYNTHLOOM_TEST_KEY": "k"})
    assert done.returncode == 1
    assert "stopping early" in done.stderr and "rerun the same command to resume" in done.stderr
    assert "Traceback" not in done.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["model_calls"]["failed_tries_by_kind"]["server_error"] >= 20
    assert (tmp_path / "out" / "generated.parquet").exists()


def test_ctrl_c_stops_cleanly_and_the_rerun_resumes(tmp_path, fake_server, monkeypatch):
    monkeypatch.setenv("SYNTHLOOM_TEST_KEY", "k")
    server = fake_server(latency=0.05)
    recipe = write(tmp_path, server.url, records=120, concurrency=4)
    proc = subprocess.Popen(
        synthloom_cmd("run", str(recipe), "--out", str(tmp_path / "out"), "--no-progress"),
        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 60
    while sum(server.answered.values()) < 30 and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in stderr and "rerun the same command to resume" in stderr
    assert "Traceback" not in stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    saved = len(pq.read_table(tmp_path / "out" / "generated.parquet"))
    assert 30 - 4 <= saved < 120  # up to `concurrency` answers were on the wire when Ctrl-C came

    time.sleep(0.3)
    answered_before = sum(server.answered.values())
    done = run_cli("run", str(recipe), "--out", str(tmp_path / "out"), "--no-progress")
    assert done.returncode == 0, done.stderr
    again = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert again["model_calls"]["served_from_cache"] >= saved
    assert sum(server.answered.values()) == answered_before + again["model_calls"]["model_calls"]
    assert server.stats()["distinct_answered"] == 120


def test_several_samples_per_prompt(tmp_path, fake_server, monkeypatch):
    monkeypatch.setenv("SYNTHLOOM_TEST_KEY", "k")
    server = fake_server()
    recipe_path = write(tmp_path, server.url, records=12)
    recipe_path.write_text(recipe_path.read_text().replace("  seed: 3", "  seed: 3\n  samples_per_prompt: 3"))
    result = synthloom.run(recipe_path, tmp_path / "out", progress=False)
    rows = pq.read_table(tmp_path / "out" / "generated.parquet").to_pylist()
    assert len(rows) == 12 and result.manifest["model_calls"]["model_calls"] == 12
    for group in range(4):
        three = rows[3 * group: 3 * group + 3]
        assert len({r["prompt"] for r in three}) == 1  # one prompt ...
        assert len({r["text"] for r in three}) == 3  # ... three different draws
