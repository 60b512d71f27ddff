"""`synthloom run --executor ray` on a real local cluster: a head and two worker nodes.

These run only inside `synthloom.execute.local_cluster` (tests/test_distributed.py
starts it, in private network and PID namespaces); anywhere else they skip.

Each test runs the command as a user does, against OpenAI-compatible servers
on loopback, and compares the result with a local run of the same recipe.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
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
    # The cost the manifest reports counts the shards' answers: the same as a local run's
    spent = {k: manifest["spend"]["total"][k] for k in ("calls_paid", "prompt_tokens", "completion_tokens")}
    assert spent == {k: local.manifest["spend"]["total"][k] for k in spent} and spent["calls_paid"] == 200

    # A second Ray run into the same directory pays for nothing.
    answered = sum(s.requests for s in servers)
    again = ray_run(recipe, tmp_path / "ray", ray_address)
    assert again.returncode == 0, again.stderr
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["model_calls"]["model_calls"] == 0
    assert manifest["model_calls"]["served_from_cache"] == 200
    assert sum(s.requests for s in servers) == answered


ROUNDS = """\
rounds:
  count: 3
  strategy: self_instruct
  synthetic_demos: 1
"""


def ray_api_run(recipe: Path, out: Path, address: str):
    """`synthloom.run(..., executor=RayExecutor(address))`, from this process."""
    from synthloom.execute.ray_executor import RayExecutor

    return synthloom.run(recipe, out, progress=False, executor=RayExecutor(address=address))


def answered_by_request(servers) -> collections.Counter:
    """How many times each distinct request body was answered, over all the servers."""
    total: collections.Counter = collections.Counter()
    for server in servers:
        total.update(server.answered)
    return total


def answered_once(servers) -> int:
    """Distinct requests the servers answered, each exactly once (asserted), over all the servers."""
    answered = answered_by_request(servers)
    assert all(n == 1 for n in answered.values()), [n for n in answered.values() if n > 1]
    return len(answered)


def same_run(ray_out: Path, local) -> None:
    """The Ray run's data, metrics and generation summary equal the local run's."""
    for name in ("generated.parquet", "curated.parquet", "rejected.parquet"):
        assert table(ray_out / name) == table(local.out / name), name
    assert json.loads((ray_out / "metrics.json").read_text()) == local.metrics
    manifest = json.loads((ray_out / "manifest.json").read_text())
    assert manifest["generation"] == local.manifest["generation"]
    assert manifest["model_calls"] == local.manifest["model_calls"]
    assert manifest["counts"] == local.manifest["counts"]


def test_rounds_same_curated_data_as_local(tmp_path, fake_server, ray_address):
    """Self-Instruct rounds: each round's plans run as shards, the round loop on the driver."""
    servers = [fake_server(latency=0.01, responder=messy_answer) for _ in range(2)]
    recipe = write(tmp_path, [s.url for s in servers], records=60)
    recipe.write_text(recipe.read_text() + ROUNDS)
    ray_api_run(recipe, tmp_path / "ray", ray_address)
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    log = manifest["generation"]["rounds"]["log"]
    assert len(log) == 3 and all(entry["asked"] > 0 for entry in log)
    assert manifest["executor"]["batches"] == 3 and manifest["executor"]["shards"] == 6
    assert manifest["counts"]["generated"] == 60 and manifest["model_calls"]["model_calls"] == 60
    assert answered_once(servers) == 60  # each distinct request answered once, over all rounds and shards
    # later rounds were shown records accepted earlier (the pool lives on the driver)
    rows = table(tmp_path / "ray" / "generated.parquet")
    ids = {row["id"] for row in rows}
    later = [row for row in rows if json.loads(row["meta"])["round"] > 1]
    assert later and all(set(row["demonstrations"]) & ids for row in later)

    local = synthloom.run(recipe, tmp_path / "local", progress=False)
    assert local.manifest["model_calls"]["served_from_cache"] == 0
    same_run(tmp_path / "ray", local)


def label_answer(body: dict) -> str:
    """A label (a or b) that depends on the message and the sample's seed, as text or JSON."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    label = "a" if int(digest[:2], 16) % 3 else "b"
    return json.dumps({"label": label}) if body.get("response_format") else label


def test_annotation_same_curated_data_as_local(tmp_path, fake_server, ray_address):
    servers = [fake_server(latency=0.01, responder=label_answer) for _ in range(2)]
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "inputs.jsonl").write_text("".join(
        json.dumps({"text": f"message {i % 37} about {'xyz'[i % 3]}"}) + "\n" for i in range(40)))
    (tmp_path / "seeds.jsonl").write_text('{"text": "a seed note", "label": "a"}\n{"text": "b seed note", "label": "b"}\n')
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"""\
name: labels
model: {{backend: openai, base_url: {json.dumps([s.url for s in servers])}, model: fake, concurrency: 8}}
task: {{description: short notes, labels: [a, b]}}
demonstrations: {{path: seeds.jsonl, k: 2, selection: stratified}}
annotation:
  input: {{path: inputs.jsonl}}
  samples: 3
generation: {{seed: 4}}
curation:
  - stage: exact_dedup
evaluation:
  - stage: diversity
""")
    ray_api_run(recipe, tmp_path / "ray", ray_address)
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["executor"]["shards"] == 2
    assert manifest["generation"]["annotated"] == 40
    assert manifest["model_calls"]["model_calls"] == 120
    assert answered_once(servers) == 120
    assert all(s.requests >= 20 for s in servers)

    local = synthloom.run(recipe, tmp_path / "local", progress=False)
    assert local.manifest["model_calls"]["served_from_cache"] == 0
    same_run(tmp_path / "ray", local)
    votes = [json.loads(row["meta"])["votes"] for row in table(tmp_path / "ray" / "generated.parquet")]
    assert any(len(v) == 2 for v in votes)  # the samples disagree somewhere: the labels are not all alike


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


def test_documents_same_records_as_local(tmp_path, fake_server, ray_address):
    """A recipe over documents: plans made on the driver with their chunks, the same records as a local run."""
    servers = [fake_server(latency=0.01, responder=grounded_answer) for _ in range(2)]
    docs = tmp_path / "docs"
    docs.mkdir(parents=True)
    topics = ["kettles", "bicycles", "lanterns", "ferries"]
    for n, topic in enumerate(topics):
        sections = "".join(
            f"## {topic.title()} part {s}\n\n" + " ".join(
                f"The {topic} of kind {s}.{k} work by rule {n * 31 + s * 7 + k}." for k in range(12)) + "\n\n"
            for s in range(3))
        (docs / f"{topic}.md").write_text(f"# {topic.title()}\n\n{sections}")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"""\
name: docs
model: {{backend: openai, base_url: {json.dumps([s.url for s in servers])}, model: fake, concurrency: 8}}
task: {{kind: grounded_qa, description: Questions about household things}}
documents:
  paths: [docs]
  max_tokens: 64
  overlap: 8
  kinds: {{single_hop_specific: 3, single_hop_abstract: 1, multi_hop: 1, unanswerable: 1}}
conditions:
  query_style: [keyword, casual]
generation: {{records: 30, seed: 5}}
curation:
  - stage: exact_dedup
    field: question
  - stage: quote_match
    threshold: 90
  - stage: retrieval_rank
    k: 3
evaluation: []
""")
    from synthloom.execute.ray_executor import RayExecutor

    # Two shards whatever the cluster has left: an earlier test in this file kills a worker node.
    synthloom.run(recipe, tmp_path / "ray", progress=False, executor=RayExecutor(address=ray_address, shards=2))
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["executor"]["name"] == "ray" and manifest["executor"]["shards"] == 2
    assert manifest["counts"]["generated"] == 30 and answered_once(servers) == 30
    funnel = {step["stage"]: step for step in manifest["curation"]["funnel"]}
    assert funnel["quote_match"]["kept"] > 0 and funnel["retrieval_rank"]["seen"] > 0

    local = synthloom.run(recipe, tmp_path / "local", progress=False)
    assert local.manifest["model_calls"]["served_from_cache"] == 0
    same_run(tmp_path / "ray", local)
    assert table(tmp_path / "ray" / "chunks.parquet") == table(tmp_path / "local" / "chunks.parquet")
    for name in ("documents.json", "ragas.jsonl"):
        assert (tmp_path / "ray" / name).read_text() == (tmp_path / "local" / name).read_text(), name


def tool_answer(body: dict) -> str:
    """A request (depending on the persona asked for), then calls under the schema the request gives, then an answer."""
    text = body["messages"][-1]["content"]
    if "Write one request" in text:
        n = 2 + int(hashlib.sha256(text.encode()).hexdigest()[:2], 16) % 5
        return f"What do {n} apples cost, and what is the area of a {n} by 4 m table?"
    if body.get("response_format"):
        n = int(text.split("What do ")[1].split()[0])
        return json.dumps({"tool_calls": [{"name": "price", "arguments": {"item": "apple", "quantity": n}},
                                          {"name": "area", "arguments": {"width": n, "height": 4}}]})
    return "They cost " + text.split("returned: ")[1].split()[0] + " and the area is " + text.split("returned: ")[2].split()[0]


def test_tool_use_shards_start_their_own_tools_and_make_the_local_runs_trajectories(tmp_path, fake_server, ray_address):
    """A tool_use recipe: each shard starts the Python tool (in the sandbox) and the MCP server on its node."""
    servers = [fake_server(latency=0.01, responder=tool_answer) for _ in range(2)]
    (tmp_path / "mytools.py").write_text(
        'def area(width: float, height: float = 1.0) -> float:\n    """The area of a rectangle."""\n    return width * height\n')
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"""\
name: tools
model: {{backend: openai, base_url: {json.dumps([s.url for s in servers])}, model: fake, concurrency: 4}}
task: {{kind: tool_use, description: shopping and measuring}}
tools:
  sources:
    - python: mytools.py:area
    - mcp: {{command: {json.dumps(sys.executable)}, args: [{json.dumps(str(Path(__file__).parent.parent / "mcp_test_server.py"))}]}}
      tools: [price]
  call_kinds: [multiple]
conditions: {{persona: [a carpenter, a cook, a baker]}}
generation: {{records: 12, seed: 4}}
curation:
  - stage: tool_format
  - stage: tool_execution
evaluation: []
""")
    from synthloom.execute.ray_executor import RayExecutor

    synthloom.run(recipe, tmp_path / "ray", progress=False, executor=RayExecutor(address=ray_address, shards=2))
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["executor"]["name"] == "ray" and manifest["executor"]["shards"] == 2
    assert manifest["counts"]["generated"] == 12 and manifest["counts"]["curated"] == 12
    assert answered_once(servers) == 36  # request, calls, answer: each asked once over both shards
    rows = table(tmp_path / "ray" / "curated.parquet")
    results = [[m["content"] for m in json.loads(r["messages"]) if m["role"] == "tool"] for r in rows]
    assert len({tuple(r) for r in results}) > 1 and all(len(r) == 2 for r in results)
    for r, (price, area) in zip(rows, results):  # the tools' real outputs: 0.5 an apple, width x 4
        n = int(json.loads(r["messages"])[0]["content"].split("What do ")[1].split()[0])
        assert float(price) == 0.5 * n and float(area) == 4.0 * n

    local = synthloom.run(recipe, tmp_path / "local", progress=False)
    assert local.manifest["model_calls"]["served_from_cache"] == 0
    for name in ("generated.parquet", "curated.parquet", "rejected.parquet"):  # equal but for how long each call took
        assert untimed(table(tmp_path / "ray" / name)) == untimed(table(local.out / name)), name
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["generation"] == local.manifest["generation"] and manifest["counts"] == local.manifest["counts"]
    assert manifest["model_calls"] == local.manifest["model_calls"]


def untimed(rows: list[dict]) -> list[dict]:
    """The rows with how long each tool call took (`seconds`, wherever the meta has it) taken out."""
    def drop(value):
        if isinstance(value, dict):
            return {k: drop(v) for k, v in value.items() if k != "seconds"}
        return [drop(v) for v in value] if isinstance(value, list) else value

    return [{**row, "meta": drop(json.loads(row["meta"]))} for row in rows]


def test_a_budget_stops_every_shard_and_a_raised_budget_resumes_without_paying_twice(tmp_path, fake_server, ray_address):
    """The shards' spend is counted by the answer store with the driver's; at the cap every shard stops
    sending, finishes what it sent and saves it; exit status 3; a rerun with a raised budget goes on."""
    servers = [fake_server(latency=0.02) for _ in range(2)]
    recipe = write(tmp_path, [s.url for s in servers], records=200, concurrency=4)
    priced = "  price: {input_per_mtok: 1000, output_per_mtok: 1000}\n  budget: {money: 4.0}\n"
    recipe.write_text(recipe.read_text().replace("  concurrency: 4\n", "  concurrency: 4\n" + priced))
    stopped = ray_run(recipe, tmp_path / "ray", ray_address)
    assert stopped.returncode == 3, stopped.stderr
    assert "budget reached" in stopped.stderr and "raise model.budget" in stopped.stderr
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["status"] == "stopped" and manifest["executor"]["name"] == "ray"
    spend = manifest["spend"]
    assert spend["stopped"]["stage"] == "generation" and spend["stopped"]["cap"] == "model.budget.money"
    paid = spend["total"]["calls_paid"]
    per_call = spend["total"]["money"] / paid
    # Over by the requests in flight when the cap was reached (4), and those a shard sent before the store's
    # reply reached it: 5 calls over in 4 runs; the bound leaves room for a slow store under load.
    assert 4.0 <= spend["total"]["money"] <= 4.0 + 12 * per_call, (spend["total"], per_call)
    assert 0 < paid < 200
    answered = answered_by_request(servers)
    assert sum(answered.values()) == paid  # every answer the servers gave was counted, and saved (next run)

    recipe.write_text(recipe.read_text().replace("money: 4.0", "money: 1000"))
    done = ray_run(recipe, tmp_path / "ray", ray_address)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["generated"] == 200
    total = manifest["spend"]["total"]
    assert total["calls_replayed"] == paid and total["calls_paid"] == 200 - paid
    assert all(n == 1 for n in answered_by_request(servers).values())  # nothing paid twice


def test_killed_worker_shard_reruns_without_paying_again(tmp_path, fake_server, ray_address):
    servers, proc = start_a_run_of_240(tmp_path, fake_server, ray_address)
    try:
        victims = shard_workers()
        assert victims, "no shard was running"
        os.kill(victims[0], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert_one_shard_rerun_and_same_as_local(tmp_path, servers, fake_server)


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
    # the same curated data, so the same model and the same scores on the same test rows
    for key in ("n_train", "n_test", "accuracy", "macro_f1", "f1_by_label"):
        assert local.metrics["downstream"][key] == ray_metrics["downstream"][key], key


def _processes() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, command line) for every process of this namespace."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                out[int(entry.name)] = (int(stat.rpartition(")")[2].split()[1]), (entry / "cmdline").read_bytes())
            except (OSError, ValueError, IndexError):
                continue
    return out


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


def node_of(pid: int) -> list[int]:
    """The processes of the worker node `pid` runs on: its raylet and everything the raylet started."""
    procs = _processes()
    raylet = pid
    while raylet in procs and not Path(procs[raylet][1].split(b"\0")[0].decode()).name == "raylet":
        raylet = procs[raylet][0]
    assert raylet in procs, f"no raylet above {pid}"
    tree, grew = {raylet}, True
    while grew:
        more = {p for p, (parent, _) in procs.items() if parent in tree} - tree
        grew = bool(more)
        tree |= more
    return sorted(tree)


def test_killed_worker_node_reruns_its_shard_without_paying_again(tmp_path, fake_server, ray_address):
    """A whole worker node dies mid-run (its raylet and every process it started, at once).

    Last in this file: the cluster has one worker node fewer afterwards."""
    servers, proc = start_a_run_of_240(tmp_path, fake_server, ray_address)
    try:
        victims = shard_workers()
        assert victims, "no shard was running"
        node = node_of(victims[0])
        assert victims[0] in node and len(node) >= 2
        for pid in node:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, stderr = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert not any(_running(pid) for pid in node)  # the node stayed dead (its processes are at most zombies)
    assert_one_shard_rerun_and_same_as_local(tmp_path, servers, fake_server)


def assert_one_shard_rerun_and_same_as_local(tmp_path, servers, fake_server):
    """After a kill: one shard ran again, replaying what had finished, and the data is a local run's.

    The design's promise: a dead worker loses only the requests it had in flight
    (its share of the concurrency) and the answers it had received but not yet
    sent on to the store (at most as many); nothing is asked that a local run
    would not ask."""
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    executor, calls = manifest["executor"], manifest["model_calls"]
    assert len(executor["shards_rerun"]) == 1 and executor["shard_attempts"] == 3
    assert manifest["counts"]["generated"] == 240
    in_flight = executor["concurrency_per_shard"]
    assert in_flight == 2  # 4 over the two shards running at once
    # Counted over both servers together: the rerun shard may ask a lost request of the other replica
    # than the dead worker did, and per server that would look like two different requests.
    answered = answered_by_request(servers)
    # Every answer the servers sent was paid by a shard that finished, or went to the dead worker;
    # of these, the saved ones were served from the store to the rerun shard, the rest were lost.
    lost = sum(answered.values()) - calls["model_calls"] - calls["served_from_cache"]
    assert 0 <= lost <= 2 * in_flight, (lost, calls)
    assert calls["served_from_cache"] >= 10  # the dead worker had finished some: they were replayed, not paid again
    assert sum(1 for n in answered.values() if n > 1) <= lost  # a request paid twice is one whose answer was lost
    assert len(answered) == 240  # no request a local run would not make (no re-ask as a new attempt)

    reference = fake_server()
    local_recipe = write(tmp_path / "ref", [reference.url], records=240)
    synthloom.run(local_recipe, tmp_path / "ref" / "out", progress=False)
    for name in ("curated.parquet", "rejected.parquet"):
        ray_rows = [{k: v for k, v in r.items() if k != "meta"} for r in table(tmp_path / "ray" / name)]
        local_rows = [{k: v for k, v in r.items() if k != "meta"} for r in table(tmp_path / "ref" / "out" / name)]
        assert ray_rows == local_rows, name


def start_a_run_of_240(tmp_path, fake_server, ray_address):
    """A Ray run of 240 records over two loopback servers, returned once each of its two shards has 20 answers.

    Per shard, not in all: on a loaded machine one shard's worker may still be starting (its process
    already named after the task) while the other has answered 60, and killing that one kills no work."""
    from synthloom.generate.engine import request_seed

    servers = [fake_server(latency=0.05) for _ in range(2)]
    recipe = write(tmp_path, [s.url for s in servers], records=240, concurrency=4)
    shard_of = {request_seed(3, i): i // 120 for i in range(240)}  # the recipe's seed 3; shards of 120 plans
    proc = subprocess.Popen(
        synthloom_cmd("run", str(recipe), "--out", str(tmp_path / "ray"), "--no-progress",
                      "--executor", "ray", "--address", ray_address),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )

    def answers_per_shard() -> list[int]:
        counts = [0, 0]
        for server in servers:
            for seed, n in list(server.answered_seeds.items()):
                if seed in shard_of:
                    counts[shard_of[seed]] += n
        return counts

    deadline = time.time() + 300
    while min(answers_per_shard()) < 20 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert min(answers_per_shard()) >= 20, answers_per_shard()
    return servers, proc


def grounded_answer(body: dict) -> str:
    """A question about the passage, its first sentence as the answer and the evidence (verbatim, so quotes match)."""
    prompt = body["messages"][-1]["content"]
    passage = prompt.split("):\n", 1)[-1].split("\n\n", 1)[0]
    first = passage.split(". ")[0].strip()
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:6]
    question = f"What does the text say about {' '.join(first.split()[:6])} ({digest})?"
    if "does NOT answer" in prompt:
        return json.dumps({"question": question})
    return json.dumps({"question": question, "answer": first, "evidence": [first]})
