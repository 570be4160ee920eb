"""FLUX_CI_WAVES: progressive delivery, one wave after the other, in one job.

A wave is a moving tag and the clusters whose sources follow it (`canary=staging;eu=prod-eu-1,prod-eu-2`):
Flux pulls, so moving the tag is what deploys there. Every wave's clusters were checked and are
watched before anything was pushed (`prepare`: each cluster's sources must follow its wave's tag).
Then, wave after wave, under the command's one deadline: its tag moves to the digest, its clusters are
asked to reconcile and waited for side by side (`settle`, `fleet`), and, before the next wave, its
consumers stay watched for FLUX_CI_WAVE_SOAK (`soak`). The first wave that fails ends the run with its
exit code, and later waves' tags never move. With FLUX_CI_ROLLBACK, after exit 7 or 8, every tag this
run moved goes back, the last wave first, each waited for in its clusters (`rollback`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from flux_ci.config.values import Wave
from flux_ci.context import Context
from flux_ci.delivery.prepare import Prepared, Ready
from flux_ci.delivery.settle import Settling, settle
from flux_ci.delivery.soak import soak
from flux_ci.errors import ConsumerFailedError, DeadlineExceededError, FluxCIError
from flux_ci.report.models import Artifact, Report, TagMove, WaveOutcome, WaveStatus

# Where the tags about to move point now (for FLUX_CI_ROLLBACK and the report); [] when not needed.
Remember = Callable[[Sequence[str]], list[TagMove]]


@dataclass
class WaveRun:
    """One wave of this run: its clusters, ready, and how far it got."""

    wave: Wave
    run: Prepared  # its clusters alone
    status: WaveStatus = WaveStatus.NOT_STARTED
    started_at: str = ""
    seconds: float = 0.0
    soak_s: float = 0.0
    recorded: list[TagMove] = field(default_factory=list)

    def outcome(self) -> WaveOutcome:
        contexts = tuple(self.wave.contexts)
        return WaveOutcome(self.wave.tag, contexts, self.status, self.started_at, self.seconds, self.soak_s)


def deliver(ctx: Context, report: Report, run: Prepared, artifact: Artifact, remember: Remember) -> None:
    """Each wave in turn; the first failure ends the run (rolled back with FLUX_CI_ROLLBACK)."""
    waves = [WaveRun(wave, run.only(wave.contexts)) for wave in ctx.settings.wave_plan]
    started: list[WaveRun] = []
    try:
        for number, wave in enumerate(waves, start=1):
            started.append(wave)
            ctx.progress.say(f"wave {number}/{len(waves)}: {wave.wave}")
            last = number == len(waves)
            _run_wave(ctx, report, wave, artifact, remember, soak_s=0.0 if last else ctx.settings.wave_soak)
    except FluxCIError as exc:
        started[-1].status = WaveStatus.FAILED
        _name_the_wave(exc, started[-1], waves)
        if isinstance(exc, ConsumerFailedError | DeadlineExceededError) and ctx.settings.rollback:
            _roll_back(ctx, report, run, artifact, started)
        raise
    except BaseException:  # a signal: the wave under way did not succeed
        started[-1].status = WaveStatus.FAILED
        raise
    finally:
        report.waves = [wave.outcome() for wave in waves]


def _run_wave(
    ctx: Context, report: Report, wave: WaveRun, artifact: Artifact, remember: Remember, *, soak_s: float
) -> None:
    """Move the wave's tag, then its clusters apply the digest; then the soak, if any."""
    tag = wave.wave.tag
    began = time.monotonic()
    wave.started_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    ours = replace(artifact, tags=(*artifact.tags, tag))  # what its sources must fetch, by which tags
    try:
        wave.recorded = [replace(move, after=artifact.digest) for move in remember([tag])]
        with ctx.progress.step("tag", f"{tag} -> {artifact.digest} (wave {tag})"):
            wave.run.registry.tag(artifact.repository, artifact.digest, (tag,))
        report.tag_moves += wave.recorded
        if report.artifact is not None:
            report.artifact = replace(report.artifact, tags=(*report.artifact.tags, tag))
        wave.run.each(ctx, lambda ready: settle(Settling.of(ready, wave.run.registry, ours)))
    finally:
        wave.seconds = round(time.monotonic() - began, 3)
    if soak_s:
        _soak(ctx, wave, ours, soak_s)
    if not ctx.runner.dry_run:  # a dry run deployed nothing: its waves never started for real
        wave.status = WaveStatus.SUCCEEDED


def _soak(ctx: Context, wave: WaveRun, ours: Artifact, seconds: float) -> None:
    """Every cluster of the wave soaks at once; one that fails ends the others' soak early (the wave
    failed already)."""
    ended = threading.Event()

    def one(ready: Ready) -> None:
        try:
            soak(Settling.of(ready, wave.run.registry, ours), seconds, ended=ended)
        except BaseException:
            ended.set()
            raise

    began = time.monotonic()
    try:
        wave.run.each(ctx, one)
    finally:
        wave.soak_s = round(time.monotonic() - began, 3)


def _name_the_wave(exc: FluxCIError, failed: WaveRun, waves: Sequence[WaveRun]) -> None:
    """The error says which wave failed, and which waves never started."""
    later = [wave.wave.tag for wave in waves if wave.status is WaveStatus.NOT_STARTED]
    lines = [f"wave {failed.wave.tag} ({', '.join(failed.wave.contexts)}) failed: {exc.message}"]
    if later:
        lines.append(f"waves not started (their tags did not move): {', '.join(later)}")
    exc.message = "\n".join(lines)
    exc.args = (exc.message,)


def _roll_back(
    ctx: Context, report: Report, run: Prepared, artifact: Artifact, started: list[WaveRun]
) -> None:
    """Every tag this run moved goes back, the last wave first; a wave that had succeeded and whose tag
    went back is `rolled_back` (the failed one stays `failed`: it names what went wrong)."""
    if ctx.runner.dry_run:
        return
    from flux_ci.delivery import rollback  # noqa: PLC0415 - after a failure only

    stages = [rollback.Stage(wave.run.ready, wave.recorded) for wave in reversed(started)]
    report.rollback = rollback.roll_back_in_turn(ctx, report, run.registry, artifact, stages)
    for wave in started:
        if wave.status is WaveStatus.SUCCEEDED and wave.wave.tag in report.rollback.tags:
            wave.status = WaveStatus.ROLLED_BACK
