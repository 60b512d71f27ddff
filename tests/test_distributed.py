"""The Ray executor: its pieces here, and the whole of it on a real local cluster.

`test_on_a_local_ray_cluster` starts a head and two worker nodes (separate
`ray start` process trees) in private network and PID namespaces, so every
byte stays on loopback and nothing outlives the test, and runs
tests/cluster/ there.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import subprocess
import sys

import pytest

from synthloom.generate import GenerationResult, load_support
from synthloom.llm import CompletionCache, Scheduler
from synthloom.llm.openai import OpenAIConfig
from synthloom.recipe import recipe_from_dict
from synthloom.execute.run import make_producer

from conftest import ROOT, run_cli
from scripted_model import scripted_backend

ray = pytest.importorskip("ray", reason="the Ray executor needs the ray extra")

from synthloom.execute.answer_store import AnswerStore  # noqa: E402
from synthloom.execute.ray_executor import _shard_config, _shard_worker, shard_ranges  # noqa: E402
from synthloom.execute.local_cluster import can_isolate, isolated_command  # noqa: E402


def test_shards_cover_every_index_once_in_order():
    for total, shards in [(10, 3), (7, 7), (3, 8), (1000, 4), (1, 1)]:
        ranges = shard_ranges(total, shards)
        assert [i for a, b in ranges for i in range(a, b)] == list(range(total))
        sizes = [b - a for a, b in ranges]
        assert max(sizes) - min(sizes) <= 1 and len(ranges) == min(total, shards)


def test_each_shard_gets_its_share_of_concurrency_and_its_turn_of_the_urls():
    urls = ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", "http://127.0.0.1:3/v1"]
    config = OpenAIConfig(base_url=urls, model="m", concurrency=64, requests_per_minute=600)
    firsts = [_shard_config(config, 4, shard).base_url[0] for shard in range(3)]
    assert firsts == urls
    assert _shard_config(config, 4, 0).concurrency == 16
    assert _shard_config(config, 4, 0).requests_per_minute == 150
    assert _shard_config(config, 3, 0).concurrency == 22  # rounded up: never less than asked for in total
    single = OpenAIConfig(base_url=urls[0], model="m", concurrency=1)
    assert _shard_config(single, 2, 5).base_url == urls[0] and _shard_config(single, 2, 5).concurrency == 1


def test_answer_store_knows_a_rerun_shard_and_keeps_answers_in_the_run_cache(tmp_path):
    store = AnswerStore(str(tmp_path / "cache.sqlite"))
    assert store.begin(0) == (False, None)  # a fresh run: nothing to look up (and no budget to stop at)
    store.save(0, [("k1", '{"text": "one"}'), ("k2", '{"text": "two"}')], done=2, failed=0)
    assert store.begin(0) == (True, None)  # the same shard again: ask before paying
    assert store.lookup(["k1", "k3"]) == {"k1": '{"text": "one"}'}
    assert store.progress() == (0, 0)  # the new attempt starts counting afresh
    assert store.summary()["shards_rerun"] == [0]
    store.close()
    # The store's file is the local executor's cache: a resumed run finds the answers.
    cache = CompletionCache(tmp_path / "cache.sqlite")
    assert cache.get("k2").text == "two" and len(cache) == 2
    assert AnswerStore(str(tmp_path / "cache.sqlite")).begin(3)[0] is True  # a resumed run


def test_answer_store_counts_the_shards_spend_with_the_drivers_and_says_stop_at_the_cap(tmp_path):
    from synthloom.llm import Usage
    from synthloom.llm.pricing import Budget, Price
    from synthloom.llm.spend import Ledger

    price = Price(input_per_mtok=1000, output_per_mtok=1000)  # 0.001 a token
    store = AnswerStore(str(tmp_path / "cache.sqlite"), Budget(money=1.0), "USD")
    driver = Ledger(Budget(money=1.0))
    driver.charge("generation", Usage(300, 0), cached=False, price=price)  # the driver's own calls: 0.3
    store.spent_outside(driver.snapshot())
    assert store.begin(0) == (False, None)
    paid = ("generation", Usage(200, 100), False, price, False)  # 0.3 each
    assert store.save(0, [("k1", "{}")], 1, 0, [paid]) is None  # 0.6 in all
    stop = store.save(1, [("k2", "{}")], 1, 0, [paid])  # 0.9: under the cap
    assert stop is None
    stop = store.save(1, [("k3", "{}")], 2, 0, [("generation", Usage(100, 100), True, price, False)])  # replayed count too
    assert stop["cap"] == "model.budget.money" and stop["stage"] == "generation" and "1.1000 of 1 USD" in stop["message"]
    assert store.begin(2)[1] == stop and store.save(0, [], 1, 0) == stop  # every shard hears it from now on
    spent, said = store.spent()
    assert said == stop and (spent["generation"].calls, spent["generation"].cached_calls) == (2, 1)  # the shards' own
    driver.absorb(spent)
    assert driver.to_json()["total"]["money"] == pytest.approx(1.1)
    assert store.spent()[0] == {}  # taken: the driver's ledger has it now, and sends it back as the spend outside
    store.spent_outside(driver.snapshot())
    assert store.save(0, [], 1, 0, [("generation", Usage(0, 0), True, price, False)]) == stop
    store.close()


def test_answer_store_counts_a_killed_runs_pending_answers_folded_in_by_the_driver(tmp_path):
    """The driver may open the cache (and fold in a killed run's pending answers) after the store started."""
    import fcntl
    import os

    path = tmp_path / "cache.sqlite"
    path.with_name("cache.sqlite-pending").write_text('v1:k\t{"text": "paid"}\n')
    held = os.open(path.with_name("cache.sqlite-pending"), os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)  # the driver, which has taken the pending file but not yet folded it in
    store = AnswerStore(str(path))
    os.close(held)
    driver = CompletionCache(path)
    assert driver.get("v1:k").text == "paid"  # opening it folded the leftovers into SQLite
    driver.close()
    assert store.begin(0)[0] is True  # so the first shards ask the store before paying
    store.close()


# -- a producer's batches of plans, run as the Ray executor's shards run them ---------------------


def like_ray_shards(recipe, shards: int = 3):
    """A plan runner that does in this process what the Ray executor does with a batch of plans:
    pickle them, cut them into contiguous shards, and run each with a worker rebuilt from the recipe alone."""
    batches = []

    async def run(scheduler, plans, total, on_record=None):
        plans = list(plans)
        assert len(plans) == total
        batches.append(total)
        result = GenerationResult()
        for start, stop in shard_ranges(total, shards):
            shipped = pickle.loads(pickle.dumps(plans[start:stop]))
            worker = _shard_worker(pickle.loads(pickle.dumps(recipe)))
            result.extend(await worker.run(scheduler, shipped, len(shipped), on_record))
        return result

    run.batches = batches
    return run


def produce(recipe, runner=None):
    """(records, failures, requests sent, producer) of one producer run over a scripted model."""
    backend = scripted_backend()
    producer = make_producer(recipe, load_support(recipe))
    result = asyncio.run(producer.produce(Scheduler(backend), runner=runner))
    return result.records, result.failures, backend.calls, producer


def notes_recipe(tmp_path, **extra):
    (tmp_path / "seeds.jsonl").write_text("".join(
        json.dumps({"title": f"{lab} seed title {i}", "text": f"{lab} seed {i}", "label": lab}) + "\n"
        for lab in "ab" for i in range(3)))
    data = {
        "name": "r", "model": {"backend": "fake"},
        "task": {"description": "notes", "labels": ["a", "b"]},
        "conditions": {"topic": ["x", "y"]},
        "demonstrations": {"path": "seeds.jsonl", "k": 2},
        "generation": {"records": 24, "seed": 7},
        "curation": [{"stage": "exact_dedup"}],
        "evaluation": [{"stage": "diversity"}],
        **extra,
    }
    return recipe_from_dict(data, base_dir=tmp_path)


TWO_STEPS = {
    "task": {"description": "notes", "labels": ["a", "b"], "fields": {"title": "a title", "text": "the note"}},
    "steps": [{"name": "title", "fields": ["title"]}, {"name": "note", "fields": ["text"]}],
}


@pytest.mark.parametrize("rounds, extra", [
    ({"count": 3, "target": 12}, {}),
    ({"count": 3, "strategy": "self_instruct", "synthetic_demos": 1}, {}),
    ({"count": 2, "strategy": "evol_instruct", "evolve_share": 0.5}, {}),
    ({"count": 3, "cells": ["label", "topic"]}, TWO_STEPS),
], ids=["quota", "self_instruct", "evol_instruct", "two_steps"])
def test_rounds_run_their_plans_as_shards_with_the_same_records(tmp_path, rounds, extra):
    recipe = notes_recipe(tmp_path, rounds=rounds, **extra)
    records, failures, calls, local = produce(recipe)
    runner = like_ray_shards(recipe)
    sharded, sharded_failures, sharded_calls, rounds_run = produce(recipe, runner)
    assert len(runner.batches) == len(local.log) >= 2  # one batch of plans per round
    assert sharded == records and sharded_failures == failures
    assert sorted(map(repr, sharded_calls)) == sorted(map(repr, calls))  # the same requests, later steps included
    assert rounds_run.log == local.log
    if rounds.get("strategy") == "evol_instruct":
        assert any("evolution" in r.meta for r in sharded)
    if rounds.get("strategy") == "self_instruct":
        generated = {r.id for r in sharded}
        assert any(set(r.demonstrations) & generated for r in sharded)


def test_annotation_runs_its_plans_as_shards_with_the_same_records(tmp_path):
    (tmp_path / "inputs.jsonl").write_text("".join(json.dumps({"text": f"message {i}"}) + "\n" for i in range(10)))
    (tmp_path / "labelled.jsonl").write_text('{"text": "free prize", "label": "spam"}\n{"text": "hi mum", "label": "ham"}\n')
    recipe = recipe_from_dict({
        "name": "ann", "model": {"backend": "fake"},
        "task": {"description": "SMS messages", "labels": ["spam", "ham"]},
        "demonstrations": {"path": "labelled.jsonl", "k": 2, "selection": "stratified"},
        "annotation": {"input": {"path": "inputs.jsonl"}, "samples": 3},
        "evaluation": [{"stage": "diversity"}],
    }, base_dir=tmp_path)
    records, failures, calls, local = produce(recipe)
    runner = like_ray_shards(recipe)
    sharded, sharded_failures, sharded_calls, _ = produce(recipe, runner)
    assert runner.batches == [10] and len(records) == 10
    assert sharded == records and sharded_failures == failures
    # every sample of every input asked as locally: the seeds follow the input's index, not its place in a shard
    assert sorted(map(repr, sharded_calls)) == sorted(map(repr, calls)) and len(calls) == 30


def test_cli_rejects_ray_options_without_the_ray_executor(tmp_path):
    done = run_cli("run", str(ROOT / "examples" / "sms_spam.yaml"), "--address", "127.0.0.1:1")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --address and --workers need --executor ray"
    done = run_cli("run", str(ROOT / "examples" / "sms_spam.yaml"), "--executor", "spark")
    assert done.returncode == 2 and "unknown executor 'spark'" in done.stderr


def test_cli_says_at_once_when_no_cluster_listens(tmp_path):
    from conftest import free_port

    address = f"127.0.0.1:{free_port()}"
    done = run_cli("run", str(ROOT / "examples" / "sms_spam.yaml"), "--out", str(tmp_path / "out"),
                   "--executor", "ray", "--address", address, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: cannot join the Ray cluster at {address}: ")
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.timeout(1800)  # three clusters' worth of runs; the inner suite has its own per-test limit
def test_on_a_local_ray_cluster():
    reason = can_isolate()
    if reason:
        pytest.skip(f"no private namespaces for a loopback Ray cluster: {reason}")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/cluster"]
    done = subprocess.run(isolated_command(command, workers=2), cwd=ROOT, capture_output=True, text=True, timeout=1800)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout, output[-3000:]
