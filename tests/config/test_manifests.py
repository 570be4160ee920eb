"""What the artifact holds: flux's walk (regular files, symlinks resolved, --ignore-paths as go-git
matches them) and the Kubernetes objects in it. tests/e2e/test_manifests.py compares the walk with
the real `flux build artifact`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from flux_ci.config.manifests import FLUX_DEFAULT_IGNORES, ManifestError, scan

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n"


def _holds(path: Path, ignore: Sequence[str]) -> bool:
    return scan(path, ignore, env={}).objects > 0


@pytest.mark.parametrize(
    ("files", "found"),
    [
        ({"cm.yaml": CONFIGMAP}, True),
        ({"a.YML": "---\n# comment\n---\nkind: Namespace\n"}, True),
        ({"sub/dir/app.json": '{"apiVersion": "v1", "kind": "ConfigMap"}'}, True),
        ({"list.json": '[{"kind": "ConfigMap"}]'}, True),
        ({"json-in.yaml": '{"kind": "Secret", "apiVersion": "v1"}'}, True),
        ({"quoted.yaml": '"kind": ConfigMap\n'}, True),
        ({"empty.yaml": ""}, False),
        ({"nested.yaml": "data:\n  kind: ConfigMap\n"}, False),
        ({"blank-kind.yaml": "kind:\n  # nothing\n"}, False),
        ({"README.md": "kind: ConfigMap\n", "values.txt": "kind: x\n"}, False),
        ({"broken.json": '{"kind": '}, False),
        ({"nokind.json": '{"apiVersion": "v1"}'}, False),
        ({".git/objects.yaml": CONFIGMAP, ".gitignore": "*.tmp\n"}, False),
    ],
)
def test_what_counts_as_a_kubernetes_object(tmp_path: Path, files: dict[str, str], found: bool) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert _holds(tmp_path, FLUX_DEFAULT_IGNORES) is found


def test_a_single_manifest_file_is_a_valid_path(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(CONFIGMAP)
    (tmp_path / "notes.txt").write_text(CONFIGMAP)
    assert _holds(tmp_path / "app.yaml", ()) is True
    assert _holds(tmp_path / "notes.txt", ()) is False


def test_ignore_paths_replace_flux_defaults(manifests: Path) -> None:
    (manifests / "extra").mkdir()
    (manifests / "extra" / "x.yaml").write_text(CONFIGMAP)
    assert _holds(manifests, ["cm.yaml"]) is True
    assert _holds(manifests, ["*.yaml"]) is False
    assert _holds(manifests, ["/cm.yaml", "extra/"]) is False
    assert _holds(manifests, ["/cm.yaml", "!extra/"]) is True


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _listing(
    path: Path, ignore: Sequence[str] = FLUX_DEFAULT_IGNORES, checkout: Path | None = None
) -> list[str]:
    env = {"CI_PROJECT_DIR": str(checkout)} if checkout else {}
    return [entry.relative + ("/" if entry.is_dir else "") for entry in scan(path, ignore, env=env).entries]


def test_files_reached_through_symlinks_are_packed_as_their_targets(tmp_path: Path) -> None:
    base = _tree(tmp_path / "base", {"deployment.yaml": CONFIGMAP, "service.yaml": CONFIGMAP})
    app = tmp_path / "app"
    app.mkdir()
    (app / "base").symlink_to(base)  # a shared base, linked in (monorepos)
    (app / "cm.yaml").symlink_to(base / "deployment.yaml")
    found = scan(app, FLUX_DEFAULT_IGNORES, env={"CI_PROJECT_DIR": str(tmp_path)})
    assert [e.relative for e in found.entries] == [
        "base",
        "base/deployment.yaml",
        "base/service.yaml",
        "cm.yaml",
    ]
    assert (found.files, found.objects) == (3, 3)
    assert found.links == ("base", "cm.yaml")
    assert found.entries[1].source == (base / "deployment.yaml").resolve()


def test_an_artifact_of_symlinks_alone_is_not_empty(tmp_path: Path) -> None:
    # flux without --resolve-symlinks would push this as an empty artifact, and prune would then
    # delete everything the Kustomization had applied.
    base = _tree(tmp_path / "base", {"all.yaml": CONFIGMAP})
    app = tmp_path / "app"
    app.mkdir()
    (app / "all.yaml").symlink_to(base / "all.yaml")
    assert scan(app, (), env={"CI_PROJECT_DIR": str(tmp_path)}).objects == 1


def test_a_dangling_symlink_is_named(tmp_path: Path) -> None:
    app = _tree(tmp_path / "app", {"cm.yaml": CONFIGMAP})
    (app / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
    with pytest.raises(ManifestError, match=r"symlink gone.yaml points to .*nowhere.yaml.*does not exist"):
        scan(app, (), env={"CI_PROJECT_DIR": str(tmp_path)})


def test_a_symlink_out_of_the_checkout_is_refused(tmp_path: Path) -> None:
    checkout = _tree(tmp_path / "checkout", {"app/cm.yaml": CONFIGMAP})
    secret = _tree(tmp_path / "runner", {"config.json": '{"auths": {}}'})
    (checkout / "app" / "creds.json").symlink_to(secret / "config.json")
    with pytest.raises(ManifestError, match=r"symlink creds.json leads out of the checkout"):
        scan(checkout / "app", (), env={"CI_PROJECT_DIR": str(checkout)})
    # Without a CI checkout, the git work tree holding FLUX_CI_PATH is the boundary.
    (checkout / ".git").mkdir()
    with pytest.raises(ManifestError, match=r"leads out of the checkout"):
        scan(checkout / "app", (), env={})


def test_a_link_back_into_its_own_directory_is_a_cycle_left_empty(tmp_path: Path) -> None:
    app = _tree(tmp_path / "app", {"cm.yaml": CONFIGMAP})
    (app / "loop").symlink_to(app)
    assert _listing(app, (), checkout=tmp_path) == ["cm.yaml", "loop/"]


def test_two_links_to_one_directory_are_both_packed(tmp_path: Path) -> None:
    # fluxcd/flux2#5832: the cycle guard is per path being copied, not global.
    base = _tree(tmp_path / "base", {"cm.yaml": CONFIGMAP})
    app = tmp_path / "app"
    app.mkdir()
    (app / "a").symlink_to(base)
    (app / "b").symlink_to(base)
    assert _listing(app, (), checkout=tmp_path) == ["a/", "a/cm.yaml", "b/", "b/cm.yaml"]


def test_ignored_directories_keep_what_a_negation_re_includes(tmp_path: Path) -> None:
    app = _tree(tmp_path / "app", {"docs/a.md": "x", "docs/keep.yaml": CONFIGMAP, "cm.yaml": CONFIGMAP})
    assert _listing(app, ("docs/",)) == ["cm.yaml"]
    # As go-git matches: the directory's own entry stays out, the re-included file is packed.
    assert _listing(app, ("docs/", "!docs/keep.yaml")) == ["cm.yaml", "docs/keep.yaml"]


def test_sockets_and_fifos_are_not_packed(tmp_path: Path) -> None:
    import os  # noqa: PLC0415

    app = _tree(tmp_path / "app", {"cm.yaml": CONFIGMAP})
    os.mkfifo(app / "pipe")
    assert _listing(app, ()) == ["cm.yaml"]


def test_objects_are_counted_per_document_and_list_item(tmp_path: Path) -> None:
    app = _tree(
        tmp_path / "app",
        {
            "two.yaml": f"{CONFIGMAP}---\n{CONFIGMAP}---\n# only a comment\n",
            "list.json": '{"kind": "List", "items": [{"kind": "A"}, {"kind": "B"}]}',
            "array.json": '[{"kind": "A"}, {"nokind": 1}]',
            "notes.txt": CONFIGMAP,
        },
    )
    assert scan(app, (), env={}).objects == 5
