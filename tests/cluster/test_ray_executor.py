"""`synthloom run --executor ray` on a real local cluster: a head and two worker nodes.

These run only inside `synthloom.local_cluster` (tests/test_distributed.py
starts it, in private network and PID namespaces); anywhere else they skip.

Each test runs the command as a user does, against OpenAI-compatible servers
on loopback, and compares the result with a local run of the same recipe.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import synthloom
from conftest import run_cli, synthloom_cmd

RECIPE = """\
name: notes
model:
  backend: openai
  base_url: {urls}
  model: fake
  concurrency: {concurrency}
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
curation:
  - stage: meta_talk_filter
  - stage: exact_dedup
  - stage: near_dedup
  - stage: length_filter
    min_chars: 8
  - stage: cross_partition
    folds: 2
evaluation:
  - stage: diversity
"""


@pytest.fixture(scope="module")
def ray_address() -> str:
    address = os.environ.get("SYNTHLOOM_LOCAL_CLUSTER")
    if not address:
        pytest.skip("needs the loopback Ray cluster tests/test_distributed.py starts")
    return address


def messy_answer(body: dict) -> str:
    """Deterministic answers with duplicates and too-short texts, so curation drops some."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    if digest[0] in "01":
        return "ok"
    if digest[0] in "23":
        return "the very same note"
    return f"note {digest[:12]} about {body['messages'][-1]['content'][-30:]}"


def write(folder: Path, urls: list[str], records: int, concurrency: int = 8) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "seeds.jsonl").write_text(
        '{"text": "a seed note", "label": "a"}\n{"text": "b seed note", "label": "b"}\n'
    )
    path = folder / "recipe.yaml"
    path.write_text(RECIPE.format(urls=json.dumps(urls), records=records, concurrency=concurrency))
    return path


def table(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def ray_run(recipe: Path, out: Path, address: str):
    return run_cli("run", str(recipe), "--out", str(out), "--no-progress", "--executor", "ray", "--address", address)


def test_same_curated_data_as_local_with_load_over_two_servers(tmp_path, fake_server, ray_address):
    servers = [fake_server(latency=0.01, responder=messy_answer) for _ in range(2)]
    recipe = write(tmp_path, [s.url for s in servers], records=200)
    done = ray_run(recipe, tmp_path / "ray", ray_address)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["executor"]["name"] == "ray"
    assert manifest["executor"]["nodes"] == 3 and manifest["executor"]["shards"] == 2
    assert manifest["model_calls"]["model_calls"] == 200
    # both replicas took a fair share of the load
    assert all(60 <= s.requests <= 140 for s in servers), [s.requests for s in servers]
    funnel = {step["stage"]: step for step in manifest["curation"]["funnel"]}
    assert funnel["exact_dedup"]["dropped"] > 0 and funnel["length_filter"]["dropped"] > 0

    local = synthloom.run(recipe, tmp_path / "local", progress=False)
    assert local.manifest["model_calls"]["served_from_cache"] == 0
    for name in ("generated.parquet", "curated.parquet", "rejected.parquet"):
        assert table(tmp_path / "ray" / name) == table(tmp_path / "local" / name), name
    assert json.loads((tmp_path / "ray" / "metrics.json").read_text()) == local.metrics

    # A second Ray run into the same directory pays for nothing.
    answered = sum(s.requests for s in servers)
    again = ray_run(recipe, tmp_path / "ray", ray_address)
    assert again.returncode == 0, again.stderr
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["model_calls"]["model_calls"] == 0
    assert manifest["model_calls"]["served_from_cache"] == 200
    assert sum(s.requests for s in servers) == answered


def shard_workers() -> list[int]:
    """Processes of this namespace running a generation shard (Ray names them after the task)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::_run_shard"):
                pids.append(int(entry.name))
    return pids


def test_killed_worker_shard_reruns_without_paying_again(tmp_path, fake_server, ray_address):
    servers = [fake_server(latency=0.05) for _ in range(2)]
    recipe = write(tmp_path, [s.url for s in servers], records=240, concurrency=4)
    proc = subprocess.Popen(
        synthloom_cmd("run", str(recipe), "--out", str(tmp_path / "ray"), "--no-progress",
                      "--executor", "ray", "--address", ray_address),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.time() + 300
        while sum(sum(s.answered.values()) for s in servers) < 60 and time.time() < deadline:
            time.sleep(0.02)
        victims = shard_workers()
        assert victims, "no shard was running"
        os.kill(victims[0], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    executor = manifest["executor"]
    assert len(executor["shards_rerun"]) == 1 and executor["shard_attempts"] == 3
    # The rerun shard replayed what its dead worker had finished...
    assert manifest["model_calls"]["served_from_cache"] >= 10
    assert manifest["counts"]["generated"] == 240
    # ... and at the servers, only requests the worker had in flight (2) or had
    # just received (not yet sent on to the store) were ever answered twice.
    stats = [s.stats() for s in servers]
    assert sum(s["distinct_answered"] for s in stats) == 240
    assert sum(s["answered_more_than_once"] for s in stats) <= 4

    reference = fake_server()
    local_recipe = write(tmp_path / "ref", [reference.url], records=240)
    synthloom.run(local_recipe, tmp_path / "ref" / "out", progress=False)
    for name in ("curated.parquet", "rejected.parquet"):
        ray_rows = [{k: v for k, v in r.items() if k != "meta"} for r in table(tmp_path / "ray" / name)]
        local_rows = [{k: v for k, v in r.items() if k != "meta"} for r in table(tmp_path / "ref" / "out" / name)]
        assert ray_rows == local_rows, name


@pytest.mark.slow
def test_real_model_server_with_embeddings_over_ray_data(tmp_path, llama_server, ray_address):
    """The real llama.cpp server behind the Ray executor; the downstream step's embeddings come from Ray Data."""
    test_rows = [{"text": f"win a free prize now {i}", "label": "spam"} for i in range(6)] + [
        {"text": f"see you at dinner tonight {i}", "label": "ham"} for i in range(6)
    ]
    (tmp_path / "real.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test_rows))
    recipe = tmp_path / "recipe.yaml"
    (tmp_path / "seeds.jsonl").write_text(
        '{"text": "WIN a prize! call 0800 now", "label": "spam"}\n{"text": "running late, see you soon", "label": "ham"}\n'
    )
    recipe.write_text(f"""\
name: sms
model: {{backend: openai, base_url: "{llama_server}", model: smollm2, concurrency: 2}}
task: {{description: short SMS messages, labels: [spam, ham]}}
demonstrations: {{path: seeds.jsonl, k: 1}}
generation: {{records: 8, max_tokens: 24, seed: 5, temperature: 0.7}}
evaluation:
  - stage: diversity
  - stage: downstream
    test: {{path: real.jsonl}}
""")
    done = ray_run(recipe, tmp_path / "ray", ray_address)
    assert done.returncode == 0, done.stderr
    ray_metrics = json.loads((tmp_path / "ray" / "metrics.json").read_text())
    assert ray_metrics["downstream"]["n_test"] == 12
    # The Ray run's cache is the local executor's cache: a local run into a
    # copy of the directory replays every answer and finds the same data.
    shutil.copytree(tmp_path / "ray", tmp_path / "local")
    local = synthloom.run(recipe, tmp_path / "local", progress=False)
    assert local.manifest["model_calls"]["model_calls"] == 0
    assert table(tmp_path / "ray" / "curated.parquet") == table(tmp_path / "local" / "curated.parquet")
    assert local.metrics["downstream"]["accuracy"] == pytest.approx(ray_metrics["downstream"]["accuracy"], abs=1 / 12)
