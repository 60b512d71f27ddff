"""Set-up time: how long `make setup` spends compiling llama-cpp-python, per CMake switch.

`make setup` builds llama-cpp-python (with llama.cpp inside) from source on
the user's machine: a portable build (`GGML_NATIVE=OFF`) is the only kind
that is safe on every CPU, and no registry package ships a portable Linux
wheel of it. This builds the same version as a wheel, `pip wheel --no-deps
--no-cache-dir` from one downloaded sdist into a temporary folder, once per
variant of CMAKE_ARGS (and build parallelism), in alternating order, and
prints the wall time of each and its ratio to the Makefile's current flags.
Each wheel is then loaded in a fresh interpreter (`llama_print_system_info`)
to show it works and which CPU features it was built for.

Variants:
- native-off:  -DGGML_NATIVE=OFF alone (builds the multimodal mtmd library too)
- makefile:    the Makefile's flags before this measurement (-DLLAVA_BUILD=OFF as well)
- no-common:   those plus scripts/llamacpp_no_common.cmake (skips llama.cpp's
               `common` library, which the bindings never load)
- makefile-j:  the Makefile's flags with CMAKE_BUILD_PARALLEL_LEVEL unset
               (ninja's own default, cores + 2 jobs)

Every other variant runs with CMAKE_BUILD_PARALLEL_LEVEL=2 (this machine's
cores). Rule written before the run: a variant goes into the Makefile when
it is faster than `makefile` by more than 10% in every round and its wheel
loads and reports the same CPU features.

    python benchmarks/setup_time.py [--variants makefile no-common] [--rounds 1] [--sdist FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORTABLE = "-DGGML_NATIVE=OFF"
MAKEFILE = f"{PORTABLE} -DLLAVA_BUILD=OFF"
VARIANTS: dict[str, tuple[str, str | None]] = {  # name: (CMAKE_ARGS, CMAKE_BUILD_PARALLEL_LEVEL)
    "native-off": (PORTABLE, "2"),
    "makefile": (MAKEFILE, "2"),
    "no-common": (f"{MAKEFILE} -DCMAKE_PROJECT_INCLUDE={ROOT / 'scripts' / 'llamacpp_no_common.cmake'}", "2"),
    "makefile-j": (MAKEFILE, None),
}
PROBE = ("import llama_cpp; llama_cpp.llama_backend_init(); "
         "print(llama_cpp.llama_print_system_info().decode())")


def download(package: str, folder: Path) -> tuple[Path, float]:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
                    "--no-cache-dir", package, "-d", str(folder)], check=True)
    return next(folder.glob("*.tar.gz")), time.perf_counter() - start


def build(sdist: Path, cmake_args: str, parallel: str | None, log: Path, out: Path) -> tuple[float, Path]:
    env = {k: v for k, v in os.environ.items() if k not in ("CMAKE_ARGS", "CMAKE_BUILD_PARALLEL_LEVEL")}
    env["CMAKE_ARGS"] = cmake_args
    if parallel:
        env["CMAKE_BUILD_PARALLEL_LEVEL"] = parallel
    out.mkdir(parents=True)
    start = time.perf_counter()
    with log.open("w") as sink:
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-v",
                               str(sdist), "-w", str(out)], env=env, stdout=sink, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the build with CMAKE_ARGS={cmake_args!r} failed; see {log}")
    return seconds, next(out.glob("*.whl"))


def probe(wheel: Path) -> str:
    """Load the wheel's libraries in a fresh interpreter; the CPU features it was built for."""
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(tmp)
        done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": tmp}, cwd=tmp)
    if done.returncode != 0:
        return f"does not load: {done.stderr.strip().splitlines()[-1:]}"
    info = done.stdout.strip().splitlines()[-1]
    info = info.split(" : ", 1)[-1]  # "CPU : SSE3 = 1 | ..."
    return " ".join(part.split(" = ")[0].strip() for part in info.split("|") if part.strip().endswith("= 1"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--sdist", type=Path, help="a llama-cpp-python sdist (default: download the installed version)")
    parser.add_argument("--keep", type=Path, help="copy each variant's wheel into this folder")
    parser.add_argument("--logs", type=Path, default=Path(tempfile.gettempdir()), help="where each build's log goes")
    args = parser.parse_args()
    package = f"llama-cpp-python=={version('llama-cpp-python')}"
    with tempfile.TemporaryDirectory() as work:
        measure(args, package, Path(work))


def measure(args: argparse.Namespace, package: str, work: Path) -> None:
    if args.sdist is None:
        args.sdist, seconds = download(package, work / "sdist")
        print(f"download of the {package} sdist ({args.sdist.stat().st_size / 1e6:.0f} MB): {seconds:.1f} s")
    times: dict[str, list[float]] = {name: [] for name in args.variants}
    wheels: dict[str, Path] = {}
    for round_ in range(args.rounds):
        for name in (args.variants if round_ % 2 == 0 else args.variants[::-1]):
            cmake_args, parallel = VARIANTS[name]
            seconds, wheels[name] = build(args.sdist, cmake_args, parallel, args.logs / f"setup_time_{name}.log",
                                          work / f"{name}-{round_}")
            times[name].append(seconds)
            print(f"  round {round_ + 1} {name}: {seconds:.1f} s", file=sys.stderr, flush=True)
    base = min(times["makefile"]) if "makefile" in times else None
    print(f"\n{args.sdist.name}: pip wheel --no-deps --no-cache-dir, {args.rounds} round(s), alternating")
    print(f"{'variant':>11} {'parallel':>8} {'wall s':>15} {'vs makefile':>12} {'wheel MB':>9}  loads, CPU features")
    for name in args.variants:
        cmake_args, parallel = VARIANTS[name]
        walls = ", ".join(f"{t:.0f}" for t in times[name])
        ratio = f"{min(times[name]) / base:12.2f}" if base else f"{'-':>12}"
        size = wheels[name].stat().st_size / 1e6
        print(f"{name:>11} {parallel or 'unset':>8} {walls:>15} {ratio} {size:9.1f}  {probe(wheels[name])}")
    for name in args.variants:
        print(f"  {name}: CMAKE_ARGS={VARIANTS[name][0]}")
        if args.keep:
            (args.keep / name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(wheels[name], args.keep / name)


if __name__ == "__main__":
    main()
