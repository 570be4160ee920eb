"""The forms of flux-ci's values, checked as the settings are read: durations, booleans, lists, OCI
tags, digests and repositories, Kubernetes names and object references, URLs. Each check raises a
ValueError that says what is wrong (and never repeats a value that may hold a credential)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BeforeValidator
from pydantic_settings import NoDecode

from flux_ci.deadline import MAX_TIMEOUT_S, parse_duration
from flux_ci.report.models import ObjectRef
from flux_ci.secrets import has_userinfo

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
# Kubernetes names: a namespace is a DNS-1123 label, a Flux object's name a DNS-1123 subdomain.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# OCI references (distribution spec): host[:port], then lowercase path components.
_REGISTRY_HOST = re.compile(
    r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*)"
    r"(:[0-9]{1,5})?$"
)
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$")
_CONSUMER_KINDS = {"kustomization": "Kustomization", "helmrelease": "HelmRelease"}
_BOOLEANS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}
# A deadline under a second cannot run even one command; over a week is a typo (and overflows the
# timers the watches use when far larger).
_TIMEOUT_RANGE_S = (1.0, MAX_TIMEOUT_S)
CREDENTIALS_IN_URL = "contains credentials (user:password@)"


def comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def strict_bool(value: Any) -> Any:
    """Only the words people mean as booleans; `ture` or `enabled` is a mistake, not `false`."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOLEANS:
        return _BOOLEANS[value.strip().lower()]
    msg = f"{value!r} is not a boolean: use true/false, 1/0, yes/no or on/off"
    raise ValueError(msg)


def duration(value: Any) -> Any:
    seconds = parse_duration(value) if isinstance(value, str) else value
    low, high = _TIMEOUT_RANGE_S
    if isinstance(seconds, int | float) and not (math.isfinite(seconds) and low <= seconds <= high):
        msg = f"{value!r} must be a duration from 1s to 168h, such as 90s, 5m or 1h30m"
        raise ValueError(msg)
    return seconds


def soak(value: Any) -> Any:
    """A duration that may be 0 (no soak), else as long as a deadline may be."""
    seconds = parse_duration(value) if isinstance(value, str) else value
    _, high = _TIMEOUT_RANGE_S
    if isinstance(seconds, int | float) and not (math.isfinite(seconds) and 0 <= seconds <= high):
        msg = f"{value!r} must be 0 or a duration up to 168h, such as 30s, 5m or 1h"
        raise ValueError(msg)
    return seconds


CommaList = Annotated[list[str], NoDecode, BeforeValidator(comma_list)]
StrictBool = Annotated[bool, BeforeValidator(strict_bool)]
Duration = Annotated[float, BeforeValidator(duration)]
SoakDuration = Annotated[float, BeforeValidator(soak)]


@dataclass(frozen=True)
class Wave:
    """One wave of FLUX_CI_WAVES: the moving tag its clusters follow, and their kube contexts."""

    tag: str
    contexts: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.tag}={','.join(self.contexts)}"


def parse_waves(text: str) -> tuple[Wave, ...]:
    """`TAG=CONTEXT[,CONTEXT...];...` → the waves in order. A ValueError names every fault: a wave
    without `=`, a tag that is no OCI tag, an empty context, a tag or a context given twice (a
    cluster follows one wave's tag, and a wave's tag moves once)."""
    waves, problems = [], []
    for part in (item.strip() for item in text.split(";")):
        if not part:
            continue
        tag, equals, contexts = (piece.strip() for piece in part.partition("="))
        names = [name.strip() for name in contexts.split(",")]
        if not equals or not tag or not all(names):
            problems.append(f"{part!r} is not TAG=CONTEXT[,CONTEXT...]")
            continue
        if not _TAG.match(tag):
            problems.append(f"{tag!r} is not a valid OCI tag")
        waves.append(Wave(tag, tuple(names)))
    if not waves and not problems:
        problems.append("names no wave: write TAG=CONTEXT[,CONTEXT...] separated by ;")
    tags = [wave.tag for wave in waves]
    everywhere = [name for wave in waves for name in wave.contexts]
    problems += [f"tag {tag!r} is given to two waves" for tag in _twice(tags)]
    problems += [f"context {name!r} is in two waves (or twice in one)" for name in _twice(everywhere)]
    if problems:
        raise ValueError("; ".join(problems))
    return tuple(waves)


def _twice(items: list[str]) -> list[str]:
    return sorted({item for item in items if items.count(item) > 1})


def oci_repository(text: str) -> str:
    """`[oci://]host[:port]/path` → `oci://host[:port]/path`; a ValueError says what is wrong."""
    if has_userinfo(text):  # checked first, and the value is never repeated: it holds a password
        msg = f"{CREDENTIALS_IN_URL}: set FLUX_CI_REGISTRY_USER and FLUX_CI_REGISTRY_PASSWORD instead"
        raise ValueError(msg)
    address = text.removeprefix("oci://").rstrip("/")
    host, _, path = address.partition("/")
    if "://" in address or not host or not path:
        msg = f"{text!r} must be oci://<registry>/<path>"
        raise ValueError(msg)
    if "@" in path or ":" in path.rsplit("/", 1)[-1]:
        msg = f"{text!r} must not include a tag or digest (set FLUX_CI_TAG instead)"
        raise ValueError(msg)
    if not _REGISTRY_HOST.match(host):
        msg = f"{text!r}: {host!r} is not a registry host[:port]"
        raise ValueError(msg)
    for component in path.split("/"):
        if not _PATH_COMPONENT.match(component):
            msg = (
                f"{text!r}: path component {component!r} must be lowercase letters and digits, "
                "separated by one of . _ -"
            )
            raise ValueError(msg)
    return f"oci://{address}"


def receiver_url(text: str) -> str:
    """`http(s)://host[:port][/base path]`, without credentials, query or fragment; no trailing `/`."""
    if has_userinfo(text):  # checked first, and the value is never repeated: it may hold a password
        msg = f"{CREDENTIALS_IN_URL}: the Receiver authenticates with FLUX_CI_RECEIVER_TOKEN"
        raise ValueError(msg)
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = f"{text!r} must be http(s)://<host>[:<port>][/<base path>] (the Receiver webhook server)"
        raise ValueError(msg)
    if parts.query or parts.fragment or "/hook/" in f"{parts.path}/":
        msg = f"{text!r} must be the webhook server's base URL, without /hook/..., query or fragment"
        raise ValueError(msg)
    return text.strip().rstrip("/")


def check_tags(tags: list[str]) -> None:
    bad = [tag for tag in tags if not _TAG.match(tag)]
    if bad:
        listed = ", ".join(repr(tag) for tag in bad)
        msg = f"{listed}: not a valid OCI tag (letters, digits, _ . -, at most 128, not starting with . or -)"
        raise ValueError(msg)


def _in(text: str, part: str) -> str:
    """How a message names the faulty part: alone, or within the value it came from."""
    return repr(part) if part == text else f"{text!r}: {part!r}"


def check_namespace(namespace: str, text: str) -> None:
    if not _DNS_LABEL.match(namespace):
        msg = (
            f"{_in(text, namespace)} is not a valid namespace "
            "(lowercase letters, digits and -, at most 63, starting and ending with a letter or digit)"
        )
        raise ValueError(msg)


def check_name(name: str, text: str) -> None:
    if not _DNS_SUBDOMAIN.match(name):
        msg = (
            f"{_in(text, name)} is not a valid Kubernetes name "
            "(lowercase letters, digits, - and ., starting and ending with a letter or digit)"
        )
        raise ValueError(msg)


def parse_object_ref(text: str, default_namespace: str) -> ObjectRef:
    """Parse `Kind/namespace/name` or `Kind/name` (Kustomization or HelmRelease)."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        msg = f"{text!r} must be Kind/namespace/name or Kind/name, e.g. Kustomization/flux-system/apps"
        raise ValueError(msg)
    kind = _CONSUMER_KINDS.get(parts[0].lower())
    if kind is None:
        msg = f"{text!r}: kind must be Kustomization or HelmRelease"
        raise ValueError(msg)
    namespace = parts[1] if len(parts) == 3 else default_namespace
    check_namespace(namespace, text)
    check_name(parts[-1], text)
    return ObjectRef(kind, namespace, parts[-1])


# --- the settings' own rules (Settings' validators hand their values here) --------------------------


def source_url(value: str) -> str:
    # Only URLs with a scheme: `git@host:group/app` names a user, not a credential.
    if "://" in value and has_userinfo(value):
        msg = f"{CREDENTIALS_IN_URL}: the source annotation is public, give the URL without them"
        raise ValueError(msg)
    return value


def public_url(value: str) -> str:
    """A pipeline or job URL recorded on the artifact: its annotations are public."""
    if has_userinfo(value):
        msg = f"{CREDENTIALS_IN_URL}: the artifact's annotations are public, give the URL without them"
        raise ValueError(msg)
    return value


def extra_tags(value: list[str]) -> list[str]:
    """FLUX_CI_EXTRA_TAGS: valid tags, each once; `none` alone means none."""
    words = [tag.lower() for tag in value]
    if words == ["none"]:
        return []
    if "none" in words:
        msg = f"{','.join(value)!r}: none means no extra tags and must stand alone"
        raise ValueError(msg)
    if not value:
        msg = "is empty: list tags such as latest,main, or write none"
        raise ValueError(msg)
    check_tags(value)
    return list(dict.fromkeys(value))


def digest(value: str) -> str:
    if not DIGEST.match(value):
        msg = f"{value!r} is not a sha256:<64 hex> digest"
        raise ValueError(msg)
    return value


def choice(value: Any) -> Any:
    """One of a few words, whatever its case and surrounding blanks."""
    return value.strip().lower() if isinstance(value, str) else value


def wait_for(value: list[str]) -> list[str]:
    """FLUX_CI_WAIT_FOR: Kind/namespace/name items, every bad one named; `none` alone means none."""
    words = [item.lower() for item in value]
    if words == ["none"]:
        return []
    if "none" in words:
        msg = f"{','.join(value)!r}: none means wait for no consumer and must stand alone"
        raise ValueError(msg)
    if not value:
        msg = "is empty: list Kind/namespace/name items, or write none"
        raise ValueError(msg)
    errors = []
    for item in value:
        try:
            parse_object_ref(item, "flux-system")
        except ValueError as exc:
            errors.append(str(exc))
    if errors:
        raise ValueError("; ".join(errors))
    return value


def kube_contexts(value: str) -> str:
    """FLUX_CI_KUBE_CONTEXT: one name or several, comma-separated, none empty or twice."""
    names = [name.strip() for name in value.split(",")]
    if not all(names):
        msg = f"{value!r}: a comma-separated list of kube context names must not hold an empty name"
        raise ValueError(msg)
    if len(set(names)) != len(names):
        msg = f"{value!r} names a context twice"
        raise ValueError(msg)
    return ",".join(names)


def namespaced_name(value: str) -> str:
    """`[namespace/]name` (FLUX_CI_OCIREPOSITORY, FLUX_CI_RECEIVER)."""
    namespace, slash, name = value.rpartition("/")
    if value.count("/") > 1 or (slash and not namespace) or not name:
        msg = f"{value!r} must be [namespace/]name"
        raise ValueError(msg)
    if slash:
        check_namespace(namespace, value)
    check_name(name, value)
    return value
