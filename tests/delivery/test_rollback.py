"""Which tags a rollback moves back, decided against a registry answering like the real one."""

from __future__ import annotations

from flux_ci.delivery import rollback
from flux_ci.registry.client import Registry
from flux_ci.registry.credentials import RegistryAuth
from flux_ci.report.models import Artifact, TagMove
from tests.fakes import FakeRunner, make_context
from tests.golden import text

REPOSITORY = "oci://r.example/app"
FAILED = "sha256:" + "f" * 64
GOOD = "sha256:" + "1" * 64
OTHER = "sha256:" + "2" * 64


def _registry(points: dict[str, str | None]) -> tuple[Registry, FakeRunner]:
    """`oras resolve` answers where each tag points now (None: the registry's real 'not found')."""
    runner = FakeRunner()
    for tag, digest in points.items():
        prefix = ("oras", "resolve", f"r.example/app:{tag}")
        if digest is None:
            runner.answer(prefix, stderr=text("oras/resolve-not-found.stderr"), exit_code=1)
        else:
            runner.answer(prefix, stdout=f"{digest}\n")
    ctx = make_context(runner=runner, seconds=60)
    return Registry(ctx, RegistryAuth(None, plain_http=False)), runner


ARTIFACT = Artifact(REPOSITORY, ("c1", "latest", "main"), FAILED)


def test_remember_reads_each_tag_and_a_missing_tag_points_to_nothing() -> None:
    registry, _ = _registry({"latest": GOOD, "main": None})
    assert rollback.remember(registry, REPOSITORY, ["latest", "main"]) == [
        TagMove("latest", GOOD, ""),
        TagMove("main", "", ""),
    ]


def test_a_tag_still_on_the_failed_digest_goes_back_to_where_it_was() -> None:
    registry, _ = _registry({"latest": FAILED})
    planned = rollback.plan(registry, ARTIFACT, [TagMove("latest", GOOD, FAILED)])
    assert planned.moves == [TagMove("latest", FAILED, GOOD)]
    assert planned.notes == []


def test_a_tag_another_pipeline_moved_meanwhile_is_left_to_it() -> None:
    registry, _ = _registry({"latest": OTHER})
    planned = rollback.plan(registry, ARTIFACT, [TagMove("latest", GOOD, FAILED)])
    assert planned.moves == []
    assert planned.notes == [
        f"tag latest was moved by another pipeline (to {OTHER}) after this run moved it: not moved back"
    ]


def test_a_tag_without_an_earlier_digest_or_already_on_it_is_left_with_a_note() -> None:
    registry, runner = _registry({})
    planned = rollback.plan(
        registry, ARTIFACT, [TagMove("latest", "", FAILED), TagMove("main", FAILED, FAILED)]
    )
    assert planned.moves == []
    assert planned.notes == [
        "tag latest pointed to nothing before this run: left as it is",
        f"tag main already pointed to {FAILED} before this run",
    ]
    assert runner.calls == []  # decided without asking the registry


def test_tags_go_back_to_their_own_digests_one_tag_command_each() -> None:
    registry, runner = _registry({})
    moves = [TagMove("latest", FAILED, GOOD), TagMove("main", FAILED, OTHER), TagMove("edge", FAILED, GOOD)]
    assert rollback.targets(moves) == {GOOD: ("latest", "edge"), OTHER: ("main",)}
    runner.answer(("oras", "tag"), stdout="Tagged latest\nTagged edge\nTagged main\n")  # as oras prints
    rollback.move_back(registry, REPOSITORY, moves)
    tagged = [call.argv for call in runner.calls if call.argv[:2] == ("oras", "tag")]
    assert [argv[2] for argv in tagged] == [f"r.example/app@{GOOD}", f"r.example/app@{OTHER}"]
    assert all(call.mutating for call in runner.calls)


def test_a_tag_another_pipeline_deleted_is_left_to_it_too() -> None:
    registry, _ = _registry({"latest": None})
    planned = rollback.plan(registry, ARTIFACT, [TagMove("latest", GOOD, FAILED)])
    assert planned.moves == []
    assert planned.notes == [
        "tag latest was moved by another pipeline (to nothing) after this run moved it: not moved back"
    ]
