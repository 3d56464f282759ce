"""Unit tests of the grader's sandbox module (``course_utils.grading.sandbox``).

The end-to-end attacks are in ``test_grade_attacks.py``; these check the pieces: the uid lease,
the command line's view of the file system, the fail-closed probe and the cgroup's memory limit.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_utils.grading import sandbox

REPO = Path(__file__).resolve().parents[1]
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="uid leases and cgroups need root")


@root_only
def test_two_leases_never_share_a_uid():
    first = sandbox.UidLease(2)
    second = sandbox.UidLease(2)
    taken = first.uids + second.uids
    try:
        assert len(set(taken)) == 4
        assert all(uid >= 64000 for uid in taken)
    finally:
        first.release()
    # A released uid is free again for the next run (the lock goes with the lease).
    again = sandbox.UidLease(1)
    try:
        assert again.uids[0] not in second.uids
        assert again.uids[0] <= max(taken)
    finally:
        again.release()
        second.release()


def test_lease_count_must_be_positive():
    with pytest.raises(ValueError, match="count must be positive"):
        sandbox.UidLease(0)


def test_command_unshares_everything_and_binds_no_repository(tmp_path):
    folder, cases = tmp_path / "s0", tmp_path / "cases"
    cmd = sandbox.command(str(folder), str(cases), ["python", "-c", "pass"], uid=64000, bwrap="/usr/bin/bwrap")
    for flag in ("--unshare-pid", "--unshare-ipc", "--unshare-net", "--die-with-parent", "--unshare-user", "--disable-userns"):
        assert flag in cmd, flag
    sources = [cmd[i + 1] for i, a in enumerate(cmd) if a in ("--ro-bind", "--bind")]
    assert str(REPO / "course_utils") in sources
    # Only the package folder of the repository: not its root, notebooks or tests.
    assert str(REPO) not in sources and str(REPO / "notebooks") not in sources and str(REPO / "tests") not in sources
    assert not any(s in ("/", "/root", "/home", "/work") for s in sources)
    # The worker is dropped to the reserved uid, never left as root.
    assert "--reuid=64000" in cmd and cmd[cmd.index("--reuid=64000") - 1].endswith("setpriv")
    assert cmd[-3:] == ["python", "-c", "pass"]


def test_hidden_files_are_covered(tmp_path):
    secret = tmp_path / "bank.py"
    secret.write_text("REFERENCE = 42\n")
    cmd = sandbox.command(str(tmp_path / "s0"), str(tmp_path / "c"), ["true"], uid=None, hide=[str(secret)], bwrap="/usr/bin/bwrap")
    i = cmd.index(str(secret))
    assert cmd[i - 2: i] == ["--ro-bind", "/dev/null"]


def test_without_bwrap_the_probe_names_the_fix(monkeypatch):
    monkeypatch.setenv("COURSE_BWRAP", "")
    sandbox._PROBED.clear()
    try:
        reason = sandbox.problem()
    finally:
        sandbox._PROBED.clear()
    assert "bubblewrap" in reason and "apt-get install bubblewrap" in reason and "--no-sandbox" in reason
    with pytest.raises(RuntimeError, match="--no-sandbox"):
        sandbox.command("/x", "/y", ["true"], uid=None)


def test_memory_bound_is_stated():
    assert sandbox.memory_bound(2048 << 20, True) == "2048 MB for the whole submission (cgroup), at most 512 processes"
    assert "per process (RLIMIT_AS) times at most 512 processes" in sandbox.memory_bound(2048 << 20, False)


@root_only
def test_cgroup_limits_the_memory_of_all_processes_together():
    cg = sandbox.Cgroup.create(f"course-grade-unit-{os.getpid()}", 96 << 20)
    if cg is None:
        pytest.skip("no writable cgroup here")
    try:
        procs = cg.procs_files

        def join():
            for path in procs:
                with open(path, "w") as fh:
                    fh.write(str(os.getpid()))

        # Two processes of 60 MB each: each fits alone, together they do not.
        code = ("import os, time\npid = os.fork()\nblock = bytearray(60 << 20)\n"
                "for i in range(0, len(block), 4096):\n    block[i] = 1\ntime.sleep(1)\n"
                "os._exit(0) if pid == 0 else os.waitpid(pid, 0)")
        subprocess.run([sys.executable, "-S", "-c", code], preexec_fn=join, timeout=60)
        assert cg.oom_killed()
    finally:
        cg.remove()
    assert not any(os.path.exists(d) for d in cg.dirs)


def test_a_run_lease_is_held_until_released():
    lease = sandbox.RunLease()
    try:
        assert os.path.exists(lease.path)
        assert sandbox._run_is_alive(lease.token)  # our own lock counts as alive
        assert sandbox.RunLease().token != lease.token
        assert lease.cgroup_name("s0-x") == f"course-grade-{lease.token}-s0-x"
    finally:
        lease.release()
    assert not os.path.exists(lease.path)
    assert not sandbox._run_is_alive(lease.token)


@root_only
def test_stale_cgroups_of_a_killed_run_are_removed_and_a_live_run_s_are_kept():
    probe = sandbox.Cgroup.create(f"course-grade-unit-{os.getpid()}", 64 << 20)
    if probe is None:
        pytest.skip("no writable cgroup here")
    probe.remove()
    # A grader killed with SIGKILL while its cgroup exists: the folder stays behind.
    code = ("import os\nfrom course_utils.grading import sandbox\nlease = sandbox.RunLease()\n"
            "cg = sandbox.Cgroup.create(lease.cgroup_name('s0-dead'), 64 << 20)\n"
            "print(lease.path, *cg.dirs, flush=True)\nos.kill(os.getpid(), 9)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    lock, *dead = done.stdout.split()
    assert dead and all(os.path.isdir(d) for d in dead)
    live = sandbox.RunLease()
    mine = sandbox.Cgroup.create(live.cgroup_name("s0-live"), 64 << 20)
    try:
        removed = sandbox.remove_stale_cgroups()
        assert set(dead) <= set(removed) and not set(mine.dirs) & set(removed)
        assert not any(os.path.exists(d) for d in dead) and not os.path.exists(lock)
        assert all(os.path.isdir(d) for d in mine.dirs)  # a run still grading keeps its cgroups
    finally:
        mine.remove()
        live.release()


def _module_from(path: Path, name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_bank_adapters_are_shown_only_from_a_file_without_references(tmp_path):
    from types import SimpleNamespace

    from course_utils.exercises import adapters
    from course_utils.grading.grade import UsageError, bank_adapter_files

    helper = tmp_path / "_unit_adapters.py"
    helper.write_text("def call_twice(answer, case):\n    return [answer(*case.args), answer(*case.args)]\n")
    beside = tmp_path / "hw_unit.py"
    beside.write_text("def call_once(answer, case):\n    return answer(*case.args)\n")
    try:
        good = _module_from(helper, "_unit_adapters")
        bank_file = _module_from(beside, "_course_bank_0123456789ab_hw_unit")  # named as bank.load_bank names it
        ex = lambda run: SimpleNamespace(id="unit", run=run)  # noqa: E731 - a stand-in exercise
        assert bank_adapter_files([ex(good.call_twice)]) == {"_unit_adapters": str(helper)}
        assert bank_adapter_files([ex(adapters.call_on_copy)]) == {}  # built-in: nothing to show
        with pytest.raises(UsageError, match="next to the references.*_adapters.py"):
            bank_adapter_files([ex(bank_file.call_once)])
        with pytest.raises(UsageError, match="not a top-level function"):
            bank_adapter_files([ex(lambda answer, case: answer())])
    finally:
        sys.modules.pop("_unit_adapters", None)
        sys.modules.pop("_course_bank_0123456789ab_hw_unit", None)
