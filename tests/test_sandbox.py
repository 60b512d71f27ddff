"""The sandbox, with real child processes: hostile programs are stopped and reported, and a batch goes on.

Each hostile program runs in a batch between two harmless ones; the test
checks what a user would: the status and the limit named, that the harm did
not happen (no file outside the temp dir, no connection to a listening
socket, no process left behind), and that the next program ran normally.
"""

from __future__ import annotations

import os
import socket

import pytest

from synthloom.sandbox import Limits, Program, Sandbox, probe
from synthloom.sandbox._boot import BLOCKED

pytestmark = pytest.mark.skipif(os.uname().sysname != "Linux", reason="the sandbox's walls are Linux's")

LIMITS = Limits(wall_seconds=20, cpu_seconds=1, memory_mb=512, processes=16, max_output=4096)


@pytest.fixture
def box():
    with Sandbox(LIMITS, parallel=2) as sandbox:
        yield sandbox


def run_between(box, hostile):
    """Run [ok, hostile, ok] as one batch; return the hostile program's result."""
    before, result, after = box.run_many(["print('before')", hostile, "print('after')"])
    assert (before.status, before.stdout) == ("ok", "before\n")
    assert (after.status, after.stdout) == ("ok", "after\n"), after
    return result


def test_a_plain_program_runs_in_a_fresh_temp_dir_with_a_minimal_environment(box):
    result = box.run(Program(
        "import os, sys\nprint(open('data.txt').read(), os.getcwd() == os.environ['HOME'], sorted(os.environ))\n"
        "print(sys.stdin.read() == '')\nopen('out.txt', 'w').write('x')\nprint(os.getcwd())\nexit(0)",
        files={"data.txt": "hello"},
    ))
    assert result.status == "ok" and result.exit_code == 0, result
    lines = result.stdout.splitlines()
    assert lines[0] == "hello True ['HOME', 'LANG', 'LC_ALL', 'PATH', 'TMPDIR']"
    assert lines[1] == "True"
    assert not os.path.exists(lines[2]), "the temp dir is removed afterwards"
    assert set(result.isolation) == {"network", "files", "processes", "privileges"}


def test_an_infinite_loop_is_killed_by_the_cpu_limit(box):
    result = run_between(box, "while True:\n    pass")
    assert (result.status, result.limit) == ("killed", "cpu"), result


def test_a_sleeping_program_is_killed_at_the_wall_timeout(box):
    result = box.run("import time\nprint('started')\ntime.sleep(60)", Limits(wall_seconds=1))
    assert result.status == "timeout" and "wall timeout" in result.error
    assert result.stdout == "started\n", "output written before the kill is kept"


def test_a_fork_bomb_is_stopped_and_leaves_nothing_behind(box):
    result = run_between(box, "import os\nwhile True:\n    os.fork()")
    assert (result.status, result.limit) == ("killed", "processes"), result
    left = [p for p in os.listdir("/proc") if p.isdigit() and _is_sandbox_child(p)]
    assert not left, f"processes left behind: {left}"


def _is_sandbox_child(pid):
    """A process running the sandbox's boot code (its command line carries it)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return BLOCKED.encode() in f.read()
    except OSError:
        return False


def test_a_10_gb_allocation_hits_the_memory_limit(box):
    result = run_between(box, "x = bytearray(10 * 1024 ** 3)\nprint('allocated')")
    assert (result.status, result.limit) == ("killed", "memory"), result
    assert "allocated" not in result.stdout


def test_writing_outside_the_temp_dir_is_refused(box, tmp_path):
    os.chmod(tmp_path, 0o777)
    target = tmp_path / "escaped.txt"
    shared = "/dev/shm/" + f"synthloom-escape-{os.getpid()}"
    result = run_between(box, f"open({str(target)!r}, 'w').write('x')")
    assert (result.status, result.limit) == ("blocked", "files"), result
    assert not target.exists()
    result = box.run(f"import os\nfd = os.open({shared!r}, os.O_CREAT | os.O_WRONLY)\nos.write(fd, b'x')")
    assert (result.status, result.limit) == ("blocked", "files"), result
    assert not os.path.exists(shared)


def test_a_socket_to_loopback_connects_to_nothing(box):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        port = server.getsockname()[1]
        result = run_between(box, f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'hi')")
        assert (result.status, result.limit) == ("blocked", "network"), result
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing connected
    assert "network" in result.isolation


def test_output_is_truncated_to_the_limit(box):
    result = box.run("print('x' * 100000)")
    assert result.status == "ok" and result.truncated
    assert result.stdout.startswith("x" * 4096) and "more bytes cut" in result.stdout


def test_errors_are_reported_with_their_last_line(box):
    result = box.run("def f():\n    assert 1 + 1 == 3, 'arithmetic'\nf()")
    assert result.status == "error" and result.exit_code == 1
    assert result.error == "AssertionError: arithmetic" and 'File "main.py", line 2' in result.stderr


def test_the_walls_in_force_are_named():
    walls = probe(__import__("sys").executable)
    assert walls.network in ("namespace", "user+namespace", "audit_hook")
    assert walls.files in ("landlock", "audit_hook")


def test_without_namespace_or_landlock_the_audit_hook_refuses_sockets_and_writes(tmp_path):
    """The fallback walls, forced: what a machine without network namespaces or Landlock gets."""
    import dataclasses
    import sys

    walls = dataclasses.replace(probe(sys.executable), network="audit_hook", files="audit_hook")
    os.chmod(tmp_path, 0o777)
    target = tmp_path / "escaped.txt"
    with Sandbox(LIMITS, parallel=1, walls=walls) as box, socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        port = server.getsockname()[1]
        net, write, fine = box.run_many([
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)",
            f"open({str(target)!r}, 'w').write('x')",
            "open('inside.txt', 'w').write('x')\nprint(open('inside.txt').read())",
        ])
        with pytest.raises(BlockingIOError):
            server.accept()
    assert (net.status, net.limit) == ("blocked", "network") and "audit hook" in net.isolation["network"]
    assert (write.status, write.limit) == ("blocked", "files") and not target.exists()
    assert (fine.status, fine.stdout) == ("ok", "x\n")


def test_a_program_cannot_take_its_walls_down(box):
    """Its limits stay (no raising the hard limit); run as root, it keeps no capabilities."""
    result = box.run("import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))")
    assert result.status == "error" and "not allowed to raise" in result.error
    if os.geteuid() == 0:
        result = box.run("print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])")
        assert result.stdout == "0000000000000000\n"
