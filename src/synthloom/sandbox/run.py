"""Run model-written Python in a child process with limits, no network and a temporary directory.

    with Sandbox(Limits(wall_seconds=5), parallel=2) as box:
        result = box.run("print(1 + 1)")            # Result(status="ok", stdout="2\n", ...)
        results = box.run_many(programs)             # at most `parallel` at once

Each program gets a fresh child: a new session (its process group, and its
slot's cgroup, are killed whole at the wall timeout and after it ends),
rlimits on CPU time, address space, file size, processes and open files set
between fork and exec, the walls of `_isolate` (network namespace, Landlock,
a pids cgroup and no capabilities when synthloom runs as root), a new
temporary directory as working directory and HOME (removed afterwards), a
minimal environment, stdin closed, and stdout and stderr written to files
and read back up to `max_output` bytes. The children are forked by a small
helper process per slot (`_spawner`), so nothing the program does runs in,
or is forked from, synthloom's process. `run_many`'s threads only wait on
children; they never run the code.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import select
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal, Mapping, Sequence

from . import _isolate, _spawner
from ._boot import BLOCKED, BOOT

Status = Literal["ok", "error", "timeout", "killed", "blocked"]


@dataclass(frozen=True)
class Limits:
    """What one program may use. Memory is address space (RLIMIT_AS), so it bounds what it can ask for."""

    wall_seconds: float = 10.0
    cpu_seconds: float = 5.0
    memory_mb: int = 1024
    file_size_mb: int = 16
    processes: int = 32
    open_files: int = 64
    max_output: int = 64 * 1024  # bytes of stdout and of stderr kept


@dataclass
class Program:
    """Code to run as `main.py`, and files to put beside it (name -> text or bytes)."""

    code: str
    files: Mapping[str, str | bytes] = field(default_factory=dict)


@dataclass
class Result:
    status: Status
    exit_code: int | None
    stdout: str
    stderr: str
    duration: float
    limit: str | None = None  # killed: cpu, memory, file_size, processes, open_files; blocked: network, files
    error: str = ""  # one line: the exception, or what stopped the program
    truncated: bool = False
    isolation: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


_SIGNAL_LIMITS = {signal.SIGXCPU: "cpu", signal.SIGXFSZ: "file_size"}
_LAST_ERROR = re.compile(r"^(\w[\w.]*(?:Error|Exception|Exit|Interrupt|Warning)|[\w.]+): ?(.*)$")


def _last_error(stderr: str) -> str:
    for line in reversed(stderr.strip().splitlines()):
        if _LAST_ERROR.match(line.strip()):
            return line.strip()
    lines = stderr.strip().splitlines()
    return lines[-1].strip() if lines else ""


def classify(exit_code: int, stderr: str, limits: Limits) -> tuple[Status, str | None, str]:
    """(status, limit, one-line error) from how the child ended and its last error line."""
    if exit_code == 0:
        return "ok", None, ""
    if exit_code < 0:
        sig = -exit_code
        if sig in _SIGNAL_LIMITS:
            which = _SIGNAL_LIMITS[sig]
            return "killed", which, f"killed by the {which.replace('_', ' ')} limit ({signal.Signals(sig).name})"
        if sig == signal.SIGKILL:  # not ours (ours is a timeout): the hard CPU limit or the kernel's OOM killer
            return "killed", "cpu", f"killed (SIGKILL) at the CPU limit of {limits.cpu_seconds:g} s"
        return "error", None, f"killed by {signal.Signals(sig).name}"
    error = _last_error(stderr)
    if error.startswith("MemoryError") or "Cannot allocate memory" in error:
        return "killed", "memory", f"memory limit of {limits.memory_mb} MB: {error}"
    if "[Errno 11]" in error and "BlockingIOError" in error:
        return "killed", "processes", f"process limit of {limits.processes}: {error}"
    if "[Errno 24]" in error:
        return "killed", "open_files", f"open-file limit of {limits.open_files}: {error}"
    if "[Errno 27]" in error:
        return "killed", "file_size", f"file-size limit of {limits.file_size_mb} MB: {error}"
    tail = "\n".join(stderr.strip().splitlines()[-6:])
    network_call = any(word in tail for word in ("socket", ".connect(", ".bind(", ".sendto(", "urlopen", "URLError"))
    if BLOCKED in error and "network" in error or any(f"[Errno {n}]" in error for n in (99, 101, -2, -3)):
        return "blocked", "network", error
    if network_call and ("[Errno 13]" in error or "[Errno 1]" in error):  # Landlock's TCP rule says EACCES
        return "blocked", "network", error
    if BLOCKED in error or error.startswith("PermissionError") or "[Errno 13]" in error or "[Errno 30]" in error:
        return "blocked", "files", error
    return "error", None, error or f"exit status {exit_code}"


class Sandbox:
    """Runs programs in isolated children; one instance may run many programs, also at once.

    `python` is the interpreter the children run (default: this one, so the
    same packages are importable). `share(path)` copies a file the programs
    may read (e.g. a SQLite database) into a read-only place they can reach.
    `walls` replaces what `probe` found (e.g. to try the audit-hook fallbacks).
    """

    def __init__(self, limits: Limits | None = None, parallel: int | None = None, python: str | None = None,
                 walls: _isolate.Walls | None = None):
        self.limits = limits or Limits()
        self.walls = walls  # default: the strongest this machine allows (`probe`)
        self.parallel = max(1, parallel or os.cpu_count() or 1)
        self.python = python or sys.executable
        self._slots: queue.Queue[int] = queue.Queue()
        for slot in range(self.parallel):
            self._slots.put(slot)
        self._shared_dirs: list[Path] = []
        self._cgroups: dict[int, _isolate.Cgroup] = {}
        self._helpers: dict[int, _spawner.Spawner] = {}
        self._spawner_lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _release, self._helpers, self._cgroups, self._shared_dirs)

    # -- files the programs may read ---------------------------------------------------

    def share(self, path: str | Path) -> str:
        """A read-only copy of `path` that every program of this sandbox can open; returns its path."""
        if not self._shared_dirs:
            self._shared_dirs.append(Path(tempfile.mkdtemp(prefix="synthloom-shared-")))
            os.chmod(self._shared_dirs[0], 0o755)
        shared = self._shared_dirs[0]
        target = shared / f"{len(list(shared.iterdir()))}-{Path(path).name}"
        shutil.copyfile(path, target)
        os.chmod(target, 0o444)
        return str(target)

    def close(self) -> None:
        """Stop the helpers, remove the cgroups and shared files (also done when the Sandbox is collected)."""
        self._finalizer()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running ---------------------------------------------------------------------

    def run(self, program: Program | str, limits: Limits | None = None) -> Result:
        """Run one program in a fresh child and say how it ended."""
        if isinstance(program, str):
            program = Program(program)
        slot = self._slots.get()
        try:
            return self._run(program, limits or self.limits, slot)
        finally:
            self._slots.put(slot)

    def run_many(self, programs: Sequence[Program | str], limits: Limits | None = None) -> list[Result]:
        """Run every program, at most `parallel` children at once; results in the programs' order."""
        if not programs:
            return []
        with ThreadPoolExecutor(max_workers=min(self.parallel, len(programs)),
                                thread_name_prefix="sandbox-wait") as pool:
            return list(pool.map(lambda p: self.run(p, limits), programs))

    def _run(self, program: Program, limits: Limits, slot: int) -> Result:
        walls = self.walls or _isolate.probe(self.python)
        uid = _isolate.UID_BASE + slot if walls.processes == "user" else None
        cgroup = None
        if walls.processes == "cgroup":
            cgroup = self._cgroups.get(slot) or self._cgroups.setdefault(slot, _isolate.Cgroup(walls.cgroup_root, slot))
        helper = self._spawner(slot, cgroup)
        if cgroup is not None:
            cgroup.limit(limits.processes + (1 if helper else 0))  # the helper lives in it too
        home = Path(tempfile.mkdtemp(prefix="synthloom-sandbox-", dir=_scratch_root()))
        work = home / "work"
        try:
            work.mkdir()
            (work / "main.py").write_text(program.code, encoding="utf-8")
            for name, content in program.files.items():
                if Path(name).name != name or name in ("main.py", ".", ".."):
                    raise ValueError(f"a program's file is a plain name other than main.py, not {name!r}")
                target = work / name
                if isinstance(content, bytes):
                    target.write_bytes(content)
                else:
                    target.write_text(content, encoding="utf-8")
            if uid is not None:
                os.chmod(home, 0o711)
                for path in [work, *work.iterdir()]:
                    os.chown(path, uid, uid)
            nproc = _isolate.process_budget(limits.processes, walls)
            setup = _isolate.ChildSetup(
                walls, str(work),
                _isolate.limits_for(limits.cpu_seconds, limits.memory_mb << 20, limits.file_size_mb << 20,
                                    nproc, limits.open_files),
                uid, cgroup.procs if cgroup else "",
            )
            hooks = ["1" if walls.network == "audit_hook" else "0", "1" if walls.files == "audit_hook" else "0"]
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work),
                   "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
            argv = [self.python, "-I", "-S", "-u", "-c", BOOT, *hooks, ":".join(_site_packages(self.python))]
            started = time.monotonic()
            exit_code, pid = self._start_and_wait(argv, work, env, home, setup, limits.wall_seconds, cgroup, helper)
            timed_out = exit_code is None
            duration = time.monotonic() - started
            if cgroup is not None:  # strays, also those that left the process group (setsid)
                cgroup.kill_all(spare=helper.proc.pid if helper else None)
            elif _kill_group(pid) and uid is not None:
                _kill_user(uid)  # strays that left the group (setsid) still run as the slot's user
            stdout, cut_out = _read(home / "stdout", limits.max_output)
            stderr, cut_err = _read(home / "stderr", limits.max_output)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        if timed_out:
            status, limit, error = "timeout", None, f"still running after {limits.wall_seconds:g} s (wall timeout)"
        else:
            status, limit, error = classify(exit_code, stderr, limits)
        return Result(status, exit_code, stdout, stderr, duration, limit, error, cut_out or cut_err,
                      walls.describe(uid))

    def _spawner(self, slot: int, cgroup: _isolate.Cgroup | None) -> _spawner.Spawner | None:
        """The slot's helper process (started on first use), or None where there can be none."""
        with self._spawner_lock:
            helper = self._helpers.get(slot)
            if helper is not None and helper.proc.poll() is not None:  # it died (killed from outside): replace it
                helper.close()
                helper = None
            if helper is None and _spawner.available():
                helper = self._helpers[slot] = _spawner.Spawner(self.python, cgroup.procs if cgroup else "")
            return helper

    def _start_and_wait(self, argv: list[str], work: Path, env: dict[str, str], home: Path,
                        setup: _isolate.ChildSetup, wall: float, cgroup: _isolate.Cgroup | None,
                        helper: _spawner.Spawner | None) -> tuple[int | None, int]:
        """(exit status or None at the wall timeout, pid): through the helper, or forked from here."""
        if helper is not None:
            setup = dataclasses.replace(setup, cgroup_procs="")  # born in the helper's cgroup
            pending = helper.start(argv, str(work), env, str(home / "stdout"), str(home / "stderr"), setup)
            try:
                if not pending.ended.wait(wall):
                    pending.started.wait()
                    _kill_group(pending.pid)
                    if cgroup is not None:
                        cgroup.kill_all(spare=helper.proc.pid)
                    pending.ended.wait()
                    return None, pending.pid
                if pending.exit is None:
                    raise OSError(f"cannot run the sandboxed program: {pending.error or 'its status was lost'}")
                return pending.exit, pending.pid
            finally:
                helper.forget(pending.rid)
        with open(home / "stdout", "wb") as out, open(home / "stderr", "wb") as err:
            proc = subprocess.Popen(argv, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    preexec_fn=setup, start_new_session=True, close_fds=True)
        exit_code = _wait(proc, wall)
        if exit_code is None:
            _kill_group(proc.pid)
            if cgroup is not None:
                cgroup.kill_all()
            proc.wait()
        return exit_code, proc.pid


def _release(helpers: dict, cgroups: dict, shared: list[Path]) -> None:
    for helper in helpers.values():
        helper.close()
    helpers.clear()
    for cgroup in cgroups.values():
        cgroup.remove()
    cgroups.clear()
    for path in shared:
        shutil.rmtree(path, ignore_errors=True)
    shared.clear()


def _wait(proc: subprocess.Popen, timeout: float) -> int | None:
    """The exit status, or None after `timeout` seconds.

    Waits on a pidfd where there is one: Popen.wait(timeout) polls with
    sleeps that grow to 50 ms, which would cost a short program more time
    than it runs.
    """
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return proc.wait() if ready else None


@lru_cache(maxsize=4)
def _site_packages(python: str) -> tuple[str, ...]:
    """The interpreter's site-packages directories (asked once when it is not this one)."""
    if python == sys.executable:
        return tuple(site.getsitepackages())
    done = subprocess.run([python, "-I", "-c", "import json, site; print(json.dumps(site.getsitepackages()))"],
                          capture_output=True, text=True, check=True)
    return tuple(json.loads(done.stdout))


@lru_cache(maxsize=1)
def _scratch_root() -> str | None:
    """Where the children's temporary directories go: /dev/shm (a tmpfs: making and removing a
    directory there costs ~0.1 ms, against ~10 ms on a busy ext4 disk), else the system's temp dir."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return str(shm)
    return None


def _kill_group(pgid: int) -> bool:
    """SIGKILL the whole process group; True when anything was left in it."""
    try:
        os.killpg(pgid, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _kill_user(uid: int) -> None:
    """Kill every process of a sandbox user (kill(-1) as that user reaches exactly those)."""
    subprocess.run(["kill", "-KILL", "-1"], user=uid, group=uid, extra_groups=[], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def _read(path: Path, limit: int) -> tuple[str, bool]:
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(0)
            data = handle.read(limit)
    except FileNotFoundError:
        return "", False
    text = data.decode("utf-8", errors="replace")
    if size > limit:
        return text + f"\n[... {size - limit} more bytes cut]", True
    return text, False
