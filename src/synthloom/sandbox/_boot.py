"""The first lines the child's interpreter runs: the fallback walls, then the program as `__main__`.

`BOOT` is passed as `python -I -S -u -c BOOT NET FILES SITE`: NET=1 when there is no
network namespace (sockets are refused by an audit hook), FILES=1 when
there is no Landlock (opening for writing, removing or renaming outside the
working directory is refused by the same hook). An audit hook cannot be
removed by the code it watches; it sees what Python does, not what native
code does on its own (see docs/curation.md: what the sandbox does not
guarantee). SITE is the interpreter's site-packages directories (joined
by ":"), put on sys.path without running their .pth files: `-S` skips the
`site` module, whose .pth processing costs a short program about a third of
its start-up (benchmarks/sandbox.py) and runs code nobody asked for. The
program is `main.py` in the working directory, compiled under that name so
that tracebacks point at its lines.
"""

BLOCKED = "blocked by the sandbox"

BOOT = r'''
import sys
def _walls(net, files):
    import os
    here = os.path.realpath(os.getcwd()) + os.sep
    msg = "%s"
    def inside(path):
        try:
            path = os.fsdecode(path) if not isinstance(path, int) else None
        except Exception:
            return False
        return path is None or os.path.realpath(path).startswith(here) or os.path.realpath(path) == "/dev/null"
    def hook(event, args):
        if net and event in ("socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo"):
            raise PermissionError("network " + msg)
        if files:
            if event == "open" and args[1] is not None and any(c in str(args[1]) for c in "wax+") and not inside(args[0]):
                raise PermissionError("writing %%r is %%s" %% (args[0], msg))
            if event == "open" and isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and not inside(args[0]):
                raise PermissionError("writing %%r is %%s" %% (args[0], msg))
            if event in ("os.remove", "os.rmdir", "os.mkdir", "os.rename", "os.truncate", "os.symlink", "os.link", "os.chmod", "os.chown") and not all(inside(a) for a in args[:2] if isinstance(a, (str, bytes))):
                raise PermissionError("%%s outside the working directory is %%s" %% (event, msg))
    sys.addaudithook(hook)
sys.path.extend(p for p in sys.argv[3].split(":") if p)
import builtins
builtins.exit = builtins.quit = sys.exit  # what `site` would have defined, and model code calls
del builtins
if sys.argv[1:3] != ["0", "0"]:
    _walls(sys.argv[1] == "1", sys.argv[2] == "1")
del _walls
sys.argv = ["main.py"]
with open("main.py", encoding="utf-8") as _f:
    _code = compile(_f.read(), "main.py", "exec")
del _f
exec(_code, {"__name__": "__main__", "__file__": "main.py", "__builtins__": __builtins__})
''' % BLOCKED
