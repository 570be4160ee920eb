"""How registry faults read, wherever they are reported: in the CLIs' stderr (flux, oras, cosign) and
in the status messages of source-controller's fetch (go-containerregistry's errors). One
classification for both: a transient fault (the registry unreachable or overloaded) is worth waiting
out; a refusal (401/403, wrong credentials) or anything else is not.
"""

from __future__ import annotations

import re

_TRANSIENT = re.compile(
    r"connection refused|connection reset|broken pipe|\bEOF\b|i/o timeout|TLS handshake timeout|"
    r"timeout awaiting response|temporary failure in name resolution|server misbehaving|"
    r"no route to host|network is unreachable|context deadline exceeded|Client\.Timeout|"
    r"\b(500|502|503|504)\b|Internal Server Error|Bad Gateway|Service Unavailable|Gateway Timeout|"
    r"\b429\b|TOOMANYREQUESTS|too many requests",
    re.IGNORECASE,
)
_REFUSED = re.compile(
    r"\b401\b|\b403\b|unauthori[sz]ed|denied|forbidden|authentication required", re.IGNORECASE
)


def transient(text: str) -> bool:
    """A failure worth retrying: the registry was unreachable or overloaded, not refusing us."""
    return bool(_TRANSIENT.search(text)) and not _REFUSED.search(text)
