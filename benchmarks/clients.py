"""One benchmark arm in its own process: send the same chat requests, report time and CPU.

    python benchmarks/clients.py ARM --url URL --concurrency C --bodies FILE [--recipe R --out DIR]

ARM is `aiohttp` (a bare aiohttp client with a semaphore), `openai` (the
openai SDK's AsyncOpenAI with a semaphore, on its default httpx transport),
`openai-aiohttp` (the same on the aiohttp transport the SDK documents for
high concurrency: `pip install openai[aiohttp]`, then
`AsyncOpenAI(http_client=DefaultAioHttpClient())`) or `synthloom` (a whole
`synthloom.run()` of the recipe: cache, records, curation, files). Prints
one JSON line: wall seconds, CPU seconds of this process, requests done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import time


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


TRIES = 6  # the reference clients' budget per request; synthloom's recipe says its own


async def pause(retry_after: str | None) -> None:
    """Wait before asking again: the server's Retry-After, or a short jittered pause."""
    await asyncio.sleep(float(retry_after or 0.05) * random.uniform(0.5, 1.5))


async def bare_aiohttp(url: str, bodies: list[dict], concurrency: int) -> int:
    import aiohttp

    semaphore = asyncio.Semaphore(concurrency)
    done = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(body: dict) -> None:
            nonlocal done
            for _ in range(TRIES):
                retry_after = None
                async with semaphore:
                    try:
                        async with session.post(url + "/chat/completions", json=body) as resp:
                            raw = await resp.read()
                            if resp.status == 200:
                                if json.loads(raw)["choices"][0]["message"]["content"]:
                                    done += 1
                                    return
                            retry_after = resp.headers.get("Retry-After")
                    except (aiohttp.ClientError, ValueError, KeyError, TypeError):
                        pass
                await pause(retry_after)

        await asyncio.gather(*(one(b) for b in bodies))
    return done


async def openai_sdk(url: str, bodies: list[dict], concurrency: int, transport: str = "httpx") -> int:
    import openai
    from openai import AsyncOpenAI

    # The SDK's own HTTP client: its default httpx one, or (transport="aiohttp")
    # the aiohttp one its README documents for high concurrency; either with
    # keep-alive for as many connections as requests in flight; retries by the
    # same loop as the bare client, so both follow one policy.
    limits = type(openai._constants.DEFAULT_CONNECTION_LIMITS)(
        max_connections=max(1000, concurrency), max_keepalive_connections=concurrency
    )
    make = openai.DefaultAioHttpClient if transport == "aiohttp" else openai.DefaultAsyncHttpxClient
    client = AsyncOpenAI(base_url=url, api_key="none", max_retries=0, http_client=make(limits=limits, timeout=60))
    semaphore = asyncio.Semaphore(concurrency)
    done = 0

    async def one(body: dict) -> None:
        nonlocal done
        for _ in range(TRIES):
            retry_after = None
            async with semaphore:
                try:
                    answer = await client.chat.completions.create(**body)
                    if answer.choices[0].message.content:
                        done += 1
                        return
                except openai.APIStatusError as exc:
                    retry_after = exc.response.headers.get("Retry-After")
                except (openai.OpenAIError, ValueError):
                    pass
            await pause(retry_after)

    await asyncio.gather(*(one(b) for b in bodies))
    await client.close()
    return done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("arm", choices=["aiohttp", "openai", "openai-aiohttp", "synthloom"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--bodies", required=True)
    parser.add_argument("--recipe")
    parser.add_argument("--out")
    args = parser.parse_args()
    bodies = json.loads(open(args.bodies).read())
    if args.arm == "synthloom":
        import synthloom

        recipe = synthloom.load_recipe(args.recipe)
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        result = synthloom.run(recipe, args.out, progress=False)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        done = result.manifest["counts"]["generated"]
    else:
        import aiohttp  # noqa: F401 - imports before timing, as for every arm

        if args.arm.startswith("openai"):
            import openai  # noqa: F401
        if args.arm == "aiohttp":
            work = bare_aiohttp(args.url, bodies, args.concurrency)
        else:
            work = openai_sdk(args.url, bodies, args.concurrency, "aiohttp" if args.arm == "openai-aiohttp" else "httpx")
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        done = asyncio.run(work)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"arm": args.arm, "wall": wall, "cpu": cpu, "done": done, "rss_mb": rss_mb}))


if __name__ == "__main__":
    main()
