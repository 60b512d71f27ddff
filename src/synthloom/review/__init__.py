"""People in the loop: the review web app, its decisions, and selective annotation.

    synthloom review runs/x          # a local web app over a run's curated records
    synthloom apply-reviews runs/x   # people's labels and edits into curated.parquet
    synthloom select inputs.jsonl --labels spam,ham --budget 10% --out runs/sel

Decisions live in `reviews.sqlite` beside the data (see `store`); the
faithfulness estimate reads them as (record_id, criterion, verdict) rows
through `review_verdicts()`.
"""

from .agreement import agreement
from .apply import ApplyResult, Resolution, apply_reviews, resolve
from .formats import export_argilla, export_label_studio, import_argilla, import_label_studio, label_studio_config
from .queue import CONFIDENCE_STAGES, ReviewSet, View, confidence, is_confidence_stage, reviewer_queue
from .selective import (
    ModelLabel,
    ModelLabeller,
    Selection,
    budget_records,
    calibrated_label,
    label_distribution,
    label_probability,
    select_for_humans,
    select_random,
)
from .server import ReviewApp, ReviewServer, ReviewSettings, serve
from .store import ACTIONS, STORE_NAME, Decision, ReviewError, ReviewStore, review_verdicts, verdicts_for

__all__ = [
    "ACTIONS",
    "CONFIDENCE_STAGES",
    "STORE_NAME",
    "ApplyResult",
    "Decision",
    "ModelLabel",
    "ModelLabeller",
    "Resolution",
    "ReviewApp",
    "ReviewError",
    "ReviewServer",
    "ReviewSet",
    "ReviewSettings",
    "ReviewStore",
    "Selection",
    "View",
    "agreement",
    "apply_reviews",
    "budget_records",
    "calibrated_label",
    "confidence",
    "export_argilla",
    "export_label_studio",
    "import_argilla",
    "import_label_studio",
    "is_confidence_stage",
    "label_distribution",
    "label_probability",
    "label_studio_config",
    "resolve",
    "review_verdicts",
    "reviewer_queue",
    "select_for_humans",
    "select_random",
    "serve",
    "verdicts_for",
]
