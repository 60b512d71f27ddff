"""`synthloom export`: a run's curated records in the dataset forms TRL and the OpenAI fine-tuning format take.

Three forms (TRL's "conversational" dataset types):

- `messages`: `[{role, content}, ...]` per row, system / user / assistant
  (SFT, and the OpenAI fine-tuning JSONL);
- `prompt-completion`: the conversation up to the last assistant turn as
  `prompt`, that turn as `completion` (both message lists);
- `preference`: `prompt`, `chosen`, `rejected` (message lists), with the
  records' `score_chosen`, `score_rejected` and `margin` where present (DPO).

A row carries `tools` (the function schemas, as a JSON string) when the
record has them. A record's conversation is its `messages` field (the chat
task kind), its dialogue `turns`, or a known pair of fields (instruction /
response, prompt / completion, question / answer with its context, input /
output); a record that has none is a one-line error that names it.

Where it goes is said by `out`: a `.jsonl` or `.parquet` file, or a folder,
written as a `datasets.DatasetDict` with `save_to_disk` (one split) and a
dataset card. With a hub repository id and a token the same split is pushed
to the Hugging Face hub in one commit: `data/<split>-00000-of-00001.parquet`
and `README.md`, the layout `DatasetDict.push_to_hub` writes; the card says
which verifiers ran and their pass rates (from the run's curation funnel).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .._json import dumps
from ..records import DataError, Record, atomic_write_bytes, read_records
from ..report.export_card import render_export_card
from ..train.lm_use import Message, _clean, conversation

FORMATS = ("messages", "prompt-completion", "preference")


class ExportError(ValueError):
    """Export settings a user can fix (an unknown format, a hub push without a token)."""


@dataclass
class ExportResult:
    rows: list[dict[str, Any]]
    written: list[Path] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    card: str = ""


def _as_messages(value: Any, role: str) -> list[Message]:
    if isinstance(value, str) and value.startswith("[") and value.rstrip().endswith("]"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    if isinstance(value, list):
        return [_clean(m, "message") for m in value]
    return [{"role": role, "content": str(value)}]


def _tools(record: Record) -> str | None:
    tools = record.fields.get("tools")
    if tools is None or tools == "" or tools == []:
        return None
    return tools if isinstance(tools, str) else dumps(tools).decode("utf-8")


def to_row(record: Record, form: str) -> dict[str, Any]:
    """One record in one TRL form (a DataError naming the record when it does not fit)."""
    row: dict[str, Any] = {"id": record.id}
    if form == "messages":
        row["messages"] = conversation(record)
    elif form == "prompt-completion":
        messages = conversation(record)
        if messages[-1]["role"] != "assistant" or len(messages) < 2:
            raise DataError(f"record {record.id}: the conversation does not end with an assistant turn")
        row["prompt"], row["completion"] = messages[:-1], messages[-1:]
    elif form == "preference":
        fields = record.fields
        missing = [n for n in ("chosen", "rejected") if fields.get(n) in (None, "")]
        if missing:
            raise DataError(f"record {record.id}: no {' or '.join(missing)} field (fields: {', '.join(fields)}); "
                            "preference export needs prompt/chosen/rejected records")
        prompt = fields.get("prompt") or fields.get("instruction") or fields.get("question")
        if prompt in (None, ""):
            raise DataError(f"record {record.id}: no prompt field (prompt, instruction or question)")
        row["prompt"] = _as_messages(prompt, "user")
        row["chosen"] = _as_messages(fields["chosen"], "assistant")
        row["rejected"] = _as_messages(fields["rejected"], "assistant")
        for name in ("score_chosen", "score_rejected", "margin"):
            if fields.get(name) is not None:
                row[name] = float(fields[name])
    else:
        raise ExportError(f"--format: unknown format {form!r}; expected one of {', '.join(FORMATS)}")
    tools = _tools(record)
    if tools is not None:
        row["tools"] = tools
    return row


def to_rows(records: Sequence[Record], form: str) -> list[dict[str, Any]]:
    if form not in FORMATS:
        raise ExportError(f"--format: unknown format {form!r}; expected one of {', '.join(FORMATS)}")
    return [to_row(record, form) for record in records]


def _dataset(rows: list[dict[str, Any]]) -> Any:
    from datasets import Dataset

    return Dataset.from_list(rows)


def _read_run(source: Path) -> tuple[list[Record], dict[str, Any], dict[str, Any]]:
    """The records to export and the run's manifest and metrics (empty for a plain data file)."""
    if source.is_dir():
        # a run directory (manifest.json), or what `synthloom curate` wrote (curation.json)
        manifest_path, data = source / "manifest.json", source / "curated.parquet"
        if not manifest_path.exists():
            manifest_path = source / "curation.json"
        if not manifest_path.exists() or not data.exists():
            raise DataError(f"{source}: not a finished run directory (needs manifest.json and curated.parquet)")
        metrics_path = source / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
        return read_records(data), json.loads(manifest_path.read_text()), metrics
    if not source.exists():
        raise DataError(f"{source}: file not found")
    return read_records(source), {"source": source.stem}, {}


def export_run(
    source: str | Path,
    form: str,
    out: str | Path,
    *,
    split: str = "train",
    hub_repo: str | None = None,
    token: str | None = None,
    private: bool = False,
) -> ExportResult:
    """Export a run directory (or a records file) in one TRL form to `out`, and to the hub if asked."""
    source, out = Path(source), Path(out)
    if hub_repo is not None:
        token = token or os.environ.get("HF_TOKEN")
        if not token:
            raise ExportError("--hub-repo needs a token: --hub-token or the HF_TOKEN environment variable")
    records, manifest, metrics = _read_run(source)
    rows = to_rows(records, form)
    if not rows:
        raise DataError(f"{source}: no records to export")
    result = ExportResult(rows)
    data_file = f"data/{split}-00000-of-00001.parquet"
    card = lambda file: render_export_card(manifest, metrics, len(rows), form, list(rows[0]), split, file)  # noqa: E731
    result.card = card(None)
    if out.suffix == ".jsonl":
        atomic_write_bytes(out, b"".join(dumps(_jsonl_row(row)) + b"\n" for row in rows))
        result.written.append(out)
    elif out.suffix == ".parquet":
        out.parent.mkdir(parents=True, exist_ok=True)
        _dataset(rows).to_parquet(str(out))
        result.written.append(out)
    else:
        from datasets import DatasetDict

        DatasetDict({split: _dataset(rows)}).save_to_disk(str(out))
        (out / "README.md").write_text(result.card, encoding="utf-8")
        result.written += [out, out / "README.md"]
    if hub_repo is not None:
        result.uploaded = push_to_hub(rows, card(data_file), hub_repo, token, data_file, private)  # type: ignore[arg-type]
    return result


def _jsonl_row(row: dict[str, Any]) -> dict[str, Any]:
    """JSONL (the OpenAI fine-tuning form) holds `tools` as a list, not as a JSON string."""
    if isinstance(row.get("tools"), str):
        return {**row, "tools": json.loads(row["tools"])}
    return row


def push_to_hub(rows: list[dict[str, Any]], card: str, repo_id: str, token: str, data_file: str,
                private: bool = False) -> list[str]:
    """One commit to a dataset repository on the hub (HF_ENDPOINT says which): the split's Parquet file and the card.

    Returns the paths in the repository, in upload order.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    buffer = io.BytesIO()
    _dataset(rows).to_parquet(buffer)
    operations = [
        CommitOperationAdd(path_in_repo=data_file, path_or_fileobj=buffer.getvalue()),
        CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode("utf-8")),
    ]
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.create_commit(repo_id, operations, commit_message="Upload dataset exported by synthloom", repo_type="dataset")
    return [op.path_in_repo for op in operations]


__all__ = ["FORMATS", "ExportError", "ExportResult", "conversation", "export_run", "push_to_hub", "to_row", "to_rows"]
