"""Micro-benchmarks that need no sandbox: runner overhead, CLI startup, watch-event decoding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tests.bench.figures import Figure, Section, median, percentile

if TYPE_CHECKING:
    from flux_ci.secrets import Masker

ROOT = Path(__file__).resolve().parents[2]


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _alternating(
    first: Callable[[], object], second: Callable[[], object], runs: int
) -> tuple[list[float], list[float]]:
    """Time both `runs` times, interleaved, so drift in the machine's load hits both alike."""
    for _ in range(3):  # warm caches and lazy imports
        first()
        second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        times[0].append(_timed(first))
        times[1].append(_timed(second))
    return times


def runner_overhead(runs: int = 50) -> Section:
    """`Runner.run(["true"])` against `subprocess.run(["true"])`: what the one door costs per command."""
    from flux_ci.tools.runner import Runner  # noqa: PLC0415
    from flux_ci.tools.supervise import ProcessGroup  # noqa: PLC0415

    runner = Runner(masker=_masker(), env=dict(os.environ), group=ProcessGroup())
    ours, plain = _alternating(
        lambda: runner.run(["true"], timeout=30),
        lambda: subprocess.run(["true"], check=False, timeout=30),
        runs,
    )
    overhead = (median(ours) - median(plain)) * 1000
    return Section(
        "runner: Runner.run(['true']) vs subprocess.run(['true'])",
        [
            Figure("Runner.run median", median(ours) * 1000, "ms", samples=runs),
            Figure("Runner.run p95", percentile(ours, 0.95) * 1000, "ms", samples=runs),
            Figure("subprocess.run median", median(plain) * 1000, "ms", samples=runs),
            Figure("runner overhead per command (median - median)", overhead, "ms", 10.0, samples=runs),
        ],
        [f"medians of {runs}, interleaved; the runner starts its child through sh with a deadline"],
    )


def _masker() -> Masker:
    from flux_ci.secrets import Masker  # noqa: PLC0415

    return Masker()


def help_startup(runs: int = 15) -> Section:
    """`flux-ci --help` against `python -c "import typer"`: what flux-ci adds to typer's own start."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}

    def run(*args: str) -> None:
        subprocess.run(
            [sys.executable, *args], env=env, cwd=ROOT, capture_output=True, check=False, timeout=60
        )

    helps, typers = _alternating(
        lambda: run("-m", "flux_ci", "--help"), lambda: run("-c", "import typer"), runs
    )
    ratio = median(helps) / median(typers)
    return Section(
        "startup: flux-ci --help vs python -c 'import typer'",
        [
            Figure("flux-ci --help median", median(helps) * 1000, "ms", samples=runs),
            Figure("python -c 'import typer' median", median(typers) * 1000, "ms", samples=runs),
            Figure("ratio --help / import typer", ratio, "x", 1.5, "<= 1.5 x", samples=runs),
        ],
        [f"wall time of each process, medians of {runs}, interleaved"],
    )


# The libraries flux-ci is built on, imported as flux-ci's entry point imports them (the collector
# off, pydantic's plugin scan skipped): a CPU cost every deploy pays before flux-ci's own code runs.
_LIBRARIES = (
    "import gc, os; gc.disable(); os.environ.setdefault('PYDANTIC_DISABLE_PLUGINS', '__all__')\n"
    "import typer, pydantic_settings, sh"
)


def library_import_cpu() -> float:
    """CPU seconds (user + system) of a fresh interpreter that only imports typer,
    pydantic-settings and sh: the floor under flux-ci's own CPU per deploy."""
    process = subprocess.Popen(
        [sys.executable, "-c", _LIBRARIES], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    if process.returncode != 0:
        raise RuntimeError(f"importing the libraries failed: exit {process.returncode}")
    return usage.ru_utime + usage.ru_stime


def decode_event(entries: int = 5000, runs: int = 7) -> Section:
    """One watch event of a Kustomization with a large inventory through `iter_json_documents`."""
    try:
        from flux_ci.tools.kubectl import iter_json_documents  # noqa: PLC0415
    except ImportError as exc:
        return Section("decode", [], [f"flux_ci.tools.kubectl.iter_json_documents is gone: {exc}"])
    event = {"type": "MODIFIED", "object": _kustomization_with_inventory(entries)}
    pretty = [line + "\n" for line in json.dumps(event, indent=4).split("\n")]
    single = [json.dumps(event) + "\n"]
    pretty_times = [_timed(lambda: _decode_one(iter_json_documents, pretty)) for _ in range(runs)]
    single_times = [_timed(lambda: _decode_one(iter_json_documents, single)) for _ in range(runs)]
    size = sum(map(len, pretty)) / 1024
    return Section(
        f"decode: one watch event, Kustomization with a {entries}-entry inventory",
        [
            Figure(
                f"pretty-printed (indent=4, {len(pretty)} lines)",
                median(pretty_times) * 1000,
                "ms",
                50.0,
                samples=runs,
            ),
            Figure(
                "one line (kubectl --output-watch-events)", median(single_times) * 1000, "ms", samples=runs
            ),
        ],
        [f"{size:.0f} KiB as lines of json.dumps(event, indent=4), fed line by line; medians of {runs}"],
    )


def _decode_one(decoder: Callable[[list[str]], object], lines: list[str]) -> None:
    documents = list(decoder(lines))  # type: ignore[call-overload]
    assert len(documents) == 1


def _kustomization_with_inventory(entries: int) -> dict[str, object]:
    """A Kustomization as kubectl prints it after applying `entries` objects."""
    revision = "latest@sha256:" + "ab" * 32
    condition = {
        "lastTransitionTime": "2026-01-01T00:00:00Z", "message": f"Applied revision: {revision}",
        "observedGeneration": 1, "reason": "ReconciliationSucceeded", "status": "True", "type": "Ready",
    }  # fmt: skip
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {
            "name": "app",
            "namespace": "apps",
            "generation": 1,
            "resourceVersion": "123456",
            "uid": "0b9c3c1e-0000-4000-8000-000000000000",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "finalizers": ["finalizers.fluxcd.io"],
        },
        "spec": {
            "interval": "10m",
            "path": "./",
            "prune": True,
            "targetNamespace": "apps",
            "sourceRef": {"kind": "OCIRepository", "name": "app"},
        },
        "status": {
            "conditions": [condition],
            "inventory": {
                "entries": [{"id": f"apps_object-{i:05d}__ConfigMap", "v": "v1"} for i in range(entries)]
            },
            "lastAppliedRevision": revision,
            "lastAttemptedRevision": revision,
            "observedGeneration": 1,
        },
    }
