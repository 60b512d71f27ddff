"""The Ray executor: its pieces here, and the whole of it on a real local cluster.

`test_on_a_local_ray_cluster` starts a head and two worker nodes (separate
`ray start` process trees) in private network and PID namespaces, so every
byte stays on loopback and nothing outlives the test, and runs
tests/cluster/ there.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from synthloom.llm import CompletionCache
from synthloom.llm.openai import OpenAIConfig

from conftest import ROOT, run_cli

ray = pytest.importorskip("ray", reason="the Ray executor needs the ray extra")

from synthloom.distributed import AnswerStore, _shard_config, shard_ranges  # noqa: E402
from synthloom.local_cluster import can_isolate, isolated_command  # noqa: E402


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
    assert store.begin(0) is False  # a fresh run: nothing to look up
    store.save(0, [("k1", '{"text": "one"}'), ("k2", '{"text": "two"}')], done=2, failed=0)
    assert store.begin(0) is True  # the same shard again: ask before paying
    assert store.lookup(["k1", "k3"]) == {"k1": '{"text": "one"}'}
    assert store.progress() == (0, 0)  # the new attempt starts counting afresh
    assert store.summary()["shards_rerun"] == [0]
    store.close()
    # The store's file is the local executor's cache: a resumed run finds the answers.
    cache = CompletionCache(tmp_path / "cache.sqlite")
    assert cache.get("k2").text == "two" and len(cache) == 2
    assert AnswerStore(str(tmp_path / "cache.sqlite")).begin(3) is True  # a resumed run


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
