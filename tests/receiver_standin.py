"""StandIn: a stand-in for notification-controller's receiver server, named as the fake it is: a real
local HTTP server that answers webhook requests as notification-controller v1.9.2's `handlePayload`
does (`internal/server/receiver_handlers.go`), and annotates objects in a FakeCluster. The real
notification-controller answers in tests/e2e/test_receiver.py and tests/e2e/test_trust_preflight.py.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from flux_ci.kube import receiver
from flux_ci.report.models import ObjectRef
from flux_ci.tools.kubectl import RECONCILE_ANNOTATION
from tests.fakecluster import FakeCluster

TOKEN = "receiver-token-1234"


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StandIn:
    """Answers POST /hook/<path> as notification-controller does: 404 for an unknown path, 400 for a
    bad signature or bearer, else annotates the Receiver's resources in `cluster` and answers 200.
    `script` answers the first requests with those statuses instead (503, 307, ...). A request that
    expects `100 Continue` is answered 404 at once for an unknown path, else asked for its body; one
    whose body never comes is refused (400) without annotating anything (`asked` records them)."""

    cluster: FakeCluster | None = None
    receivers: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # path → type, token, ns
    resources: list[ObjectRef] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)
    proxy: bool = False  # asks every request for its body, as a proxy in front may do
    url: str = ""

    def add(self, name: str, namespace: str, kind: str = "generic", token: str = TOKEN) -> None:
        path = receiver.webhook_path("" if kind == "generic-oidc" else token, name, namespace)
        self.receivers[path] = (kind, token, namespace)

    def serves(self, path: str) -> bool:
        return self.proxy or path.removeprefix("/base") in self.receivers  # served behind a base path

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        self.hits.append(Hit(path, headers, body))
        if self.script:
            return self.script.pop(0)
        found = self.receivers.get(path.removeprefix("/base"))
        if found is None:
            return 404
        kind, token, _ = found
        if kind == "generic-hmac" and headers.get("X-Signature") != receiver.signature(token, body):
            return 400
        if kind == "generic-oidc" and headers.get("Authorization") != "Bearer oidc.jwt.value":
            return 400
        for ref in self.resources:
            self._annotate(ref)
        return 200

    def _annotate(self, ref: ObjectRef) -> None:
        if self.cluster is None:
            return
        requested = self.cluster.get(ref.kind, ref.namespace, ref.name)
        token = f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S.%f} +0000 UTC m=+4.894838745"  # metav1.Now()
        requested.setdefault("metadata", {}).setdefault("annotations", {})[RECONCILE_ANNOTATION] = token
        self.cluster.put(copy.deepcopy(requested))
        self.cluster.on_annotate(self.cluster, requested, token)


@contextmanager
def serving(answering: StandIn) -> Iterator[StandIn]:
    """`answering` served on a free local port, behind the base path `/base`, until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # what `Expect: 100-continue` needs

        def handle_expect_100(self) -> bool:
            answering.asked.append(self.path)
            if answering.serves(self.path):
                return super().handle_expect_100()  # 100 Continue: the body is read next
            self._reply(404)
            return False

        def do_POST(self) -> None:
            self.close_connection = True
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if len(body) < length:  # the client hung up: refused before anything is annotated
                self._reply(400)
                return
            status = answering.answer(self.path, dict(self.headers.items()), body)
            self._reply(status)

        def _reply(self, status: int) -> None:
            try:
                self.send_response(status)
                if status == 307:
                    self.send_header("Location", "https://elsewhere.example/hook/x")
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:  # the client is gone
                self.close_connection = True

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    answering.url = f"http://127.0.0.1:{server.server_address[1]}/base"
    yield answering
    server.shutdown()
    server.server_close()
