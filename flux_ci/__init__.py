"""flux-ci: push manifests as an OCI artifact and wait until Flux has applied exactly that artifact."""

from __future__ import annotations

__version__ = "1.0.0"
