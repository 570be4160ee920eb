"""Faults between flux-ci (and source-controller) and the sandbox registry, for the fault tests.

    client ──▶ Toxiproxy (TCP: latency, resets, black holes) ──▶ FaultInjector (HTTP: scripted
    statuses) ──▶ docker-registry

(Toxiproxy first, so a reset or a black hole reaches the client's own connection.)

- `Toxiproxy` runs the real toxiproxy server (built by .ci/build-tools.sh) with one proxy in front of
  the registry, and adds or removes its toxics through its HTTP API: `latency`, `reset_peer` (a TCP
  RST), `timeout` with timeout 0 (a black hole: data is taken and never delivered), `bandwidth`.
- `FaultInjector` is an HTTP fault injector, a small proxy of our own: it cannot be done by a TCP proxy.
  It forwards every request to the next hop as it came (Host header included, so the registry's
  `Location` headers name the injector), except those a `Rule` scripts: those it answers itself
  with the rule's status and headers (503, 429 with `Retry-After`, 403), as an overloaded or
  refusing registry would. Every request is recorded (method, path, user agent, status).

Both listen on 127.0.0.1 only, and both stop with the test that started them.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.sandbox.net import LOOPBACK, PortAllocator
from tests.sandbox.procs import wait_until
from tests.sandbox.versions import tool_path

_HOP_BY_HOP = {
    "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection",
}  # fmt: skip


# --- Toxiproxy --------------------------------------------------------------------------------------


class Toxiproxy:
    """The real toxiproxy server, with one proxy `registry` from `listen` to `upstream`."""

    def __init__(self, upstream: str, log: Path) -> None:
        ports = PortAllocator()
        self.api = f"http://{LOOPBACK}:{ports.take()}"
        self.listen = f"{LOOPBACK}:{ports.take()}"
        self._log = log.open("w", encoding="utf-8")
        api_port = self.api.rsplit(":", 1)[1]
        self._process = subprocess.Popen(
            [str(tool_path("toxiproxy")), "-host", LOOPBACK, "-port", api_port],
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self._answers, timeout=30, what="toxiproxy's API")
        self._call("POST", "/proxies", {"name": "registry", "listen": self.listen, "upstream": upstream})

    def _answers(self) -> bool:
        try:
            return self._call("GET", "/version") is not None
        except OSError:
            return False

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.api}{path}", data=data, method=method)  # noqa: S310 - loopback
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
            text = answer.read().decode()
        return json.loads(text) if text.strip().startswith(("{", "[")) else text

    def add(self, name: str, kind: str, **attributes: int) -> None:
        """A toxic on the proxy's downstream (the answers), for every connection, open or new."""
        toxic = {"name": name, "type": kind, "stream": "downstream", "attributes": attributes}
        self._call("POST", "/proxies/registry/toxics", toxic)

    def remove(self, name: str) -> None:
        self._call("DELETE", f"/proxies/registry/toxics/{name}")

    @contextmanager
    def toxic(self, name: str, kind: str, **attributes: int) -> Iterator[None]:
        self.add(name, kind, **attributes)
        try:
            yield
        finally:
            self.remove(name)

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._log.close()


# --- the HTTP fault injector -------------------------------------------------------------------------


@dataclass
class Rule:
    """Answer `times` requests matching `method` and `path` (a regular expression), and `agent` (a
    part of the User-Agent) when given, with `status` and `headers` instead of forwarding them."""

    status: int
    method: str = ".*"
    path: str = ".*"
    agent: str = ""
    times: int = 1_000_000
    headers: dict[str, str] = field(default_factory=dict)
    answered: int = 0

    def matches(self, method: str, path: str, agent: str) -> bool:
        return (
            self.answered < self.times
            and re.fullmatch(self.method, method) is not None
            and re.search(self.path, path) is not None
            and self.agent in agent
        )


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    agent: str
    status: int
    scripted: bool


class FaultInjector:
    """An HTTP proxy on 127.0.0.1 to `upstream` (host:port) that answers scripted requests itself."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.rules: list[Rule] = []
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        injector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                injector.handle(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the hits are recorded instead."""

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self.address = f"{LOOPBACK}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-injector", daemon=True)
        self._thread.start()

    def script(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def answered(self, status: int) -> list[Hit]:
        with self._lock:
            return [hit for hit in self.hits if hit.scripted and hit.status == status]

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        agent = request.headers.get("User-Agent", "")
        body = _body(request)
        with self._lock:
            rule = next((r for r in self.rules if r.matches(request.command, request.path, agent)), None)
            if rule is not None:
                rule.answered += 1
        if rule is not None:
            self._record(Hit(request.command, request.path, agent, rule.status, scripted=True))
            text = json.dumps({"errors": [{"code": "FAULT", "message": f"scripted {rule.status}"}]}).encode()
            request.send_response(rule.status)
            for name, value in {**rule.headers, "Content-Type": "application/json"}.items():
                request.send_header(name, value)
            request.send_header("Content-Length", str(len(text)))
            request.end_headers()
            if request.command != "HEAD":
                request.wfile.write(text)
            return
        status = self._forward(request, body)
        self._record(Hit(request.command, request.path, agent, status, scripted=False))

    def _forward(self, request: BaseHTTPRequestHandler, body: bytes) -> int:
        host, _, port = self.upstream.rpartition(":")
        upstream = http.client.HTTPConnection(host, int(port), timeout=120)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            upstream.request(request.command, request.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            request.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    request.send_header(name, value)
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            if request.command != "HEAD":
                request.wfile.write(data)
            return answer.status
        except OSError:
            request.send_error(502, "the next hop did not answer")
            return 502
        finally:
            upstream.close()

    def _record(self, hit: Hit) -> None:
        with self._lock:
            self.hits.append(hit)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _body(request: BaseHTTPRequestHandler) -> bytes:
    """The request body, whether sent with a length or in chunks."""
    length = request.headers.get("Content-Length")
    if length is not None:
        return request.rfile.read(int(length))
    if request.headers.get("Transfer-Encoding", "").lower() != "chunked":
        return b""
    chunks: list[bytes] = []
    while True:
        size = int(request.rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            request.rfile.readline()  # the blank line after the last chunk (no trailers expected)
            return b"".join(chunks)
        chunks.append(request.rfile.read(size))
        request.rfile.readline()
