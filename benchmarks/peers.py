"""A peer framework as one benchmark arm, run by the python of that peer's own virtualenv.

    .peers/distilabel/bin/python benchmarks/peers.py distilabel --url URL --concurrency C --bodies FILE
    .peers/curator/bin/python benchmarks/peers.py curator --url URL --concurrency C --bodies FILE

Each peer gets the same chat requests as the other arms, run the way its
documentation shows, with the settings that make it fastest here, and nothing it could send anywhere but the
loopback server: telemetry, hub look-ups and tokenizer downloads are off
(the race also runs in a network namespace with loopback only, so a miss
would fail rather than leak). Prints one JSON line like benchmarks/clients.py:
wall and CPU seconds (this process and the children it waited for), requests
answered with content, peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "TELEMETRY_ENABLED": "false",  # curator's PostHog client
    "BESPOKE_CURATOR_TRACKER_DISABLED": "1",
    "CURATOR_VIEWER": "0",
    "CURATOR_DISABLE_RICH_DISPLAY": "1",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the price list
    "LITELLM_TELEMETRY": "False",
    "DISTILABEL_LOG_LEVEL": "WARNING",
}


def cpu_seconds() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def distilabel_arm(url: str, bodies: list[dict], concurrency: int) -> int:
    """distilabel the way its documentation shows: a `Pipeline` with `LoadDataFromDicts >> TextGeneration`.

    The LLM is `OpenAILLM` with its own retries on (`max_retries=6`, the
    openai SDK's retry of 429/5xx/connection errors); `input_batch_size` is
    the concurrency, so a batch puts as many requests in flight as the other
    arms allow (distilabel sends one batch of a step at a time, every request
    of it concurrently). Each row's system and user message become the
    `system_prompt` and `instruction` columns TextGeneration reads.

    Where distilabel 1.5.3 loses rows under faults (read from its source):
    `AsyncLLM._agenerate` (distilabel/models/llms/base.py) awaits
    `asyncio.gather(*tasks)` without `return_exceptions`, so one request that
    still fails after the SDK's retries (or one the SDK does not retry, such as
    a truncated body with status 200) raises out of the whole batch; the step
    wrapper (`_StepWrapper._non_generator_process_loop`,
    distilabel/pipeline/step_wrapper.py) catches it, logs "Processing batch ...
    failed. Sending empty batch filled with `None`s..." and imputes
    `generation = None` for every row of the batch, answered or not.
    """
    from distilabel.models.llms import OpenAILLM
    from distilabel.pipeline import Pipeline
    from distilabel.steps import LoadDataFromDicts
    from distilabel.steps.tasks import TextGeneration

    rows = []
    for b in bodies:
        system = [m["content"] for m in b["messages"] if m["role"] == "system"]
        user = [m["content"] for m in b["messages"] if m["role"] == "user"]
        rows.append({"instruction": user[-1], "system_prompt": system[0] if system else None})
    with Pipeline(name="race", cache_dir=tempfile.mkdtemp(prefix="distilabel-")) as pipeline:
        load = LoadDataFromDicts(data=rows, batch_size=concurrency)
        generate = TextGeneration(
            llm=OpenAILLM(model=bodies[0]["model"], base_url=url, api_key="none", max_retries=6, timeout=60,
                          generation_kwargs={"max_new_tokens": bodies[0]["max_tokens"],
                                             "temperature": bodies[0]["temperature"]}),
            input_batch_size=concurrency,
        )
        load >> generate
    distiset = pipeline.run(use_cache=False)
    return sum(1 for text in distiset["default"]["train"]["generation"] if text)


def curator_arm(url: str, bodies: list[dict], concurrency: int) -> int:
    """bespokelabs curator's online OpenAI processor: concurrency cap, rate limits out of the way."""
    site = Path(__import__("litellm").__file__).parent
    # The tokenizer curator counts with ships inside litellm: no download.
    os.environ["TIKTOKEN_CACHE_DIR"] = str(site / "litellm_core_utils" / "tokenizers")
    os.environ["CURATOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="curator-")
    os.environ["CURATOR_DISABLE_CACHE"] = "1"
    from bespokelabs import curator

    class Chat(curator.LLM):
        def prompt(self, row: dict) -> list:
            return row["messages"]

        def parse(self, row: dict, response: str) -> dict:
            return {"i": row["i"], "text": response}

    llm = Chat(
        model_name=bodies[0]["model"],
        backend="openai",
        generation_params={"max_tokens": bodies[0]["max_tokens"], "temperature": bodies[0]["temperature"]},
        backend_params={
            "base_url": url,
            "api_key": "none",
            "max_concurrent_requests": concurrency,
            "max_requests_per_minute": 10_000_000,
            "max_tokens_per_minute": 10_000_000_000,
            "max_retries": 6,
            "seconds_to_pause_on_rate_limit": 1,
            "require_all_responses": False,
        },
    )
    rows = [{"i": i, "messages": b["messages"]} for i, b in enumerate(bodies)]
    response = llm(rows)
    dataset = getattr(response, "dataset", response)
    return sum(1 for text in dataset["text"] if text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("arm", choices=["distilabel", "curator"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--bodies", required=True)
    args = parser.parse_args()
    os.environ.update(OFFLINE)
    bodies = json.loads(Path(args.bodies).read_text())
    # Import before timing, as for every arm.
    if args.arm == "distilabel":
        import distilabel.models.llms  # noqa: F401
        import distilabel.pipeline  # noqa: F401
        import distilabel.steps.tasks  # noqa: F401
    else:
        import bespokelabs.curator  # noqa: F401
    fn = distilabel_arm if args.arm == "distilabel" else curator_arm
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    done = fn(args.url, bodies, args.concurrency)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    rss_mb = max(resource.getrusage(w).ru_maxrss for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024
    sys.stdout.flush()
    print(json.dumps({"arm": args.arm, "wall": wall, "cpu": cpu, "done": done, "rss_mb": rss_mb}))


if __name__ == "__main__":
    main()
