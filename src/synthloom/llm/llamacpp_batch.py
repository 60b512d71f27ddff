"""Continuous batching for the embedded model: many requests decode together.

On a small model one sequence leaves the cores idle between matrix-vector
products; decoding several sequences in one `llama_decode` turns them into
matrix-matrix products and multiplies the tokens per second. This engine owns
one llama.cpp context with `width` sequence slots and a thread that loops:
admit waiting requests into free slots, put one token of every decoding
sequence (or a chunk of one new prompt) into a batch, decode, sample each
sequence with its own llama.cpp sampler chain (grammar, top-k/p, min-p,
temperature, seeded distribution, as `Llama.create_chat_completion` builds
it), and answer the sequences that finished. A finished or cancelled
sequence frees its slot at once for the next request.

Determinism: each slot has its own KV-cache stream (`kv_unified=False`), so a
sequence's attention never sees another's cells and its numbers do not
depend on which other sequences share the batch; with a fixed seed the answer
is the same at any width and in any arrival order (tests check it). A slot
keeps the tokens of its last sequence and reuses their common prefix with the
next prompt, or copies the KV stream of another slot that holds more of it
(the instructions a recipe's prompts share), so prompts are not prefilled
again from the start.
"""

from __future__ import annotations

import ctypes
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .llamacpp_prompt import Prepared
from .types import Completion, ModelError, TokenLogprob, Usage


# A shared prompt prefix this much longer in another slot is copied from it.
COPY_AT_LEAST = 32


@dataclass
class Job:
    """A prepared request waiting for, or decoding in, a slot."""

    prepared: Prepared
    done: Callable[[Completion | None, BaseException | None], None]
    cancelled: bool = False


@dataclass
class _Slot:
    seq: int
    cached: list[int] = field(default_factory=list)  # tokens whose K/V this slot holds
    job: Job | None = None
    pending: list[int] = field(default_factory=list)  # prompt tokens not yet decoded
    sampler: Any = None
    out: list[int] = field(default_factory=list)
    text: bytes = b""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    stop_at: int = -1


@dataclass
class EngineStats:
    steps: int = 0
    tokens_decoded: int = 0  # prompt and generated tokens through llama_decode
    max_sequences: int = 0  # the most sequences that shared one decoding step
    prompt_tokens_reused: int = 0


class BatchEngine:
    """One model, one context, `width` slots, one decoding thread."""

    def __init__(self, model: Any, n_ctx: int, width: int, n_threads: int, n_batch: int = 512):
        import llama_cpp

        self._ll = llama_cpp
        self.model = model
        self.width = width
        self.n_ctx = n_ctx  # per sequence
        self.n_batch = n_batch
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx * width
        params.n_batch = params.n_ubatch = n_batch
        params.n_seq_max = width
        params.kv_unified = False
        params.n_threads = params.n_threads_batch = n_threads
        params.no_perf = True
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as `Llama` does
        self._ctx = llama_cpp.llama_init_from_model(model.model, params)
        if not self._ctx:
            raise ModelError(f"llama.cpp could not make a context of {n_ctx} x {width} tokens")
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self._vocab = model.vocab
        self._n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._slots = [_Slot(seq) for seq in range(width)]
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._prefill_turn = False
        self._piece = ctypes.create_string_buffer(256)
        self.stats = EngineStats()
        self._thread = threading.Thread(target=self._run, name="llamacpp-batch", daemon=True)
        self._thread.start()

    # -- the caller's side -------------------------------------------------

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._stopping:
                raise ModelError("the embedded model is closed")
            self._waiting.append(job)
            self._cond.notify()

    def cancel(self, job: Job) -> None:
        """Drop a request, waiting or decoding; its slot is freed at the next step."""
        with self._cond:
            job.cancelled = True
            self._cond.notify()

    def close(self) -> None:
        """Stop the thread, fail what is left, free the context."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()
        if self._ctx:
            self._ll.llama_batch_free(self._batch)
            self._ll.llama_free(self._ctx)
            self._ctx = None

    # -- the decoding thread -------------------------------------------------

    def _run(self) -> None:
        try:
            while self._step():
                pass
        except BaseException as exc:  # noqa: BLE001 - every waiting caller must hear of it
            self._fail_all(ModelError(f"the embedded model stopped: {exc!r}"))
            raise
        self._fail_all(ModelError("the embedded model was closed while answering"))

    def _step(self) -> bool:
        with self._cond:
            while True:
                self._drop_cancelled()
                if self._stopping:
                    return False
                self._admit()
                if any(s.job for s in self._slots):
                    break
                self._cond.wait()
        sampled = self._fill_batch()
        rc = self._ll.llama_decode(self._ctx, self._batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        self.stats.steps += 1
        self.stats.tokens_decoded += self._batch.n_tokens
        for slot, index in sampled:
            self._sample(slot, index)
        return True

    def _drop_cancelled(self) -> None:
        if any(j.cancelled for j in self._waiting):
            self._waiting = deque(j for j in self._waiting if not j.cancelled)
        for slot in self._slots:
            if slot.job is not None and slot.job.cancelled:
                self._release(slot)

    def _admit(self) -> None:
        """Give each waiting request the free slot that already holds most of its prompt."""
        while self._waiting:
            free = [s for s in self._slots if s.job is None]
            if not free:
                return
            job = self._waiting.popleft()
            prompt = job.prepared.prompt
            slot = max(free, key=lambda s: _common_prefix(s.cached, prompt))
            donor = max(self._slots, key=lambda s: _common_prefix(s.cached, prompt))
            if _common_prefix(donor.cached, prompt) > _common_prefix(slot.cached, prompt) + COPY_AT_LEAST:
                # Another slot holds more of this prompt (the recipe's shared
                # instructions): copy its KV stream rather than prefill again.
                self._ll.llama_memory_seq_cp(self._mem, donor.seq, slot.seq, -1, -1)
                slot.cached = list(donor.cached)
            keep = min(_common_prefix(slot.cached, prompt), len(prompt) - 1)
            self._ll.llama_memory_seq_rm(self._mem, slot.seq, keep, -1)
            self.stats.prompt_tokens_reused += keep
            slot.cached = prompt[:keep]
            slot.pending = prompt[keep:]
            slot.job, slot.out, slot.text, slot.logprobs = job, [], b"", []
            try:
                slot.sampler = self._sampler(job.prepared)
            except ModelError as exc:
                self._release(slot)
                _answer(job, None, exc)

    def _fill_batch(self) -> list[tuple[_Slot, int]]:
        """Either one token of every decoding sequence, or a prompt chunk of one sequence.

        The two never share a `llama_decode`: llama.cpp 0.3.x gives different
        numbers to a prompt chunk decoded beside single tokens of two or more
        other sequences (seen here, 0.3 in the logits), which would make an
        answer depend on its neighbours. Prompt and decode steps alternate
        while both kinds wait, so neither starves.
        """
        batch, sampled = self._batch, []
        active = [s for s in self._slots if s.job is not None]
        prefilling = [s for s in active if s.pending]
        decoding = [s for s in active if not s.pending]
        self._prefill_turn = not self._prefill_turn
        if prefilling and (self._prefill_turn or not decoding):
            slot = prefilling[0]
            chunk, slot.pending = slot.pending[: self.n_batch], slot.pending[self.n_batch :]
            items = [(slot, token, not slot.pending and i == len(chunk) - 1) for i, token in enumerate(chunk)]
        else:
            items = [(slot, slot.out[-1], True) for slot in decoding]
            self.stats.max_sequences = max(self.stats.max_sequences, len(items))
        for n, (slot, token, logits) in enumerate(items):
            batch.token[n] = token
            batch.pos[n] = len(slot.cached)
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = slot.seq
            batch.logits[n] = logits
            slot.cached.append(token)
            if logits:
                sampled.append((slot, n))
        batch.n_tokens = len(items)
        return sampled

    def _sample(self, slot: _Slot, index: int) -> None:
        job = slot.job
        assert job is not None
        p = job.prepared
        token = self._ll.llama_sampler_sample(slot.sampler, self._ctx, index)
        if self._ll.llama_vocab_is_eog(self._vocab, token):
            return self._finish(slot, "stop")
        slot.out.append(token)
        n = self._ll.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        piece = self._piece.raw[: max(n, 0)]
        start = max(0, len(slot.text) - max((len(s) for s in p.stop), default=0))
        slot.text += piece
        if p.logprobs:
            slot.logprobs.append(self._logprob(index, token, piece, p.top_logprobs))
        for stop in p.stop:
            at = slot.text.find(stop, start)
            if at >= 0 and (slot.stop_at < 0 or at < slot.stop_at):
                slot.stop_at = at
        if slot.stop_at >= 0:
            slot.text = slot.text[: slot.stop_at]
            return self._finish(slot, "stop")
        if len(slot.out) >= p.max_tokens:
            return self._finish(slot, "length")
        return None

    def _logprob(self, index: int, token: int, piece: bytes, top: int) -> TokenLogprob:
        """Log-probabilities of the model's raw logits, as `Llama` reports them."""
        logits = np.ctypeslib.as_array(self._ll.llama_get_logits_ith(self._ctx, index), (self._n_vocab,))
        shifted = logits.astype(np.float64) - logits.max()
        logprobs = shifted - math.log(np.exp(shifted).sum())
        text = piece.decode("utf-8", errors="ignore")
        best: dict[str, float] = {}
        if top:
            for i in np.argpartition(-logprobs, top)[:top]:
                best[self._text(int(i))] = float(logprobs[i])
        best[text] = float(logprobs[token])
        return TokenLogprob(text, float(logprobs[token]), sorted(best.items(), key=lambda kv: -kv[1]))

    def _text(self, token: int) -> str:
        n = self._ll.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        return self._piece.raw[: max(n, 0)].decode("utf-8", errors="ignore")

    def _finish(self, slot: _Slot, reason: str) -> None:
        job, p = slot.job, slot.job.prepared  # type: ignore[union-attr]
        completion = Completion(
            text=slot.text.decode("utf-8", errors="ignore"),
            finish_reason=reason,
            usage=Usage(len(p.prompt), len(slot.out)),
            logprobs=slot.logprobs if p.logprobs else None,
        )
        # The last sampled token was never decoded: the cache holds the prompt and out[:-1].
        self._release(slot)
        _answer(job, completion, None)  # type: ignore[arg-type]

    def _release(self, slot: _Slot) -> None:
        if slot.sampler is not None:
            self._ll.llama_sampler_free(slot.sampler)
        slot.job, slot.sampler, slot.pending, slot.stop_at = None, None, [], -1

    def _fail_all(self, error: ModelError) -> None:
        with self._cond:
            jobs = list(self._waiting) + [s.job for s in self._slots if s.job is not None]
            self._waiting.clear()
            for slot in self._slots:
                if slot.job is not None:
                    self._release(slot)
                    slot.cached = []
        for job in jobs:
            _answer(job, None, error)

    def _sampler(self, p: Prepared) -> Any:
        return sampler_chain(self._ll, self._vocab, p)


def sampler_chain(ll: Any, vocab: Any, p: Prepared) -> Any:
    """The chain `Llama._init_sampler` builds (its penalties are no-ops at their defaults)."""
    chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
    if p.grammar is not None:
        grammar = ll.llama_sampler_init_grammar(vocab, p.grammar.encode("utf-8"), b"root")
        if not grammar:
            ll.llama_sampler_free(chain)
            raise ModelError("llama.cpp could not parse the grammar of the JSON schema")
        ll.llama_sampler_chain_add(chain, grammar)
    if p.temperature < 0:
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_dist(p.seed))
    elif p.temperature == 0:
        ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
    else:
        for sampler in (
            ll.llama_sampler_init_top_k(p.top_k),
            ll.llama_sampler_init_typical(p.typical_p, 1),
            ll.llama_sampler_init_top_p(p.top_p, 1),
            ll.llama_sampler_init_min_p(p.min_p, 1),
            ll.llama_sampler_init_temp(p.temperature),
            ll.llama_sampler_init_dist(p.seed),
        ):
            ll.llama_sampler_chain_add(chain, sampler)
    return chain


def _answer(job: Job, completion: Completion | None, error: BaseException | None) -> None:
    if job.cancelled:
        return
    try:
        job.done(completion, error)
    except RuntimeError:  # the caller's event loop is gone; nobody is waiting
        pass


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
