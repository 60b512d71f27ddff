"""Pieces shared by every part of a recipe: the strict base model and data-file specs.

Paths in a recipe are relative to the recipe file (or to the working
directory for a recipe built in Python) and may use `$VARS`,
`${VAR:-default}` and `~`. They
are resolved and checked once, at validation, so a missing file is reported
with its line before any model is called.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class Strict(BaseModel):
    """Typed, strict and frozen: an unknown key is an error, nothing changes after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)


_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def expand_vars(value: str) -> str:
    """`$VAR`, `${VAR}` and `${VAR:-default}` from the environment."""
    value = _VAR.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or m.group(0)), value)
    return os.path.expandvars(value)


def resolve_path(value: str, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir") or os.getcwd()
    path = Path(expand_vars(value)).expanduser()
    if not path.is_absolute():
        path = Path(base) / path
    return Path(os.path.abspath(path))


class SplitSpec(Strict):
    """A fixed, seeded split of one file into train and test parts."""

    test_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 0
    part: Literal["train", "test"] = "test"
    stratify: bool = True


class DatasetSpec(Strict):
    """A labelled or unlabelled data file: JSONL, CSV, TSV or Parquet, or a folder of them."""

    # Declared before `path` so that the path check can read it.
    if_missing: Literal["error", "skip"] = Field(
        "error", description="`skip`: a missing file skips what needs it, with a note"
    )
    path: str = Field(..., description="file or folder, relative to the recipe")
    format: Literal["auto", "jsonl", "csv", "tsv", "parquet"] = "auto"
    columns: list[str] | None = Field(None, description="column names for a file without a header")
    text_field: str = "text"
    label_field: str | None = "label"
    split: SplitSpec | None = None
    limit: int | None = Field(None, ge=1)

    @field_validator("path")
    @classmethod
    def _resolve(cls, value: str, info: ValidationInfo) -> str:
        path = resolve_path(value, info)
        if not path.exists() and info.data.get("if_missing", "error") == "error":
            raise ValueError(f"file not found: {path}")
        return str(path)

    @property
    def exists(self) -> bool:
        return Path(self.path).exists()
