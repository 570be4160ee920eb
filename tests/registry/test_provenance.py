"""What the registry knows of the digests a cluster ran, asked through a FakeRunner answering with real
oras output (a manifest with flux-ci's annotations, a repository's tags, a missing manifest)."""

from __future__ import annotations

import json

from flux_ci.context import Context
from flux_ci.registry.client import Registry
from flux_ci.registry.credentials import RegistryAuth
from flux_ci.registry.provenance import TAG_LIMIT, known, tags_to_resolve
from tests.fakes import FakeRunner, make_context
from tests.golden import text

REPOSITORY = "oci://127.0.0.1:5999/golden/history"
NAME = REPOSITORY.removeprefix("oci://")
SECOND = "sha256:03994248313acdcbae5b9bc903850bd37b84e24f9a2fd271d6fdf929010ac7e8"  # the manifest's
GONE = "sha256:" + "0" * 64
OTHER = "sha256:" + "9" * 64


def _registry(runner: FakeRunner) -> tuple[Context, Registry]:
    ctx = make_context(runner=runner, seconds=30)
    return ctx, Registry(ctx, RegistryAuth(None, plain_http=True))


def _answers(runner: FakeRunner, tags: dict[str, str]) -> None:
    runner.answer(["oras", "manifest", "fetch", f"{NAME}@{SECOND}"], stdout=text("oras/manifest-fetch.json"))
    runner.answer(
        ["oras", "manifest", "fetch", f"{NAME}@{GONE}"],
        stderr=text("oras/manifest-fetch-not-found.stderr"),
        exit_code=1,
    )
    runner.answer(["oras", "repo", "tags", NAME], stdout=text("oras/repo-tags.stdout"))
    for tag, digest in tags.items():
        runner.answer(["oras", "resolve", f"{NAME}:{tag}"], stdout=f"{digest}\n")


def test_each_digest_with_its_pushers_and_the_tags_pointing_at_it_now() -> None:
    runner = FakeRunner()
    _answers(runner, {"latest": SECOND, "c3": OTHER, "c2": SECOND, "c1": GONE})
    ctx, registry = _registry(runner)

    found = known(ctx, registry, REPOSITORY, {SECOND, GONE}, named_tags=["latest"])

    assert found.holds(SECOND) is True
    assert found.holds(GONE) is False  # deleted since: still listed, without a pusher
    assert found.holds(OTHER) is None  # never asked
    assert found.pushed_by(SECOND).pipeline_url == "https://gitlab.example/group/app/-/pipelines/102"
    assert not found.pushed_by(GONE)
    assert sorted(found.tags[SECOND]) == ["c2", "latest"]
    assert found.tags[GONE] == ["c1"]  # a tag may outlive its manifest's annotations (a stale tag)
    assert found.problems == []
    assert not runner.mutations()


def test_a_registry_refusal_is_a_problem_not_a_failure() -> None:
    runner = FakeRunner()
    runner.answer(["oras", "manifest", "fetch"], stderr=text("oras/login-wrong-password.stderr"), exit_code=1)
    ctx, registry = _registry(runner)

    found = known(ctx, registry, REPOSITORY, {SECOND}, named_tags=[])

    assert found.holds(SECOND) is None
    assert found.problems == [
        f"fetching the manifest {NAME}@{SECOND} failed: "
        "Error response from registry: unauthorized: authentication required"
    ]


def test_a_small_repository_has_every_tag_resolved() -> None:
    assert tags_to_resolve(["a", "b"], named=[], commits=[]) == ["a", "b"]


def test_a_large_repository_has_only_the_tags_that_can_name_the_digests_resolved() -> None:
    sha = "2" * 40
    everything = [f"build-{n}" for n in range(TAG_LIMIT)] + ["latest", "stable", sha[:8], sha[:6], "1" * 8]
    chosen = tags_to_resolve(everything, named=["latest", "missing"], commits=[f"main@sha1:{sha}"])
    assert chosen == ["latest", sha[:8]]  # a 6-character prefix is too short to be a commit's tag


def test_many_tags_are_a_bounded_check_and_say_so() -> None:
    runner = FakeRunner()
    tags = [f"t{n}" for n in range(TAG_LIMIT + 1)]
    runner.answer(["oras", "manifest", "fetch"], stdout=json.dumps({"annotations": {}}))
    runner.answer(["oras", "repo", "tags"], stdout="\n".join(["latest", *tags]) + "\n")
    runner.answer(["oras", "resolve", f"{NAME}:latest"], stdout=f"{SECOND}\n")
    ctx, registry = _registry(runner)

    found = known(ctx, registry, REPOSITORY, {SECOND}, named_tags=["latest"])

    assert found.tags == {SECOND: ["latest"]}
    assert [c for c in runner.commands() if c.startswith("oras resolve")] == [
        f"oras resolve {NAME}:latest --plain-http"
    ]
    assert found.problems == [
        f"{REPOSITORY} has {TAG_LIMIT + 2} tags: checked only 1 (the followed, moving and commit tags); "
        "others may name these digests too"
    ]
