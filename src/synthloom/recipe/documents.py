"""The `documents:` section of a recipe: which files questions are grounded in, how they are chunked,
and the mix of question types.

    documents:
      paths: ["documents/*.pdf", "documents/*.md", "documents/*.html"]
      max_tokens: 254
      overlap: 32
      kinds: {single_hop_specific: 3, single_hop_abstract: 1, multi_hop: 2, comparison: 1, unanswerable: 1}

A recipe with this section makes one question per planned record about one
chunk (single-hop, unanswerable) or two linked chunks (multi-hop,
comparison); its task is `kind: grounded_qa` (fields question, answer,
evidence). Personas and query styles are ordinary conditions (`persona`,
`query_style`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from .common import Strict, expand_vars, resolve_path

QuestionKind = Literal["single_hop_specific", "single_hop_abstract", "multi_hop", "comparison", "unanswerable"]
QUESTION_KINDS: tuple[str, ...] = QuestionKind.__args__  # type: ignore[attr-defined]
TWO_CHUNK_KINDS = ("multi_hop", "comparison")

# What each query style asks of a question (the values of a `query_style` condition).
QUERY_STYLES: dict[str, str] = {
    "keyword": "a few search keywords, not a full sentence",
    "casual": "casual everyday wording, as someone would type it in a chat",
    "expert": "precise technical wording, as a specialist would ask",
    "misspelt": "a natural question with one or two spelling mistakes",
}


class DocumentsSpec(Strict):
    """Documents that questions are grounded in, and the mix of question kinds."""

    paths: list[str] = Field(..., min_length=1, description="files, folders or globs, relative to the recipe")
    max_tokens: int = Field(254, ge=16, le=8192, description="chunk size in tokens")
    overlap: int = Field(32, ge=0, le=1024, description="tokens a chunk repeats from the one before")
    kinds: dict[QuestionKind, float] = Field(
        default_factory=lambda: {"single_hop_specific": 1.0},
        description="relative share of each question kind",
    )
    across: Literal["section", "document"] = Field(
        "section", description="two-chunk questions draw linked chunks from different sections (or documents)"
    )

    @field_validator("paths")
    @classmethod
    def _resolve(cls, value: list[str], info: ValidationInfo) -> list[str]:
        out = []
        for item in value:
            if not item.strip():
                raise ValueError("an empty path")
            expanded = expand_vars(item)
            if any(ch in expanded for ch in "*?["):  # a glob: resolve its folder part against the recipe
                base = (info.context or {}).get("base_dir")
                out.append(expanded if base is None or expanded.startswith("/") else f"{base}/{expanded}")
            else:
                out.append(str(resolve_path(item, info)))
        return out

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: dict[str, float]) -> dict[str, float]:
        if not value or any(w < 0 for w in value.values()) or not any(value.values()):
            raise ValueError("kinds: weights must be non-negative, not all zero")
        return value


__all__ = ["DocumentsSpec", "QUERY_STYLES", "QUESTION_KINDS", "QuestionKind", "TWO_CHUNK_KINDS"]
