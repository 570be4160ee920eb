"""Ports on 127.0.0.1 and the HTTP health probes of the components."""

from __future__ import annotations

import errno
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

LOOPBACK = "127.0.0.1"


class PortAllocator:
    """Hands out free loopback ports, never the same one twice in one sandbox.

    The kernel picks a free port when binding to port 0. The socket is closed again before the
    component binds it, so the set guards against the kernel handing the same port out twice.
    """

    def __init__(self, given: Iterable[int] = ()) -> None:
        # `given`: ports a running sandbox already uses, when a component joins it later.
        self._given: set[int] = set(given)

    @property
    def given(self) -> list[int]:
        return sorted(self._given)

    def take(self) -> int:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((LOOPBACK, 0))
                port = int(sock.getsockname()[1])
            if port not in self._given:
                self._given.add(port)
                return port
        raise RuntimeError("no free port on 127.0.0.1 after 100 attempts")


def port_is_free(port: int) -> bool:
    """Nothing listens on the port and a new listener could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        if probe.connect_ex((LOOPBACK, port)) != errno.ECONNREFUSED:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: connections left in TIME_WAIT do not make a port "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class HealthCheck:
    """An HTTP(S) GET that answers with one of `ok_statuses` once the component is ready."""

    url: str
    ok_statuses: tuple[int, ...] = (200,)
    ca_file: str | None = None
    token: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HealthCheck:
        return cls(
            url=data["url"],
            ok_statuses=tuple(data["ok_statuses"]),
            ca_file=data.get("ca_file"),
            token=data.get("token"),
        )


def http_status(check: HealthCheck, timeout: float = 2.0) -> int | None:
    """The HTTP status of one probe, or None when nothing answered."""
    request = urllib.request.Request(check.url)  # noqa: S310  (the URL is always ours, http(s) on loopback)
    if check.token:
        request.add_header("Authorization", f"Bearer {check.token}")
    try:
        # The API server writes its self-signed CA only once it runs: a missing file is "not yet".
        context = ssl.create_default_context(cafile=check.ca_file) if check.ca_file else None
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ValueError):
        return None


def probe(check: HealthCheck, timeout: float = 2.0) -> bool:
    return http_status(check, timeout) in check.ok_statuses
