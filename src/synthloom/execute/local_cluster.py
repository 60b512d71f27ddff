"""A throwaway Ray cluster on loopback, for rehearsals, tests and benchmarks.

    python -m synthloom.execute.local_cluster --workers 2 -- synthloom run recipe.yaml --executor ray

runs the command next to a Ray cluster made of a head and `--workers` worker
nodes, each a separate `ray start` process tree, with `RAY_ADDRESS` set for
the command. Ray on its own advertises the machine's network address and
probes the outside world, so the cluster lives in a private network
namespace whose only device is loopback: nothing it or the command does can
reach another machine. It also lives in a private PID namespace, so when the
command ends, however it ends (exit, crash, timeout, kill), the kernel ends
every process of the cluster with it and nothing outside is ever touched.
Needs `unshare` (util-linux) and the right to make namespaces (root, or
unprivileged user namespaces).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["can_isolate", "isolated_command", "loopback_up", "main", "namespaced"]

_UNSHARE = ["unshare", "--net", "--pid", "--fork", "--mount-proc", "--kill-child"]


def namespaced(command: list[str]) -> list[str]:
    """The argv that runs `command` in private network and PID namespaces (call `loopback_up()` there)."""
    return [*_UNSHARE, *command]


def isolated_command(command: list[str], workers: int = 2, head_cpus: int = 0, worker_cpus: int = 1) -> list[str]:
    """The argv that runs `command` beside a fresh loopback cluster, in private namespaces."""
    return namespaced([
        sys.executable, "-m", "synthloom.execute.local_cluster", "--inside",
        "--workers", str(workers), "--head-cpus", str(head_cpus), "--worker-cpus", str(worker_cpus),
        "--", *command,
    ])


def can_isolate() -> str | None:
    """None when private namespaces can be made here; otherwise why not."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    try:
        done = subprocess.run([*_UNSHARE, "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    if done.returncode != 0:
        return f"cannot make private namespaces: {done.stderr.strip() or done.returncode}"
    return None


def loopback_up() -> None:
    """`ip link set lo up`, without needing iproute2."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH", fcntl.ioctl(s, siocgifflags, struct.pack("16sH", b"lo", 0)))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH", b"lo", flags | iff_up))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args: str, timeout: float = 180) -> None:
    ray = Path(sys.executable).with_name("ray")
    done = subprocess.run([str(ray), *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"ray {' '.join(args[:2])} failed ({done.returncode}): {done.stderr[-2000:]}")


def _start_cluster(temp_dir: str, workers: int, head_cpus: int, worker_cpus: int) -> str:
    port = _free_port()
    common = ["--node-ip-address", "127.0.0.1", "--temp-dir", temp_dir, "--disable-usage-stats"]
    _ray("start", "--head", "--port", str(port), "--num-cpus", str(head_cpus), "--include-dashboard", "false", *common)
    address = f"127.0.0.1:{port}"
    for _ in range(workers):
        _ray("start", "--address", address, "--num-cpus", str(worker_cpus),
             "--dashboard-agent-listen-port", str(_free_port()), *common)
    return address


def _inside(args: argparse.Namespace) -> int:
    if os.getpid() != 1:
        raise SystemExit("--inside is for the private namespaces isolated_command() makes")
    # As the namespace's first process, SIGTERM would be ignored without a handler.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    loopback_up()
    temp_dir = tempfile.mkdtemp(prefix="slray-", dir="/tmp")  # short: Ray's socket paths are limited
    try:
        started = time.time()
        address = _start_cluster(temp_dir, args.workers, args.head_cpus, args.worker_cpus)
        print(f"local Ray cluster at {address}: head + {args.workers} workers "
              f"({time.time() - started:.0f} s to start)", file=sys.stderr, flush=True)
        env = dict(os.environ, RAY_ADDRESS=address, SYNTHLOOM_LOCAL_CLUSTER=address)
        return subprocess.run(args.command, env=env).returncode
    finally:
        # Only this namespace's processes are visible here, so this stops exactly our cluster.
        subprocess.run([str(Path(sys.executable).with_name("ray")), "stop", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(temp_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="worker nodes beside the head")
    parser.add_argument("--head-cpus", type=int, default=0, help="CPUs the head offers to tasks")
    parser.add_argument("--worker-cpus", type=int, default=1, help="CPUs each worker node offers")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("give a command after --")
    if args.inside:
        return _inside(args)
    reason = can_isolate()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    return subprocess.run(isolated_command(args.command, args.workers, args.head_cpus, args.worker_cpus)).returncode


if __name__ == "__main__":
    sys.exit(main())
