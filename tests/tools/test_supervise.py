"""How every child is supervised (`supervise`), against real child processes and real signals: each
child leads a process group of its own, and its deadline, `stop_all` and SIGINT/SIGTERM stop the
whole group (SIGTERM, then SIGKILL after the grace), wrappers that ignore SIGTERM and all they
started included; a group is signalled only while its leader is not reaped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from flux_ci.deadline import Deadline
from flux_ci.errors import DeadlineExceededError, ExitCode, SignalInterruptError
from flux_ci.secrets import Masker
from flux_ci.tools.runner import Runner
from flux_ci.tools.supervise import ProcessGroup
from tests.tools.children import GRACE_S, PY, ROOT, STUBBORN, gone, new_runner


def _eventually(check: Callable[[], bool], seconds: float = 5) -> bool:
    until = time.monotonic() + seconds
    while not check() and time.monotonic() < until:
        time.sleep(0.02)
    return check()


def _state(pid: int) -> str | None:
    """The process's state letter (R, S, Z...), None once it is reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


# A wrapper that ignores SIGTERM and runs a child doing the same (a shell's `trap '' TERM` passes the
# ignored SIGTERM on): it prints both pids, then waits.
WRAPPER = (
    "import os, signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "inner = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    "print(os.getpid(), inner.pid, flush=True)\n"
    "time.sleep(120)\n"
)


# --- process groups ----------------------------------------------------------------------------------


def test_each_child_leads_a_process_group_of_its_own() -> None:
    runner, _ = new_runner()
    result = runner.run([PY, "-c", "import os; print(os.getpid(), os.getpgid(0))"], timeout=30)
    pid, group = map(int, result.stdout.split())
    assert group == pid
    assert group != os.getpgid(0)


def test_stopping_a_wrapper_stops_what_it_started_even_ignoring_sigterm() -> None:
    runner, _ = new_runner()
    stream = runner.stream([PY, "-c", WRAPPER], timeout=60)
    wrapper, inner = map(int, next(stream).split())
    started = time.monotonic()
    runner.stop_all()
    assert GRACE_S * 0.9 <= time.monotonic() - started < GRACE_S + 3  # SIGTERM, then SIGKILL
    assert gone(wrapper)
    assert _eventually(lambda: gone(inner))
    stream.close()


def test_a_timeout_stops_the_whole_group(tmp_path: Path) -> None:
    runner, _ = new_runner()
    inner_pid = tmp_path / "inner.pid"
    code = WRAPPER.replace(
        "print(os.getpid(), inner.pid, flush=True)", "open(sys.argv[1], 'w').write(str(inner.pid))"
    )
    with pytest.raises(DeadlineExceededError):
        runner.run([PY, "-c", code, str(inner_pid)], timeout=1)
    assert _eventually(lambda: gone(int(inner_pid.read_text())))


def test_what_a_finished_child_left_in_its_group_is_killed() -> None:
    runner, _ = new_runner()
    result = runner.run(["sh", "-c", "sleep 60 & echo $!"], timeout=30)
    assert result.ok
    assert _eventually(lambda: gone(int(result.stdout)))


def test_a_child_stays_unreaped_until_its_group_had_its_last_signal() -> None:
    # sh would reap an exited child from its own threads at once; until the runner releases it, its
    # pid (and so its group's number) must stay its own: a zombie, not a free number.
    runner, _ = new_runner()
    stream = runner.stream([PY, "-u", "-c", "import os; print(os.getpid())"], timeout=30)
    pid = int(next(stream))
    assert _eventually(lambda: _state(pid) == "Z"), _state(pid)
    time.sleep(0.3)  # sh's threads poll every 0.1 s: they had their chances to reap it
    assert _state(pid) == "Z"
    assert list(stream) == []  # the stream ends: the runner releases and reaps it
    assert _state(pid) is None


def test_children_running_already_end_with_the_deadline_the_settings_give() -> None:
    runner = Runner(
        masker=Masker(), env=dict(os.environ), group=ProcessGroup(grace_s=GRACE_S), deadline=Deadline(60)
    )
    with ThreadPoolExecutor(1) as pool:
        check = pool.submit(runner.run, [PY, "-c", "import time; time.sleep(30)"])  # as toolcheck does
        time.sleep(0.2)
        started = time.monotonic()
        runner.settle(trace=0, dry_run=False, deadline=Deadline(0.5))
        with pytest.raises(DeadlineExceededError):
            check.result(timeout=10)
    assert time.monotonic() - started < 5


# --- stopping: deadlines, stop_all, interrupts ---------------------------------------------------------


def test_timeout_kills_a_child_that_ignores_sigterm() -> None:
    runner, _ = new_runner()
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        runner.run([PY, "-c", STUBBORN], timeout=0.5)
    assert time.monotonic() - started < 0.5 + GRACE_S + 3


def test_children_started_after_stop_all_are_stopped_at_once() -> None:
    runner, _ = new_runner()
    runner.stop_all()  # e.g. SIGTERM arrived while a watch thread was about to start its child
    started = time.monotonic()
    lines = list(runner.stream([PY, "-u", "-c", "import time; time.sleep(60)"], timeout=60))
    assert lines == []
    assert time.monotonic() - started < 5


def test_stop_all_kills_a_child_that_ignores_sigterm_after_the_grace() -> None:
    runner, _ = new_runner()
    stream = runner.stream([PY, "-c", STUBBORN], timeout=60)
    pid = int(next(stream))  # left suspended, as a watch thread could leave it
    started = time.monotonic()
    runner.stop_all()
    took = time.monotonic() - started
    assert gone(pid)
    assert GRACE_S * 0.9 <= took < GRACE_S + 3  # SIGTERM first, SIGKILL only after the grace
    stream.close()


def test_interrupt_stops_the_running_child_and_raises_where_it_returns() -> None:
    group = ProcessGroup(grace_s=GRACE_S)
    runner = Runner(masker=Masker(), env=dict(os.environ), group=group)
    timer = threading.Timer(0.5, group.interrupt, args=("SIGTERM", ExitCode.SIGTERM))
    timer.start()
    started = time.monotonic()
    with pytest.raises(SignalInterruptError, match="interrupted by SIGTERM"):
        runner.run([PY, "-c", "import time; time.sleep(60)"], timeout=60)
    assert time.monotonic() - started < 5
    with pytest.raises(SignalInterruptError):  # and nothing new starts afterwards
        runner.run([PY, "-c", "pass"], timeout=60)


# --- real signals to a real process: the handlers the CLI installs -------------------------------

# A stand-in for flux-ci: the CLI's handlers, one runner, children as the flow runs them (one in the
# main thread, or watches in worker threads), and the CLI's exit codes. In "deaf" mode the main thread
# waits without ever asking check_interrupted: only the group's backstop can end that.
DRIVER = textwrap.dedent(
    """
    import os, sys, threading, time
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
    from flux_ci.errors import FluxCIError, SignalInterruptError
    from flux_ci.tools.runner import Runner
    from flux_ci.tools.supervise import install_signal_handlers
    from flux_ci.secrets import Masker

    mode, child = sys.argv[1], sys.argv[2]
    install_signal_handlers()
    runner = Runner(masker=Masker(), env=dict(os.environ))
    argv = [sys.executable, "-c", child]
    code = 0
    try:
        if mode == "run":
            runner.run(argv, timeout=120)
        elif mode == "deaf":
            threading.Thread(target=lambda: list(runner.stream(argv, timeout=120)), daemon=True).start()
            while True:
                time.sleep(0.2)
        else:
            with ThreadPoolExecutor(2) as pool:
                pending = {pool.submit(lambda: list(runner.stream(argv, timeout=120))) for _ in range(2)}
                while pending:
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                    for future in done:
                        future.result()
        runner.check_interrupted()
    except (FluxCIError, SignalInterruptError) as exc:
        code = int(exc.exit_code)
    finally:
        runner.stop_all()
    sys.exit(code)
    """
)


def _child_writing_pid(pid_dir: Path, *, ignore_sigterm: bool, grandchild: bool = False) -> str:
    """A child that records its pid and sleeps; with `grandchild`, a wrapper: it first starts one
    more such process (which inherits an ignored SIGTERM, as a shell's `trap '' TERM` passes on)."""
    ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_sigterm else ""
    record = f"open(os.path.join({str(pid_dir)!r}, str(os.getpid())), 'w').close()\n"
    inner = f"import os, time\n{record}time.sleep(120)\n"
    spawn = f"subprocess.Popen([sys.executable, '-c', {inner!r}])\n" if grandchild else ""
    return f"import os, signal, subprocess, sys, time\n{ignore}{record}{spawn}time.sleep(120)\n"


def _wait_for_pids(pid_dir: Path, count: int) -> list[int]:
    until = time.monotonic() + 30
    while time.monotonic() < until:
        pids = [int(path.name) for path in pid_dir.iterdir()]
        if len(pids) >= count:
            return pids
        time.sleep(0.02)
    raise AssertionError(f"the children never started: {list(pid_dir.iterdir())}")


@pytest.fixture
def pid_dir(tmp_path: Path) -> Iterator[Path]:
    """Where children write their pid; whatever is still alive afterwards is killed (and fails)."""
    where = tmp_path / "pids"
    where.mkdir()
    yield where
    for path in where.iterdir():
        if not gone(int(path.name)):
            os.kill(int(path.name), signal.SIGKILL)


@pytest.mark.parametrize("mode", ["run", "stream", "deaf"])
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
@pytest.mark.parametrize(
    ("ignore_sigterm", "grandchild"),
    [(False, False), (True, False), (True, True)],
    ids=["child-obeys", "child-ignores-sigterm", "wrapper-and-its-child-ignore-sigterm"],
)
def test_a_signal_stops_every_child_and_exits_with_its_code_within_5s(  # noqa: PLR0917 - parametrised
    pid_dir: Path, mode: str, signum: signal.Signals, code: int, ignore_sigterm: bool, grandchild: bool
) -> None:
    child = _child_writing_pid(pid_dir, ignore_sigterm=ignore_sigterm, grandchild=grandchild)
    process = subprocess.Popen([PY, "-c", DRIVER, mode, child], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    pids = _wait_for_pids(pid_dir, (2 if mode == "stream" else 1) * (2 if grandchild else 1))
    started = time.monotonic()
    process.send_signal(signum)
    try:
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    took = time.monotonic() - started
    assert process.returncode == code, stderr
    assert took < 5, f"exited {took:.1f}s after the signal"
    if not ignore_sigterm and mode != "deaf":
        assert took < 1.5  # SIGTERM was enough: no waiting for the grace
    assert _eventually(lambda: [pid for pid in pids if not gone(pid)] == []), [p for p in pids if not gone(p)]


def test_the_cli_exits_143_within_5s_while_a_tool_ignores_sigterm(pid_dir: Path, tmp_path: Path) -> None:
    # Every tool flux-ci may run first is this script: a wrapper that records itself, ignores SIGTERM
    # and starts one more such process.
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("flux", "oras", "kubectl"):
        tool = tools / name
        tool.write_text(f"#!{PY}\n" + _child_writing_pid(pid_dir, ignore_sigterm=True, grandchild=True))
        tool.chmod(0o755)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")
    env = {
        "PATH": f"{tools}{os.pathsep}{os.defpath}",
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
        "FLUX_CI_REPOSITORY": "oci://registry.invalid/group/app",
        "FLUX_CI_TAG": "c1",
        "FLUX_CI_SOURCE": "https://git.invalid/app",
        "FLUX_CI_REVISION": "main@sha1:" + "1" * 40,
        "FLUX_CI_PATH": str(manifests),
        "FLUX_CI_OUTPUT": "json",
    }
    process = subprocess.Popen(
        [PY, "-X", "faulthandler", "-m", "flux_ci", "-v", "deploy"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    pids = _wait_for_pids(pid_dir, 2)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        stdout, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 143, stderr
    assert time.monotonic() - started < 5
    assert json.loads(stdout)["error"]["code"] == "sigterm"
    assert _eventually(lambda: [pid for pid in _wait_for_pids(pid_dir, len(pids)) if not gone(pid)] == [])
