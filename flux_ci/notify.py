"""How Flux learns that a new artifact exists (FLUX_CI_NOTIFY), when flux-ci may not write to the cluster.

- `annotate` (the default): flux-ci writes `reconcile.fluxcd.io/requestedAt` itself (`flow._request`,
  `kubectl annotate`); the identity needs `patch` on the sources.
- `receiver`: one POST to a notification-controller Receiver webhook, which writes that annotation
  on the resources the Receiver names. flux-ci needs no write access; with read access it then waits
  exactly as with `annotate`, and with FLUX_CI_VERIFY=false it reads nothing at all and ends with
  status `triggered` (`trigger_only`): nothing was verified.
- `none`: nothing is requested; source-controller fetches the tag at its `spec.interval`.

Why an HTTP call here and not `flux trigger receiver`: flux2 v2.9.3 `cmd/flux/trigger_receiver.go`
takes the Receiver token only as `--token` (flux binds no flag to an environment variable, and has
no token file or stdin), and a child's argv is readable by every process on the runner
(/proc/<pid>/cmdline). A secret never goes into argv (README, Security). The request is small and
fully specified by that file, so flux-ci makes exactly the same request with the standard library:

- URL: FLUX_CI_RECEIVER_URL + `/hook/` + hex(sha256(token + name + namespace)), which is
  `Receiver.GetWebhookPath` in github.com/fluxcd/notification-controller/api v1.9.2
  (`v1/receiver_types.go`); a generic-oidc Receiver has no secret, so its path hashes an empty token;
- POST with `Content-Type: application/json` and a JSON body (flux sends `{}`; flux-ci sends the
  artifact, which a Receiver's CEL `resourceFilter` may read as `req`);
- generic-hmac: `X-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with the token>`;
  generic-oidc: `Authorization: Bearer <the CI job's OIDC token>`;
- retried on connection errors and on 404, 408, 429, 500, 502, 503, 504 (`isRetryableStatus`),
  within the deadline; a 404 only for `NOT_FOUND_GRACE_S` (a Receiver is found by its path, so a
  404 that lasts means a wrong token, name or namespace, not a Receiver still starting).

For a `generic` Receiver the webhook path itself is the credential: it is masked like the token.

notification-controller answers 200 only after it has written `reconcile.fluxcd.io/requestedAt`
(`metav1.Now().String()`) on every resource the Receiver names (`internal/server/receiver_handlers.go`,
`annotate`; any failure there is a 500). source-controller echoes that value in
`status.lastHandledReconcileAt`, so flux-ci reads the value back from its watch and expects it as the
request's token: a failure after the request fails fast exactly as after its own annotation.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flux_ci import __version__
from flux_ci import fluxobjects as fo
from flux_ci.context import Context
from flux_ci.errors import ClusterError
from flux_ci.fluxobjects import Obj
from flux_ci.models import Artifact, ObjectRef, Report, Status
from flux_ci.tools.kubectl import RECONCILE_ANNOTATION

if TYPE_CHECKING:
    import urllib.request

WEBHOOK_PATH = "/hook/"  # notification-controller api/v1 ReceiverWebhookPath
RETRYABLE_STATUSES = frozenset({404, 408, 429, 500, 502, 503, 504})  # flux's isRetryableStatus
NOT_FOUND_GRACE_S = 10.0
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 5.0)  # the last pause repeats until the deadline
READ_BACK_S = 5.0  # the annotation is written before the 200: the watch shows it within moments
_REQUEST_TIMEOUT_S = 30.0
_ANSWER_LIMIT = 300  # characters of the Receiver's answer quoted in an error


def webhook_path(token: str, name: str, namespace: str) -> str:
    """`Receiver.GetWebhookPath(token)`: `/hook/` + hex(sha256(token + name + namespace))."""
    return WEBHOOK_PATH + hashlib.sha256(f"{token}{name}{namespace}".encode()).hexdigest()


def signature(token: str, body: bytes) -> str:
    """The X-Signature a generic-hmac Receiver checks: HMAC-SHA256 of the body, keyed with the token."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def payload(artifact: Artifact) -> bytes:
    """The request body: the artifact, as the JSON report names it."""
    return json.dumps(artifact.fields(), separators=(",", ":")).encode()


@dataclass(frozen=True)
class Webhook:
    """One Receiver call, ready to send (secrets inside: never printed, never in argv)."""

    receiver: ObjectRef
    url: str = field(repr=False)  # for a generic Receiver the path is the credential
    headers: dict[str, str] = field(repr=False)  # X-Signature, Authorization
    body: bytes = field(repr=False)


def webhook(ctx: Context, artifact: Artifact) -> Webhook:
    """The request `flux trigger receiver` would send, its secrets registered with the masker."""
    s = ctx.settings
    ref = s.receiver_ref()
    if ref is None or s.receiver_url is None:  # plan checked both; guard the invariant
        msg = "FLUX_CI_RECEIVER and FLUX_CI_RECEIVER_URL are needed to trigger a Receiver"
        raise ClusterError(msg)
    masker = ctx.runner.masker
    token = s.receiver_token.get_secret_value() if s.receiver_token else ""
    oidc = s.receiver_oidc_token.get_secret_value() if s.receiver_oidc_token else ""
    masker.add(token)
    masker.add(oidc)
    path = webhook_path("" if s.receiver_type == "generic-oidc" else token, ref.name, ref.namespace)
    masker.add(path.removeprefix(WEBHOOK_PATH))  # for a generic Receiver, the path is the secret
    body = payload(artifact)
    headers = {"Content-Type": "application/json", "User-Agent": f"flux-ci/{__version__}"}
    if s.receiver_type == "generic-hmac":
        headers["X-Signature"] = signature(token, body)
    elif s.receiver_type == "generic-oidc":
        headers["Authorization"] = f"Bearer {oidc}"
    return Webhook(ref, s.receiver_url + path, headers, body)


# --- the call ------------------------------------------------------------------------------------


@functools.cache
def _opener() -> urllib.request.OpenerDirector:
    """Built on first use: urllib (http.client, email) loads only when a Receiver is called."""
    import urllib.request  # noqa: PLC0415

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        """A redirect would turn the POST into a GET without its body: report it instead."""

        def redirect_request(self, *_args: object, **_kwargs: object) -> None:
            return None

    return urllib.request.build_opener(NoRedirect)


@dataclass(frozen=True)
class _Answer:
    status: int | None  # None: no HTTP answer (connection refused, reset, timed out)
    text: str  # `404 Not Found: <body>`, or the connection error


def _send(hook: Webhook, timeout: float) -> _Answer:
    import urllib.error  # noqa: PLC0415 - see _opener
    import urllib.request  # noqa: PLC0415
    from http.client import HTTPException  # noqa: PLC0415

    request = urllib.request.Request(hook.url, data=hook.body, headers=hook.headers, method="POST")  # noqa: S310 - http(s) only (settings)
    try:
        with _opener().open(request, timeout=timeout) as response:
            return _Answer(int(response.status), f"{response.status} {response.reason}")
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace").strip()
        where = f" (to {exc.headers.get('Location')})" if 300 <= exc.code < 400 else ""
        text = f"{exc.code} {exc.reason}{where}" + (f": {body[:_ANSWER_LIMIT]}" if body else "")
        return _Answer(exc.code, text)
    except urllib.error.URLError as exc:
        return _Answer(None, str(exc.reason))
    except (OSError, HTTPException) as exc:  # reset, timed out, a broken answer
        return _Answer(None, f"{type(exc).__name__}: {exc}".rstrip(": "))


def trigger(ctx: Context, artifact: Artifact) -> ObjectRef:
    """POST to the Receiver until it accepts (2xx); ClusterError (exit 5) when it refuses or stays
    unreachable. notification-controller has annotated every resource it names once it answers.
    Returns the Receiver called."""
    hook = webhook(ctx, artifact)
    shown = f"{ctx.settings.receiver_type} Receiver {hook.receiver.namespace}/{hook.receiver.name}"
    if ctx.runner.dry_run:
        ctx.progress.note(f"[dry-run] would trigger the {shown}: POST {hook.url}")
        return hook.receiver
    ctx.progress.note(f"triggering the {shown}: POST {hook.url}")
    first_not_found: float | None = None
    attempt = 0
    while True:
        began = time.monotonic()
        answer = _send(hook, min(_REQUEST_TIMEOUT_S, max(ctx.deadline.remaining, 0.1)))
        if answer.status is not None and 200 <= answer.status < 300:
            ctx.progress.note(f"the {shown} answered {answer.text} in {time.monotonic() - began:.2f}s")
            return hook.receiver
        if answer.status == 404:
            first_not_found = first_not_found or began
        retry = answer.status is None or answer.status in RETRYABLE_STATUSES
        if answer.status == 404 and began - (first_not_found or began) >= NOT_FOUND_GRACE_S:
            retry = False
        pause = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
        if not retry or ctx.deadline.remaining <= pause:
            raise _refused(ctx, hook, answer, shown, artifact, gave_up=retry)
        ctx.progress.note(f"the {shown} answered {answer.text}; retry in {pause:g}s")
        ctx.pause(pause)
        attempt += 1


def _refused(
    ctx: Context, hook: Webhook, answer: _Answer, shown: str, artifact: Artifact, *, gave_up: bool
) -> ClusterError:
    pushed = f"{artifact.url} is in the registry: Flux fetches it at the sources' own interval"
    if answer.status == 404:
        why = (
            "no Ready Receiver has that webhook path, which notification-controller derives from the "
            "token, the name and the namespace: check FLUX_CI_RECEIVER_TOKEN, FLUX_CI_RECEIVER "
            f"({hook.receiver.namespace}/{hook.receiver.name}) and FLUX_CI_RECEIVER_TYPE, and that "
            "the Receiver is Ready"
        )
        return ClusterError(f"the {shown} answered {answer.text} at {hook.url}: {why}. {pushed}")
    if gave_up:
        seconds = ctx.deadline.seconds
        message = f"the {shown} at {hook.url} was still unreachable at the deadline ({seconds:g}s): "
        return ClusterError(f"{message}{answer.text}. {pushed}", retryable=True)
    hint = {
        400: " (notification-controller could not validate the request: a wrong signature or OIDC token)",
        401: " (unauthorized)",
        403: " (forbidden)",
    }.get(answer.status or 0, "")
    return ClusterError(f"the {shown} refused the request at {hook.url}: {answer.text}{hint}. {pushed}")


def trigger_only(ctx: Context, report: Report, artifact: Artifact) -> None:
    """FLUX_CI_VERIFY=false: ask the Receiver and read nothing. Status `triggered`: nothing verified."""
    with ctx.progress.step("trigger", ctx.settings.receiver or ""):
        receiver = trigger(ctx, artifact)
    ctx.progress.skip("wait", "FLUX_CI_VERIFY=false: the cluster is not read, nothing is verified")
    report.status = Status.TRIGGERED
    report.notes.append(
        f"triggered: Receiver {receiver.namespace}/{receiver.name} accepted the request, so "
        "notification-controller asked Flux to reconcile what it names; the cluster was not read "
        "(FLUX_CI_VERIFY=false): whether Flux fetched and applied this digest was not verified"
    )


@contextmanager
def unverified_hint(ctx: Context) -> Iterator[None]:
    """In receiver mode, a cluster that cannot be read (no kubeconfig, no rights) names the way
    without it; it is never taken silently: exit 0 must not rest on a kubeconfig gone missing."""
    try:
        yield
    except ClusterError as exc:
        if ctx.settings.notify_mode == "receiver":
            exc.message += (
                ". Nothing was pushed. If this job may not read the cluster at all, "
                "FLUX_CI_VERIFY=false pushes and triggers the Receiver without verifying anything "
                "(status triggered)"
            )
            exc.args = (exc.message,)
        raise


# --- requests without patch ----------------------------------------------------------------------


@dataclass
class Notifier:
    """Tells Flux about what a step wants reconciled (FLUX_CI_NOTIFY receiver or none), and returns
    the reconcile token each object will echo in status.lastHandledReconcileAt (None: unknown)."""

    ctx: Context
    latest: Mapping[ObjectRef, Obj]  # the watches' latest view of every object
    artifact: Artifact
    # reconcile.fluxcd.io/requestedAt of every object just before the Receiver was called (None:
    # not called yet; it is called once per run, and names its resources itself).
    before: dict[ObjectRef, str] | None = None
    tokens: dict[ObjectRef, str] = field(default_factory=dict)

    def request(self, objects: Sequence[Obj], wanted: Callable[[Obj], bool]) -> dict[ObjectRef, str | None]:
        chosen = [obj for obj in objects if wanted(obj)]
        answer: dict[ObjectRef, str | None] = {fo.ref_of(obj): None for obj in objects}
        for obj in objects:
            if obj not in chosen and obj.get("kind") == "OCIRepository":
                self.ctx.progress.note(f"{fo.ref_of(obj)} already holds the digest: not requested again")
        if not chosen:
            return answer
        if self.ctx.settings.notify_mode == "none":
            for obj in chosen:
                self.ctx.progress.note(
                    f"{fo.ref_of(obj)}: not requested (FLUX_CI_NOTIFY=none): {_unrequested(obj)}"
                )
            return answer
        if self.before is None:
            self.before = {ref: _requested_at(obj) for ref, obj in dict(self.latest).items()}
            trigger(self.ctx, self.artifact)
        answer |= self._read_back([fo.ref_of(obj) for obj in chosen])
        return answer

    def _read_back(self, refs: list[ObjectRef]) -> dict[ObjectRef, str]:
        """The requestedAt notification-controller wrote on each object since the call, as the
        watches show it; an object the Receiver does not name keeps its old value."""
        before = self.before or {}
        until = time.monotonic() + min(READ_BACK_S, self.ctx.deadline.remaining)
        pending = [ref for ref in refs if ref not in self.tokens]
        while pending and not self.ctx.runner.dry_run:
            for ref in list(pending):
                value = _requested_at(self.latest.get(ref))
                if value and value != before.get(ref):
                    self.tokens[ref] = value
                    pending.remove(ref)
                    self.ctx.progress.note(f"{ref}: reconcile requested by the Receiver at {value}")
            if not pending or time.monotonic() >= until:
                break
            self.ctx.pause(0.05)
        for ref in pending:
            obj = self.latest.get(ref) or {}
            self.ctx.progress.note(
                f"{ref}: the Receiver did not ask Flux to reconcile it (is it in the Receiver's "
                f"spec.resources?); {_unrequested(obj)}"
            )
        return {ref: self.tokens[ref] for ref in refs if ref in self.tokens}


def _requested_at(obj: Obj | None) -> str:
    return str(((obj or {}).get("metadata", {}).get("annotations") or {}).get(RECONCILE_ANNOTATION, ""))


def _unrequested(obj: Obj) -> str:
    """What happens to an object nobody asked to reconcile."""
    interval = obj.get("spec", {}).get("interval") or "?"
    if obj.get("kind") == "OCIRepository":
        return f"source-controller fetches the tag at its interval, every {interval}"
    return (
        f"it is not asked to apply again: its controller retries every {interval}, and its current "
        "state for this digest decides"
    )
