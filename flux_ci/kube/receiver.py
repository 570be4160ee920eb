"""FLUX_CI_NOTIFY=receiver: one POST to a notification-controller Receiver webhook, which writes the
reconcile annotation on the resources the Receiver names (flux-ci needs no write access).

Why an HTTP call here and not `flux trigger receiver`: flux2 v2.9.3 `cmd/flux/trigger_receiver.go`
takes the Receiver token only as `--token` (flux binds no flag to an environment variable, and has
no token file or stdin), and a child's argv is readable by every process on the runner
(/proc/<pid>/cmdline). A secret never goes into argv. The request is small and fully specified by
that file, so flux-ci makes exactly the same request with the standard library:

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
request's token (`notify`).

Before anything is pushed, `receiver_preflight` checks that the request will be accepted, reading
the Receiver or asking the webhook a question that annotates nothing (`ask_for_body`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flux_ci import __version__
from flux_ci.context import Context
from flux_ci.errors import ClusterError
from flux_ci.report.models import Artifact, ObjectRef

if TYPE_CHECKING:
    import urllib.request

WEBHOOK_PATH = "/hook/"  # notification-controller api/v1 ReceiverWebhookPath
RETRYABLE_STATUSES = frozenset({404, 408, 429, 500, 502, 503, 504})  # flux's isRetryableStatus
NOT_FOUND_GRACE_S = 10.0
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 5.0)  # the last pause repeats until the deadline
_REQUEST_TIMEOUT_S = 30.0
_ANSWER_LIMIT = 300  # characters of the Receiver's answer quoted in an error
CONTINUE = 100  # the status of `100 Continue`: the server asks for the request's body


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
    masker = ctx.runner.masker
    ref, url = destination(ctx)
    token = masker.reveal(s.receiver_token) if s.receiver_token else ""
    oidc = masker.reveal(s.receiver_oidc_token) if s.receiver_oidc_token else ""
    body = payload(artifact)
    headers = {"Content-Type": "application/json", "User-Agent": f"flux-ci/{__version__}"}
    if s.receiver_type == "generic-hmac":
        headers["X-Signature"] = signature(token, body)
    elif s.receiver_type == "generic-oidc":
        headers["Authorization"] = f"Bearer {oidc}"
    return Webhook(ref, url, headers, body)


def destination(ctx: Context) -> tuple[ObjectRef, str]:
    """The Receiver and the URL of its webhook (the path registered with the masker: for a generic
    Receiver it is the secret)."""
    s = ctx.settings
    ref = s.receiver_ref()
    if ref is None or s.receiver_url is None:  # plan checked both; guard the invariant
        msg = "FLUX_CI_RECEIVER and FLUX_CI_RECEIVER_URL are needed to trigger a Receiver"
        raise ClusterError(msg)
    token = ctx.runner.masker.reveal(s.receiver_token) if s.receiver_token else ""
    path = webhook_path("" if s.receiver_type == "generic-oidc" else token, ref.name, ref.namespace)
    ctx.runner.masker.add(path.removeprefix(WEBHOOK_PATH))
    return ref, s.receiver_url + path


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
class Answer:
    status: int | None  # None: no HTTP answer (connection refused, reset, timed out)
    text: str  # `404 Not Found: <body>`, or the connection error


def _send(hook: Webhook, timeout: float) -> Answer:
    import urllib.error  # noqa: PLC0415 - see _opener
    import urllib.request  # noqa: PLC0415
    from http.client import HTTPException  # noqa: PLC0415

    request = urllib.request.Request(hook.url, data=hook.body, headers=hook.headers, method="POST")  # noqa: S310 - http(s) only (settings)
    try:
        with _opener().open(request, timeout=timeout) as response:
            return Answer(int(response.status), f"{response.status} {response.reason}")
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace").strip()
        where = f" (to {exc.headers.get('Location')})" if 300 <= exc.code < 400 else ""
        text = f"{exc.code} {exc.reason}{where}" + (f": {body[:_ANSWER_LIMIT]}" if body else "")
        return Answer(exc.code, text)
    except urllib.error.URLError as exc:
        return Answer(None, str(exc.reason))
    except (OSError, HTTPException) as exc:  # reset, timed out, a broken answer
        return Answer(None, f"{type(exc).__name__}: {exc}".rstrip(": "))


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
    ctx: Context, hook: Webhook, answer: Answer, shown: str, artifact: Artifact, *, gave_up: bool
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


# --- a question the webhook answers without acting on it ---------------------------------------


def ask_for_body(url: str, timeout: float) -> Answer:
    """POST with `Expect: 100-continue` and a Content-Length, but no body: a question the webhook
    answers without acting on it.

    notification-controller v1.9.2 (`internal/server/receiver_handlers.go`, `handlePayload`) finds
    the Receiver by the request's path (404 if none), refuses a suspended or not Ready one (503),
    and only then reads the body (`validate`), which is when Go's HTTP server sends `100 Continue`.
    flux-ci hangs up at that answer: the body never comes, reading it fails (`failed to read request
    body`, 400) before any annotation, whatever the Receiver's type. Any method would do as well
    for the path (the handler never looks at it), but a `generic` Receiver annotates on any request
    it reads to the end: only a request whose body never arrives is harmless for every type.
    """
    from http.client import HTTPConnection, HTTPException, HTTPSConnection  # noqa: PLC0415 - see _opener
    from urllib.parse import urlsplit  # noqa: PLC0415

    parts = urlsplit(url)
    connection_type = HTTPSConnection if parts.scheme == "https" else HTTPConnection
    connection = connection_type(parts.hostname or "", parts.port, timeout=timeout)
    headers = {"Content-Type": "application/json", "User-Agent": f"flux-ci/{__version__}",
               "Content-Length": "2", "Expect": "100-continue"}  # fmt: skip
    try:
        connection.putrequest("POST", parts.path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        if connection.sock is None:
            return Answer(None, "the connection closed")
        line = connection.sock.makefile("rb").readline(_ANSWER_LIMIT)
    except (OSError, HTTPException) as exc:  # refused, reset, timed out, TLS
        return Answer(None, f"{type(exc).__name__}: {exc}".rstrip(": "))
    finally:
        connection.close()
    return _status_line(line.decode(errors="replace"))


def _status_line(line: str) -> Answer:
    """`HTTP/1.1 100 Continue` → (100, `100 Continue`)."""
    version, _, rest = line.strip().partition(" ")
    code, _, _reason = rest.partition(" ")
    if not version.startswith("HTTP/") or not code.isdigit():
        return Answer(None, f"not an HTTP answer: {line.strip()[:80]!r}")
    return Answer(int(code), rest)
