"""A fleet in one job: the benchmark's sandbox grows to 8 clusters, then one `flux-ci deploy` to 1, 4
and 8 of them at once (FLUX_CI_KUBE_CONTEXT), and waves (FLUX_CI_WAVES) against a one-cluster deploy.

Every cluster runs its own etcd, API server and source-, kustomize- and helm-controller; each has a
namespace with one OCIRepository and one Kustomization, and an independent `kubectl get --watch` of
its Kustomizations (a `ReadyWatch` on the benchmark's clock), which tells when each consumer was
Ready with the digest: flux-ci's exit after the last of them is the figure flux-ci owns. On 2 cores
the clusters' controllers compete for the CPU, so the wall time grows with the fleet for reasons
outside flux-ci.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tests.bench.figures import Figure, Section, median
from tests.bench.observe import ReadyWatch
from tests.bench.scenarios import App, Bench, Outcome, kustomization_object, source_object
from tests.sandbox import SandboxClient, SandboxState
from tests.sandbox.clusters import MAX_CLUSTERS, all_clusters
from tests.sandbox.lifecycle import add_cluster

SIZES = (1, 4, 8)
MIB = 1024
EXIT_AFTER_READY_S = 0.5
PEAK_RSS_MIB = 120
KUBECTL_PER_CLUSTER = 3
WAVE_OVERHEAD_S = 0.5


@dataclass
class Fleet:
    """One namespace in each cluster, all following one repository; a watch of each."""

    app: App  # the manifests and repository (its watch is cluster 1's)
    clients: list[SandboxClient]
    watches: list[ReadyWatch] = field(default_factory=list)

    def close(self) -> None:
        for watch in self.watches:
            watch.close()


def grown(bench: Bench, size: int) -> list[SandboxClient]:
    """The sandbox with `size` clusters; a client of each."""
    state = bench.client.state
    if state.clusters < size:
        _say(f"starting clusters {state.clusters + 1} to {size}")
        add_cluster(state, up_to=size, report=_say)
    return [SandboxClient(state, cluster=number) for number in range(1, size + 1)]


def grow(bench: Bench, size: int = MAX_CLUSTERS) -> Section:
    """Start the further clusters; their start time and memory (RSS of their five processes)."""
    state = bench.client.state
    grown(bench, size)
    further = all_clusters(size)[1:]
    seconds = [state.startup_seconds.get(cluster.process_name("cluster"), math.nan) for cluster in further]
    took = sum(seconds)
    memory = [_cluster_rss_kib(state, cluster.suffix) / MIB for cluster in further]
    total = sum(_rss_kib(record.pid) for record in state.processes) / MIB
    figures = [
        Figure("further cluster start-up, median", median(seconds), "s", samples=len(seconds)),
        Figure("further cluster start-up, max", max(seconds, default=math.nan), "s"),
        Figure(f"clusters 2-{size} started one after the other, in all", took, "s"),
        Figure("further cluster RSS (etcd, API server, 3 controllers), median", median(memory), "MiB"),
        Figure(f"whole sandbox RSS, {size} clusters", total, "MiB"),
    ]
    notes = [f"each further cluster: {', '.join(f'{s:.1f}' for s in seconds)} s"]
    return Section(f"the sandbox as a fleet: {size} clusters, one registry", figures, notes)


def fleet(bench: Bench, size: int = MAX_CLUSTERS) -> Fleet:
    clients = grown(bench, size)
    app = _spread(bench, clients, "fleet", tags=["latest"] * size)
    return Fleet(app, clients, [_watch(bench, client, "fleet") for client in clients])


def one_deploy(bench: Bench, fleet_: Fleet, rounds: int) -> Section:
    """One deploy to the first 1, 4 and 8 clusters, the sizes alternated round after round."""
    results: dict[int, list[tuple[Outcome, float | None]]] = {size: [] for size in SIZES}
    bench.flux_ci(fleet_.app, "fleet-warmup", sample=False, extra=_contexts(fleet_, max(SIZES)))
    for round_ in range(rounds):
        sizes = SIZES[round_ % 3 :] + SIZES[: round_ % 3]
        for size in sizes:
            outcome = bench.flux_ci(fleet_.app, f"fleet-r{round_}-{size}", extra=_contexts(fleet_, size))
            last = _last_ready(fleet_.watches[:size], outcome)
            results[size].append((outcome, last))
            after = f", exit - last Ready {outcome.ended_at - last:.3f}s" if last else ""
            _say(f"fleet round {round_ + 1}/{rounds}, {size} cluster(s): {_brief(outcome)}{after}")
    return _fleet_section(results)


def _fleet_section(results: dict[int, list[tuple[Outcome, float | None]]]) -> Section:
    figures, notes = [], []
    for size, runs in results.items():
        ok = [(o, last) for o, last in runs if o.ok and o.observed is not None]
        observed = [o.observed for o, _ in ok if o.observed is not None]
        after = [o.ended_at - last for o, last in ok if last is not None]
        peak = max((o.peak_rss_kib for o in observed), default=0) / MIB
        kubectl = max((o.max_kubectl for o in observed), default=0) / size
        watches = max((o.max_watches for o in observed), default=0) / size
        n = f"{size} cluster(s):"
        wall = median([o.wall_s for o, _ in ok])
        last = max(after, default=math.nan)
        figures += [
            Figure(f"{n} A wall time median", wall, "s", samples=len(ok)),
            Figure(
                f"{n} A exit - last consumer Ready, max", last, "s", EXIT_AFTER_READY_S, samples=len(after)
            ),
            Figure(f"{n} A exit - last Ready, median", median(after), "s"),
            Figure(f"{n} peak RSS of flux-ci (VmHWM), max", peak, "MiB", PEAK_RSS_MIB),
            Figure(f"{n} kubectl processes at once per cluster, max", kubectl, "", KUBECTL_PER_CLUSTER),
            Figure(f"{n} kubectl watches at once per cluster, max", watches, "", KUBECTL_PER_CLUSTER),
        ]
        notes += [f"{size} cluster(s) failed: {o.error}" for o, _ in runs if not o.ok]
        if observed:
            busiest = max(observed, key=lambda o: o.max_kubectl)
            notes.append(f"{size} cluster(s), kubectl at the peak: {', '.join(busiest.peak_kubectl)}")
    notes.append(
        "exit - last consumer Ready: flux-ci's exit minus the moment the last cluster's independent "
        "watch saw its Kustomization Ready with the digest"
    )
    return Section("fleet: one deploy to 1, 4 and 8 clusters at once (FLUX_CI_KUBE_CONTEXT)", figures, notes)


def waves(bench: Bench, clients: Sequence[SandboxClient], rounds: int) -> Section:
    """Two waves (cluster 1 following w1, then cluster 2 following w2) against a deploy to cluster 1
    alone, alternated: what the second wave adds beyond its own cluster's apply time."""
    two = list(clients[:2])
    app = _spread(bench, two, "waves", tags=["w1", "w2"])
    watches = [_watch(bench, client, "waves") for client in two]
    single = {"FLUX_CI_KUBE_CONTEXT": two[0].context, "FLUX_CI_EXTRA_TAGS": "w1"}
    waved = {"FLUX_CI_WAVES": f"w1={two[0].context};w2={two[1].context}"}
    rows: list[tuple[Outcome, Outcome, float | None]] = []
    try:
        bench.flux_ci(app, "waves-warmup", sample=False, extra=waved)
        for round_ in range(rounds):
            pair = [("single", single), ("waves", waved)]
            runs = {name: bench.flux_ci(app, f"waves-r{round_}-{name}", extra=env)
                    for name, env in (pair if round_ % 2 == 0 else pair[::-1])}  # fmt: skip
            apply_s = _wave_apply(runs["waves"], watches[1], wave=1)
            rows.append((runs["single"], runs["waves"], apply_s))
            applied = "n/a" if apply_s is None else f"{apply_s:.2f}s"
            _say(f"waves round {round_ + 1}/{rounds}: one cluster {_brief(runs['single'])}, two waves "
                 f"{_brief(runs['waves'])}, wave 2 applied in {applied}")  # fmt: skip
    finally:
        for watch in watches:
            watch.close()
    return _waves_section(rows)


def _waves_section(rows: list[tuple[Outcome, Outcome, float | None]]) -> Section:
    ok = [(s, w, a) for s, w, a in rows if s.ok and w.ok and a is not None]
    added = [w.wall_s - s.wall_s - a for s, w, a in ok if a is not None]
    wave_s = [[float(wave["seconds"]) for wave in w.report.get("waves") or []] for _, w, _ in ok]
    beyond_apply = [seconds[1] - a for seconds, (_, _, a) in zip(wave_s, ok, strict=True) if a is not None]
    figures = [
        Figure("one cluster: A wall time median", median([s.wall_s for s, _, _ in ok]), "s", samples=len(ok)),
        Figure("two waves: A wall time median", median([w.wall_s for _, w, _ in ok]), "s", samples=len(ok)),
        Figure("wave 1 (tag, requests, wait) median", median([s[0] for s in wave_s]), "s"),
        Figure("wave 2 (tag, requests, wait) median", median([s[1] for s in wave_s]), "s"),
        Figure(
            "wave 2's own cluster's apply (its tag moved -> Ready) median",
            median([a for _, _, a in ok if a]),
            "s",
        ),
        Figure("wave 2 beyond its apply (seconds - apply), median", median(beyond_apply), "s"),
        Figure("two waves - one cluster - wave 2's apply, median", median(added), "s", WAVE_OVERHEAD_S),
        Figure("two waves - one cluster - wave 2's apply, max", max(added, default=math.nan), "s"),
    ]
    notes = [f"failed: {o.error}" for s, w, _ in rows for o in (s, w) if not o.ok]
    notes.append(f"one cluster, steps (median s): {_steps([s for s, _, _ in ok])}")
    notes.append(f"two waves, steps (median s, both clusters): {_steps([w for _, w, _ in ok])}")
    notes.append(
        "pairs alternated round after round; a wave's apply is from its started_at to its cluster's "
        "independent watch seeing the Kustomization Ready with the digest"
    )
    return Section("waves: two waves (FLUX_CI_WAVES) against one cluster, soak 0", figures, notes)


# --- helpers ---------------------------------------------------------------------------------


def _spread(bench: Bench, clients: Sequence[SandboxClient], namespace: str, *, tags: Sequence[str]) -> App:
    """In each cluster: the namespace, an OCIRepository following its tag, a Kustomization."""
    repository = f"bench/{namespace}"
    for client, tag in zip(clients, tags, strict=True):
        client.create_namespace(namespace)
        secret = None if client.anonymous else client.create_pull_secret(namespace)
        documents = [
            source_object(client, namespace, "app", repository, secret, tag=tag),
            kustomization_object(namespace, "app", "app"),
        ]
        client.apply("\n---\n".join(json.dumps(doc) for doc in documents))
    manifests = bench.work / namespace
    manifests.mkdir(parents=True, exist_ok=True)
    return App(namespace, repository, ["app"], ["app"], manifests)


def _watch(bench: Bench, client: SandboxClient, namespace: str) -> ReadyWatch:
    return ReadyWatch(bench.tools["kubectl"], namespace, bench.env, context=client.context)


def _contexts(fleet_: Fleet, size: int) -> dict[str, str]:
    return {"FLUX_CI_KUBE_CONTEXT": ",".join(client.context for client in fleet_.clients[:size])}


def _last_ready(watches: Sequence[ReadyWatch], outcome: Outcome) -> float | None:
    """When the last cluster's consumer was Ready with the digest, on the benchmark's clock."""
    if not outcome.digest:
        return None
    seen = [watch.wait_ready(["app"], outcome.digest, timeout=10)["app"] for watch in watches]
    return None if None in seen else max(t for t in seen if t is not None)


def _wave_apply(outcome: Outcome, watch: ReadyWatch, *, wave: int) -> float | None:
    """From the wave's tag move (its `started_at`) to its cluster's consumer Ready with the digest."""
    entries = outcome.report.get("waves") or []
    if not outcome.ok or len(entries) <= wave:
        return None
    ready = watch.wait_ready(["app"], outcome.digest, timeout=10)["app"]
    if ready is None:
        return None
    started = datetime.fromisoformat(str(entries[wave]["started_at"]).replace("Z", "+00:00")).timestamp()
    offset = time.time() - time.monotonic()  # the watch's monotonic clock, as wall-clock time
    return ready + offset - started


def _cluster_rss_kib(state: SandboxState, suffix: str) -> int:
    """The RSS of one further cluster's processes (named `<component>-N`)."""
    return sum(_rss_kib(record.pid) for record in state.processes if record.name.endswith(suffix))


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _steps(outcomes: Sequence[Outcome]) -> str:
    durations: dict[str, list[float]] = {}
    for outcome in outcomes:
        for step in outcome.report.get("steps") or []:
            if isinstance(step, dict) and isinstance(step.get("duration_s"), int | float):
                durations.setdefault(str(step.get("name")), []).append(float(step["duration_s"]))
    return ", ".join(f"{name} {median(values):.2f}" for name, values in durations.items())


def _brief(outcome: Outcome) -> str:
    return f"{outcome.wall_s:.2f}s" if outcome.ok else f"FAILED after {outcome.wall_s:.1f}s: {outcome.error}"


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
