"""The dependsOn scenario of `make bench`: Kustomizations reading one source, as a chain (each
dependsOn the one before) and independent, side by side in the same run, for 3 and 5 links; and W2
for the chain (push, tag, `flux reconcile source oci`, `kubectl wait` on the last link), which moves
at Flux's own pace (`--requeue-dependency`, 30 s a link). Figures are printed, never asserted."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from tests.bench.figures import Figure, Section, median
from tests.bench.scenarios import KUSTOMIZATIONS, App, Bench, Outcome

# The floors: a chain of 3 costs at most 2 s more than three independent consumers, of 5 at most 3 s.
CHAIN_ALLOWANCE_S = {3: 2.0, 5: 3.0}
# Another checkout (e.g. a worktree of the commit before a change) whose flux-ci also deploys the chain,
# alternated with this one in the same sandbox: a before/after on one machine in one run.
BEFORE_TREE = "BENCH_BEFORE_TREE"  # not FLUX_CI_*: flux-ci refuses variables it does not know


def chained(bench: Bench, app: App) -> None:
    """Make each of the app's consumers depend on the one before it."""
    for before, name in zip(app.consumers, app.consumers[1:], strict=False):
        patch = json.dumps({"spec": {"dependsOn": [{"name": before}]}})
        bench.client.kubectl(
            "patch", KUSTOMIZATIONS, name, "-n", app.namespace, "--type=merge", f"--patch={patch}"
        )


def chains(bench: Bench, links: int, rounds: int, say: Callable[[str], None]) -> Section:
    """A on a chain of `links`, A on `links` independent consumers, W2 on the chain, alternated."""
    chain = bench.app(f"chain{links}", sources=1, per_source=links)
    loose = bench.app(f"loose{links}", sources=1, per_source=links)
    chained(bench, chain)
    before = os.environ.get(BEFORE_TREE, "")
    walls: dict[str, list[float]] = {"chain": [], "independent": [], "W2 chain": [], "chain, before": []}
    notes: list[str] = []
    try:
        for app in (chain, loose):
            bench.flux_ci(app, f"{app.namespace}-warmup", sample=False)
        for round_ in range(rounds):
            runs: list[tuple[str, Callable[[], Outcome]]] = [
                ("chain", partial(bench.flux_ci, chain, f"{chain.namespace}-r{round_}", sample=False)),
                ("independent", partial(bench.flux_ci, loose, f"{loose.namespace}-r{round_}", sample=False)),
                (
                    "W2 chain",
                    partial(
                        bench.workaround_exact, chain, f"{chain.namespace}-w{round_}", last=True, wait_s=140
                    ),
                ),
            ]
            if before:
                label = f"{chain.namespace}-b{round_}"
                # Before dependsOn was followed, a chain moved at Flux's requeue: 30 s a link.
                run_before = partial(
                    bench.flux_ci, chain, label, sample=False, root=Path(before), deadline_s=60 * links
                )
                runs.append(("chain, before", run_before))
            turn = round_ % len(runs)
            for name, variant in runs[turn:] + runs[:turn]:
                outcome = variant()
                if outcome.ok:
                    walls[name].append(outcome.wall_s)
                else:
                    notes.append(f"{name} failed: {outcome.error}")
                say(f"chain of {links} round {round_ + 1}/{rounds} {name}: {outcome.wall_s:.2f}s")
    finally:
        for app in (chain, loose):
            if app.watch is not None:
                app.watch.close()
    extra = median(walls["chain"]) - median(walls["independent"])
    allowance = CHAIN_ALLOWANCE_S.get(links)
    figures = [
        Figure(f"A, {links} links chained, median", median(walls["chain"]), "s", samples=len(walls["chain"])),
        Figure(
            f"A, {links} independent, median",
            median(walls["independent"]),
            "s",
            samples=len(walls["independent"]),
        ),
        Figure(
            f"A chained minus A independent ({links})",
            extra,
            "s",
            allowance,
            f"<= +{allowance:g} s" if allowance else "",
        ),
        Figure(
            f"W2, {links} links chained, median",
            median(walls["W2 chain"]),
            "s",
            samples=len(walls["W2 chain"]),
        ),
    ]
    if walls["chain, before"]:
        figures.insert(
            1,
            Figure(
                f"A of {before}, {links} links chained, median",
                median(walls["chain, before"]),
                "s",
                samples=len(walls["chain, before"]),
            ),
        )
    notes.append("W2 waits for the last link; Flux re-checks a dependant every --requeue-dependency (30 s)")
    return Section(
        f"dependsOn chain of {links} vs {links} independent consumers (one source)", figures, notes
    )
