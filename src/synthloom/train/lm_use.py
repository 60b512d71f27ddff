"""Using a causal language model as the thing measured: prompts for a task, answers, label choice.

One prompt per task form, used both to make the training rows and to ask
the model at test time, so a fine-tuned model is asked what it was
trained on:

- classification: the text and the label set in a user turn, the label as
  the assistant's answer (`classification_messages`). At test time the
  model *chooses* a label: each label's log-likelihood as the answer is
  summed over its tokens and the most likely wins (`choose_labels`), so an
  answer is always in the label set;
- open instructions and QA: the model's greedy answer to the user turn
  (`generate_answers`).
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from ..records import DataError, Record

Message = dict[str, Any]
_PAIRS = (("instruction", "response"), ("prompt", "completion"), ("question", "answer"), ("input", "output"),
          ("problem", "solution"), ("question", "code"), ("prompt", "code"))


def _clean(message: Any, where: str) -> Message:
    if not isinstance(message, dict) or "role" not in message:
        raise DataError(f"{where}: a message without a role: {str(message)[:60]!r}")
    return {k: v for k, v in message.items() if v is not None}


def conversation(record: Record) -> list[Message]:
    """The record as a list of chat messages, or a DataError naming the record."""
    fields, where = record.fields, f"record {record.id}"
    for name in ("messages", "turns"):
        value = fields.get(name)
        if isinstance(value, str) and value.startswith("["):
            value = json.loads(value)
        if isinstance(value, list) and value:
            return [_clean(m, where) for m in value]
    for user, assistant in _PAIRS:
        if fields.get(user) and fields.get(assistant) is not None:
            text = question_text({"context": fields.get("context"), user: fields[user]}) if user == "question" else str(fields[user])
            return [{"role": "user", "content": text}, {"role": "assistant", "content": str(fields[assistant])}]
    raise DataError(
        f"{where}: no conversation to export (fields: {', '.join(fields)}); needs `messages`, dialogue `turns`, "
        "or a pair such as instruction/response"
    )


def question_text(fields: Mapping[str, Any]) -> str:
    """A question's user turn as the records are trained: the context (if any), a blank line, the question;
    other input fields (a benchmark's `problem`, `inputs`, ...) in their order."""
    parts = [str(v) for k, v in fields.items() if v not in (None, "") and k not in ("context", "question")]
    if fields.get("question"):
        parts.append(str(fields["question"]))
    if fields.get("context"):
        parts.insert(0, str(fields["context"]))
    return "\n\n".join(parts)


def classification_messages(texts: Sequence[str], labels: Mapping[str, str | None], task: str | None = None) -> list[Message]:
    """The user turn that asks for one label of `labels` for the input text(s)."""
    names = ", ".join(labels)
    described = "; ".join(f"{k}: {v}" for k, v in labels.items() if v)
    body = "\n\n".join(texts) if len(texts) == 1 else "\n".join(f"Text {i + 1}: {t}" for i, t in enumerate(texts))
    intro = f"Task: {task}\n" if task else ""
    legend = f"Labels: {described}\n" if described else ""
    return [{"role": "user", "content": f"{intro}{legend}Answer with one label ({names}).\n\n{body}"}]


def classification_row(texts: Sequence[str], label: str, labels: Mapping[str, str | None], task: str | None = None,
                       weight: float = 1.0) -> dict[str, Any]:
    """A prompt-completion training row: the question above, the label as the answer (loss on the answer only)."""
    return {"prompt": classification_messages(texts, labels, task), "completion": [{"role": "assistant", "content": label}],
            "weight": weight}


def _prompt_ids(tokenizer: Any, messages: list[Message]) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, Mapping):
        ids = ids["input_ids"]
    return list(ids)


def choose_labels(model: Any, tokenizer: Any, prompts: Sequence[list[Message]], labels: Sequence[str],
                  batch_size: int = 8, progress: Any = None) -> list[str]:
    """For each prompt, the label whose tokens are most likely as the assistant's answer."""
    import torch

    label_ids = [tokenizer(label, add_special_tokens=False)["input_ids"] for label in labels]
    if all(ids for ids in label_ids) and len({ids[0] for ids in label_ids}) == len(labels):
        # Labels with distinct first tokens: greedy decoding constrained to the label set is decided by the
        # first token, so one forward pass of the prompt chooses (the rest of the label is then forced).
        return _choose_one_token(model, tokenizer, prompts, labels, [ids[0] for ids in label_ids], batch_size)
    pairs = [(_prompt_ids(tokenizer, p), j) for p in prompts for j in range(len(labels))]
    scores: list[float] = []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    dev = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            seqs = [p + label_ids[j] for p, j in chunk]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for i, s in enumerate(seqs):
                ids[i, : len(s)] = torch.tensor(s)
                mask[i, : len(s)] = 1
            logps = torch.log_softmax(model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits.float(), dim=-1)
            for i, (p, j) in enumerate(chunk):
                positions = range(len(p) - 1, len(p) - 1 + len(label_ids[j]))
                scores.append(float(sum(logps[i, pos, tok] for pos, tok in zip(positions, label_ids[j]))))
            if progress is not None:
                progress(len(chunk) // max(len(labels), 1))
    k = len(labels)
    return [labels[max(range(k), key=lambda j: scores[i * k + j])] for i in range(len(prompts))]


def _padded(seqs: Sequence[list[int]], pad: int, left: bool) -> tuple[Any, Any]:
    """Token ids and attention mask of a batch, padded on the left (for generating) or the right (for scoring)."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        span = slice(width - len(s), width) if left else slice(0, len(s))
        ids[i, span] = torch.tensor(s)
        mask[i, span] = 1
    return ids, mask


def _choose_one_token(model: Any, tokenizer: Any, prompts: Sequence[list[Message]], labels: Sequence[str],
                      first: Sequence[int], batch_size: int) -> list[str]:
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    dev = next(model.parameters()).device
    out: list[str] = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            seqs = [_prompt_ids(tokenizer, p) for p in prompts[start : start + batch_size]]
            ids, mask = _padded(seqs, pad, left=False)
            logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits
            for i, s in enumerate(seqs):
                scores = logits[i, len(s) - 1, list(first)]
                out.append(labels[int(scores.argmax())])
    return out


def generate_answers(model: Any, tokenizer: Any, prompts: Sequence[list[Message]], max_new_tokens: int = 128,
                     batch_size: int = 4) -> list[str]:
    """Greedy answers to each prompt (left-padded batches)."""
    import torch

    dev = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: list[str] = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            seqs = [_prompt_ids(tokenizer, p) for p in prompts[start : start + batch_size]]
            ids, mask = _padded(seqs, pad, left=True)
            width = ids.shape[1]
            generated = model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), max_new_tokens=max_new_tokens,
                                       do_sample=False, pad_token_id=pad)
            out.extend(tokenizer.decode(g[width:], skip_special_tokens=True).strip() for g in generated)
    return out


__all__ = ["conversation", "choose_labels", "classification_messages", "classification_row", "generate_answers", "question_text"]
