"""The one owner of secrets: which variables hold them, how they are masked, what children inherit.

Which values are secret: the variables named in `_JOB_SECRETS` and `_CLOUD_SECRETS` (plus every
`CI_JOB_JWT*` and every `ACTIONS_*TOKEN*`), the registry password however it was given, and the
password of any URL carrying credentials (`scheme://user:password@host`).

Masking rule: masking must hide every secret without corrupting the output around it.

- A URL's userinfo is always replaced: `https://user:token@host` → `https://****@host`.
- A secret of at least 8 characters is replaced wherever it appears.
- A shorter secret (`ab12`, `flux`, `latest`) is replaced only where it stands as the value of
  something that names a secret, because anywhere else it is far more likely a namespace, a name or a
  tag that merely equals it (a report showing `****` for the namespace `ab12` is corrupt, and tells a
  reader the password besides). Such a place is:
  - right after a name ending in password, passwd, passphrase, pass, pwd, secret, token,
    credential(s), api key, private key, auth or authorization (any case, `_`/`-`/`.` before it),
    then `:` or `=` or blanks, quotes allowed around both: `FLUX_CI_REGISTRY_PASSWORD=ab12`,
    `--password ab12`, `"password": "ab12"`, `token: 'ab12'`;
  - right after `Bearer ` or `Basic ` (an Authorization header);
  - the whole value of a mapping key that names a secret in that way (`Masker.mask_tree`).
  There it is replaced as a whole token (not inside a longer word). Everywhere else it is left as
  it is: a short secret is weak anyway, and flux-ci never prints one itself (argv, stdin and the
  report never carry it).
- Digests (`sha256:<hex>`, `sha1:<hex>`) are never masked inside: they are content hashes, not
  secrets, and a hex secret matching part of one is coincidence.
- Each secret is also masked in the forms it leaks in: JSON- and repr-escaped, percent-encoded, and
  base64 (docker config files store `base64(user:password)`); a short secret's forms follow its rule.

Reports are masked value by value (`Masker.mask_tree`) *before* they are rendered:
replacing text in finished JSON would miss a secret that the encoder escaped.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Protocol, TypeVar, cast
from urllib.parse import quote, unquote

MASK = "****"
_T = TypeVar("_T")

# Below this length a secret is masked only where it is the value of a secret (see the docstring).
SHORT_SECRET_LENGTH = 8

# Tokens of the CI job and of flux-ci's own configuration: masked, and never given to a child. The
# one list of which variables hold secrets (`Settings.secret_fields` is derived from it): the masker
# and the children's environment are made before the settings are read.
_JOB_SECRETS = frozenset(
    {
        "FLUX_CI_REGISTRY_PASSWORD",
        "FLUX_CI_RECEIVER_TOKEN",
        "FLUX_CI_RECEIVER_OIDC_TOKEN",
        "FLUX_TRIGGER_RECEIVER_OIDC_TOKEN",  # flux's own variable for a generic-oidc Receiver's token
        "CI_JOB_TOKEN",
        "CI_REGISTRY_PASSWORD",
        "CI_DEPLOY_PASSWORD",
        "CI_DEPENDENCY_PROXY_PASSWORD",
        "GITHUB_TOKEN",
        "COSIGN_PASSWORD",
        "COSIGN_PRIVATE_KEY",
    }
)
_JOB_SECRET_PATTERN = re.compile(r"^(?:CI_JOB_JWT\w*|ACTIONS_\w*TOKEN\w*)$")
# Cloud credentials: forwarded to children (see `_FORWARDED_PREFIXES`) because that is how kubectl's
# and flux's cloud logins work, but masked in everything flux-ci prints.
_CLOUD_SECRETS = frozenset(
    {"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD"}
)
# Variables flux-ci reads as URLs even without a scheme (`host/path`), so their userinfo is found too.
_URL_VARIABLES = ("FLUX_CI_REPOSITORY", "FLUX_CI_SOURCE")

# What children inherit: an allowlist, never the job's environment minus a denylist, so a token the
# CI system adds tomorrow does not leak to flux, oras or kubectl (or to the plugins they start).
_FORWARDED = frozenset(
    {
        # The process basics: where programs and the home directory (~/.kube, ~/.docker) are.
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TMPDIR",
        "TERM",
        "TZ",
        "LANG",
        "LANGUAGE",
        # Go programs honour the proxy variables in both cases, and these CA bundle overrides.
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        # kubectl and flux: which cluster, its discovery cache, and in-cluster config when a runner
        # pod uses its service account instead of a kubeconfig.
        "KUBECONFIG",
        "KUBECACHEDIR",
        "KUBERNETES_SERVICE_HOST",
        "KUBERNETES_SERVICE_PORT",
        "FLUX_SYSTEM_NAMESPACE",
        # Registry credentials the user set up themselves (flux reads DOCKER_CONFIG, oras also the
        # containers auth file) and oras's cache.
        "DOCKER_CONFIG",
        "REGISTRY_AUTH_FILE",
        "ORAS_CACHE",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
        # Google's credentials file, for `flux --provider gcp` and gke-gcloud-auth-plugin.
        "GOOGLE_APPLICATION_CREDENTIALS",
    }
)
# LC_* is the locale. AWS_* and AZURE_* are how the cloud logins authenticate: `flux --provider`
# and the exec plugins a kubeconfig names (aws eks get-token, kubelogin) read them from the
# environment, so a job using them needs them forwarded.
_FORWARDED_PREFIXES = ("LC_", "AWS_", "AZURE_")

# The userinfo of URLs in running text: greedy up to the authority's last `@`, as URL parsers read it.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/?#\"'<>]+)@")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# What may continue a token around a short secret: anything but whitespace, quotes and delimiters.
_WORD_CHAR = r"[^\s\"'`,;()\[\]{}<>=]"
# A name that says its value is a secret: it ends in one of these words, in any case, standing as a
# word of its own (`REGISTRY_PASSWORD`, `--password`, `registryToken`; not `author`, `bypass`).
_SECRET_WORD = (
    r"(?i:pass(?:word|wd|phrase)?|pwd|secret|token|credential|api[-_.]?key|private[-_.]?key|"  # noqa: S105 - names, not a secret
    r"auth(?:ori[sz]ation)?)(?i:s?)"
)
_SECRET_NAME = rf"(?:(?<![A-Za-z])|(?<=[a-z])(?=[A-Z])){_SECRET_WORD}(?![A-Za-z0-9])"
# Where a short secret can be a secret: the value after such a name, or after Bearer/Basic.
_SECRET_PLACE = rf"(?:{_SECRET_NAME}[\"']?\s*(?:[:=]\s*|\s+)[\"']?|(?<![A-Za-z])(?i:bearer|basic)\s+)"
_SECRET_KEY = re.compile(rf"^[\w.-]*?{_SECRET_NAME}$")
# Content hashes, left intact whatever secret they happen to contain.
_DIGEST = r"sha(?:256|384|512):[0-9a-fA-F]{64,128}|sha1:[0-9a-fA-F]{40}"


def is_secret_variable(name: str) -> bool:
    """Does this variable hold a secret? (Names are compared upper-cased, as pydantic reads them.)"""
    return _is_job_secret(name) or name.upper() in _CLOUD_SECRETS


def _is_job_secret(name: str) -> bool:
    upper = name.upper()
    return upper in _JOB_SECRETS or _JOB_SECRET_PATTERN.match(upper) is not None


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Every secret value in this environment: secret variables and credentials inside URLs."""
    values = [value for name, value in env.items() if is_secret_variable(name) and value.strip()]
    for name, value in env.items():
        values += url_credentials(value)
        if name.upper() in _URL_VARIABLES:
            values += _credentials_of(split_userinfo(value)[1])
    return list(dict.fromkeys(values))


def url_credentials(text: str) -> list[str]:
    """The secrets in the userinfo of every `scheme://userinfo@` URL in text."""
    found: list[str] = []
    for match in _URL_USERINFO.finditer(text):
        found += _credentials_of(match["userinfo"])
    return found


def _credentials_of(userinfo: str | None) -> list[str]:
    if not userinfo:
        return []
    user, colon, password = userinfo.partition(":")
    # `user:password`: the password. A bare userinfo is a token when it is long (`https://<token>@`);
    # a short one is a user name such as `git`, and masking it would only mangle words.
    secret = password if colon else (user if len(user) >= SHORT_SECRET_LENGTH else "")
    return [value for value in dict.fromkeys([secret, unquote(secret)]) if value]


def split_userinfo(url: str) -> tuple[str, str | None, str]:
    """`scheme://user:pw@host/path` → (`scheme://`, `user:pw`, `host/path`); the scheme is optional."""
    scheme_match = _SCHEME.match(url)
    scheme = scheme_match.group(0) if scheme_match else ""
    rest = url[len(scheme) :]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" not in authority:
        return scheme, None, rest
    userinfo, _, _host = authority.rpartition("@")
    return scheme, userinfo, rest[len(userinfo) + 1 :]


def has_userinfo(url: str) -> bool:
    return split_userinfo(url)[1] is not None


def redact_url(url: str) -> str:
    """The URL with its userinfo (`user:password@`) replaced by `****@`."""
    scheme, userinfo, rest = split_userinfo(url)
    return url if userinfo is None else f"{scheme}{MASK}@{rest}"


def without_userinfo(url: str) -> str:
    """The URL with its userinfo removed: for defaults that must never carry a token."""
    scheme, _userinfo, rest = split_userinfo(url)
    return f"{scheme}{rest}"


def child_environment(env: Mapping[str, str]) -> dict[str, str]:
    """What flux, oras and kubectl inherit: the allowlisted variables, never a job secret's value."""
    job_secrets = [value for name, value in env.items() if _is_job_secret(name) and value.strip()]
    return {
        name: value
        for name, value in env.items()
        if _forwarded(name) and not any(_carries(value, secret) for secret in job_secrets)
    }


def _forwarded(name: str) -> bool:
    return name in _FORWARDED or name.startswith(_FORWARDED_PREFIXES)


def _carries(value: str, secret: str) -> bool:
    # A short secret may well be a substring of PATH by chance; only equality counts for those.
    return value == secret or (len(secret) >= SHORT_SECRET_LENGTH and secret in value)


class Secret(Protocol):
    """A secret value that says itself only when asked (pydantic's `SecretStr`)."""

    def get_secret_value(self) -> str: ...


class Masker:
    """Replaces every registered secret (and the forms it leaks in) with `****`; see the module
    docstring for where a short secret counts as one."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: set[str] = set()  # of secrets of SHORT_SECRET_LENGTH or more: masked anywhere
        self._short_forms: set[str] = set()  # of shorter secrets: masked where a secret stands
        self._patterns: tuple[re.Pattern[str] | None, re.Pattern[str] | None] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Register a secret; empty and all-blank values are ignored (they cannot be found)."""
        if secret is None or not secret.strip():
            return
        forms = self._forms if len(secret) >= SHORT_SECRET_LENGTH else self._short_forms
        forms.update(_leak_forms(secret))
        self._patterns = None

    def reveal(self, secret: Secret) -> str:
        """The secret's value, registered first: the one way flux-ci takes a secret out, so none is
        ever in hand without the masker knowing it."""
        value = secret.get_secret_value()
        self.add(value)
        return value

    def add_login(self, user: str, password: str) -> None:
        """Register the `user:password` pair in the base64 form docker config files use."""
        self.add(password)
        self.add(base64.b64encode(f"{user}:{password}".encode()).decode())

    def mask(self, text: str) -> str:
        text = _URL_USERINFO.sub(rf"\g<scheme>{MASK}@", text)
        anywhere, in_place = self._compiled()
        if anywhere is not None:
            text = anywhere.sub(lambda match: match.group(0) if match.lastgroup == "digest" else MASK, text)
        if in_place is not None:
            text = in_place.sub(lambda match: match["place"] + MASK, text)
        return text

    def mask_tree(self, value: _T) -> _T:
        """A copy of value with every string inside it masked: through dicts, lists, tuples and
        dataclasses; numbers, booleans, None and enum members are left as they are."""
        return cast(_T, self._mask_any(value))  # the same shape as value, by construction

    def _mask_any(self, value: object) -> object:
        if isinstance(value, Enum):  # our own vocabulary (a StrEnum is a str too): never a secret
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict | list | tuple):
            return self._mask_container(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = {
                f.name: self._mask_any(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init
            }
            return dataclasses.replace(value, **changes)
        return value

    def _mask_container(self, value: dict[object, object] | list[object] | tuple[object, ...]) -> object:
        if isinstance(value, dict):
            return {key: self._mask_value_of(key, item) for key, item in value.items()}
        items = [self._mask_any(item) for item in value]
        if isinstance(value, list):
            return items
        make = getattr(value, "_make", None)  # a NamedTuple keeps its type
        return make(items) if make is not None else tuple(items)

    def _mask_value_of(self, key: object, item: object) -> object:
        """A mapping's value; under a key that names a secret, a short secret is the whole value."""
        masked = self._mask_any(item)
        if isinstance(masked, str) and isinstance(key, str) and _SECRET_KEY.match(key):
            return MASK if masked.strip() in self._short_forms else masked
        return masked

    def _compiled(self) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
        if self._patterns is None:
            self._patterns = (_anywhere_pattern(self._forms), _in_place_pattern(self._short_forms))
        return self._patterns


def _alternatives(forms: set[str]) -> str:
    # Longest first, so a secret that contains another is replaced whole.
    return "|".join(re.escape(form) for form in sorted(forms, key=lambda form: (-len(form), form)))


def _anywhere_pattern(forms: set[str]) -> re.Pattern[str] | None:
    if not forms:
        return None
    return re.compile(f"(?P<digest>{_DIGEST})|(?P<secret>{_alternatives(forms)})")


def _in_place_pattern(forms: set[str]) -> re.Pattern[str] | None:
    if not forms:
        return None
    secret = f"(?:{_alternatives(forms)})(?!{_WORD_CHAR})"
    return re.compile(f"(?P<place>{_SECRET_PLACE}){secret}")


def _leak_forms(secret: str) -> set[str]:
    """The secret as it is and as escapers and encoders write it."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        quote(secret, safe=""),
        base64.b64encode(secret.encode()).decode(),
    }
