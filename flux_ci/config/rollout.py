"""What progressive delivery needs, checked with the rest of a command's configuration (`plan`):
FLUX_CI_WAVES given alone (it names the moving tags and the clusters), a soak that fits in the one
deadline, and no deploy or promotion during a deploy freeze (GitLab's CI_DEPLOY_FREEZE)."""

from __future__ import annotations

from flux_ci.config.names import Problem
from flux_ci.config.settings import Settings


def wave_tags(settings: Settings) -> list[Problem]:
    """FLUX_CI_WAVES names every moving tag: FLUX_CI_EXTRA_TAGS beside it would be a second answer,
    and the immutable tag is never one of them."""
    if settings.waves is None:
        return []
    problems = []
    if "extra_tags" in settings.model_fields_set:
        problems.append(("extra_tags", (
            "FLUX_CI_WAVES and FLUX_CI_EXTRA_TAGS are both set: each wave names the moving tag its "
            "clusters follow (TAG=CONTEXT[,CONTEXT...]); unset FLUX_CI_EXTRA_TAGS"
        )))  # fmt: skip
    if settings.tag is not None and settings.tag in {wave.tag for wave in settings.wave_plan}:
        problems.append(("waves", (
            f"FLUX_CI_WAVES moves tag {settings.tag!r}, which is FLUX_CI_TAG: the artifact's own tag "
            "never moves; give each wave the moving tag its clusters follow"
        )))  # fmt: skip
    return problems


def waves(settings: Settings) -> list[Problem]:
    """FLUX_CI_WAVES names the clusters too (not FLUX_CI_KUBE_CONTEXT); a wave starts only once the
    previous one is verified, so it needs the clusters; every soak fits in the one deadline."""
    if settings.waves is None:
        if settings.wave_soak:
            message = "FLUX_CI_WAVE_SOAK is set without FLUX_CI_WAVES: it is the time between two waves"
            return [("wave_soak", message)]
        return []
    problems = []
    if settings.kube_context is not None:
        problems.append(("kube_context", (
            "FLUX_CI_WAVES and FLUX_CI_KUBE_CONTEXT (or KUBE_CONTEXT, its GitLab default) are both set: "
            "each wave names its clusters' kube contexts; unset FLUX_CI_KUBE_CONTEXT for this job"
        )))  # fmt: skip
    if not settings.verify:
        problems.append(("verify", (
            "FLUX_CI_WAVES needs the clusters: a wave starts once the previous one is verified, and "
            "FLUX_CI_VERIFY is false"
        )))  # fmt: skip
    soaked = len(settings.wave_plan) - 1
    if settings.wave_soak and settings.wave_soak * soaked >= settings.timeout:
        problems.append(("wave_soak", (
            f"FLUX_CI_WAVE_SOAK ({settings.wave_soak:g}s) after each of the first {soaked} wave(s) "
            f"takes {settings.wave_soak * soaked:g}s, not less than FLUX_CI_TIMEOUT "
            f"({settings.timeout:g}s): the one deadline covers every wave and every soak"
        )))  # fmt: skip
    return problems


def no_waves(settings: Settings) -> list[Problem]:
    """`reconcile` and `wait` move no tag, so there is no wave to take turns with."""
    if settings.waves is None:
        return []
    return [("waves", (
        "FLUX_CI_WAVES is for deploy and promote, which move each wave's tag in turn: reconcile and "
        "wait move no tag; name their clusters in FLUX_CI_KUBE_CONTEXT and the tag in FLUX_CI_EXTRA_TAGS "
        "(an empty FLUX_CI_WAVES counts as unset)"
    ))]  # fmt: skip


def freeze(settings: Settings) -> list[Problem]:
    """A deploy freeze (GitLab's CI_DEPLOY_FREEZE): nothing is pushed or moved while it lasts."""
    if not settings.deploy_freeze or settings.ignore_freeze:
        return []
    return [("deploy_freeze", (
        "a deploy freeze is on (CI_DEPLOY_FREEZE, or FLUX_CI_DEPLOY_FREEZE: the job runs inside one of "
        "the project's deploy freeze periods): deploy and promote change nothing during a freeze; set "
        "FLUX_CI_IGNORE_FREEZE=true to deploy anyway"
    ))]  # fmt: skip
