"""What the child does to itself between fork and exec: the walls around model-written code.

Everything here runs in the forked child before the interpreter that will
run the code is exec'd (subprocess's `preexec_fn`), so it only calls into C
(setrlimit, unshare, Landlock, setuid) and imports nothing.

The walls, strongest available first (`probe()` finds out once per process
which ones this machine allows, and the result says which were in force):

- network: a new, empty network namespace (unshare(CLONE_NEWNET); without
  root, inside a new user namespace); else the interpreter's audit hook
  refuses to create sockets (see `_boot.py`). Landlock ABI >= 4 also
  refuses every TCP bind and connect.
- files: Landlock (Linux >= 5.13, no root needed) lets the child write only
  beneath its own temporary directory (ABI >= 6: nor signal processes
  outside); else the audit hook refuses opens for writing outside it.
- processes: RLIMIT_NPROC counts per user, and the kernel does not apply it
  to root. As root each slot has a `pids` cgroup (pids.max is the limit,
  and the cgroup lists every process a child started, even those that left
  its process group, so all are killed); the slot's helper (`_spawner`)
  lives in it, so children are born there. Where cgroups cannot be made,
  root's child drops to an unprivileged user of its own slot instead.
  Without root it keeps its user and RLIMIT_NPROC counts that user's other
  processes too (`process_budget`).
- privileges: a child that stays uid 0 drops every capability (and locks
  the securebits), so it cannot undo the walls above.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import resource
import subprocess
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
PR_SET_NO_NEW_PRIVS = 38

_SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on x86-64 and arm64
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_RULE_PATH_BENEATH = 1
_LANDLOCK_CREATE_RULESET_VERSION = 1

# Filesystem rights that change something (Landlock ABI 1 and 3); reading is left alone.
_WRITE_FILE = 1 << 1
_REMOVE_DIR = 1 << 4
_REMOVE_FILE = 1 << 5
_MAKE_CHAR, _MAKE_DIR, _MAKE_REG, _MAKE_SOCK, _MAKE_FIFO, _MAKE_BLOCK, _MAKE_SYM = (1 << i for i in range(6, 13))
_REFER = 1 << 13
_TRUNCATE = 1 << 14
_WRITES_V1 = (_WRITE_FILE | _REMOVE_DIR | _REMOVE_FILE | _MAKE_CHAR | _MAKE_DIR | _MAKE_REG | _MAKE_SOCK
              | _MAKE_FIFO | _MAKE_BLOCK | _MAKE_SYM)

_libc = ctypes.CDLL(None, use_errno=True)  # the symbols this process has: libc among them, no ldconfig run
_libc.syscall.restype = ctypes.c_long


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _landlock_abi() -> int:
    abi = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    return int(abi) if abi > 0 else 0


def _fail(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


def landlock_writes_only_beneath(directory: str, abi: int) -> None:
    """Forbid this process (and its children) to change files anywhere but beneath `directory`."""
    handled = _WRITES_V1 | (_REFER if abi >= 2 else 0) | (_TRUNCATE if abi >= 3 else 0)
    # ABI 4: no TCP bind or connect at all; ABI 6: no signals to, and no abstract sockets of, processes outside
    attr = _RulesetAttr(handled, (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0,
                        (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                            ctypes.c_uint32(0))
    if ruleset < 0:
        _fail("landlock_create_ruleset")
    fds = [(os.open(directory, os.O_PATH | os.O_CLOEXEC), handled)]
    fds.append((os.open("/dev/null", os.O_PATH | os.O_CLOEXEC), _WRITE_FILE | (_TRUNCATE if abi >= 3 else 0)))
    for fd, allowed in fds:
        rule = _PathBeneath(allowed, fd)
        if _libc.syscall(_SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH),
                         ctypes.byref(rule), ctypes.c_uint32(0)) < 0:
            _fail("landlock_add_rule")
        os.close(fd)
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        _fail("prctl(NO_NEW_PRIVS)")
    if _libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) < 0:
        _fail("landlock_restrict_self")
    os.close(ruleset)


# Dropping root's capabilities (a child that stays uid 0 must not undo its walls: setns back to the
# host's network, raise its hard limits, leave its cgroup, signal or trace other processes).
_PR_CAPBSET_DROP, _PR_SET_SECUREBITS, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 24, 28, 47, 4
_SECUREBITS_LOCKED_NOROOT = 0x2F  # NOROOT, NO_SETUID_FIXUP and KEEP_CAPS_LOCKED, each locked
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91}.get(os.uname().machine, 0)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> None:
    """No capabilities now or after exec, though still uid 0 (so RLIMIT_NPROC alone would not hold: see cgroups)."""
    if _libc.prctl(_PR_SET_SECUREBITS, _SECUREBITS_LOCKED_NOROOT, 0, 0, 0) != 0:
        _fail("prctl(SET_SECUREBITS)")
    for cap in range(64):
        if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    _libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    if not _SYS_CAPSET or _libc.syscall(_SYS_CAPSET, ctypes.byref(header), data) != 0:
        _fail("capset")


def _unshare(flags: int) -> None:
    if _libc.unshare(ctypes.c_int(flags)) != 0:
        _fail("unshare")


@dataclass(frozen=True)
class Walls:
    """Which walls this machine allows (found once by `probe`)."""

    network: str  # "namespace", "user+namespace" (unprivileged) or "audit_hook"
    files: str  # "landlock" or "audit_hook"
    landlock_abi: int
    processes: str  # "cgroup" (root), "user" (root, a user per slot) or "rlimit"
    cgroup_root: str = ""  # the pids hierarchy under which slots get a cgroup
    drop_caps: bool = False  # root staying uid 0: drop every capability

    def describe(self, uid: int | None) -> dict[str, str]:
        """The `isolation` entry of a result: what was in force for this run."""
        return {
            "network": "network namespace" if self.network != "audit_hook" else "sockets refused (audit hook)",
            "files": "landlock: writes only in the temp dir" if self.files == "landlock"
            else "writes outside the temp dir refused (audit hook)",
            "processes": {"cgroup": "pids cgroup", "user": f"RLIMIT_NPROC as uid {uid}",
                          "rlimit": "RLIMIT_NPROC"}[self.processes],
            "privileges": "uid 0 without capabilities" if self.drop_caps and uid is None
            else f"uid {uid}" if uid is not None else "the caller's user",
        }


@dataclass(frozen=True)
class ChildSetup:
    """The preexec_fn of one child: limits, walls, then the sandbox user."""

    walls: Walls
    workdir: str
    limits: tuple[tuple[int, int, int], ...]  # (resource, soft, hard)
    uid: int | None
    cgroup_procs: str = ""  # join this pids cgroup first

    def __call__(self) -> None:
        if self.cgroup_procs:
            fd = os.open(self.cgroup_procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        if self.walls.network == "namespace":
            _unshare(CLONE_NEWNET)
        elif self.walls.network == "user+namespace":
            _unshare(CLONE_NEWUSER | CLONE_NEWNET)
        if self.walls.files == "landlock":
            landlock_writes_only_beneath(self.workdir, self.walls.landlock_abi)
        for which, soft, hard in self.limits:
            resource.setrlimit(which, (soft, hard))
        if self.uid is not None:
            os.setgroups([])
            os.setresgid(self.uid, self.uid, self.uid)
            os.setresuid(self.uid, self.uid, self.uid)
        elif self.walls.drop_caps:
            drop_capabilities()


def _try(setup: ChildSetup, command: list[str]) -> bool:
    try:
        subprocess.run(command, preexec_fn=setup, check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
        return True
    except (subprocess.SubprocessError, OSError):
        return False


_PIDS_HIERARCHIES = ("/sys/fs/cgroup/pids", "/sys/fs/cgroup")


def _pids_cgroup_root() -> str:
    """A pids cgroup hierarchy where this process may make children (v1 `pids`, or v2 with it enabled)."""
    for root in _PIDS_HIERARCHIES:
        base = Path(root)
        if not (base / "cgroup.procs").exists():
            continue
        if base.name != "pids" and "pids" not in (base / "cgroup.subtree_control").read_text(errors="replace").split():
            continue
        probe_dir = base / f"synthloom-probe-{os.getpid()}"
        try:
            probe_dir.mkdir(exist_ok=True)
            ok = (probe_dir / "pids.max").exists()
            probe_dir.rmdir()
        except OSError:
            continue
        if ok:
            return root
    return ""


@lru_cache(maxsize=4)
def probe(python: str) -> Walls:
    """Try each wall once in a throwaway child; keep the ones that work here."""
    root = os.geteuid() == 0
    abi = _landlock_abi() if os.uname().sysname == "Linux" else 0
    none = Walls("audit_hook", "audit_hook", abi, "rlimit")
    true = [python, "-I", "-c", "pass"]
    files = "audit_hook"
    if abi and _try(ChildSetup(Walls("audit_hook", "landlock", abi, "rlimit"), "/tmp", (), None), true):
        files = "landlock"
    network = "audit_hook"
    for candidate in ("namespace", "user+namespace"):
        if _try(ChildSetup(Walls(candidate, "audit_hook", abi, "rlimit"), "/tmp", (), None), ["/bin/true"]):
            network = candidate
            break
    processes, cgroup_root, drop_caps = "rlimit", "", False
    if root:
        cgroup_root = _pids_cgroup_root()
        if cgroup_root:
            processes = "cgroup"
        elif _try(ChildSetup(none, "/tmp", (), UID_BASE), true):
            processes = "user"
        drop_caps = _try(ChildSetup(Walls("audit_hook", "audit_hook", abi, "rlimit", "", True), "/tmp", (), None), true)
    return Walls(network, files, abi, processes, cgroup_root, drop_caps)


UID_BASE = 2_100_000_000  # the sandbox users when running as root without cgroups: UID_BASE + slot


def _remove_stale(root: Path) -> None:
    """Remove empty slot cgroups left by a process that died without closing its Sandbox."""
    for path in root.glob("synthloom-*-*-*"):
        owner = path.name.split("-")[1]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            try:
                path.rmdir()
            except OSError:
                pass


class Cgroup:
    """A slot's pids cgroup: its limit, and every process in it killed at the end."""

    _made = itertools.count()

    def __init__(self, root: str, slot: int):
        _remove_stale(Path(root))
        self.path = Path(root) / f"synthloom-{os.getpid()}-{next(self._made)}-{slot}"
        self.path.mkdir(exist_ok=True)
        self.procs = str(self.path / "cgroup.procs")

    def limit(self, processes: int) -> None:
        (self.path / "pids.max").write_text(str(processes))

    def kill_all(self, spare: int | None = None) -> bool:
        """SIGKILL what is left but `spare` (the slot's helper), again until none is; True when something was."""
        found = False
        for _ in range(100):
            try:
                pids = [int(p) for p in Path(self.procs).read_text().split() if int(p) != spare]
            except FileNotFoundError:
                return found
            if not pids:
                return found
            found = True
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            time.sleep(0.001)
        return found

    def remove(self) -> None:
        self.kill_all()
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.01)


def process_budget(processes: int, walls: Walls) -> int:
    """RLIMIT_NPROC for a child that may start `processes` more processes.

    A child in a cgroup or with a user of its own counts from zero. One
    that keeps the caller's user shares the count with every process that
    user already has, so the limit is that count plus the allowance.
    """
    if walls.processes != "rlimit":
        return processes
    me = os.getuid()
    count = 0
    try:
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == me:
                        count += 1
                except OSError:
                    pass
    except OSError:
        return processes
    return count + processes


def limits_for(cpu_seconds: float, memory_bytes: int, file_bytes: int, nproc: int, open_files: int) -> tuple:
    """The rlimits, soft and hard: CPU gets SIGXCPU at the soft limit and SIGKILL one second later."""
    cpu = max(1, int(-(-cpu_seconds // 1)))
    return (
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_AS, memory_bytes, memory_bytes),
        (resource.RLIMIT_FSIZE, file_bytes, file_bytes),
        (resource.RLIMIT_NPROC, nproc, nproc),
        (resource.RLIMIT_NOFILE, open_files, open_files),
        (resource.RLIMIT_CORE, 0, 0),
    )
