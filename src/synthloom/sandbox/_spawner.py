"""A small helper process that starts the sandbox's children, so synthloom's own process never forks for them.

Setting limits between fork and exec needs a `preexec_fn`, and with one
Python forks the whole calling process (no vfork): for synthloom with
pyarrow and friends loaded, that fork and its copy-on-write faults cost
more than the child's interpreter takes to start (measured in
benchmarks/sandbox.py). The helper is a bare interpreter (only the stdlib
and `_isolate.py`, loaded by path), started once per Sandbox; it forks each
child from its few megabytes, applies the walls in the child before exec,
reaps it and reports its exit status. Requests and answers are JSON lines
on its stdin and stdout. It runs no model code itself.

There is one helper per slot, living in the slot's pids cgroup (when the
sandbox uses one): a child forked there is born in the cgroup, where moving
each child into it would wait for an RCU grace period (~15 ms measured).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from . import _isolate

SERVER = r'''
import importlib.util, json, os, select, signal, subprocess, sys
spec = importlib.util.spec_from_file_location("_synthloom_isolate", sys.argv[1])
iso = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(iso)
if sys.argv[2]:  # live in the slot's pids cgroup: children are born in it, with no migration to pay
    fd = os.open(sys.argv[2], os.O_WRONLY)
    os.write(fd, b"0")
    os.close(fd)
children = {}
def send(message):
    os.write(1, (json.dumps(message) + "\n").encode())
def start(req):
    s = req["setup"]
    setup = iso.ChildSetup(iso.Walls(**s["walls"]), s["workdir"], tuple(tuple(x) for x in s["limits"]),
                           s["uid"], s["cgroup_procs"])
    with open(req["out"], "wb") as out, open(req["err"], "wb") as err:
        proc = subprocess.Popen(req["argv"], cwd=req["cwd"], env=req["env"], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, preexec_fn=setup, start_new_session=True)
    children[os.pidfd_open(proc.pid)] = (req["id"], proc)
    send({"id": req["id"], "pid": proc.pid})
buffer = b""
while True:
    ready, _, _ = select.select([0, *children], [], [])
    for fd in ready:
        if fd != 0:
            rid, proc = children.pop(fd)
            os.close(fd)
            send({"id": rid, "exit": proc.wait()})
            continue
        data = os.read(0, 1 << 16)
        if not data:
            for _, proc in children.values():
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
            sys.exit(0)
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            req = json.loads(line)
            try:
                start(req)
            except Exception as exc:
                send({"id": req["id"], "error": f"{type(exc).__name__}: {exc}"})
'''


class _Pending:
    def __init__(self) -> None:
        self.started = threading.Event()
        self.ended = threading.Event()
        self.pid = 0
        self.exit: int | None = None
        self.error = ""


class Spawner:
    """The parent's side: send a start request, learn the pid, wait for the exit status."""

    def __init__(self, python: str, cgroup_procs: str = ""):
        self.proc = subprocess.Popen(
            [python, "-I", "-S", "-c", SERVER, str(Path(_isolate.__file__).resolve()), cgroup_procs],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._next = 0
        self._reader = threading.Thread(target=self._read, name="sandbox-spawner", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            with self._lock:
                pending = self._pending.get(message["id"])
            if pending is None:
                continue
            if "pid" in message:
                pending.pid = message["pid"]
                pending.started.set()
            elif "exit" in message:
                pending.exit = message["exit"]
                pending.ended.set()
            else:
                pending.error = message["error"]
                pending.started.set()
                pending.ended.set()
        with self._lock:  # the helper died: nobody waits forever
            for pending in self._pending.values():
                pending.error = pending.error or "the sandbox's helper process ended"
                pending.started.set()
                pending.ended.set()

    def start(self, argv: list[str], cwd: str, env: dict[str, str], out: str, err: str,
              setup: _isolate.ChildSetup) -> _Pending:
        with self._lock:
            self._next += 1
            rid = self._next
            pending = self._pending[rid] = _Pending()
            request = {"id": rid, "argv": argv, "cwd": cwd, "env": env, "out": out, "err": err,
                       "setup": {"walls": dataclasses.asdict(setup.walls), "workdir": setup.workdir,
                                 "limits": [list(x) for x in setup.limits], "uid": setup.uid,
                                 "cgroup_procs": setup.cgroup_procs}}
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
        pending.rid = rid  # type: ignore[attr-defined]
        return pending  # not waiting for the pid: a short program's exit often comes first

    def forget(self, rid: int) -> None:
        with self._lock:
            self._pending.pop(rid, None)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def available() -> bool:
    """A helper needs pidfds (Linux >= 5.3) to wait on many children at once."""
    if not hasattr(os, "pidfd_open") or sys.platform != "linux":
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
        return True
    except OSError:
        return False


__all__ = ["Spawner", "available"]
