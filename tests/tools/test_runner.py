"""The runner against real child processes (the Python interpreter), as nox tests its `run`."""

from __future__ import annotations

import ast
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from flux_ci.errors import DeadlineExceededError, ExitCode, SignalInterruptError, ToolError
from flux_ci.secrets import Masker
from flux_ci.tools.runner import Runner
from flux_ci.tools.supervise import ProcessGroup

PY = sys.executable
ROOT = Path(__file__).resolve().parents[2]
GRACE_S = 1.0  # the grace before SIGKILL in these tests' own process groups
# A child that ignores SIGTERM: only SIGKILL ends it. It says where it is, then sleeps.
STUBBORN = (
    "import os, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print(os.getpid(), flush=True)\n"
    "time.sleep(120)\n"
)


def _runner(
    trace: int = 0, *, dry_run: bool = False, secrets: tuple[str, ...] = ()
) -> tuple[Runner, io.StringIO]:
    log = io.StringIO()
    runner = Runner(
        masker=Masker(secrets),
        env=dict(os.environ),
        trace=trace,
        dry_run=dry_run,
        log=log,
        group=ProcessGroup(grace_s=GRACE_S),  # its own: an interrupt here must not leak into others
    )
    return runner, log


def _gone(pid: int) -> bool:
    """True when no process has this pid, or only a zombie nobody will wait for."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_captures_exit_code_stdout_and_stderr_without_raising() -> None:
    runner, _ = _runner()
    result = runner.run(
        [PY, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"], timeout=30
    )
    assert result.exit_code == 3
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert not result.ok
    assert result.error_text() == "err"


def test_secret_reaches_the_child_on_stdin_only() -> None:
    secret = "s3cret-value-4711"
    runner, log = _runner(trace=2, secrets=(secret,))
    # The child reports where the secret is; it echoes it too, which the -vv trace must mask.
    code = (
        "import json, os, sys\n"
        f"secret = bytes.fromhex({secret.encode().hex()!r}).decode()\n"
        "data = sys.stdin.read()\n"
        "print(json.dumps({'stdin': data, 'argv': secret in ' '.join(sys.argv),\n"
        "    'env': any(secret in k or secret in v for k, v in os.environ.items())}))\n"
    )
    result = runner.run([PY, "-c", code], timeout=30, stdin=SecretStr(secret))
    seen = json.loads(result.stdout)
    assert seen == {"stdin": secret, "argv": False, "env": False}
    trace = log.getvalue()
    assert secret not in trace
    assert "  stdout| {" in trace  # the echoed output was traced, masked
    assert "****" in trace


def test_without_stdin_the_child_reads_end_of_file_at_once() -> None:
    runner, _ = _runner()
    result = runner.run([PY, "-c", "import sys; print(repr(sys.stdin.read()))"], timeout=30)
    assert result.stdout == "''\n"


def test_environment_is_explicit_and_overrides_can_remove() -> None:
    runner = Runner(
        masker=Masker(),
        env={"PATH": os.environ["PATH"], "KEEP": "1", "DROP": "x"},
        group=ProcessGroup(),
    )
    code = "import os; print(os.environ.get('KEEP'), os.environ.get('DROP'), os.environ.get('ADDED'))"
    result = runner.run([PY, "-c", code], timeout=30, env={"DROP": None, "ADDED": "2"})
    assert result.stdout.split() == ["1", "None", "2"]


def test_large_output_is_captured_whole() -> None:
    runner, _ = _runner()
    code = "import sys; sys.stdout.write('x' * 5_000_000 + '\\n'); sys.stderr.write('e' * 300_000)"
    result = runner.run([PY, "-c", code], timeout=60)
    assert len(result.stdout) == 5_000_001
    assert len(result.stderr) == 300_000


def test_timeout_raises_deadline_exceeded_naming_the_command() -> None:
    runner, _ = _runner()
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError, match=r"timed out after 0\.5s"):
        runner.run([PY, "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert time.monotonic() - started < 5


def test_timeout_kills_a_child_that_ignores_sigterm() -> None:
    runner, _ = _runner()
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        runner.run([PY, "-c", STUBBORN], timeout=0.5)
    assert time.monotonic() - started < 0.5 + GRACE_S + 3


def test_a_quick_child_costs_no_polling_interval() -> None:
    # sh's `_timeout` once cost every command 100 ms (a 0.1 s poll in its timeout thread).
    runner, _ = _runner()
    runner.run(["true"], timeout=30)
    times = []
    for _ in range(15):
        started = time.perf_counter()
        runner.run(["true"], timeout=30)
        times.append(time.perf_counter() - started)
    assert statistics.median(times) < 0.04


def test_the_exit_ends_the_wait_even_when_a_grandchild_keeps_stdout_open() -> None:
    runner, _ = _runner()
    code = (
        "import subprocess, sys\n"
        "grandchild = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],\n"
        "    stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"  # stdout: inherited
        "print(grandchild.pid, flush=True)\n"
    )
    started = time.monotonic()
    result = runner.run([PY, "-c", code], timeout=60)
    grandchild = int(result.stdout)
    os.kill(grandchild, signal.SIGKILL)
    assert time.monotonic() - started < 10


def test_missing_executable_is_a_tool_error() -> None:
    runner, _ = _runner()
    with pytest.raises(ToolError, match="no-such-tool-xyz not found on PATH"):
        runner.run(["no-such-tool-xyz", "--version"], timeout=5)


def test_trace_is_shell_quoted_masked_and_reports_exit_and_duration() -> None:
    runner, log = _runner(trace=1, secrets=("tok-123456",))
    runner.run([PY, "-c", "print(40 + 2)", "arg with space", "tok-123456"], timeout=30)
    lines = log.getvalue().splitlines()
    assert lines[0] == f"+ {PY} -c 'print(40 + 2)' 'arg with space' ****"
    assert lines[1].startswith(f"+ {PY}: exit 0 in ")
    assert "42" not in log.getvalue()  # output only at -vv


def test_trace_level_two_shows_masked_output() -> None:
    runner, log = _runner(trace=2, secrets=("tok-123456",))
    runner.run([PY, "-c", "print('value tok-123456')"], timeout=30)
    assert "  stdout| value ****" in log.getvalue().splitlines()


def test_dry_run_skips_mutating_commands_but_runs_reads() -> None:
    runner, log = _runner(dry_run=True)
    skipped = runner.run([PY, "-c", "raise SystemExit(9)"], timeout=30, mutating=True)
    assert skipped.dry_run
    assert skipped.exit_code == 0
    assert "[dry-run] would run: $ " in log.getvalue()
    assert runner.run([PY, "-c", "raise SystemExit(9)"], timeout=30).exit_code == 9


def test_death_by_signal_is_reported_as_128_plus_n() -> None:
    runner, _ = _runner()
    result = runner.run([PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"], timeout=30)
    assert result.exit_code == 143


def test_stream_yields_lines_and_closing_it_stops_the_child() -> None:
    runner, _ = _runner()
    code = "import time\nfor i in range(3): print(i, flush=True)\ntime.sleep(60)"
    started = time.monotonic()
    stream = runner.stream([PY, "-u", "-c", code], timeout=60)
    lines = [next(stream), next(stream), next(stream)]
    stream.close()
    assert lines == ["0\n", "1\n", "2\n"]
    assert time.monotonic() - started < 10


def test_stream_yields_each_line_as_soon_as_it_is_complete() -> None:
    runner, _ = _runner()
    # Half a line, a pause, the rest: one line, yielded when the newline comes, not at exit.
    code = (
        "import sys, time\n"
        "sys.stdout.write('first half '); sys.stdout.flush(); time.sleep(0.3)\n"
        "sys.stdout.write('second half\\n'); sys.stdout.flush()\n"
        "print(time.time(), flush=True); time.sleep(60)\n"
    )
    stream = runner.stream([PY, "-c", code], timeout=60)
    first = next(stream)
    stamp = float(next(stream))
    lag = time.time() - stamp
    stream.close()
    assert first == "first half second half\n"
    assert lag < 0.25


def test_stream_keeps_multibyte_characters_split_across_reads() -> None:
    runner, _ = _runner()
    code = "import sys; sys.stdout.buffer.write(('ä' * 100_000 + '\\n').encode() * 3)"
    lines = list(runner.stream([PY, "-c", code], timeout=60))
    assert lines == ["ä" * 100_000 + "\n"] * 3


def test_stream_ends_at_its_timeout() -> None:
    runner, _ = _runner()
    started = time.monotonic()
    lines = list(
        runner.stream([PY, "-u", "-c", "import time; print('a', flush=True); time.sleep(60)"], timeout=1)
    )
    assert lines == ["a\n"]
    assert time.monotonic() - started < 5


def test_only_the_runner_imports_sh_or_subprocess() -> None:
    package = ROOT / "flux_ci"
    importers = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if {"sh", "subprocess"} & {name.split(".")[0] for name in names}:
                importers.add(path.relative_to(package).as_posix())
    assert importers == {"tools/runner.py"}


def test_children_started_after_stop_all_are_stopped_at_once() -> None:
    runner, _ = _runner()
    runner.stop_all()  # e.g. SIGTERM arrived while a watch thread was about to start its child
    started = time.monotonic()
    lines = list(runner.stream([PY, "-u", "-c", "import time; time.sleep(60)"], timeout=60))
    assert lines == []
    assert time.monotonic() - started < 5


def test_stop_all_kills_a_child_that_ignores_sigterm_after_the_grace() -> None:
    runner, _ = _runner()
    stream = runner.stream([PY, "-c", STUBBORN], timeout=60)
    pid = int(next(stream))  # left suspended, as a watch thread could leave it
    started = time.monotonic()
    runner.stop_all()
    took = time.monotonic() - started
    assert _gone(pid)
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


def _child_writing_pid(pid_dir: Path, *, ignore_sigterm: bool) -> str:
    ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_sigterm else ""
    return (
        f"import os, signal, time\n{ignore}"
        f"open(os.path.join({str(pid_dir)!r}, str(os.getpid())), 'w').close()\n"
        "time.sleep(120)\n"
    )


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
        if not _gone(int(path.name)):
            os.kill(int(path.name), signal.SIGKILL)


@pytest.mark.parametrize("mode", ["run", "stream", "deaf"])
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
@pytest.mark.parametrize("ignore_sigterm", [False, True], ids=["child-obeys", "child-ignores-sigterm"])
def test_a_signal_stops_every_child_and_exits_with_its_code_within_5s(
    pid_dir: Path, mode: str, signum: signal.Signals, code: int, ignore_sigterm: bool
) -> None:
    child = _child_writing_pid(pid_dir, ignore_sigterm=ignore_sigterm)
    process = subprocess.Popen([PY, "-c", DRIVER, mode, child], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    pids = _wait_for_pids(pid_dir, 2 if mode == "stream" else 1)
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
    assert [pid for pid in pids if not _gone(pid)] == []


def test_the_cli_exits_143_within_5s_while_a_tool_ignores_sigterm(pid_dir: Path, tmp_path: Path) -> None:
    # Every tool flux-ci may run first is this script: it records itself and ignores SIGTERM.
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("flux", "oras", "kubectl"):
        tool = tools / name
        tool.write_text(f"#!{PY}\n" + _child_writing_pid(pid_dir, ignore_sigterm=True))
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
    pids = _wait_for_pids(pid_dir, 1)
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
    assert [pid for pid in _wait_for_pids(pid_dir, len(pids)) if not _gone(pid)] == []


def _held_runner(verbose: int = 0) -> tuple[Runner, io.StringIO]:
    log = io.StringIO()
    group = ProcessGroup(grace_s=GRACE_S)
    return Runner(
        masker=Masker(), env=dict(os.environ), trace=verbose, log=log, group=group, hold_trace=True
    ), log


def test_trace_lines_before_the_settings_wait_for_them_and_then_appear() -> None:
    runner, log = _held_runner()
    runner.run([PY, "-c", "print('early')"], timeout=30)
    assert log.getvalue() == ""  # FLUX_CI_TRACE is not known yet
    runner.settle(trace=2, dry_run=False)
    lines = log.getvalue().splitlines()
    assert lines[0].startswith(f"+ {PY} -c ")
    assert "  stdout| early" in lines


def test_held_trace_lines_are_dropped_when_the_settings_want_none() -> None:
    runner, log = _held_runner()
    runner.run([PY, "-c", "print('early')"], timeout=30)
    runner.settle(trace=0, dry_run=True)
    runner.run([PY, "-c", "print('late')"], timeout=30)
    assert log.getvalue() == ""
    assert runner.dry_run


def test_a_verbose_flag_traces_at_once_before_the_settings() -> None:
    runner, log = _held_runner(verbose=1)
    runner.run([PY, "-c", "print('early')"], timeout=30)
    assert log.getvalue().startswith(f"+ {PY} -c ")
    runner.settle(trace=1, dry_run=False)
    assert log.getvalue().count(f"+ {PY} -c ") == 1  # not printed twice


def test_a_scope_stops_only_its_own_children() -> None:
    runner, _ = _runner()
    scope = runner.scoped()
    scope.stop_all()  # one cluster's watches are done
    assert list(scope.stream([PY, "-u", "-c", "import time; time.sleep(60)"], timeout=60)) == []
    assert runner.run([PY, "-c", "print(7)"], timeout=30).stdout == "7\n"  # the rest still runs
    runner.stop_all()  # the CLI boundary: a scope made now starts nothing either
    assert list(runner.scoped().stream([PY, "-u", "-c", "import time; time.sleep(60)"], timeout=60)) == []
