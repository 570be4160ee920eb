"""FakeCluster: a scripted stand-in for the Kubernetes API behind kubectl, for flow unit tests.

It is a fake, named as one: it answers the kubectl argv flux-ci sends (SelfSubjectAccessReview
batches, lists, gets, annotate, watches) from objects held in memory, and lets a test play the
controllers' part in `on_annotate`, which runs in a thread of its own once `kubectl annotate` has
returned, as a real controller answers after the request (tests/fakecontrollers.py replays what the
real controllers recorded). Like the API server, every write is one watch event, delivered in order
to every watch. The objects come from golden files of the real controllers; the real API server and
controllers are exercised in tests/e2e/.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from flux_ci.config.settings import Settings
from flux_ci.tools.kubectl import RECEIVERS, RECONCILE_ANNOTATION, RESOURCES
from flux_ci.tools.output import TraceOutput
from flux_ci.tools.runner import CommandResult
from tests import golden
from tests.fakecontrollers import in_background
from tests.fakes import Call, FakeRunner

Obj = dict[str, Any]
SOURCE = golden.obj("kubectl/ocirepository-ready.json")
KUSTOMIZATION = golden.obj("kubectl/kustomization-ready.json")
REPOSITORY = SOURCE["spec"]["url"]
PUSHED = json.loads(golden.text("flux/push-artifact.json"))["digest"]
OLD = "sha256:" + "1" * 64
KINDS = {resource: kind for kind, resource in RESOURCES.items()}
NO_HELM = 'error: the server doesn\'t have a resource type "helmreleases.helm.toolkit.fluxcd.io"\n'


class FakeCluster(FakeRunner):
    """A FakeRunner whose kubectl calls are answered by an in-memory cluster."""

    def __init__(self, objects: Sequence[Obj] = (), *, denied: Sequence[tuple[str, str, str]] = ()) -> None:
        super().__init__()
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.denied = set(denied)  # (verb, resource, namespace "" = cluster-wide)
        self.helm_installed = False
        self.on_annotate: Callable[[FakeCluster, Obj, str], None] = no_controller
        self.controllers: list[threading.Thread] = []  # the answers to requests, each in its thread
        self._changed = threading.Condition()
        self._events: list[tuple[tuple[str, str, str], Obj]] = []  # every write, in order
        self._closed = False
        for obj in objects:
            self.put(obj)

    # -- the cluster --------------------------------------------------------------------------

    def put(self, obj: Obj) -> None:
        """Write an object: its new state, and one watch event."""
        meta = obj["metadata"]
        key = (obj["kind"], meta["namespace"], meta["name"])
        with self._changed:
            self.objects[key] = obj
            self._events.append((key, copy.deepcopy(obj)))
            self._changed.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self, kind: str, namespace: str, name: str) -> Obj:
        return self.objects[(kind, namespace, name)]

    # -- kubectl ------------------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        stdin: SecretStr | str | None = None,
        env: Mapping[str, str | None] | None = None,
        mutating: bool = False,
        trace_output: TraceOutput | None = None,
    ) -> CommandResult:
        args = [a for a in argv if not a.startswith(("--context=", "--request-timeout="))]
        # A Receiver is read through a go-template: a test answers it (FakeRunner.answer), from
        # golden files of the real kubectl's output.
        canned = args[0] != "kubectl" or args[1] not in ("create", "get", "annotate") or args[2] == RECEIVERS
        if canned:
            return super().run(
                argv, timeout=timeout, stdin=stdin, env=env, mutating=mutating, trace_output=trace_output
            )
        skipped = mutating and self.dry_run
        feed = stdin.get_secret_value() if isinstance(stdin, SecretStr) else stdin
        self.calls.append(Call(tuple(argv), feed, dict(env or {}), mutating, skipped, trace_output, timeout))
        if skipped:
            return CommandResult(tuple(argv), 0, "", "", 0.0, dry_run=True)
        if args[1] == "create":
            return self._ok(argv, self._reviews(str(stdin)))
        if args[1] == "get" and args[2].startswith("--raw="):  # the liveness check: it answers
            return self._ok(argv, "ok")
        if args[1] == "annotate":
            return self._annotate(argv, args)
        return self._get(argv, args)

    def stream(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str | None] | None = None,
        trace_output: TraceOutput | None = None,
    ) -> Generator[str, None, None]:
        self.calls.append(
            Call(tuple(argv), None, dict(env or {}), trace_output=trace_output, timeout=timeout)
        )
        args = [a for a in argv if not a.startswith("--context=")]
        if args[2] == "events":  # this fake records no Events: the watch stays quiet until stopped
            with self._changed:
                while not self._closed:
                    self._changed.wait(timeout=0.05)
            return
        kind, namespace = KINDS[args[2]], _namespace(args)

        def wanted(key: tuple[str, str, str]) -> bool:
            return key[0] == kind and (namespace is None or key[1] == namespace)

        with self._changed:  # as kubectl's watch: the current objects first, then every write
            cursor = len(self._events)
            current = [copy.deepcopy(obj) for key, obj in sorted(self.objects.items()) if wanted(key)]
        for obj in current:
            yield from _pretty({"type": "ADDED", "object": obj})
        while not self._closed:
            with self._changed:
                events = self._events[cursor:]
                cursor += len(events)
                if not events and not self._closed:
                    self._changed.wait(timeout=0.05)
            for key, obj in events:
                if wanted(key):
                    yield from _pretty({"type": "MODIFIED", "object": obj})

    def stop_all(self) -> None:
        super().stop_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    # -- answers ------------------------------------------------------------------------------

    def _reviews(self, document: str) -> str:
        items = []
        for review in json.loads(document)["items"]:
            attributes = review["spec"]["resourceAttributes"]
            resource = f"{attributes['resource']}.{attributes['group']}"
            key = (attributes["verb"], resource, attributes.get("namespace", ""))
            items.append({**review, "status": {"allowed": key not in self.denied}})
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})

    def _get(self, argv: Sequence[str], args: list[str]) -> CommandResult:
        # As kubectl does: several resources (`a,b,c`) in one List; a kind the server lacks fails the
        # whole call before any request, a forbidden one fails it after listing the others.
        resources = args[2].split(",")
        if RESOURCES["HelmRelease"] in resources and not self.helm_installed:
            return CommandResult(tuple(argv), 1, "", NO_HELM, 0.01)
        namespace = _namespace(args)
        forbidden = [
            f'Error from server (Forbidden): {resource} is forbidden: User "ci" cannot list\n'
            for resource in resources
            if ("list", resource, namespace or "") in self.denied
        ]
        name = args[3] if len(args) > 3 and not args[3].startswith("-") else None
        if name is not None and not forbidden:
            found = self.objects.get((KINDS[resources[0]], namespace or "", name))
            if found is None:
                missing = f'Error from server (NotFound): {resources[0]} "{name}" not found\n'
                return CommandResult(tuple(argv), 1, "", missing, 0.01)
            return self._ok(argv, json.dumps(found))
        kinds = [
            KINDS[resource]
            for resource in resources
            if ("list", resource, namespace or "") not in self.denied
        ]
        items = [
            o for (k, ns, _), o in sorted(self.objects.items()) if k in kinds and namespace in (None, ns)
        ]
        listed = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        if forbidden:
            return CommandResult(
                tuple(argv), 1, listed if len(resources) > 1 else "", "".join(forbidden), 0.01
            )
        return self._ok(argv, listed)

    def _annotate(self, argv: Sequence[str], args: list[str]) -> CommandResult:
        kind, namespace = KINDS[args[2]], _namespace(args) or ""
        if ("patch", args[2], namespace) in self.denied:
            return CommandResult(
                tuple(argv), 1, "", f"Error from server (Forbidden): {args[2]} is forbidden\n", 0.01
            )
        token = args[-1].split("=", 1)[1]
        names = [a for a in args[3:] if not a.startswith("-") and "=" not in a]
        for name in names:
            requested = copy.deepcopy(self.objects[(kind, namespace, name)])
            requested.setdefault("metadata", {}).setdefault("annotations", {})[RECONCILE_ANNOTATION] = token
            self.put(requested)
            # The controller answers later, in its own time: never inside the request.
            self.controllers.append(in_background(self, self.on_annotate, requested, token))
        return self._ok(argv, "")

    @staticmethod
    def _ok(argv: Sequence[str], stdout: str) -> CommandResult:
        return CommandResult(tuple(argv), 0, stdout, "", 0.01)


def no_controller(cluster: FakeCluster, requested: Obj, token: str) -> None:
    """No controller runs: requests stay unanswered."""


def _namespace(args: list[str]) -> str | None:
    for arg in args:
        if arg.startswith("--namespace="):
            return arg.split("=", 1)[1]
    return None


def _pretty(document: Obj) -> list[str]:
    return [line + "\n" for line in json.dumps(document, indent=4).splitlines()]


# --- what the flow tests share -------------------------------------------------------------------


def source_at(digest: str = OLD, **spec: Any) -> Obj:
    """The golden OCIRepository holding `latest@<digest>`, with spec fields changed."""
    source = copy.deepcopy(SOURCE)
    source["status"]["artifact"]["revision"] = f"latest@{digest}"
    source["spec"].update(spec)
    return source


def kustomization_at(digest: str = OLD) -> Obj:
    """The golden Kustomization, Ready with `latest@<digest>` applied."""
    ks = copy.deepcopy(KUSTOMIZATION)
    ks["status"]["lastAppliedRevision"] = ks["status"]["lastAttemptedRevision"] = f"latest@{digest}"
    return ks


def answer_deploy_tools(runner: FakeRunner) -> None:
    """The flux and oras answers of a deploy, from golden files of the real tools' output."""
    runner.answer(["flux", "version"], stdout=golden.text("flux/version.json"))
    runner.answer(["oras", "version"], stdout=golden.text("oras/version.txt"))
    runner.answer(["kubectl", "version"], stdout=golden.text("kubectl/version.json"))
    runner.answer(["oras", "login"], stdout=golden.text("oras/login.stdout"))
    runner.answer(["flux", "push", "artifact"], stdout=golden.text("flux/push-artifact.json"))
    runner.answer(["oras", "tag"], stdout="Tagging [registry] x\nTagged latest\n")
    runner.answer(["oras", "resolve"], stdout=f"{PUSHED}\n")


def deploy_settings(manifests: Path, **overrides: Any) -> Settings:
    """Settings of a deploy to the golden source's repository, in its namespace."""
    values: dict[str, Any] = {
        "repository": REPOSITORY,
        "tag": "c1",
        "source": "https://git.example/app",
        "revision": "main@sha1:abc",
        "path": manifests,
        "registry_user": "alice",
        "registry_password": "registry-pass-123",
        "insecure_registry": True,
        "namespace": "golden",
        "timeout": 10,
    }
    return Settings(**{**values, **overrides})
