"""The runner against real child processes (the Python interpreter), as nox tests its `run`; how it
supervises them (deadlines, signals, process groups) is tests/tools/test_supervise.py's."""

from __future__ import annotations

import ast
import io
import json
import os
import statistics
import time
from collections.abc import Callable

import pytest
from pydantic import SecretStr

from flux_ci.deadline import Deadline
from flux_ci.errors import DeadlineExceededError, ToolError
from flux_ci.secrets import Masker
from flux_ci.tools.runner import Runner
from flux_ci.tools.supervise import ProcessGroup
from tests.tools.children import GRACE_S, PY, ROOT, gone, new_runner


def _runner(
    trace: int = 0, *, dry_run: bool = False, secrets: tuple[str, ...] = ()
) -> tuple[Runner, io.StringIO]:
    return new_runner(trace, dry_run=dry_run, secrets=secrets)


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
    assert time.monotonic() - started < 10
    grandchild = int(result.stdout)
    assert _eventually(lambda: gone(grandchild))  # left in the child's process group: killed with it


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


def _eventually(check: Callable[[], bool], seconds: float = 5) -> bool:
    until = time.monotonic() + seconds
    while not check() and time.monotonic() < until:
        time.sleep(0.02)
    return check()


# --- the -vv trace shows a child's output as its caller has it traced ---------------------------------

SUMMARY = "(summarised)"


def _summary(text: str) -> list[str]:
    return [f"{SUMMARY} {len(text.splitlines())} lines"]


def test_a_callers_summary_replaces_the_output_in_the_trace() -> None:
    runner, log = _runner(trace=2)
    # The data is made by the child (the command line, which the trace shows, never holds it).
    code = (
        "print('secret-' + 'looking cluster data'); print('more'); import sys; print('oops', file=sys.stderr)"
    )
    result = runner.run([PY, "-c", code], timeout=30, trace_output=_summary)
    assert result.stdout == "secret-looking cluster data\nmore\n"  # the caller still gets it whole
    trace = log.getvalue()
    assert "secret-looking" not in trace
    assert f"  stdout| {SUMMARY} 2 lines" in trace.splitlines()
    assert "  stderr| oops" in trace.splitlines()  # stderr is the child's own words: traced, masked


def test_a_streamed_line_is_traced_as_its_callers_summary() -> None:
    runner, log = _runner(trace=2)
    code = "print('line one with cluster ' + 'data', flush=True); print('line two', flush=True)"
    lines = list(runner.stream([PY, "-u", "-c", code], timeout=30, trace_output=_summary))
    assert lines == ["line one with cluster data\n", "line two\n"]
    assert "cluster data" not in log.getvalue()
    assert log.getvalue().count(f"  | {SUMMARY} 1 lines") == 2


def test_without_a_summary_the_output_is_traced_as_it_is() -> None:
    runner, log = _runner(trace=2)
    runner.run([PY, "-c", "print('push output')"], timeout=30)
    list(runner.stream([PY, "-c", "print('streamed')"], timeout=30))
    assert "  stdout| push output" in log.getvalue().splitlines()
    assert "  | streamed" in log.getvalue().splitlines()


# --- a child without a timeout of its own ends with the command's deadline ------------------------


def test_a_child_given_no_timeout_ends_with_the_runners_deadline() -> None:
    runner = Runner(
        masker=Masker(), env=dict(os.environ), group=ProcessGroup(grace_s=GRACE_S), deadline=Deadline(0.5)
    )
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        runner.run([PY, "-c", "import time; time.sleep(30)"])
    assert time.monotonic() - started < 5


def test_a_runner_without_a_deadline_refuses_a_child_without_a_timeout() -> None:
    runner, _ = _runner()
    with pytest.raises(ValueError, match="needs a timeout"):
        runner.run([PY, "-c", "pass"])
