"""A reward model behind an OpenAI-compatible endpoint: a score per (prompt, response).

The endpoint is any chat-completions server (vLLM, llama.cpp's server, a
hosted API) serving a model asked as a *generative* reward model: the
prompt shows the instruction and the response and asks for one digit from
1 (poor) to 9 (excellent); the request asks for one token with its
`top_logprobs`, and the score is the expected digit under the model's
distribution over the digit tokens (G-Eval's probability-weighted score):

    score = sum_d d * p(d) / sum_d p(d),   d in 1..9 among the top tokens

so two responses the model would both rate "7" still differ by how sure it
is. When the server gives no log-probabilities, the digit it wrote is the
score; an answer with no digit is unusable (re-asked, then counted).
"""

from __future__ import annotations

import math
import re
from typing import Any

from ..llm import Completion, InvalidAnswer, Request

SYSTEM = "You are a reward model. You rate how good a response to an instruction is."
DIGITS = {str(d): d for d in range(1, 10)}
TOP_LOGPROBS = 20
_DIGIT = re.compile(r"[1-9]")


def reward_prompt(prompt: str, response: str) -> str:
    return (f"Instruction:\n{prompt}\n\nResponse:\n{response}\n\n"
            "Rate the response from 1 (poor: wrong, unhelpful) to 9 (excellent: correct, helpful, clear). "
            "Answer with one digit.")


def reward_request(prompt: str, response: str, seed: int = 0) -> Request:
    return Request(messages=({"role": "system", "content": SYSTEM},
                             {"role": "user", "content": reward_prompt(prompt, response)}),
                   temperature=0.0, max_tokens=1, seed=seed, logprobs=True, top_logprobs=TOP_LOGPROBS)


def reward_score(completion: Completion | Any) -> float:
    """The expected digit under the first token's top log-probabilities (else the digit written)."""
    logprobs = getattr(completion, "logprobs", None)
    if logprobs:
        first = logprobs[0]
        weights: dict[int, float] = {}
        for token, logprob in [(first.token, first.logprob), *first.top]:
            digit = DIGITS.get(token.strip())
            if digit is not None:
                weights[digit] = max(weights.get(digit, 0.0), math.exp(logprob))
        total = sum(weights.values())
        if total > 0:
            return sum(d * p for d, p in weights.items()) / total
    text = getattr(completion, "text", str(completion))
    match = _DIGIT.search(text or "")
    if match is None:
        raise InvalidAnswer(f"no 1-9 rating in the reward model's answer: {text[:40]!r}")
    return float(match.group(0))


__all__ = ["SYSTEM", "TOP_LOGPROBS", "reward_prompt", "reward_request", "reward_score"]
