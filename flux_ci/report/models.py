"""Typed results: computed once by the commands, rendered once by `render`."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

SCHEMA_VERSION = 1


class Status(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SUPERSEDED = "superseded"  # another pipeline's artifact took this one's place (exit 9)
    # Pushed and the Receiver accepted the request; the cluster was not read (FLUX_CI_VERIFY=false):
    # nothing was verified. Exit 0, but never `succeeded`.
    TRIGGERED = "triggered"
    DRY_RUN = "dry-run"


class StepStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, order=True)
class ObjectRef:
    """A Flux object by kind, namespace and name, written `Kind/namespace/name`."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class DeadlineInfo:
    """The command's deadline in seconds, and where it came from: `timeout` (FLUX_CI_TIMEOUT) or
    `job` (the CI job's end, minus what the report, diagnostics and a rollback need after it)."""

    seconds: float
    source: str


@dataclass(frozen=True)
class Artifact:
    """The OCI artifact that was pushed (or, for `reconcile`/`wait` alone, expected)."""

    repository: str  # oci://host/path, as configured
    tags: tuple[str, ...]
    digest: str  # sha256:<hex> of the OCI manifest
    source: str = ""
    revision: str = ""
    # What it holds, as flux-ci packed it (None: not pushed by this run).
    files: int | None = None
    objects: int | None = None

    @property
    def url(self) -> str:
        return f"{self.repository}@{self.digest}"

    def fields(self) -> dict[str, str | list[str] | int | None]:
        """The artifact as the JSON report (and the Receiver request body) names it."""
        return {
            "url": self.url,
            "repository": self.repository,
            "tags": list(self.tags),
            "digest": self.digest,
            "source": self.source,
            "revision": self.revision,
            "files": self.files,
            "objects": self.objects,
        }


@dataclass(frozen=True)
class Provenance:
    """Who pushed an artifact, as its annotations say (flux-ci's io.flux-ci.* and flux's own)."""

    pipeline_url: str = ""
    job_url: str = ""
    user: str = ""
    pushed_at: str = ""  # when the pushing job started (or the artifact's creation, if not reproducible)
    source: str = ""  # org.opencontainers.image.source
    revision: str = ""  # org.opencontainers.image.revision: <branch>@sha1:<commit>

    def __bool__(self) -> bool:
        return any((self.pipeline_url, self.job_url, self.user, self.pushed_at))


@dataclass(frozen=True)
class SourceState:
    """What an OCIRepository reports, read from its status."""

    ref: ObjectRef
    url: str
    revision: str  # status.artifact.revision, e.g. latest@sha256:<hex>
    ready: str  # "True", "False" or "Unknown"
    message: str
    updated: str = ""  # status.artifact.lastUpdateTime or the Ready transition time
    state: str = ""  # flux-ci's verdict when last seen: done, waiting or failed ("" if not judged)
    follows: str = ""  # "tag latest", "semver >=1.0", "digest sha256:..."
    interval: str = ""  # spec.interval: when Flux would look again by itself
    cluster: str = ""  # its kube context, when FLUX_CI_KUBE_CONTEXT names several
    # Who pushed the artifact it holds now (status.artifact.metadata: the artifact's annotations).
    pushed_by: Provenance = field(default_factory=Provenance)


class Checks(StrEnum):
    """What a consumer's Ready covers."""

    HEALTH = "health"  # the applied workloads became ready (wait, health checks, Helm's wait)
    APPLY = "apply"  # only that the manifests were applied: nothing was waited for


@dataclass(frozen=True)
class ConsumerState:
    """What a Kustomization or HelmRelease reports, read from its status."""

    ref: ObjectRef
    revision: str  # lastAppliedRevision (HelmRelease: lastAttemptedRevision)
    ready: str
    message: str
    updated: str = ""
    state: str = ""  # flux-ci's verdict when last seen: done, waiting or failed ("" if not judged)
    cluster: str = ""  # its kube context, when FLUX_CI_KUBE_CONTEXT names several
    checks: Checks | None = None  # what its Ready covers, from its spec (None: not read)


@dataclass(frozen=True)
class HistoryEntry:
    """One entry of a consumer's own status.history, joined with what the registry knows of it."""

    consumer: ObjectRef
    revision: str  # the source revision applied: <tag>@sha256:<hex> (HelmRelease: its ociDigest)
    digest: str  # the OCI manifest digest in it ("" when the controller did not record one)
    status: str  # ReconciliationSucceeded, HealthCheckFailed, ... (HelmRelease: deployed, superseded, ...)
    first_applied: str
    last_applied: str
    origin_revision: str = ""  # the commit, as the controller recorded it (Kustomization)
    reconciliations: int = 0  # how many reconciliations ended so (Kustomization)
    chart: str = ""  # HelmRelease: <chart>@<version> and the release version
    tags: tuple[str, ...] = ()  # the tags pointing at the digest now
    pushed_by: Provenance = field(default_factory=Provenance)
    # The registry holds the digest (False: deleted or collected since; None: not known, see the notes).
    in_registry: bool | None = None
    cluster: str = ""  # its kube context, when FLUX_CI_KUBE_CONTEXT names several


@dataclass(frozen=True)
class Step:
    name: str
    status: StepStatus
    duration_s: float
    cluster: str = ""  # the kube context it ran against, when FLUX_CI_KUBE_CONTEXT names several


@dataclass(frozen=True)
class ErrorInfo:
    code: str
    message: str
    retryable: bool = False  # running the job again unchanged may succeed (registry/API hiccup)
    superseded_by: str = ""  # the digest that replaced ours on the followed tag (exit 9)


@dataclass(frozen=True)
class FailingObject:
    """An object a failing consumer applied that is not healthy, as far as the cluster says."""

    ref: ObjectRef  # Kind/namespace/name of the applied object (a Deployment, a ConfigMap, ...)
    status: str  # the health check's verdict and the object's own conditions
    events: tuple[str, ...] = ()  # its latest Warning events, newest first


@dataclass(frozen=True)
class Diagnostic:
    """Why one Kustomization or HelmRelease did not apply the artifact, and what happens next."""

    consumer: ObjectRef
    message: str  # its Ready (or Healthy) message
    retry: str  # what Flux does next by itself
    commands: tuple[str, ...]  # what to run for more
    events: tuple[str, ...] = ()  # the consumer's own latest Warning events, newest first
    objects: tuple[FailingObject, ...] = ()
    cluster: str = ""  # its kube context, when FLUX_CI_KUBE_CONTEXT names several


class ChangeKind(StrEnum):
    """What applying the manifests would do to one object (`flux diff kustomization`)."""

    CREATED = "created"
    DRIFTED = "drifted"  # exists and would be changed
    DELETED = "deleted"  # pruned: in the inventory, no longer in the manifests


@dataclass(frozen=True)
class Change:
    """One object `flux-ci diff` found would change, for one Kustomization."""

    kustomization: ObjectRef
    object: str  # Kind/namespace/name as flux prints it (Kind/name for cluster-scoped objects)
    change: ChangeKind
    diff: str = ""  # the diff body of a drifted object, cut to a bounded size
    cluster: str = ""  # its kube context, when FLUX_CI_KUBE_CONTEXT names several


class ClusterStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SUPERSEDED = "superseded"
    NOT_DEPLOYED = "not-deployed"  # ready, but another cluster's preflight failed: nothing was pushed
    DRY_RUN = "dry-run"


@dataclass(frozen=True)
class ClusterOutcome:
    """How one cluster ended, when FLUX_CI_KUBE_CONTEXT names several."""

    context: str
    status: ClusterStatus
    exit_code: int
    error: ErrorInfo | None = None


@dataclass(frozen=True)
class TagMove:
    """A moving tag this run pointed at its digest, and what it pointed to before ("" if nothing)."""

    tag: str
    before: str
    after: str


class RollbackStatus(StrEnum):
    ROLLED_BACK = "rolled_back"  # the tags point back, and every cluster runs that artifact again
    FAILED = "failed"  # the tags were moved back, but the clusters did not get back to it in time
    SKIPPED = "skipped"  # nothing to move back (no earlier digest, or another pipeline moved the tags)
    SUPERSEDED = "superseded"  # another pipeline moved the tags during the rollback


@dataclass(frozen=True)
class Rollback:
    """FLUX_CI_ROLLBACK=true after a failed deploy or promotion: what was moved back, how it ended."""

    status: RollbackStatus
    from_digest: str  # the digest that failed
    to_digest: str  # the digest the tags held before (the first tag's, if they differed)
    tags: tuple[str, ...]  # the tags moved back
    message: str
    duration_s: float = 0.0


class WaveStatus(StrEnum):
    SUCCEEDED = "succeeded"  # its tag points to the digest, its clusters applied it (and it soaked)
    FAILED = "failed"  # the wave that ended the run (FLUX_CI_WAVE_FAILED)
    NOT_STARTED = "not-started"  # an earlier wave failed: its tag never moved
    ROLLED_BACK = "rolled_back"  # it had succeeded; FLUX_CI_ROLLBACK put its tag back after a failure


@dataclass(frozen=True)
class WaveOutcome:
    """One wave of FLUX_CI_WAVES: its tag, its clusters and how it ended."""

    tag: str
    clusters: tuple[str, ...]
    status: WaveStatus
    started_at: str = ""  # when its tag moved, RFC 3339 UTC ("" if it never started)
    seconds: float = 0.0  # from moving its tag until its clusters applied the digest (or failed)
    soak_s: float = 0.0  # how long its consumers were then watched, healthy, before the next wave


@dataclass
class Report:
    """Everything one flux-ci command found out; the renderers turn it into table, JSON or dotenv."""

    command: str
    status: Status = Status.SUCCEEDED
    exit_code: int = 0
    artifact: Artifact | None = None
    sources: list[SourceState] = field(default_factory=list)
    consumers: list[ConsumerState] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    # What was searched and what could not be seen (namespaced RBAC), said in every output.
    scope: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: ErrorInfo | None = None
    # Why a consumer failed or was still awaited at the deadline (exit 7 or 8), from `delivery.settle`.
    diagnostics: list[Diagnostic] = field(default_factory=list)
    # `diff`: would applying the manifests change anything; `deploy`, `promote`: did a consumer apply
    # a digest it did not run before (None: not computed). `changes` (diff only): what.
    changed: bool | None = None
    changes: list[Change] = field(default_factory=list)
    # FLUX_CI_KUBE_CONTEXT with several contexts: each cluster's outcome (its rows carry `cluster`).
    clusters: list[ClusterOutcome] = field(default_factory=list)
    # deploy and promote: where each moving tag pointed before and after this run.
    tag_moves: list[TagMove] = field(default_factory=list)
    rollback: Rollback | None = None
    # `history`: each consumer's last entries, newest first.
    history: list[HistoryEntry] = field(default_factory=list)
    deadline: DeadlineInfo | None = None  # None: the command never got as far as its deadline
    # FLUX_CI_WAVES: every wave, in order, with how it ended.
    waves: list[WaveOutcome] = field(default_factory=list)

    def clusters_with(self, *statuses: ClusterStatus) -> str:
        """The contexts of the clusters that ended so, as a comma list (dotenv, action outputs)."""
        return ",".join(c.context for c in self.clusters if c.status in statuses)

    def waves_with(self, *statuses: WaveStatus) -> str:
        """The tags of the waves that ended so, as a comma list (dotenv, action outputs)."""
        return ",".join(wave.tag for wave in self.waves if wave.status in statuses)

    def immutable_tag(self) -> str:
        """The artifact's own tag: the first that this run did not move (a promotion of a bare digest
        has none; "" then)."""
        moved = {move.tag for move in self.tag_moves}
        tags = self.artifact.tags if self.artifact else ()
        return next((tag for tag in tags if tag not in moved), "")


@dataclass(frozen=True)
class Check:
    """One preflight check of `flux-ci doctor`."""

    name: str
    ok: bool
    detail: str
