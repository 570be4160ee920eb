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


def wrong_password(stderr: str) -> bool:
    """cosign could not decrypt the key: `decrypt: encrypted: decryption failed` (a wrong password)."""
    text = stderr.lower()
    return "decrypt" in text or "password" in text
