"""`make bench`: how fast flux-ci sees Flux finish, what it costs, and how it compares with the
workarounds. Prints figures, each with its target and whether it holds; asserts nothing.

In ONE private sandbox, round after round on the same kind of change (one ConfigMap value), in an
order that rotates each round, it times:

- A:  `python -m flux_ci -v deploy` (env vars, JSON report);
- W1: `flux push artifact`, `flux tag artifact`, `flux reconcile kustomization --with-source`;
- W2: `flux push artifact`, `oras tag`, `flux reconcile source oci`, `kubectl wait` for
      `lastAppliedRevision=<tag>@<digest>`.

For A it also measures the detection lag (an independent `kubectl get --watch` sees the
Kustomization Ready with the digest → flux-ci exits), the time from process start to its first child
(the arrival of the first `+ <command>` trace line, printed just before the child is spawned; /proc
sampling cross-checks it), its own CPU (utime+stime of the Python process, read from /proc while it
is a zombie), its peak RSS (VmHWM) and the children it started (trace lines; distinct pids seen in
/proc). Two scale scenarios (S1: one source, 50 consumers; S2: 10 sources, 5 consumers each) compare
flux-ci's exit with the moment the last consumer is Ready with the digest, count its concurrent
watches (/proc every 10 ms) and check that every consumer really applied the digest. The fleet
scenario (tests/bench/fleet.py) grows the sandbox to 8 clusters and deploys to 1, 4 and 8 of them at
once, then times two waves against one cluster. Micro-benchmarks need no sandbox: runner overhead,
`--help` startup, decoding one large watch event. flux_ci's bytecode is compiled first, as an install
has it.

Results go to stdout and to a JSON file (`--json`, default `bench-results.json`). Every child and
every wait has a timeout, so a broken sandbox ends the benchmark instead of hanging it.
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from tests.bench import fleet as fleet_scenario
from tests.bench.chains import BEFORE_TREE, chains
from tests.bench.figures import Figure, Section, median, percentile
from tests.bench.micro import decode_event, help_startup, library_import_cpu, runner_overhead
from tests.bench.scenarios import ROOT, App, Bench, Outcome
from tests.sandbox import SandboxClient, down, up
from tests.sandbox.versions import read_versions

TARGET_RATIO = 0.6  # A's median wall time against each workaround's
MIB = 1024


@dataclass(frozen=True)
class Plan:
    rounds: int
    lag_samples: int
    scale_rounds: int
    micro_runs: int
    scale: bool
    chains: bool = True
    chain_rounds: int = 3
    fleet: bool = True
    fleet_rounds: int = 5
    only_fleet: bool = False


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", "--runs", type=int, default=10, help="rounds of A, W1, W2 (default 10)")
    parser.add_argument("--quick", action="store_true", help="3 rounds, 5 lag samples, 1 scale round")
    parser.add_argument(
        "--json", type=Path, default=Path("bench-results.json"), help="where to write results"
    )
    parser.add_argument("--no-scale", action="store_true", help="skip the 50-consumer scenarios")
    parser.add_argument("--no-chains", action="store_true", help="skip the dependsOn chain scenarios")
    parser.add_argument("--no-fleet", action="store_true", help="skip the 8-cluster fleet and the waves")
    parser.add_argument("--fleet-only", action="store_true", help="only the fleet and the waves")
    parser.add_argument("--fleet-rounds", type=int, default=5, help="rounds of the fleet and the waves")
    args = parser.parse_args()
    if args.quick:
        plan = Plan(
            rounds=min(args.rounds, 3), lag_samples=5, scale_rounds=1, micro_runs=30, scale=not args.no_scale,
            chains=not args.no_chains, chain_rounds=1,
        )  # fmt: skip
    else:
        plan = Plan(
            rounds=args.rounds, lag_samples=20, scale_rounds=2, micro_runs=50, scale=not args.no_scale,
            chains=not args.no_chains, chain_rounds=3,
        )  # fmt: skip
    fleet_rounds = min(args.fleet_rounds, 2) if args.quick else args.fleet_rounds
    plan = replace(plan, fleet=not args.no_fleet, fleet_rounds=fleet_rounds, only_fleet=args.fleet_only)
    started = time.monotonic()
    sections = run(plan)
    _write(args.json, plan, sections, time.monotonic() - started)


def run(plan: Plan) -> list[Section]:
    sections: list[Section] = []

    def add(section: Section) -> None:
        section.print()
        sys.stdout.flush()
        sections.append(section)

    # flux-ci as installed has its bytecode (pip compiles it). A checkout run under
    # PYTHONDONTWRITEBYTECODE, which CI images often set, would compile every module on every run.
    _say("compiling flux_ci's bytecode")
    compileall.compile_dir(ROOT / "flux_ci", quiet=1)
    # Before the sandbox starts: the machine is quiet, so these measure flux-ci, not the controllers.
    if not plan.only_fleet:
        add(runner_overhead(plan.micro_runs))
        add(help_startup(max(plan.micro_runs // 3, 10)))
        add(decode_event())
    with tempfile.TemporaryDirectory(prefix="flux-ci-bench-") as tmp:
        state_dir = Path(tmp) / "sandbox"
        _say("starting the sandbox")
        try:
            client = SandboxClient(up(state_dir, die_with_parent=True))
            bench = Bench(client, Path(tmp))
            if not plan.only_fleet:
                for section in compare(bench, plan):
                    add(section)
            if plan.scale and not plan.only_fleet:
                add(scale(bench, "s1", sources=1, per_source=50, rounds=plan.scale_rounds))
                add(scale(bench, "s2", sources=10, per_source=5, rounds=plan.scale_rounds))
            if plan.chains and not plan.only_fleet:
                for links in (3, 5):
                    add(chains(bench, links, plan.chain_rounds, _say))
            if plan.fleet or plan.only_fleet:
                for section in fleet_sections(bench, plan.fleet_rounds):
                    add(section)
        finally:
            _say("stopping the sandbox")
            down(state_dir)
    return sections


# --- A vs W1 vs W2 ---------------------------------------------------------------------------


def compare(bench: Bench, plan: Plan) -> list[Section]:
    app = bench.app("bench", sources=1, per_source=1)
    try:
        warm = bench.flux_ci(app, "warmup", sample=False)  # the source's first artifact
        _say(f"warm-up deploy: {'ok' if warm.ok else warm.error} in {warm.wall_s:.1f}s")
        variants: dict[str, Callable[[App, str], Outcome]] = {
            "A": bench.flux_ci, "W1": bench.workaround_common, "W2": bench.workaround_exact,
        }  # fmt: skip
        if before := os.environ.get(BEFORE_TREE, ""):  # another commit's flux-ci, in the same rounds
            variants["A before"] = partial(bench.flux_ci, root=Path(before))
        outcomes: dict[str, list[Outcome]] = {name: [] for name in variants}
        floors: list[float] = []  # the libraries' import CPU, sampled right after each A deploy
        names = list(variants)
        for round_ in range(plan.rounds):
            turn = round_ % len(names)
            order = names[turn:] + names[:turn]  # no variant always runs first
            for name in order:
                outcome = variants[name](app, f"r{round_}-{name.lower().replace(' ', '-')}")
                outcomes[name].append(outcome)
                if name == "A":
                    floors.append(library_import_cpu())
                _say(f"round {round_ + 1}/{plan.rounds} {name}: {_brief(outcome)}")
        lags = [lag for out in outcomes["A"] if (lag := _lag(app, out)) is not None]
        extra = 0
        while len(lags) < plan.lag_samples and extra < 2 * plan.lag_samples:
            outcome = bench.flux_ci(app, f"x{extra}-a")
            outcomes["A"].append(outcome)
            floors.append(library_import_cpu())
            extra += 1
            if (lag := _lag(app, outcome)) is not None:
                lags.append(lag)
            _say(f"extra A {extra}: {_brief(outcome)}")
    finally:
        if app.watch is not None:
            app.watch.close()
    return [_wall_section(outcomes, plan.rounds), _flux_ci_section(outcomes["A"], lags, extra, floors)]


def _lag(app: App, outcome: Outcome) -> float | None:
    """flux-ci's exit minus the moment the independent watch saw the consumer Ready with the digest."""
    if not outcome.ok or app.watch is None:
        return None
    seen = app.watch.wait_ready([app.consumers[0]], outcome.digest, timeout=5)[app.consumers[0]]
    return None if seen is None else outcome.ended_at - seen


def _wall_section(outcomes: dict[str, list[Outcome]], rounds: int) -> Section:
    figures, notes = [], []
    walls = {}
    for name, runs in outcomes.items():
        ok = [o.wall_s for o in runs[:rounds] if o.ok]  # the alternating rounds: same conditions for all
        walls[name] = ok
        figures.append(Figure(f"{name} wall time median", median(ok), "s", samples=len(ok)))
        figures.append(Figure(f"{name} wall time p95", percentile(ok, 0.95), "s", samples=len(ok)))
        notes += [f"{name} failed: {o.error}" for o in runs[:rounds] if not o.ok]
    for workaround in ("W1", "W2"):
        ratio = median(walls["A"]) / median(walls[workaround]) if walls[workaround] else math.nan
        figures.append(
            Figure(f"A / {workaround} (medians)", ratio, "x", TARGET_RATIO, f"<= {TARGET_RATIO} x")
        )
    if walls.get("A before"):
        ratio = median(walls["A"]) / median(walls["A before"])
        figures.append(Figure(f"A / A of {os.environ.get(BEFORE_TREE)} (medians)", ratio, "x"))
    notes.append(f"{rounds} alternating rounds, order rotating each round; same sandbox, same objects")
    return Section("deploy wall time: flux-ci (A) vs workarounds (W1 common, W2 exact)", figures, notes)


def _flux_ci_section(runs: list[Outcome], lags: list[float], extra: int, floors: list[float]) -> Section:
    observed = [o.observed for o in runs if o.ok and o.observed is not None]
    first_trace = [cmds[0][0] for o in observed if (cmds := o.traced_commands())]
    first_proc = [o.first_child_s for o in observed if o.first_child_s is not None]
    cpu = [o.cpu_s for o in observed if o.cpu_s is not None]
    # Each deploy against the floor sampled right after it: the machine's speed drifts between
    # minutes, and both move with it.
    above = [
        run.observed.cpu_s - floor
        for run, floor in zip(runs, floors, strict=True)
        if run.ok and run.observed is not None and run.observed.cpu_s is not None
    ]
    figures = [
        Figure("detection lag p50", percentile(lags, 0.5), "s", samples=len(lags)),
        Figure("detection lag p95", percentile(lags, 0.95), "s", 0.25, samples=len(lags)),
        Figure("detection lag max", max(lags, default=math.nan), "s", 0.5, samples=len(lags)),
        Figure(
            "startup to first child median (trace)", median(first_trace), "s", 0.15, samples=len(first_trace)
        ),
        Figure("startup to first child p95 (trace)", percentile(first_trace, 0.95), "s"),
        Figure(
            "startup to first child median (/proc, 10 ms)", median(first_proc), "s", samples=len(first_proc)
        ),
        Figure("flux-ci CPU per deploy median (utime+stime)", median(cpu), "s", 0.3, samples=len(cpu)),
        Figure("flux-ci CPU per deploy max", max(cpu, default=math.nan), "s"),
        Figure("CPU of importing typer, pydantic-settings, sh alone, median", median(floors), "s"),
        Figure("flux-ci CPU per deploy above that import, median", median(above), "s", samples=len(above)),
        Figure("peak RSS max (VmHWM)", max((o.peak_rss_kib for o in observed), default=0) / MIB, "MiB"),
        Figure(
            "children started median (trace lines)", median([len(o.traced_commands()) for o in observed]), ""
        ),
        Figure("children started median (distinct pids)", median([len(o.children) for o in observed]), ""),
        Figure(
            "kubectl --watch children at once, max", max((o.max_watches for o in observed), default=0), ""
        ),
    ]
    notes = [f"{len(runs)} A deploys ({extra} extra ones for the lag samples)"]
    notes += [f"A failed: {o.error}" for o in runs if not o.ok]
    notes.append("steps (median s): " + _step_medians(runs))
    if observed:
        typical = sorted(observed, key=lambda o: o.wall_s)[len(observed) // 2]
        started = [f"{at:.2f} {' '.join(command.split()[:3])}" for at, command in typical.traced_commands()]
        notes.append(f"children of the median A run (s after start): {', '.join(started)}")
    return Section("flux-ci (A): detection lag, startup, own CPU and memory, children", figures, notes)


def _step_medians(runs: list[Outcome]) -> str:
    durations: dict[str, list[float]] = {}
    for outcome in runs:
        for step in outcome.report.get("steps") or []:
            if isinstance(step, dict) and isinstance(step.get("duration_s"), (int, float)):
                durations.setdefault(str(step.get("name")), []).append(float(step["duration_s"]))
    return ", ".join(f"{name} {median(values):.2f}" for name, values in durations.items()) or "none reported"


# --- a fleet in one job -------------------------------------------------------------------


def fleet_sections(bench: Bench, rounds: int) -> list[Section]:
    """Last: the further clusters' controllers would slow every other scenario down. The waves
    first, with two clusters only; then the fleet of eight."""
    sections = [fleet_scenario.waves(bench, fleet_scenario.grown(bench, 2), rounds)]
    sections.append(fleet_scenario.grow(bench))
    fleet = fleet_scenario.fleet(bench)
    try:
        sections.append(fleet_scenario.one_deploy(bench, fleet, rounds))
    finally:
        fleet.close()
    return sections


# --- scale ----------------------------------------------------------------------------------


def scale(bench: Bench, namespace: str, *, sources: int, per_source: int, rounds: int) -> Section:
    title = f"scale {namespace.upper()}: {sources} source(s) x {per_source} consumers"
    _say(f"{title}: creating {sources * per_source} Kustomizations")
    app = bench.app(namespace, sources=sources, per_source=per_source)
    rows: list[tuple[Outcome, float | None, tuple[int, int]]] = []
    try:
        warm = bench.flux_ci(app, f"{namespace}-warmup", sample=False)
        _say(f"{namespace} warm-up deploy: {'ok' if warm.ok else warm.error} in {warm.wall_s:.1f}s")
        for round_ in range(rounds):
            outcome = bench.flux_ci(app, f"{namespace}-r{round_}")
            last = _last_ready(app, outcome)
            applied = bench.applied(app, outcome.digest) if outcome.digest else (0, len(app.consumers))
            rows.append((outcome, last, applied))
            good, total = applied
            _say(f"{namespace} round {round_ + 1}/{rounds}: {_brief(outcome)}, applied {good}/{total}")
    finally:
        if app.watch is not None:
            app.watch.close()
    return _scale_section(title, rows)


def _last_ready(app: App, outcome: Outcome) -> float | None:
    if not outcome.digest or app.watch is None:
        return None
    seen = app.watch.wait_ready(app.consumers, outcome.digest, timeout=10)
    times = list(seen.values())
    return None if None in times else max(t for t in times if t is not None)


def _scale_section(title: str, rows: list[tuple[Outcome, float | None, tuple[int, int]]]) -> Section:
    ok = [(o, last) for o, last, _ in rows if o.ok and o.observed is not None]
    after = [o.ended_at - last for o, last in ok if last is not None]
    last_ready = [last - o.observed.started_at for o, last in ok if last is not None and o.observed]
    observed = [o.observed for o, _ in ok if o.observed is not None]
    missing = [total - good for _, _, (good, total) in rows]
    reported = [
        sum(1 for c in o.report.get("consumers") or [] if str(c.get("revision", "")).endswith(f"@{o.digest}"))
        for o, _, _ in rows
    ]
    figures = [
        Figure("A wall time median", median([o.wall_s for o, _ in ok]), "s", samples=len(ok)),
        Figure(
            "last consumer Ready (from A's start) median", median(last_ready), "s", samples=len(last_ready)
        ),
        Figure(
            "A exit - last consumer Ready, max", max(after, default=math.nan), "s", 0.5, samples=len(after)
        ),
        Figure(
            "kubectl --watch processes at once, max",
            max((o.max_watches for o in observed), default=math.nan),
            "",
            4,
        ),
        Figure("peak RSS max (VmHWM)", max((o.peak_rss_kib for o in observed), default=0) / MIB, "MiB", 60),
        Figure(
            "flux-ci CPU per deploy median", median([o.cpu_s for o in observed if o.cpu_s is not None]), "s"
        ),
        Figure(
            "children started median (trace lines)", median([len(o.traced_commands()) for o in observed]), ""
        ),
        Figure("consumers NOT at the digest afterwards, max", max(missing, default=math.nan), "", 0),
    ]
    applied = [good for _, _, (good, _) in rows]
    notes = [f"consumers at the digest, per round: in flux-ci's report {reported}, read afresh {applied}"]
    notes += [f"A failed: {o.error}" for o, _, _ in rows if not o.ok]
    notes.append("steps (median s): " + _step_medians([o for o, _, _ in rows]))
    return Section(title, figures, notes)


# --- output ---------------------------------------------------------------------------------


def _brief(outcome: Outcome) -> str:
    return f"{outcome.wall_s:.2f}s" if outcome.ok else f"FAILED after {outcome.wall_s:.1f}s: {outcome.error}"


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _write(path: Path, plan: Plan, sections: list[Section], seconds: float) -> None:
    missed = [f.name for s in sections for f in s.figures if f.holds is False]
    print(f"\n{len(missed)} target(s) missed" + (": " + "; ".join(missed) if missed else ""))
    document = {
        "schema_version": 1,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(seconds, 1),
        "plan": plan.__dict__,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "versions": read_versions(),
        "sections": [section.to_json() for section in sections],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
