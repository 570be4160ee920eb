"""Real child processes for the runner's and the supervisor's tests: the Python interpreter, as nox
tests its `run`, and a runner of each test's own (its own process group, so an interrupt in one test
never reaches another's children)."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

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


def new_runner(
    trace: int = 0, *, dry_run: bool = False, secrets: tuple[str, ...] = ()
) -> tuple[Runner, io.StringIO]:
    log = io.StringIO()
    runner = Runner(
        masker=Masker(secrets),
        env=dict(os.environ),
        trace=trace,
        dry_run=dry_run,
        log=log,
        group=ProcessGroup(grace_s=GRACE_S),
    )
    return runner, log


def gone(pid: int) -> bool:
    """True when no process has this pid, or only a zombie nobody will wait for."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
