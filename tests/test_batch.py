"""`model.mode: batch` against a loopback stand-in of OpenAI's Files + Batches API (tests/batch_server.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pyarrow.parquet as pq
import pytest

import synthloom
from synthloom.llm.scheduler import SettingRefused
from synthloom.recipe import RecipeError, load_recipe

from batch_server import BatchServer
from conftest import run_cli, synthloom_cmd

RECIPE = """\
name: notes
model:
  backend: openai
  base_url: {url}
  model: fake
  mode: {mode}
  batch: {{poll_seconds: 0.02, collect_seconds: 0.1, max_lines: {max_lines}{batch}}}
  price: {{input_per_mtok: 1.0, output_per_mtok: 2.0, batch_discount: 0.5}}
task:
  description: short notes{description}
  labels: [a, b]
conditions:
  topic: [x, y, z]
generation:
  records: {records}
  seed: 3
  max_tokens: 20
curation: []
evaluation: []
"""


def write(tmp_path, url, mode="batch", records=12, max_lines=5, batch="", description="", name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(RECIPE.format(url=url, mode=mode, records=records, max_lines=max_lines, batch=batch,
                                  description=description))
    return path


def errors(done) -> list[str]:
    """What a run said after its first-line estimate: one line, the error, is expected."""
    return [line for line in done.stderr.strip().splitlines() if not line.startswith("estimate:")]


@pytest.fixture
def batch_server():
    servers = []

    def start(**kwargs) -> BatchServer:
        server = BatchServer(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def texts(out):
    table = pq.read_table(out / "generated.parquet").to_pylist()
    return sorted(json.dumps({k: v for k, v in row.items() if k in ("id", "text", "label")}, sort_keys=True) for row in table)


def test_batch_gives_the_online_records_at_the_discount_and_a_rerun_pays_nothing(tmp_path, batch_server):
    server = batch_server(validating_polls=2)
    online = synthloom.run(write(tmp_path, server.url, mode="online", name="online.yaml"), tmp_path / "online", progress=False)
    assert server.batch_stats()["lines_submitted"] == 0
    answered_online = server.stats()["answered"]

    batch = synthloom.run(write(tmp_path, server.url), tmp_path / "batch", progress=False)
    stats = server.batch_stats()
    assert server.stats()["answered"] == answered_online  # nothing asked online in batch mode
    assert stats["batches"] == 3 and stats["statuses"] == {"completed": 3}  # 12 lines in parts of at most 5
    assert stats["lines_submitted"] == stats["distinct_lines"] == 12
    assert texts(tmp_path / "batch") == texts(tmp_path / "online")
    paid, paid_online = batch.manifest["spend"]["total"], online.manifest["spend"]["total"]
    assert paid["prompt_tokens"] == paid_online["prompt_tokens"] and paid["batch_calls"] == 12
    assert paid["money"] == pytest.approx(paid_online["money"] * 0.5)
    assert batch.manifest["batches"] == {"lines_answered": 12, "batches": 3}
    assert len(list((tmp_path / "batch" / "batches").glob("part-*.jsonl"))) == 3

    # Cached like any answer: the same run again, batch or online, sends nothing.
    again = synthloom.run(write(tmp_path, server.url, mode="online", name="online2.yaml"), tmp_path / "batch", progress=False)
    assert again.manifest["model_calls"]["model_calls"] == 0
    assert server.batch_stats()["lines_submitted"] == 12 and server.stats()["answered"] == answered_online


def test_failed_lines_go_in_the_next_batch_or_online(tmp_path, batch_server):
    server = batch_server(fail_lines=3)
    result = synthloom.run(write(tmp_path, server.url, max_lines=50), tmp_path / "a", progress=False)
    stats = server.batch_stats()
    assert result.manifest["counts"]["generated"] == 12
    assert stats["batches"] == 2 and stats["distinct_lines"] == 12
    assert stats["submitted_more_than_once"] == 3 and stats["lines_submitted"] == 15
    assert result.manifest["model_calls"]["failed_tries_by_kind"] == {"batch_failed": 3}

    server = batch_server(fail_lines=3)
    result = synthloom.run(write(tmp_path, server.url, max_lines=50, batch=", retry: online"), tmp_path / "b", progress=False)
    assert result.manifest["counts"]["generated"] == 12
    assert server.batch_stats()["lines_submitted"] == 12 and server.batch_stats()["batches"] == 1
    assert server.stats()["answered"] == 3  # the three failed lines, asked online
    assert result.manifest["spend"]["total"]["batch_calls"] == 9


def test_an_expired_batch_keeps_its_answers_and_sends_the_rest_again(tmp_path, batch_server):
    server = batch_server(expire_after=5)
    result = synthloom.run(write(tmp_path, server.url, max_lines=50), tmp_path / "a", progress=False)
    stats = server.batch_stats()
    assert result.manifest["counts"]["generated"] == 12
    assert stats["statuses"] == {"expired": 2, "completed": 1}  # 5 + 5 + 2 lines
    assert stats["lines_answered"] == 12 and stats["distinct_lines"] == 12


def test_a_batch_that_fails_validation_fails_its_requests(tmp_path, batch_server):
    server = batch_server(final_status="failed")
    result = synthloom.run(write(tmp_path, server.url, records=4, max_lines=50), tmp_path / "a", progress=False)
    assert result.manifest["counts"]["generated"] == 0
    assert result.manifest["model_calls"]["failed_requests_by_kind"] == {"rejected": 4}
    assert "scripted validation failure" in json.dumps(result.manifest["failures"])
    assert server.batch_stats()["lines_submitted"] == 4  # not sent again: asking again would not help


def test_a_wrong_mode_is_an_error_at_its_line(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(url="http://127.0.0.1:9/v1", mode="3", records=2, max_lines=5, batch="",
                                  description=""))
    with pytest.raises(RecipeError, match=r"recipe.yaml:6: model.mode: .*'online' or 'batch'"):
        load_recipe(path)
    path.write_text(path.read_text().replace("mode: 3", "mode: batch").replace("max_lines: 5", "max_lines: many"))
    with pytest.raises(RecipeError, match=r"recipe.yaml:7: model.batch.max_lines"):
        load_recipe(path)


def test_a_server_without_the_batch_api_is_a_one_line_error(tmp_path, batch_server):
    server = batch_server(batch_api=False)
    recipe = write(tmp_path, server.url, records=4)
    done = run_cli("run", str(recipe), "--out", str(tmp_path / "run"), "--no-progress")
    assert done.returncode == 2, done.stderr
    last = errors(done)
    assert len(last) == 1 and "model.mode: batch" in last[0] and "no Batch API" in last[0], done.stderr
    # Nothing was recorded as sent: a run against a server that has the API sends every line.
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "failed"
    server2 = batch_server()
    recipe = write(tmp_path, server2.url, records=4)
    result = synthloom.run(recipe, tmp_path / "run", progress=False)
    assert result.manifest["counts"]["generated"] == 4 and server2.batch_stats()["lines_submitted"] == 4


def test_an_upload_over_the_size_limit_names_the_file_or_the_setting(tmp_path, batch_server):
    server = batch_server(max_upload_bytes=600)
    done = run_cli("run", str(write(tmp_path, server.url, records=6, max_lines=50)), "--out", str(tmp_path / "run"), "--no-progress")
    assert done.returncode == 2, done.stderr
    line = errors(done)
    assert len(line) == 1 and "batches/part-" in line[0] and ".jsonl: the server refused the upload as too large" in line[0]
    assert "model.batch.max_bytes" in line[0]
    assert server.batch_stats()["lines_submitted"] == 0

    long = " ".join(["a long description"] * 80)
    recipe = write(tmp_path, server.url, records=2, batch=", max_bytes: 1024", description=long)
    with pytest.raises(SettingRefused, match=r"^model.batch.max_bytes: one request is [\d,]+ bytes, over the limit of 1,024"):
        synthloom.run(recipe, tmp_path / "run2", progress=False)
    assert server.batch_stats()["lines_submitted"] == 0


@pytest.mark.slow
def test_batch_lines_answered_by_a_real_model_give_the_online_records(tmp_path, batch_server, llama_server):
    """The stand-in forwards each batch line to llama.cpp's server: batch and online agree record for record."""
    server = batch_server(forward=llama_server)
    extra = "\n  max_tokens: 12\n  temperature: 0.0"
    online = write(tmp_path, llama_server, mode="online", records=3, name="online.yaml")
    online.write_text(online.read_text().replace("  max_tokens: 20", extra.lstrip("\n")))
    batch = write(tmp_path, server.url, records=3)
    batch.write_text(batch.read_text().replace("  max_tokens: 20", extra.lstrip("\n")))
    synthloom.run(online, tmp_path / "online", progress=False)
    result = synthloom.run(batch, tmp_path / "batch", progress=False)
    stats = server.batch_stats()  # unusable answers are asked again (attempt + 1), in the next batch
    assert stats["lines_answered"] == stats["lines_submitted"] >= 3 and server.stats()["answered"] == 0
    assert result.manifest["counts"]["generated"] == len(texts(tmp_path / "online")) > 0
    assert texts(tmp_path / "batch") == texts(tmp_path / "online")


def test_a_killed_run_resumes_its_batches_and_sends_no_line_twice(tmp_path, batch_server):
    server = batch_server(line_delay=0.05, validating_polls=2)
    recipe = write(tmp_path, server.url, records=30, max_lines=10)
    out = tmp_path / "run"
    env = dict(os.environ)
    proc = subprocess.Popen(synthloom_cmd("run", str(recipe), "--out", str(out), "--no-progress"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # Kill the client while a batch is in flight: some lines answered, not all.
        while not (server.batch_stats()["lines_answered"] >= 3 and proc.poll() is None):
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = server.batch_stats()
    assert before["lines_answered"] < 30 and before["lines_submitted"] > 0
    server.line_delay = 0.0
    done = run_cli("run", str(recipe), "--out", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    stats = server.batch_stats()
    assert stats["submitted_more_than_once"] == 0
    assert stats["lines_submitted"] == stats["distinct_lines"] == 30
    assert stats["batches"] == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["generated"] == 30 and manifest["counts"]["failed"] == 0
    assert server.stats()["answered"] == 0  # nothing asked online either
