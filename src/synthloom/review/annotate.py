"""Selective annotation into a directory the review app opens.

`selective_annotation()` labels every input with the model, chooses the
records people should label, and writes a run-like directory:

    curated.parquet   every input with the model's label and a `model_confidence` stage
    reviews.sqlite    the chosen records, best first (the app's queue), and later people's decisions
    manifest.json     the labels, the settings and the expected accuracy and cost of the mix
    cache.sqlite      the model's answers (a rerun pays for nothing)

`synthloom review DIR` then shows the chosen records, and `synthloom
apply-reviews DIR` puts people's labels into curated.parquet; the model's
labels stand for the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from .._version import versions
from ..llm import Backend, LlamaCppBackend, LlamaCppConfig
from ..progress import RecordProgress
from ..records import DataError, Record, atomic_write_text, write_records
from .selective import Method, ModelLabel, ModelLabeller, Selection, budget_records, select_for_humans
from .store import STORE_NAME, ReviewStore

STAGE = "model_confidence"


@dataclass
class SelectiveResult:
    out: Path
    labels: list[ModelLabel]
    selection: Selection

    def summary(self) -> str:
        s = self.selection
        return (
            f"{len(s.human)} records for people, {len(s.model)} labelled by the model; "
            f"expected accuracy {s.expected_accuracy:.3f} (model alone {s.expected_accuracy_model_only:.3f}, "
            f"same budget at random {s.expected_accuracy_random:.3f}); expected cost {s.expected_cost:g}"
        )


def selective_annotation(
    records: Sequence[Record],
    labels: Sequence[str] | Mapping[str, str],
    out: str | Path,
    budget: float | str,
    *,
    backend: Backend | None = None,
    method: Method = "logprob",
    samples: int = 5,
    calibrate: bool = True,
    demonstrations: Sequence[Record] = (),
    description: str | None = None,
    diversity: float = 0.2,
    human_accuracy: float = 1.0,
    human_cost: float = 1.0,
    model_cost: float = 0.0,
    embeddings: bool = True,
    progress: bool = True,
    name: str = "selective",
) -> SelectiveResult:
    """Label `records` with the model, choose `budget` of them for people, and write `out`."""
    if not records:
        raise DataError("no records to annotate")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    label_names = list(labels)
    descriptions = dict(labels) if isinstance(labels, Mapping) else {}
    if len(label_names) < 2:
        raise DataError(f"selective annotation needs at least two labels, got {label_names}")
    backend = backend or LlamaCppBackend(LlamaCppConfig())
    bar = RecordProgress(len(records), "labelling", enabled=progress)
    labeller = ModelLabeller(
        backend, label_names, label_descriptions={k: v for k, v in descriptions.items() if v},
        description=description, demonstrations=demonstrations, method=method, samples=samples,
        calibrate=calibrate, cache=out / "cache.sqlite", on_record=bar.advance,
    )
    with bar:
        model_labels = labeller.label(records)
    vectors = None
    if embeddings and diversity > 0:
        from ..embed import Embedder

        vectors = Embedder.shared().encode([r.text() for r in records])
    n_human = budget_records(budget, len(records), human_cost)
    selection = select_for_humans(
        model_labels, n_human, vectors, diversity=diversity, human_accuracy=human_accuracy,
        human_cost=human_cost, model_cost=model_cost,
    )
    labelled = []
    for record, model_label in zip(records, model_labels):
        copy = Record(id=record.id, fields=dict(record.fields), label=model_label.label,
                      conditions=dict(record.conditions), meta=dict(record.meta))
        copy.decide(STAGE, "keep", model_label.confidence, model_label.reason)
        labelled.append(copy)
    write_records(out / "curated.parquet", labelled, prompts=False)
    with ReviewStore(out / STORE_NAME) as store:
        store.assign(selection.human, [selection.reasons[i] for i in selection.human])
    manifest: dict[str, Any] = {
        "status": "complete",
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": {"name": name, "task": {"labels": descriptions or label_names}},
        "versions": versions(),
        "selective": {
            "budget": str(budget),
            "method": method,
            "calibrate": calibrate,
            "samples": samples if method != "logprob" else None,
            "diversity": diversity,
            "human_accuracy": human_accuracy,
            "human_cost": human_cost,
            "model_cost": model_cost,
            **selection.to_json(),
        },
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return SelectiveResult(out, model_labels, selection)


__all__ = ["SelectiveResult", "selective_annotation"]
