"""`make bench`: how fast flux-ci sees Flux finish, and what it costs. Prints figures; asserts nothing.

Starts a private sandbox, then runs `flux-ci deploy` N times with changed manifests. For each run it
reports the wall time, each step's duration, flux-ci's own peak memory (VmHWM of the Python process,
not of the flux/oras/kubectl children), and the detection lag: the time from an independent watch
seeing the Kustomization Ready with the new revision to flux-ci exiting.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flux_ci.tools.kubectl import iter_json_documents
from tests.sandbox import SandboxClient, down, up
from tests.sandbox.versions import tool_path

ROOT = Path(__file__).resolve().parent.parent
KUSTOMIZATIONS = "kustomizations.kustomize.toolkit.fluxcd.io"


@dataclass
class ReadyWatch:
    """Records when each Kustomization revision was first seen applied and Ready."""

    seen: dict[str, float] = field(default_factory=dict)

    def follow(self, client: SandboxClient, namespace: str) -> subprocess.Popen[str]:
        argv = [
            str(tool_path("kubectl")),
            "get",
            KUSTOMIZATIONS,
            "app",
            "-n",
            namespace,
            "-o",
            "json",
            "--watch",
        ]
        process = subprocess.Popen(argv, env=client.env, stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, args=(process,), daemon=True).start()
        return process

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for obj in iter_json_documents(process.stdout):
            self._note(obj)

    def _note(self, obj: dict[str, Any]) -> None:
        status = obj.get("status", {})
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
        )
        revision = status.get("lastAppliedRevision", "")
        if ready and revision:
            self.seen.setdefault(revision, time.monotonic())


def _peak_rss_kib(pid: int, process: subprocess.Popen[str]) -> int:
    peak = 0
    while process.poll() is None:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            break
        time.sleep(0.01)
    return peak


def _deploy(client: SandboxClient, env: dict[str, str]) -> tuple[dict[str, Any], float, float, int]:
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "flux_ci", "deploy"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )  # fmt: skip
    peak = _peak_rss_kib(process.pid, process)
    stdout, _ = process.communicate()
    ended = time.monotonic()
    report = json.loads(stdout)
    if report["exit_code"] != 0:
        raise SystemExit(f"deploy failed: {report['error']}")
    return report, started, ended, peak


def run(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="flux-ci-bench-") as tmp:
        state_dir = Path(tmp) / "sandbox"
        client = SandboxClient(up(state_dir, report=lambda _message: None))
        try:
            _measure(client, Path(tmp), runs)
        finally:
            down(state_dir)


def _measure(client: SandboxClient, tmp: Path, runs: int) -> None:
    namespace, repository = "bench", "bench/app"
    client.create_namespace(namespace)
    client.deploy_oci(namespace, "app", repository, tag="latest", target_namespace=namespace)
    manifests = tmp / "manifests"
    manifests.mkdir()
    watch = ReadyWatch()
    watcher = watch.follow(client, namespace)
    base = {k: v for k, v in client.env.items() if not k.startswith("CI_")}
    rows = []
    try:
        for index in range(runs):
            cm = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench\ndata:\n  run: '{index}'\n"
            (manifests / "cm.yaml").write_text(cm)
            env = base | {
                "FLUX_CI_REPOSITORY": client.oci_url(repository),
                "FLUX_CI_PATH": str(manifests),
                "FLUX_CI_TAG": f"run{index}",
                "FLUX_CI_SOURCE": "https://git.example/bench",
                "FLUX_CI_REVISION": f"main@sha1:{index:040d}",
                "FLUX_CI_OUTPUT": "json",
                "PYTHONPATH": str(ROOT),
            }
            report, _started, ended, peak = _deploy(client, env)
            applied = report["consumers"][0]["revision"]
            lag = ended - watch.seen[applied] if applied in watch.seen else float("nan")
            steps = {step["name"]: step["duration_s"] for step in report["steps"]}
            rows.append((index, ended - _started, steps, peak, lag))
    finally:
        watcher.terminate()
    _print(rows)


def _print(rows: list[tuple[int, float, dict[str, float], int, float]]) -> None:
    header = ("run", "total s", "push", "reconcile", "wait", "peak RSS MiB", "lag s")
    widths = (3, 8, 6, 9, 6, 12, 6)
    print(" ".join(f"{name:>{width}}" for name, width in zip(header, widths, strict=True)))
    for index, total, steps, peak, lag in rows:
        print(
            f"{index:>3} {total:>8.2f} {steps.get('push', 0):>6.2f} {steps.get('reconcile', 0):>9.2f} "
            f"{steps.get('wait', 0):>6.2f} {peak / 1024:>12.1f} {lag:>6.2f}"
        )
    totals = [row[1] for row in rows]
    lags = [row[4] for row in rows]
    print(
        f"median total {statistics.median(totals):.2f}s, max {max(totals):.2f}s; "
        f"median detection lag {statistics.median(lags):.2f}s, max {max(lags):.2f}s; "
        f"peak RSS max {max(row[3] for row in rows) / 1024:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmark", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    run(parser.parse_args().runs)


if __name__ == "__main__":
    main()
