"""The project's OCI registry for one command: log in once, push, tag, resolve, read annotations and
tags (each retried while the registry is unreachable, see `retry`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from flux_ci.context import Context
from flux_ci.errors import RegistryError
from flux_ci.registry.credentials import RegistryAuth, registry_login
from flux_ci.registry.retry import retrying
from flux_ci.tools import flux, oras
from flux_ci.tools.runner import CommandResult

T = TypeVar("T")


class Registry:
    """Registry operations for one command, sharing one private login."""

    def __init__(self, ctx: Context, auth: RegistryAuth) -> None:
        self._ctx = ctx
        self.auth = auth
        self._resolved: dict[str, str] = {}

    def push(self, argv: list[str]) -> str:
        """Run `flux push artifact` (argv built by the caller); returns the pushed digest."""
        # The push may take all the time left: a large artifact on a slow link needs it, and an
        # attempt cut short would only start over (its `--timeout` is the same, set by the caller).
        result = self._retry(
            "flux push artifact",
            lambda: self._run(argv, env=self.auth.flux_env(), mutating=True, timeout=self._ctx.timeout()),
        )
        if result.dry_run:
            return self._ctx.settings.digest or ""
        if not result.ok:
            raise flux.push_failure(result.stderr)
        return flux.parse_push_output(result.stdout).digest

    def tag(self, repository: str, digest: str, tags: tuple[str, ...]) -> None:
        """Point each tag at exactly `digest` (never at a moving tag, which may have moved on)."""
        reference = f"{repository.removeprefix('oci://')}@{digest or 'sha256:<digest>'}"
        argv = oras.tag_argv(reference, tags, self.auth.registry_config, plain_http=self.auth.plain_http)
        result = self._retry("oras tag", lambda: self._run(argv, mutating=True))
        if result.dry_run:
            return
        if not result.ok:
            raise oras.failure("tagging", result.stderr)
        missing = set(tags) - set(oras.parse_tagged(result.stdout))
        if missing:
            raise RegistryError(f"oras tag did not confirm the tags: {', '.join(sorted(missing))}")

    def resolve(self, repository: str, tag: str) -> str:
        """The digest `tag` points to now (asked afresh every time: it may move)."""
        reference = f"{repository.removeprefix('oci://')}:{tag}"
        argv = oras.resolve_argv(reference, self.auth.registry_config, plain_http=self.auth.plain_http)
        result = self._retry("oras resolve", lambda: self._run(argv))
        if not result.ok:
            raise oras.failure(f"resolving {reference}", result.stderr)
        return oras.parse_resolve(result.stdout)

    def lookup(self, repository: str, reference: str) -> str | None:
        """The digest of `reference` (a tag, or `@sha256:...`), or None if the registry holds none."""
        separator = "" if reference.startswith("@") else ":"
        full = f"{repository.removeprefix('oci://')}{separator}{reference}"
        argv = oras.resolve_argv(full, self.auth.registry_config, plain_http=self.auth.plain_http)
        return self._read("oras resolve", argv, oras.parse_resolve, f"resolving {full}")

    def annotations(self, repository: str, digest: str) -> dict[str, str] | None:
        """The annotations of the manifest `digest`, or None if the registry no longer holds it."""
        reference = f"{repository.removeprefix('oci://')}@{digest}"
        argv = oras.manifest_fetch_argv(reference, self.auth.registry_config, plain_http=self.auth.plain_http)
        what = f"fetching the manifest {reference}"
        return self._read("oras manifest fetch", argv, oras.parse_manifest_annotations, what)

    def tags(self, repository: str) -> list[str]:
        """Every tag of the repository ([] if nothing was ever pushed to it)."""
        name = repository.removeprefix("oci://")
        argv = oras.repo_tags_argv(name, self.auth.registry_config, plain_http=self.auth.plain_http)
        result = self._retry("oras repo tags", lambda: self._run(argv))
        if result.ok:
            return oras.parse_tags(result.stdout)
        if oras.repository_unknown(result.stderr):
            return []
        raise oras.failure(f"listing the tags of {name}", result.stderr)

    def using(self, ctx: Context) -> Registry:
        """The same login under another context (the rollback's own deadline)."""
        return Registry(ctx, self.auth)

    def _run(
        self,
        argv: list[str],
        *,
        env: dict[str, str | None] | None = None,
        mutating: bool = False,
        timeout: float | None = None,
    ) -> CommandResult:
        """One attempt. A small request (tag, resolve) gets its share of the time left
        (`Deadline.attempt`): one that hangs is cut and retried (`retry`) while time remains."""
        timeout = self._ctx.deadline.attempt() if timeout is None else timeout
        return self._ctx.runner.run(argv, timeout=timeout, env=env, mutating=mutating)

    def _read(self, what: str, argv: list[str], parse: Callable[[str], T], doing: str) -> T | None:
        """A read of something the registry may not hold: parsed, or None on oras's `not found`."""
        result = self._retry(what, lambda: self._run(argv))
        if result.ok:
            return parse(result.stdout)
        if oras.not_found(result.stderr):
            return None
        raise oras.failure(doing, result.stderr)

    def _retry(self, what: str, attempt: Callable[[], CommandResult]) -> CommandResult:
        return retrying(self._ctx, what, attempt)


@contextmanager
def open_registry(ctx: Context) -> Iterator[Registry]:
    """A logged-in registry for the command; the private credentials are removed on every exit."""
    with registry_login(ctx) as auth:
        yield Registry(ctx, auth)
