"""Fast JSON for hot paths (request bodies, cached answers, rows): orjson when installed.

Only where the exact bytes do not matter. The cache key has its own
documented encoding (stdlib `json`, sorted keys) in `llm/cache.py`.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson

    _OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

    def dumps(value: Any) -> bytes:
        return orjson.dumps(value, option=_OPTIONS)

    loads = orjson.loads
except ImportError:  # pragma: no cover - orjson is a dependency, but stay usable without it

    def dumps(value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False).encode("utf-8")

    loads = json.loads
