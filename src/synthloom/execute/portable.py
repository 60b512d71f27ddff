"""What a run writes names no place on the user's machine: paths become relative to the recipe's folder.

A recipe's paths are resolved to absolute ones when it is loaded (so that a
missing file is reported with its line before any model is called), and
they then flow into the manifest, the metrics (a test set's path), the notes
and, from those, into the report and the dataset card. Published as they
are, those files would show a home directory, a user name and a folder
layout. `portable(data, base)` rewrites every absolute path inside the
strings of a JSON-like value to the same path relative to `base` (the
recipe's folder, or the working directory for `synthloom evaluate`), which
is also how the recipe itself names them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

# An absolute POSIX path inside free text: a '/' that does not follow a word, a ':' (URLs) or another
# path character, then at least two components; it ends at white space, quotes, brackets or a ':'.
_ABSOLUTE = re.compile(r"(?<![\w:/.~\-])/[^\s'\"`(),;:<>|\[\]{}/]+(?:/[^\s'\"`(),;:<>|\[\]{}/]*)+")


def relative(path: str, base: str | Path) -> str:
    """`path` relative to `base` ('.' for the folder itself); a path on another drive stays as it is."""
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return path


def _rewrite(text: str, base: str) -> str:
    def one(match: re.Match[str]) -> str:
        found = match.group(0)
        tail = len(found) - len(found.rstrip("."))  # a sentence's full stop after a path
        core = found[: len(found) - tail] if tail else found
        return relative(core, base) + found[len(core):]

    return _ABSOLUTE.sub(one, text) if "/" in text else text


def portable(data: Any, base: str | Path) -> Any:
    """A copy of `data` (dicts, lists, strings) with every absolute path made relative to `base`."""
    base = os.path.abspath(base)
    if isinstance(data, str):
        return _rewrite(data, base)
    if isinstance(data, dict):
        return {portable(k, base) if isinstance(k, str) else k: portable(v, base) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [portable(v, base) for v in data]
    return data


__all__ = ["portable", "relative"]
