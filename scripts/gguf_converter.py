"""Unpack llama.cpp's GGUF converter into the environment, for `synthloom finetune --gguf`.

`convert_hf_to_gguf.py` is not on PyPI as a command; llama-cpp-python's source
distribution ships it with what it imports from beside itself (`gguf-py`,
`conversion`). This takes the source of the llama-cpp-python version that
is installed (so converter and runtime agree) and unpacks them into DEST
(`make gguf`, which `make test` runs: .venv/share/llama.cpp, where
`synthloom.execute.finetune.converter` looks). Without network, or when
anything fails, it says why and exits 0: GGUF export then says it has no
converter, and its test skips, saying why.

    python scripts/gguf_converter.py DEST
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

SCRIPT = "convert_hf_to_gguf.py"
PACKAGES = ("gguf-py/", "conversion/")  # what the converter imports from beside itself


def main(dest: Path) -> int:
    if (dest / SCRIPT).is_file():
        return 0
    try:
        version = metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        print("gguf converter: llama-cpp-python is not installed; skipped", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", f"llama-cpp-python=={version}", "--no-deps",
             "--no-binary", ":all:", "-d", tmp],
            capture_output=True, text=True,
        )
        archives = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if done.returncode != 0 or not archives:
            print(f"gguf converter: could not download the llama-cpp-python {version} source; skipped "
                  f"({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'no archive'})", file=sys.stderr)
            return 0
        prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
        with tarfile.open(archives[0]) as archive:
            wanted = [m for m in archive.getmembers() if m.name == prefix + SCRIPT
                      or (m.isfile() and any(m.name.startswith(prefix + d) for d in PACKAGES))]
            if not any(m.name == prefix + SCRIPT for m in wanted):
                print(f"gguf converter: {SCRIPT} is not in the llama-cpp-python {version} source; skipped", file=sys.stderr)
                return 0
            for member in wanted:
                member.name = member.name[len(prefix):]
                archive.extract(member, dest, filter="data")
    print(f"gguf converter: {dest / SCRIPT} (llama-cpp-python {version})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    raise SystemExit(main(Path(sys.argv[1])))
