"""The sandbox each submission runs in while ``course grade`` grades it: bubblewrap, a reserved
user id, and a memory and process limit for the whole submission.

What a sandboxed worker gets
----------------------------
* Its own user, PID, IPC, network and UTS namespaces (``bwrap``). When the sandbox's first process
  exits, the kernel kills everything else in its PID namespace, so nothing a submission starts
  outlives it, however it detaches.
* A read-only view of the system folders (``/usr``, ``/etc``), the Python installation and
  virtual environment, and the ``course_utils`` package folder alone: not the repository around it
  (solution notebooks, tests), not the submissions folder, not the output folder, not ``/root`` or
  ``/home``. The grader never sends exercise references to the worker (it sends names, kinds and
  the ``run`` adapters' names), and :func:`command` hides extra files the grader names, such as an
  instructor's exercise bank. A bank's own ``run`` adapters, kept in a helper file without
  references, are shown as read-only copies at ``/grading/adapters``.
* A private writable work folder (``/grading``: ``home/``, ``results/`` and the cells it must run)
  and a private ``/tmp``; the graded inputs read-only at ``/grading/cases``.
* No view of other workers or of the grader's command line: ``/proc`` shows only the sandbox.

When the grader runs as root, the worker runs as a user id reserved for this run (a lock file
per uid, so two ``course grade`` runs at the same time never share one) and never as root: bwrap
builds the view as root, ``setpriv`` drops to the reserved uid with no capabilities, and a second,
unprivileged bwrap puts the worker in its own user namespace (``--disable-userns``: no further
ones). Not as root, one unprivileged bwrap does the same with the grader's own uid outside.

Limits: a cgroup (v2, or v1's ``memory`` and ``pids`` controllers) caps the memory of the whole
submission, every process together, and its number of processes, where the grader may create
one (as root, usually). Otherwise the bound is stated instead: ``RLIMIT_AS`` per process times
``RLIMIT_NPROC`` processes (:func:`memory_bound`).

Examples
--------
>>> reason = problem()  # "" where grading can be sandboxed here  # doctest: +SKIP
"""
from __future__ import annotations

import fcntl
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from typing import Sequence

__all__ = [
    "FIX",
    "PROCESS_LIMIT",
    "Cgroup",
    "RunLease",
    "UidLease",
    "bwrap_path",
    "command",
    "memory_bound",
    "problem",
    "remove_stale_cgroups",
]

#: What to do when grading cannot be sandboxed; every refusal names it.
FIX = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap; "
    "it must be able to create user namespaces) and run course grade as root or as a user allowed "
    "to; or, only inside a disposable container where each submission already runs alone (such as "
    "Gradescope's), pass --no-sandbox"
)
#: Processes (threads included: torch starts a few per core) one submission may run at once.
PROCESS_LIMIT = 512
GID_NOGROUP = 65534
_UID_BASE = 64000
_UID_SPAN = 4000
_LOCK_DIR = "/run/course-grade-uids" if os.path.isdir("/run") else "/tmp/course-grade-uids"
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


def bwrap_path() -> str | None:
    """The ``bwrap`` executable: ``$COURSE_BWRAP`` when set (empty: none), else the one on ``PATH``.

    Examples
    --------
    >>> bwrap_path()  # doctest: +SKIP
    '/usr/bin/bwrap'
    """
    override = os.environ.get("COURSE_BWRAP")
    if override is not None:
        return override if override and os.access(override, os.X_OK) else None
    return shutil.which("bwrap")


def memory_bound(memory_bytes: int, cgroup: bool) -> str:
    """One sentence stating the memory bound of a whole submission, for the log and the README.

    Examples
    --------
    >>> memory_bound(4096 << 20, True)
    '4096 MB for the whole submission (cgroup), at most 512 processes'
    """
    mb = memory_bytes >> 20
    if cgroup:
        return f"{mb} MB for the whole submission (cgroup), at most {PROCESS_LIMIT} processes"
    return f"{mb} MB per process (RLIMIT_AS) times at most {PROCESS_LIMIT} processes (no writable cgroup here)"


# --------------------------------------------------------------------------------------------
# User ids
# --------------------------------------------------------------------------------------------


class UidLease:
    """User ids reserved for one grading run, held by ``flock`` on one lock file per uid.

    The locks go with the process: a run that is killed frees its uids at once, and a second run
    at the same time picks others. Uids that belong to an account are skipped.

    Parameters
    ----------
    count : int
        How many uids (one per concurrent worker slot).

    Examples
    --------
    >>> lease = UidLease(2)  # doctest: +SKIP
    >>> lease.uids  # doctest: +SKIP
    [64000, 64001]
    >>> lease.release()  # doctest: +SKIP
    """

    def __init__(self, count: int) -> None:
        if count <= 0:
            raise ValueError(f"count must be positive, got {count}")
        os.makedirs(_LOCK_DIR, mode=0o700, exist_ok=True)
        self.uids: list[int] = []
        self._fds: list[int] = []
        for uid in range(_UID_BASE, _UID_BASE + _UID_SPAN):
            if len(self.uids) == count:
                break
            try:
                pwd.getpwuid(uid)
                continue  # a real account
            except KeyError:
                pass
            fd = os.open(os.path.join(_LOCK_DIR, str(uid)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uids.append(uid)
            self._fds.append(fd)
        if len(self.uids) < count:
            self.release()
            raise RuntimeError(f"no {count} free user ids between {_UID_BASE} and {_UID_BASE + _UID_SPAN}")

    def release(self) -> None:
        """Give the uids back."""
        for fd in self._fds:
            os.close(fd)
        self._fds, self.uids = [], []


#: Every cgroup a grading run makes is named ``course-grade-<token>-<what>``.
CGROUP_PREFIX = "course-grade-"
_RUN_NAME = re.compile(r"course-grade-([0-9a-f]{16})-.+")


class RunLease:
    """One grading run, alive while this lease is held: a random token and a lock file for it.

    The lock file ``run-<token>`` in the uid lock folder is held with ``flock`` for as long as the
    run lives; the kernel drops the lock when the process ends, however it ends (SIGKILL too).
    The run's cgroups carry the token in their names (:meth:`cgroup_name`), so a later run can
    tell the cgroups of a run that is gone from those of one still grading
    (:func:`remove_stale_cgroups`).

    Examples
    --------
    >>> lease = RunLease()  # doctest: +SKIP
    >>> lease.cgroup_name("s0-abc")  # doctest: +SKIP
    'course-grade-3f2a9c0d1e4b5a6c-s0-abc'
    >>> lease.release()  # doctest: +SKIP
    """

    def __init__(self) -> None:
        os.makedirs(_runs_dir(), mode=0o700, exist_ok=True)
        self.token = secrets.token_hex(8)
        self.path = os.path.join(_runs_dir(), f"run-{self.token}")
        # Locked under a temporary name, then renamed: no other run ever sees it unlocked.
        tmp = f"{self.path}.new"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(tmp, self.path)
        self._fd: int | None = fd

    def cgroup_name(self, what: str) -> str:
        """The name of one of this run's cgroups."""
        return f"{CGROUP_PREFIX}{self.token}-{what}"

    def release(self) -> None:
        """End the lease (the lock file is removed)."""
        if self._fd is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None


def _runs_dir() -> str:
    # Root's runs share the uid lock folder; another user's runs (cgroups delegated to it) its own.
    if os.geteuid() == 0:
        return _LOCK_DIR
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"course-grade-runs-{os.geteuid()}")


def _run_is_alive(token: str) -> bool:
    """Whether the run that holds ``token`` still holds its lock (a missing lock file: gone)."""
    path = os.path.join(_runs_dir(), f"run-{token}")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: leave its cgroups alone
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        os.close(fd)
        return True
    # The run is gone; its lock file goes too, removed while locked so no live run loses its own.
    try:
        os.unlink(path)
    except OSError:
        pass
    os.close(fd)
    return False


def remove_stale_cgroups() -> list[str]:
    """Remove the cgroup folders of grading runs that are gone; return the folders removed.

    A grader killed with SIGKILL cannot remove its cgroups: their processes die with it (the
    sandbox dies with its parent), and the empty folders stay. Each run names its cgroups after
    its :class:`RunLease` token, so here only those whose run no longer holds its lock are
    removed (any process still in one is killed first); cgroups of runs still grading, and
    folders named otherwise, are left alone.

    Examples
    --------
    >>> remove_stale_cgroups()  # doctest: +SKIP
    []
    """
    removed: list[str] = []
    alive: dict[str, bool] = {}
    for parent, v2 in _cgroup_parents():
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in sorted(names):
            match = _RUN_NAME.fullmatch(name)
            if not match:
                continue
            token = match.group(1)
            if token not in alive:
                alive[token] = _run_is_alive(token)
            if alive[token]:
                continue
            path = os.path.join(parent, name)
            Cgroup([path], v2, path).remove()
            if not os.path.exists(path):
                removed.append(path)
    return removed


# --------------------------------------------------------------------------------------------
# Cgroups
# --------------------------------------------------------------------------------------------


def _own_cgroups() -> dict[str, str]:
    """``controller -> path`` of this process's cgroups (``""`` for the v2 unified one)."""
    found = {}
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as fh:
            for line in fh:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for c in controllers.split(",") if controllers else [""]:
                    found[c] = path
    except (OSError, ValueError):
        pass
    return found


def _cgroup_parents() -> list[tuple[str, bool]]:
    """``(folder, is_v2)`` for each folder :meth:`Cgroup.create` makes cgroups in, where it exists."""
    own = _own_cgroups()
    if "memory" in own and os.path.isdir("/sys/fs/cgroup/memory"):
        found = [(os.path.join("/sys/fs/cgroup/memory", own["memory"].lstrip("/")), False)]
        if "pids" in own and os.path.isdir("/sys/fs/cgroup/pids"):
            found.append((os.path.join("/sys/fs/cgroup/pids", own["pids"].lstrip("/")), False))
        return found
    if "" in own:
        return [(os.path.join("/sys/fs/cgroup", own[""].lstrip("/")), True)]
    return []


class Cgroup:
    """One submission's cgroup: memory and process limits for all its processes together.

    ``Cgroup.create`` returns ``None`` where no cgroup can be made (not root, read-only
    ``/sys/fs/cgroup``, controller missing); the caller then states the weaker bound.

    Examples
    --------
    >>> cg = Cgroup.create("course-grade-1-s0", 4096 << 20)  # doctest: +SKIP
    >>> cg.oom_killed()  # doctest: +SKIP
    False
    >>> cg.remove()  # doctest: +SKIP
    """

    def __init__(self, dirs: list[str], v2: bool, memory_dir: str) -> None:
        self.dirs = dirs
        self.v2 = v2
        self.memory_dir = memory_dir
        self.procs_files = [os.path.join(d, "cgroup.procs") for d in dirs]

    @classmethod
    def create(cls, name: str, memory_bytes: int, processes: int = PROCESS_LIMIT) -> "Cgroup | None":
        own = _own_cgroups()
        made: list[str] = []
        try:
            if "memory" in own and os.path.isdir("/sys/fs/cgroup/memory"):
                mem = os.path.join("/sys/fs/cgroup/memory", own["memory"].lstrip("/"), name)
                os.mkdir(mem)
                made.append(mem)
                _write(os.path.join(mem, "memory.limit_in_bytes"), memory_bytes)
                # Swap counts too where the kernel accounts it, so swapping is no way round the limit.
                if os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes")):
                    _write(os.path.join(mem, "memory.memsw.limit_in_bytes"), memory_bytes)
                if "pids" in own and os.path.isdir("/sys/fs/cgroup/pids"):
                    pids = os.path.join("/sys/fs/cgroup/pids", own["pids"].lstrip("/"), name)
                    os.mkdir(pids)
                    made.append(pids)
                    _write(os.path.join(pids, "pids.max"), processes)
                return cls(made, False, mem)
            if "" in own:
                base = "/sys/fs/cgroup"
                parent = os.path.join(base, own[""].lstrip("/"))
                with open(os.path.join(parent, "cgroup.subtree_control"), encoding="utf-8") as fh:
                    enabled = fh.read().split()
                if "memory" not in enabled:
                    return None
                path = os.path.join(parent, name)
                os.mkdir(path)
                made.append(path)
                _write(os.path.join(path, "memory.max"), memory_bytes)
                if os.path.exists(os.path.join(path, "memory.swap.max")):
                    _write(os.path.join(path, "memory.swap.max"), 0)
                if "pids" in enabled:
                    _write(os.path.join(path, "pids.max"), processes)
                return cls(made, True, path)
        except OSError:
            for d in reversed(made):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        return None

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this cgroup for going over its memory limit."""
        name = "memory.events" if self.v2 else "memory.oom_control"
        try:
            with open(os.path.join(self.memory_dir, name), encoding="utf-8") as fh:
                for line in fh:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value) > 0:
                        return True
            if not self.v2:
                with open(os.path.join(self.memory_dir, "memory.failcnt"), encoding="utf-8") as fh:
                    # Hitting the limit without a kill still means the submission needed more.
                    return int(fh.read().strip() or 0) > 0 and self._usage_at_limit()
        except (OSError, ValueError):
            pass
        return False

    def _usage_at_limit(self) -> bool:
        try:
            with open(os.path.join(self.memory_dir, "memory.max_usage_in_bytes"), encoding="utf-8") as fh:
                peak = int(fh.read())
            with open(os.path.join(self.memory_dir, "memory.limit_in_bytes"), encoding="utf-8") as fh:
                limit = int(fh.read())
        except (OSError, ValueError):
            return False
        return peak >= limit - (8 << 20)

    def kill(self) -> None:
        """SIGKILL every process still in the cgroup."""
        if self.v2 and os.path.exists(os.path.join(self.memory_dir, "cgroup.kill")):
            try:
                _write(os.path.join(self.memory_dir, "cgroup.kill"), 1)
                return
            except OSError:
                pass
        for procs in self.procs_files:
            try:
                with open(procs, encoding="utf-8") as fh:
                    pids = [int(p) for p in fh.read().split()]
            except (OSError, ValueError):
                continue
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass

    def remove(self) -> None:
        """Delete the cgroup (its processes must be gone; retried briefly while they are reaped)."""
        import time

        for d in self.dirs:
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    self.kill()
                    time.sleep(0.02)


def _write(path: str, value: object) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(str(value))


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def _python_paths() -> list[str]:
    """Folders the worker's Python needs, read-only: the installation, the venv, site-packages."""
    import course_utils

    paths = [sys.base_prefix, sys.prefix, os.path.dirname(os.path.abspath(course_utils.__file__))]
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            paths.append(p)
    # The interpreter itself may be a link to somewhere else (a venv to pyenv or conda under /root).
    paths.append(os.path.dirname(os.path.realpath(sys.executable)))
    paths.append(os.path.dirname(os.path.abspath(sys.executable)))
    # A .pth file (an editable install elsewhere) adds entries to sys.path; the package folder is
    # the only one of those the worker needs, so sys.path is not bound wholesale.
    out: list[str] = []
    for p in sorted({os.path.realpath(p) for p in paths if p and os.path.isdir(p)} | {os.path.abspath(p) for p in paths if p and os.path.isdir(p)}):
        if not any(p == q or p.startswith(q.rstrip("/") + "/") for q in out):
            out.append(p)
    return out


@dataclass
class Layout:
    """Where things are inside the sandbox."""

    work: str = "/grading"
    home: str = "/grading/home"
    results: str = "/grading/results"
    cells: str = "/grading/cells.json"
    cases: str = "/grading/cases"
    adapters: str = "/grading/adapters"


LAYOUT = Layout()


def command(
    folder: str,
    cases_dir: str,
    argv: Sequence[str],
    uid: int | None,
    hide: Sequence[str] = (),
    bwrap: str | None = None,
    adapters_dir: str | None = None,
) -> list[str]:
    """The command line that runs ``argv`` in a sandbox whose ``/grading`` is ``folder``.

    Parameters
    ----------
    folder : str
        The submission's private folder (``home/``, ``results/``, ``cells.json``), bound writable.
    cases_dir : str
        The graded inputs, bound read-only at ``/grading/cases``.
    argv : sequence of str
        What to run inside (paths as the sandbox sees them).
    uid : int or None
        As root: the reserved uid the worker runs as. ``None``: not root; the worker keeps the
        grader's uid outside its user namespace.
    hide : sequence of str
        Files or folders that must not be readable inside even if under a bound folder (an
        instructor's bank kept next to the package, say); each is covered by an empty one.
    bwrap : str, optional
        The ``bwrap`` to use (default :func:`bwrap_path`).
    adapters_dir : str, optional
        Copies of an instructor's bank ``run`` adapter files (no references in them), bound
        read-only at ``/grading/adapters`` for the worker to import.

    Returns
    -------
    list of str

    Raises
    ------
    RuntimeError
        When there is no ``bwrap``; the message says how to get one.
    """
    bwrap = bwrap or bwrap_path()
    if not bwrap:
        raise RuntimeError(f"bubblewrap (bwrap) is not installed: {FIX}")
    args = [bwrap, "--unshare-ipc", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try", "--unshare-pid",
            "--die-with-parent", "--new-session"]
    if uid is None:
        args += ["--unshare-user", "--disable-userns"]
    # The private /tmp first: a bind below (a venv or package under /tmp) must land on top of it.
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for p in _SYSTEM:
        if os.path.islink(p):
            args += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            args += ["--ro-bind", p, p]
    made = {"/", "/proc", "/dev"}
    for p in _python_paths():
        if any(p == s or p.startswith(s + "/") for s in _SYSTEM):
            continue
        # Parents are made world-traversable here; bwrap would copy /root's 0700 otherwise.
        parts = p.strip("/").split("/")
        for i in range(1, len(parts)):
            parent = "/" + "/".join(parts[:i])
            if parent not in made:
                args += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        args += ["--ro-bind", p, p]
        made.add(p)
    for h in hide:
        if os.path.isdir(h):
            args += ["--tmpfs", h, "--remount-ro", h]
        elif os.path.exists(h):
            args += ["--ro-bind", "/dev/null", h]
    args += ["--bind", folder, LAYOUT.work, "--ro-bind", cases_dir, LAYOUT.cases]
    if adapters_dir:
        args += ["--ro-bind", adapters_dir, LAYOUT.adapters]
    args += ["--chdir", LAYOUT.home]
    if uid is not None:
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--",
                 setpriv, f"--reuid={uid}", f"--regid={GID_NOGROUP}", "--clear-groups", "--inh-caps=-all",
                 "--bounding-set=-all", "--",
                 # The second bwrap runs as the reserved uid: its own user namespace, no more.
                 bwrap, "--unshare-user", "--disable-userns", "--die-with-parent", "--dev-bind", "/", "/",
                 "--chdir", LAYOUT.home]
    args += ["--", *argv]
    return args


_PROBED: dict[tuple, str] = {}


def problem(env: dict[str, str] | None = None, as_uid: int | None = None, preexec=None) -> str:
    """Why grading cannot be sandboxed here, or ``""`` when it can (tried once per process).

    Runs ``python -c "import course_utils.grading.worker"`` in a real sandbox, as the worker would.

    Examples
    --------
    >>> problem()  # doctest: +SKIP
    ''
    """
    import tempfile

    bwrap = bwrap_path()
    key = (bwrap, as_uid)
    if key in _PROBED:
        return _PROBED[key]
    if not bwrap:
        reason = f"bubblewrap (bwrap) is not installed or not on PATH: {FIX}"
    elif as_uid is not None and not shutil.which("setpriv"):
        reason = f"setpriv (util-linux) is missing, needed to drop to an unprivileged user: {FIX}"
    else:
        folder = tempfile.mkdtemp(prefix="course-sandbox-probe-")
        cases = os.path.join(folder, "cases")
        try:
            for sub in ("home", "results", "cases"):
                os.mkdir(os.path.join(folder, sub))
            if as_uid is not None:
                for sub in ("", "home", "results"):
                    os.chown(os.path.join(folder, sub), as_uid, GID_NOGROUP)
            code = "import importlib.util as u, os; print(os.getuid() if u.find_spec('course_utils') else -1)"
            cmd = command(folder, cases, [sys.executable, "-c", code], as_uid, bwrap=bwrap)
            done = subprocess.run(cmd, env=env if env is not None else _probe_env(), stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=120, preexec_fn=preexec)
            if done.returncode != 0:
                tail = " ".join(done.stderr.decode("utf-8", "replace").split())[-300:]
                reason = f"bubblewrap could not start Python in a sandbox here (exit status {done.returncode}: {tail}): {FIX}"
            elif as_uid is not None and done.stdout.split() != [str(as_uid).encode()]:
                reason = f"the sandboxed worker did not run as uid {as_uid}: {FIX}"
            else:
                reason = ""
        except (OSError, subprocess.SubprocessError) as exc:
            reason = f"bubblewrap could not be run ({exc}): {FIX}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    _PROBED[key] = reason
    return reason


def _probe_env() -> dict[str, str]:
    import course_utils

    parent = os.path.dirname(os.path.dirname(os.path.abspath(course_utils.__file__)))
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": parent, "HOME": LAYOUT.home,
            "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
