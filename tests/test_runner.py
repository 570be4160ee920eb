"""The runner against real child processes (the Python interpreter), as nox tests its `run`."""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from flux_ci.errors import DeadlineExceededError, ExitCode, SignalInterruptError, ToolError
from flux_ci.masking import Masker
from flux_ci.runner import Runner

PY = sys.executable


def _runner(
    trace: int = 0, *, dry_run: bool = False, secrets: tuple[str, ...] = ()
) -> tuple[Runner, io.StringIO]:
    log = io.StringIO()
    runner = Runner(masker=Masker(secrets), env=dict(os.environ), trace=trace, dry_run=dry_run, log=log)
    return runner, log


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
    runner, log = _runner(trace=2, secrets=("s3cret-value",))
    code = "import sys; data = sys.stdin.read(); print(len(data), 's3cret-value' in sys.argv)"
    result = runner.run([PY, "-c", code], timeout=30, stdin=SecretStr("s3cret-value"))
    assert result.stdout.split() == ["12", "False"]
    assert "s3cret-value" not in log.getvalue()


def test_environment_is_explicit_and_overrides_can_remove() -> None:
    runner = Runner(masker=Masker(), env={"PATH": os.environ["PATH"], "KEEP": "1", "DROP": "x"})
    code = "import os; print(os.environ.get('KEEP'), os.environ.get('DROP'), os.environ.get('ADDED'))"
    result = runner.run([PY, "-c", code], timeout=30, env={"DROP": None, "ADDED": "2"})
    assert result.stdout.split() == ["1", "None", "2"]


def test_timeout_raises_deadline_exceeded_naming_the_command() -> None:
    runner, _ = _runner()
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError, match=r"timed out after 0\.5s"):
        runner.run([PY, "-c", "import time; time.sleep(30)"], timeout=0.5)
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
    assert [line.strip() for line in lines] == ["0", "1", "2"]
    assert time.monotonic() - started < 10


def test_stream_ends_at_its_timeout() -> None:
    runner, _ = _runner()
    started = time.monotonic()
    lines = list(
        runner.stream([PY, "-u", "-c", "import time; print('a', flush=True); time.sleep(60)"], timeout=1)
    )
    assert [line.strip() for line in lines] == ["a"]
    assert time.monotonic() - started < 10


def test_only_the_runner_imports_sh() -> None:
    package = Path(__file__).parent.parent / "flux_ci"
    importers = sorted(
        path.name
        for path in package.rglob("*.py")
        if any(
            line.strip() in ("import sh", "import subprocess") or line.startswith("from sh ")
            for line in path.read_text().splitlines()
        )
    )
    assert importers == ["runner.py"]


def test_children_started_after_stop_all_are_stopped_at_once() -> None:
    runner, _ = _runner()
    runner.stop_all()  # e.g. SIGTERM arrived while a watch thread was about to start its child
    started = time.monotonic()
    lines = list(runner.stream([PY, "-u", "-c", "import time; time.sleep(60)"], timeout=60))
    assert lines == []
    assert time.monotonic() - started < 10


def test_interrupt_stops_the_running_child_and_raises_where_it_returns() -> None:
    runner, _ = _runner()
    timer = threading.Timer(0.5, runner.interrupt, args=("SIGTERM", ExitCode.SIGTERM))
    timer.start()
    started = time.monotonic()
    with pytest.raises(SignalInterruptError, match="interrupted by SIGTERM"):
        runner.run([PY, "-c", "import time; time.sleep(60)"], timeout=60)
    assert time.monotonic() - started < 10
    with pytest.raises(SignalInterruptError):  # and nothing new starts afterwards
        runner.run([PY, "-c", "pass"], timeout=60)
