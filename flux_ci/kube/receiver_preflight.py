"""FLUX_CI_NOTIFY=receiver, before anything is pushed or any tag moved: will the Receiver accept
flux-ci's request? A wrong token, name, namespace or type is found here, exit 2 with nothing pushed,
not after the moving tag moved (exit 5, and Flux would still deploy the artifact at its interval).

Two ways to know, the first that can be had:

- read the Receiver (the identity may `get` it): its type, `spec.suspend`, its Ready condition and
  the start of `status.webhookPath`, which is exactly what notification-controller's handler goes by;
  compared with the path flux-ci derives from FLUX_CI_RECEIVER_TOKEN, the name and the namespace;
- else ask the webhook (`receiver.ask_for_body`): notification-controller asks for the request's
  body only once it found a Ready Receiver at that path (404 if none, 503 if suspended or not
  Ready), and flux-ci hangs up before sending it, so nothing is annotated. Its answer counts only if
  a path no Receiver has answers 404 (a proxy in front may ask every request for its body), and not
  through an HTTP proxy. When neither can tell, a progress note says the token is checked by the
  request itself.
"""

from __future__ import annotations

import secrets
import time

from flux_ci.context import Context
from flux_ci.errors import ConfigError
from flux_ci.kube.receiver import (
    BACKOFF_S,
    CONTINUE,
    NOT_FOUND_GRACE_S,
    WEBHOOK_PATH,
    Answer,
    ask_for_body,
    destination,
)
from flux_ci.report.models import ObjectRef
from flux_ci.tools import kubectl

_READ_TIMEOUT_S = 60.0
# notification-controller answers at once; a server that waits for the body instead (it ignores
# `Expect`) cannot tell, and is not waited for long.
_ASK_TIMEOUT_S = 5.0
TYPES = ("generic", "generic-hmac", "generic-oidc")  # what flux-ci can call


def preflight(ctx: Context, *, read: bool = True) -> None:
    """Before anything is pushed or any tag moved: the Receiver exists, is Ready and not suspended,
    is of FLUX_CI_RECEIVER_TYPE, and serves the webhook path flux-ci derives from the token, the name
    and the namespace; ConfigError (exit 2) naming what is wrong otherwise.

    With `read` (the command reads the cluster) and the right to `get` the Receiver, this is what
    flux-ci reads, exactly what notification-controller's handler looks at. Without that right (or
    without any cluster access), it asks the webhook itself, in a way that annotates nothing.
    """
    kind = ctx.settings.receiver_type
    ref, url = destination(ctx)
    shown = f"{kind} Receiver {ref.namespace}/{ref.name}"
    view = _read(ctx, ref) if read else None
    if view is None:
        _ask_webhook(ctx, shown, url)
        return
    problems = _problems(view, kind, url.removeprefix(ctx.settings.receiver_url or ""))
    if problems:
        raise ConfigError(
            f"the {shown} cannot accept flux-ci's request: {'; '.join(problems)}. Nothing was pushed"
        )
    ctx.progress.note(
        f"the {shown} is Ready and serves the webhook path flux-ci derives from {_source(kind)}"
    )


def _source(kind: str) -> str:
    """What a Receiver's webhook path is derived from (the token hashes as "" for generic-oidc)."""
    return (
        "its name and namespace"
        if kind == "generic-oidc"
        else "FLUX_CI_RECEIVER_TOKEN, its name and namespace"
    )


def _read(ctx: Context, ref: ObjectRef) -> kubectl.ReceiverView | None:
    """The Receiver as `kubectl get` shows it; None when this identity may not read it."""
    argv = kubectl.receiver_argv(ctx.settings.kube_context, ref.namespace, ref.name)
    result = ctx.runner.run(argv, timeout=ctx.timeout(_READ_TIMEOUT_S))
    if result.ok:
        return kubectl.parse_receiver(result.stdout)
    if kubectl.forbidden(result.stderr):
        ctx.progress.note(
            f"may not read Receiver {ref.namespace}/{ref.name} (get {kubectl.RECEIVERS} in namespace "
            f"{ref.namespace}): its webhook is asked instead"
        )
        return None
    if kubectl.missing_resource_type(result.stderr):
        raise ConfigError(
            f"FLUX_CI_RECEIVER names Receiver {ref.namespace}/{ref.name}, but this cluster has no Receiver "
            "kind (notification-controller is not installed). Nothing was pushed"
        )
    if "(NotFound)" in result.stderr:
        raise ConfigError(
            f"Receiver {ref.namespace}/{ref.name} does not exist (FLUX_CI_RECEIVER: [namespace/]name; "
            "the namespace defaults to FLUX_CI_NAMESPACE). Nothing was pushed"
        )
    raise kubectl.failure(f"reading Receiver {ref.namespace}/{ref.name}", result.stderr)


def _problems(view: kubectl.ReceiverView, kind: str, path: str) -> list[str]:
    """What keeps the Receiver from accepting flux-ci's request, in the words of what to fix."""
    problems = []
    if view.type != kind:
        fix = (
            f"set FLUX_CI_RECEIVER_TYPE={view.type}"
            if view.type in TYPES
            else f"flux-ci calls {', '.join(TYPES)}"
        )
        problems.append(f"it is of type {view.type}, not {kind} (FLUX_CI_RECEIVER_TYPE): {fix}")
    if view.suspended:
        problems.append("it is suspended (spec.suspend): notification-controller refuses every request")
    if view.ready != "True":
        why = (
            f"{view.reason}: {view.message}"
            if view.reason
            else "notification-controller has not reconciled it"
        )
        problems.append(f"it is not Ready ({why})")
    elif not view.path_start or not path.startswith(view.path_start):
        wrong = "" if kind == "generic-oidc" else ": the token is not the `token` of the Receiver's Secret"
        problems.append(
            f"its webhook path (status.webhookPath) is not the one derived from {_source(kind)}{wrong}"
        )
    return problems


def _ask_webhook(ctx: Context, shown: str, url: str) -> None:
    """Ask the webhook whether a Ready Receiver serves that path (`receiver.ask_for_body`); ConfigError when
    none does, a progress note when the answer cannot tell."""
    if _through_proxy(url):
        ctx.progress.note(
            f"the {shown} is reached through a proxy: the request itself will tell if it is there"
        )
        return
    answer = _ask_until_found(ctx, shown, url)
    if answer.status in (CONTINUE, 503):
        # Only notification-controller's own answers tell: a proxy in front may answer every path so.
        base = ctx.settings.receiver_url or ""
        control = ask_for_body(base + WEBHOOK_PATH + secrets.token_hex(32), _ask_timeout(ctx))
        if control.status == 404:
            if answer.status == CONTINUE:
                ctx.progress.note(
                    f"the {shown} is Ready at {url}: notification-controller asked for the request's body "
                    "(flux-ci hung up without sending one, so nothing was annotated)"
                )
                return
            raise ConfigError(
                f"the {shown} answered 503 Service Unavailable at {url}: it is suspended or not Ready, and "
                "refuses every request. Nothing was pushed"
            )
        answer = control
    ctx.progress.note(
        f"could not tell before the push whether the {shown} is at {url} (it answered {answer.text}); "
        "the token can only be checked by the request itself"
    )


def _ask_until_found(ctx: Context, shown: str, url: str) -> Answer:
    """The webhook's answer; a 404 is asked again for NOT_FOUND_GRACE_S (a Receiver just created is
    found a moment later), then it is ConfigError."""
    first_not_found: float | None = None
    attempt = 0
    while True:
        began = time.monotonic()
        answer = ask_for_body(url, _ask_timeout(ctx))
        if answer.status != 404:
            return answer
        first_not_found = first_not_found or began
        pause = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
        if began - first_not_found >= NOT_FOUND_GRACE_S or ctx.deadline.remaining <= pause:
            raise ConfigError(
                f"no Ready Receiver serves {url}: the {shown} answered {answer.text}. "
                "notification-controller finds a Receiver by that path, which it derives from the token, the "
                "name and the namespace: "
                "check FLUX_CI_RECEIVER_TOKEN, FLUX_CI_RECEIVER and FLUX_CI_RECEIVER_TYPE, and that the "
                "Receiver is Ready. Nothing was pushed"
            )
        ctx.pause(pause)
        attempt += 1


def _ask_timeout(ctx: Context) -> float:
    return min(_ASK_TIMEOUT_S, max(ctx.deadline.remaining, 0.1))


def _through_proxy(url: str) -> bool:
    """Would urllib send this request through a proxy (HTTP(S)_PROXY, not NO_PROXY)? A proxy's
    answers are its own, not notification-controller's."""
    import urllib.request  # noqa: PLC0415 - loaded only when a Receiver is called
    from urllib.parse import urlsplit  # noqa: PLC0415

    parts = urlsplit(url)
    return parts.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(
        parts.hostname or ""
    )
