"""Configuration checked once per command, before anything runs.

`Settings` checks each value's form; this module checks what a command needs on top: the variables
it cannot do without, registry credentials as a pair, the manifests on disk (there, readable, and
holding at least one Kubernetes object) and a writable dotenv path. `load` does both and raises one
`ConfigError` naming every variable to fix, before any tool runs (but the read-only version checks,
started first), so a configuration that would fail halfway never pushes anything. The flow can then
take the configuration as valid.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flux_ci.config.ci import RECEIVER_OIDC_TOKEN_VARIABLE
from flux_ci.config.manifests import FLUX_DEFAULT_IGNORES, ManifestError, Scan, scan
from flux_ci.config.names import Problem, config_message, missing_message, variable_name
from flux_ci.config.rollout import freeze, no_waves, wave_tags, waves
from flux_ci.config.settings import Settings
from flux_ci.config.signing import key_problem
from flux_ci.deadline import Fitted
from flux_ci.errors import ConfigError


@dataclass(frozen=True)
class PushPlan:
    """What a push needs, all present."""

    repository: str
    tag: str
    source: str
    revision: str
    tags: tuple[str, ...]  # the immutable tag first, then the moving ones, without repeats
    manifests: Scan  # what the artifact holds


@dataclass(frozen=True)
class Plan:
    """A command's configuration, checked: its settings and, for a command that packages
    FLUX_CI_PATH, what the artifact will hold (read once, pushed as it was checked)."""

    settings: Settings
    manifests: Scan | None = None


def load(command: str, overrides: Mapping[str, Any] | None = None) -> Plan:
    """The plan for command, or one `ConfigError` naming every problem (values and needs)."""
    settings, problems = Settings.load_partial(**(overrides or {}))
    broken = {field for field, _ in problems}
    needs = [message for field, message in _problems(settings, command) if field not in broken]
    manifests = None
    if command in _PACKAGES and not broken & {"path", "ignore_paths"}:
        manifests, found = inspect_manifests(settings)
        needs += [message for _, message in found]
    if problems or needs:
        raise ConfigError(config_message([message for _, message in problems] + needs))
    return Plan(settings, manifests)


def check(settings: Settings, command: str) -> None:
    """Raise one `ConfigError` listing everything command needs from settings and lacks."""
    problems = _problems(settings, command)
    if command in _PACKAGES:
        problems += inspect_manifests(settings)[1]
    if problems:
        raise ConfigError(config_message([message for _, message in problems]))


def pushed_tags(settings: Settings) -> list[str]:
    """The immutable tag first, then the moving ones, without repeats. With FLUX_CI_WAVES the push
    carries the immutable tag alone: each wave moves its own tag when its turn comes."""
    tags = [settings.tag] if settings.tag else []
    moving = [] if settings.waves else settings.extra_tags
    return list(dict.fromkeys([*tags, *moving]))


def moving_tags(settings: Settings) -> list[str]:
    """The tags a deploy or promotion moves: every wave's tag (FLUX_CI_WAVES), else every extra tag
    but the immutable one, which names one artifact for ever."""
    if settings.waves:
        return [wave.tag for wave in settings.wave_plan]
    return [tag for tag in settings.extra_tags if tag != settings.tag]


def describe(settings: Settings, command: str, deadline: Fitted | None = None) -> str:
    """One line of the effective configuration, printed as a command starts: what a reader of the
    job log needs to tell which cluster, repository, tags and objects this run is about, and which
    deadline applies (FLUX_CI_TIMEOUT, or the CI job's end)."""
    tags = pushed_tags(settings)
    contexts = settings.kube_contexts
    parts = [
        f"contexts {', '.join(map(str, contexts))}"
        if len(contexts) > 1
        else f"context {settings.kube_context or '(current)'}",
        f"repository {settings.repository or '(unset)'}",
        f"tags {', '.join(tags) or '(none)'}",
        deadline.describe() if deadline is not None else f"timeout {settings.timeout:g}s",
        f"notify {settings.notify_mode}",
        f"source {settings.ocirepository or 'every OCIRepository of the repository'}",
        "consumers "
        + (
            ", ".join(settings.wait_for)
            if settings.wait_for
            else "none"
            if settings.wait_for == []
            else "found"
        ),
    ]
    if settings.digest:
        parts.insert(3, f"digest {settings.digest}")
    if settings.sign != "none" and command in ("push", "deploy"):
        parts.append(f"signed with {settings.sign}")
    if settings.waves and command in ("deploy", "promote"):
        soak = f", each soaked {settings.wave_soak:g}s before the next" if settings.wave_soak else ""
        parts[0] = f"waves {'; '.join(map(str, settings.wave_plan))}{soak}"
    if settings.rollback and command in ("deploy", "promote"):
        parts.append(f"rollback on failure within {settings.rollback_timeout:g}s")
    return f"flux-ci {command}: " + "; ".join(parts)


def push_plan(settings: Settings, manifests: Scan | None = None) -> PushPlan:
    """What to push: the checked plan's manifests, else FLUX_CI_PATH read now (a `ConfigError`
    for a missing value, or manifests that cannot be pushed)."""
    settings.require("repository", "tag", "source", "revision")  # every missing one, at once
    repository, tag = settings.required("repository"), settings.required("tag")
    source, revision = settings.required("source"), settings.required("revision")
    if manifests is None:
        manifests, problems = inspect_manifests(settings)
        if problems or manifests is None:
            raise ConfigError(config_message([message for _, message in problems]))
    return PushPlan(repository, tag, source, revision, tuple(pushed_tags(settings)), manifests)


def ignore_patterns(settings: Settings) -> tuple[str, ...]:
    """FLUX_CI_IGNORE_PATHS, else flux's own default list (setting the flag replaces it)."""
    return tuple(settings.ignore_paths) if settings.ignore_paths is not None else FLUX_DEFAULT_IGNORES


def _problems(settings: Settings, command: str) -> list[Problem]:
    if command not in _NEEDS:
        msg = f"no configuration checks for command {command!r}"
        raise ValueError(msg)
    return [problem for need in _NEEDS[command] for problem in need(settings)]


# --- what each command needs ---------------------------------------------------------------------


def _push_inputs(settings: Settings) -> list[Problem]:
    return _required(settings, "repository", "tag", "source", "revision")


def _digest(settings: Settings) -> list[Problem]:
    return _required(settings, "digest")


def _sources(settings: Settings) -> list[Problem]:
    """The OCIRepositories are found by FLUX_CI_REPOSITORY or named in FLUX_CI_OCIREPOSITORY."""
    if settings.repository is not None or settings.ocirepository is not None:
        return []
    return [("repository", f"{missing_message('repository')}, and neither is FLUX_CI_OCIREPOSITORY")]


def _wait_sources(settings: Settings) -> list[Problem]:
    # The consumers FLUX_CI_WAIT_FOR names lead to their sources (`wait` finds them by those).
    return [] if settings.wait_for else _sources(settings)


def _credentials(settings: Settings) -> list[Problem]:
    """Both or neither: a user alone would push anonymously without saying so."""
    user_set, password_set = settings.registry_user is not None, settings.registry_password is not None
    if user_set == password_set:
        return []
    missing, given = (
        ("registry_password", "registry_user") if user_set else ("registry_user", "registry_password")
    )
    message = (
        f"{missing_message(missing)}, but {variable_name(given)} is: set both, "
        "or neither to push anonymously (or with your own Docker config)"
    )
    return [(missing, message)]


def _receiver(settings: Settings) -> list[Problem]:
    """FLUX_CI_NOTIFY=receiver (also implied by FLUX_CI_RECEIVER_URL or FLUX_CI_RECEIVER): where the
    webhook is, and the secret its type authenticates with."""
    if settings.notify_mode != "receiver":
        return []
    why = "(FLUX_CI_NOTIFY=receiver tells Flux through a Receiver webhook)"
    problems = [
        (name, f"{message} {why}") for name, message in _required(settings, "receiver_url", "receiver")
    ]
    kind = settings.receiver_type
    if kind != "generic-oidc" and settings.receiver_token is None:
        problems.append(("receiver_token", (
            f"FLUX_CI_RECEIVER_TOKEN is not set: a {kind} Receiver's webhook path"
            + (" and request signature" if kind == "generic-hmac" else "")
            + " derive from the token in its secretRef"
        )))  # fmt: skip
    if kind == "generic-oidc" and settings.receiver_token is not None:
        problems.append(("receiver_token", (
            "FLUX_CI_RECEIVER_TOKEN must not be set with FLUX_CI_RECEIVER_TYPE=generic-oidc: that "
            "Receiver has no secret, the CI job's OIDC token (FLUX_CI_RECEIVER_OIDC_TOKEN) authenticates"
        )))  # fmt: skip
    if kind == "generic-oidc" and settings.receiver_oidc_token is None:
        problems.append(("receiver_oidc_token", (
            f"FLUX_CI_RECEIVER_OIDC_TOKEN is not set (nor {RECEIVER_OIDC_TOKEN_VARIABLE}): a generic-oidc "
            "Receiver accepts the CI job's OIDC ID token (GitLab: `id_tokens:` in the job)"
        )))  # fmt: skip
    return problems


def _unverified(settings: Settings) -> list[Problem]:
    """FLUX_CI_VERIFY=false ends once the Receiver accepted the request: it needs one to call."""
    if settings.verify or settings.notify_mode == "receiver":
        return []
    message = (
        f"FLUX_CI_VERIFY=false needs FLUX_CI_NOTIFY=receiver (it is {settings.notify_mode}): without "
        "the cluster, only a Receiver webhook can tell Flux; to push alone, run `flux-ci push`"
    )
    return [("verify", message)]


def _verified(settings: Settings) -> list[Problem]:
    """`wait` does nothing but verify."""
    if settings.verify:
        return []
    return [("verify", "FLUX_CI_VERIFY=false: `flux-ci wait` only reads the cluster, unset it for this job")]


def _signing(settings: Settings) -> list[Problem]:
    """FLUX_CI_SIGN=cosign needs the private key (COSIGN_PRIVATE_KEY), checked before any push."""
    problem = key_problem(settings)
    return [] if problem is None else [("cosign_private_key", problem)]


def _promote_inputs(settings: Settings) -> list[Problem]:
    """What to promote (a digest, or the immutable tag naming it) and the moving tags to point at it."""
    problems = _required(settings, "repository")
    if settings.digest is None and settings.tag is None:
        problems.append(
            ("digest", f"{missing_message('digest')}, nor is FLUX_CI_TAG: name the artifact to promote")
        )
    if not moving_tags(settings):
        problems.append(("extra_tags", (
            "FLUX_CI_EXTRA_TAGS names no tag to move: list the environment's moving tags, such as stable "
            "(FLUX_CI_TAG is the artifact's own tag, and never moves)"
        )))  # fmt: skip
    return problems


def _clusters(settings: Settings) -> list[Problem]:
    """Several contexts: each cluster is asked through its own API, which only the annotation does."""
    if len(settings.kube_contexts) < 2 or settings.notify_mode == "annotate":
        return []
    named_by = "FLUX_CI_WAVES" if settings.waves else "FLUX_CI_KUBE_CONTEXT"
    message = (
        f"{named_by} names several clusters, and FLUX_CI_NOTIFY is {settings.notify_mode}: "
        "a Receiver URL reaches one cluster only; use FLUX_CI_NOTIFY=annotate (the default)"
    )
    return [("waves" if settings.waves else "kube_context", message)]


def _rollback(settings: Settings) -> list[Problem]:
    """Rolling back is waiting again: it needs the cluster."""
    if not settings.rollback or settings.verify:
        return []
    return [("rollback", "FLUX_CI_ROLLBACK=true needs the cluster, and FLUX_CI_VERIFY is false")]


def _required(settings: Settings, *fields: str) -> list[Problem]:
    return [(name, missing_message(name)) for name in fields if getattr(settings, name) is None]


def inspect_manifests(settings: Settings) -> tuple[Scan | None, list[Problem]]:
    """What FLUX_CI_PATH's artifact will hold, and why it cannot be pushed if it cannot: missing,
    unreadable, a link flux-ci will not follow, or no Kubernetes object (unless allowed)."""
    path = settings.path
    try:
        found = scan(path, ignore_patterns(settings))
    except FileNotFoundError:
        return None, [("path", f"FLUX_CI_PATH: {str(path)!r} does not exist")]
    except ManifestError as exc:
        return None, [("path", f"FLUX_CI_PATH: {exc.strerror}")]
    except OSError as exc:
        where = exc.filename or path
        return None, [("path", f"FLUX_CI_PATH: cannot read {str(where)!r}: {exc.strerror or exc}")]
    if found.objects or settings.allow_empty:
        return found, []
    links = f"; flux-ci followed the symlinks {', '.join(found.links)}" if found.links else ""
    message = (
        f"FLUX_CI_PATH: {str(path)!r} holds no Kubernetes object (no .yaml, .yml or .json file with a "
        f"top-level kind among the {found.files} file(s) the artifact would hold{links}): an empty "
        "artifact makes a Kustomization with prune: true delete everything it applied. Set "
        "FLUX_CI_ALLOW_EMPTY=true if that is what you want"
    )
    return found, [("path", message)]


def _dotenv(settings: Settings) -> list[Problem]:
    """Checked now, not found out after the deploy: the report is how later jobs learn the outcome."""
    path = settings.dotenv
    if path is None:
        return []
    try:
        reason = _unwritable(path)
    except OSError as exc:
        reason = f"cannot be checked: {exc.strerror or exc}"
    return [] if reason is None else [("dotenv", f"FLUX_CI_DOTENV: {str(path)!r} {reason}")]


def _unwritable(path: Path) -> str | None:
    """Why the dotenv report could not be written to path (None: it can). The file is not created."""
    directory = path.parent
    if path.is_dir():
        return "is a directory"
    if not directory.is_dir():
        return f"cannot be written: its directory {str(directory)!r} does not exist"
    if path.exists():
        return None if os.access(path, os.W_OK) else "is not writable"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"cannot be written: its directory {str(directory)!r} is not writable"
    return None


Need = Callable[[Settings], list[Problem]]
# The commands that package FLUX_CI_PATH: they check the manifests too (`inspect_manifests`).
_PACKAGES = frozenset({"push", "deploy", "diff"})
_PUSH: tuple[Need, ...] = (_push_inputs, _credentials, _signing, _dotenv, wave_tags)
# What moves the clusters: also refused during a deploy freeze.
_DELIVERS: tuple[Need, ...] = (freeze, _receiver, _unverified, _clusters, _rollback, waves)
_NEEDS: dict[str, tuple[Need, ...]] = {
    "push": _PUSH,
    "deploy": (*_PUSH, *_DELIVERS),
    "promote": (_promote_inputs, _credentials, _dotenv, wave_tags, *_DELIVERS),
    "reconcile": (_digest, _sources, _credentials, _dotenv, _receiver, _unverified, _clusters, no_waves),
    "wait": (_digest, _wait_sources, _credentials, _dotenv, _receiver, _verified, no_waves),
    "status": (_sources, _dotenv),
    "history": (_sources, _credentials, _dotenv),  # read-only: the registry too
    "diff": (_sources, _dotenv),  # read-only: no registry, no notification
    # doctor reports configuration problems as one of its checks (doctor.py), next to the others,
    # instead of stopping before them.
    "doctor": (),
}
