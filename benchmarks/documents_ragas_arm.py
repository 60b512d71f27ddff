"""Ragas' testset generator as one arm of benchmarks/documents_specificity.py, run by the python of its own virtualenv.

    RAGAS_DO_NOT_TRACK=true OPENAI_API_KEY=dummy .peers/ragas/bin/python benchmarks/documents_ragas_arm.py \\
        --chunks CHUNKS.jsonl --llm-url http://127.0.0.1:P/v1 --embed-url http://127.0.0.1:Q/v1 --size N --out OUT.jsonl

The chunks are synthloom's (one JSON object per line: id, text), given to
`TestsetGenerator.generate_with_chunks` so both arms ask about the same
passages and a reference context maps back to its chunk. The model is
reached the way Ragas' quickstart shows: langchain's `ChatOpenAI` in
`LangchainLLMWrapper`, here pointed at a llama.cpp server on loopback; the
embeddings likewise through `OpenAIEmbeddings` at a loopback server of the
bundled MiniLM. Only single-hop specific queries are asked for (the kind
whose hit@k is compared).

Two things are set so that nothing leaves the machine: Ragas' analytics are
off (RAGAS_DO_NOT_TRACK), and tiktoken, which Ragas calls to count tokens
and which downloads its encodings on first use, is given a local stand-in
encoding: one token per whitespace-separated word (a count about 3/4 of
cl100k's on English prose; Ragas uses the counts for thresholds only).

Writes one JSON line per generated sample (user_input, reference,
reference_contexts, synthesizer_name), then a last line {"status": ...};
a failure is written as {"status": "failed", "error": "<type>: <message>"}
with the traceback on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import traceback

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class WordEncoding:
    """A tiktoken-shaped encoding with one token per whitespace-separated word (no download)."""

    name = "words"

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.ids: dict[str, int] = {}

    def encode(self, text: str, **_: object) -> list[int]:
        out = []
        for piece in re.findall(r"\s*\S+|\s+$", text):
            if piece not in self.ids:
                self.ids[piece] = len(self.pieces)
                self.pieces.append(piece)
            out.append(self.ids[piece])
        return out

    def encode_ordinary(self, text: str) -> list[int]:
        return self.encode(text)

    def decode(self, tokens: list[int], **_: object) -> str:
        return "".join(self.pieces[t] for t in tokens)


def offline_tiktoken() -> None:
    import tiktoken

    encoding = WordEncoding()
    tiktoken.get_encoding = lambda *a, **k: encoding  # type: ignore[assignment]
    tiktoken.encoding_for_model = lambda *a, **k: encoding  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", required=True)
    parser.add_argument("--llm-url", required=True)
    parser.add_argument("--embed-url", required=True)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=int, default=600)
    args = parser.parse_args()
    offline_tiktoken()
    start = time.perf_counter()
    with open(args.out, "w", encoding="utf-8") as out:
        try:
            from langchain_core.documents import Document
            from langchain_openai import ChatOpenAI, OpenAIEmbeddings
            from ragas.embeddings import LangchainEmbeddingsWrapper
            from ragas.llms import LangchainLLMWrapper
            from ragas.run_config import RunConfig
            from ragas.testset import TestsetGenerator
            from ragas.testset.synthesizers.single_hop.specific import SingleHopSpecificQuerySynthesizer

            chunks = [json.loads(line) for line in open(args.chunks, encoding="utf-8") if line.strip()]
            llm = LangchainLLMWrapper(ChatOpenAI(model=args.model, base_url=args.llm_url, api_key="dummy",
                                                 temperature=0.3, max_tokens=400, timeout=args.timeout, max_retries=1))
            embeddings = LangchainEmbeddingsWrapper(OpenAIEmbeddings(
                model="minilm", base_url=args.embed_url, api_key="dummy", check_embedding_ctx_length=False))
            generator = TestsetGenerator(llm=llm, embedding_model=embeddings)
            documents = [Document(page_content=c["text"], metadata={"chunk_id": c["id"]}) for c in chunks]
            testset = generator.generate_with_chunks(
                documents, testset_size=args.size,
                query_distribution=[(SingleHopSpecificQuerySynthesizer(llm=llm), 1.0)],
                run_config=RunConfig(timeout=args.timeout, max_retries=2, max_workers=2),
            )
            rows = testset.to_list()
            for row in rows:
                out.write(json.dumps({k: row.get(k) for k in ("user_input", "reference", "reference_contexts",
                                                                 "synthesizer_name")}, ensure_ascii=False) + "\n")
            out.write(json.dumps({"status": "complete", "samples": len(rows),
                                  "seconds": round(time.perf_counter() - start, 1)}) + "\n")
        except BaseException as exc:  # noqa: BLE001 - the arm reports how Ragas failed, whatever it was
            traceback.print_exc(file=sys.stderr)
            out.write(json.dumps({"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000],
                                  "seconds": round(time.perf_counter() - start, 1)}) + "\n")


if __name__ == "__main__":
    main()
