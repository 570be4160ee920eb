"""The `cosign` CLI: sign a digest, prove a key pair's private key opens, report the version.

No secret is ever in cosign's argv: the key is read from the environment (`--key
env://COSIGN_PRIVATE_KEY`) and its password from COSIGN_PASSWORD, both given to the cosign child alone.
"""

from __future__ import annotations

KEY_REFERENCE = "env://COSIGN_PRIVATE_KEY"


def reference(repository: str, digest: str) -> str:
    """`oci://host/path` + digest → `host/path@sha256:...`: the digest, never a tag that may move."""
    return f"{repository.removeprefix('oci://')}@{digest or 'sha256:<digest>'}"


def sign_argv(ref: str, *, keyless: bool, tlog_upload: bool, insecure: bool) -> list[str]:
    argv = ["cosign", "sign", "--yes"]
    if not keyless:
        argv.append(f"--key={KEY_REFERENCE}")
        argv.append(f"--tlog-upload={'true' if tlog_upload else 'false'}")
    if insecure:
        argv.append("--allow-insecure-registry")
    return [*argv, ref]


def public_key_argv() -> list[str]:
    """`cosign public-key`: decrypts the private key with COSIGN_PASSWORD and prints its public key.
    Needs no network, so a wrong password is found before anything is pushed."""
    return ["cosign", "public-key", f"--key={KEY_REFERENCE}"]


def version_argv() -> list[str]:
    return ["cosign", "version"]


# How `cosign public-key` (2.6.5) says it cannot open the key, each on stderr with exit 1
# (tests/data/cosign/): `LoadPrivateKey` in sigstore/cosign v2 `pkg/cosign/keys.go` wraps
# go-securesystemslib's `encrypted: decryption failed`, which is all a wrong (or empty) password gives.
_WRONG_PASSWORD = "decrypt: encrypted: decryption failed"  # noqa: S105 - a message
_NOT_PEM = "invalid pem block"
_UNSUPPORTED_PEM = "unsupported pem type: "


def wrong_password(stderr: str) -> bool:
    """cosign could not decrypt the key: the password does not open it (or is empty)."""
    return _WRONG_PASSWORD in stderr


def unopened_key(stderr: str) -> str | None:
    """Why `cosign public-key` could not open the private key, in words that say what to fix (None:
    a failure these words do not know; cosign's own are then all there is)."""
    if wrong_password(stderr):
        return "COSIGN_PASSWORD does not open it (cosign: decryption failed)"
    if _NOT_PEM in stderr:
        return "it is not a PEM block (cosign: invalid pem block)"
    if (start := stderr.find(_UNSUPPORTED_PEM)) >= 0:
        kind = stderr[start + len(_UNSUPPORTED_PEM) :].splitlines()[0].strip()
        public = kind == "PUBLIC KEY"
        hint = ": that is the public key (cosign.pub), not the private one (cosign.key)" if public else ""
        return f"it holds a {kind} PEM block, not cosign's encrypted private key{hint}"
    return None
