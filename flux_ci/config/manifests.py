"""What the artifact will hold, known before anything is pushed: the files of FLUX_CI_PATH as
`flux push artifact --resolve-symlinks` packs them, and the Kubernetes objects among them.

The same list is checked (`plan`: the path holds at least one object) and staged for the push
(`registry.publish`), so what is pushed is exactly what was checked. flux's own rules, followed here:
- only regular files and directories are packed (fluxcd/pkg `tar.Tar` skips anything else);
- a symlink is packed as what it points to (flux2 `build_artifact.go` `resolveSymlinks`/`copyDir`:
  a directory link is copied whole, a link back into a directory being copied is a cycle and stays
  empty); a link that points nowhere is an error. Without resolving, flux would silently leave the
  link out, and an artifact of links alone would be empty (prune would then delete everything);
- `--ignore-paths` (`ignore`) is matched on each path below the root, and a directory left out
  does not leave out what a `!` pattern re-includes under it.

One rule is flux-ci's own: a link may not lead out of the checkout (CI_PROJECT_DIR or
GITHUB_WORKSPACE, else the git work tree holding FLUX_CI_PATH). A merge request's link to a file of the
runner (`~/.docker/config.json`) would otherwise be pushed for anyone who can pull the artifact.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from flux_ci.config.ignore import Matcher

# The files kustomize-controller reads as manifests.
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# flux push artifact's default --ignore-paths (flux2 `build_artifact.go` excludeOCI); setting
# FLUX_CI_IGNORE_PATHS replaces them, as setting the flag does.
FLUX_DEFAULT_IGNORES = (
    ".git/",
    ".gitignore",
    ".gitmodules",
    ".gitattributes",
    "*.jpg",
    "*.jpeg",
    "*.gif",
    "*.png",
    "*.wmv",
    "*.flv",
    "*.tar.gz",
    "*.zip",
)
# A top-level `kind:` key (column 0, so not a nested one) with a value on the same line.
_YAML_KIND = re.compile(r"""^["']?kind["']?[ \t]*:[ \t]*[^\s#]""", re.MULTILINE)
_YAML_DOCUMENT = re.compile(r"^---[ \t]*(?:#.*)?$", re.MULTILINE)


class ManifestError(OSError):
    """FLUX_CI_PATH cannot be packed as it is: a link that points nowhere or out of the checkout."""


@dataclass(frozen=True)
class Entry:
    """One file or directory of the artifact."""

    relative: str  # its /-separated path in the artifact
    source: Path  # what is read for it: symlinks resolved
    is_dir: bool
    link: str = ""  # the symlink (relative to FLUX_CI_PATH) it was reached through, if any


@dataclass(frozen=True)
class Scan:
    """FLUX_CI_PATH as the artifact will hold it."""

    root: Path  # FLUX_CI_PATH as given
    single_file: bool  # FLUX_CI_PATH is a file: the artifact holds it alone
    entries: tuple[Entry, ...]  # in flux's order (lexical, depth first), ignored ones left out
    links: tuple[str, ...]  # the symlinks resolved, relative to FLUX_CI_PATH
    objects: int  # Kubernetes objects in the manifest files

    @property
    def files(self) -> int:
        return sum(not entry.is_dir for entry in self.entries)


def scan(path: Path, ignore: Sequence[str], env: Mapping[str, str] | None = None) -> Scan:
    """FLUX_CI_PATH's artifact (read once per run: `plan.Plan` carries it from the check to the push).

    Raises FileNotFoundError if path is missing, ManifestError for a link flux-ci will not follow,
    and another OSError (with the path that failed) if a directory or file cannot be read.
    """
    boundary = checkout(path, os.environ if env is None else env)
    return _scan(path.absolute(), tuple(ignore), boundary)


def _scan(path: Path, ignore: tuple[str, ...], boundary: Path) -> Scan:
    if not path.exists() and not path.is_symlink():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    real = _resolve(path, path.name, boundary)
    if not real.is_dir():
        _require_access(real, os.R_OK)
        entry = Entry(path.name, real, is_dir=False, link=path.name if path.is_symlink() else "")
        entries: tuple[Entry, ...] = (entry,)
    else:
        matcher = Matcher.of(ignore)
        walked = _walk(path, "", boundary, {real})
        entries = tuple(e for e in walked if not matcher.ignored(e.relative, is_dir=e.is_dir))
    links = tuple(dict.fromkeys(entry.link for entry in entries if entry.link))
    objects = sum(count_objects(entry.source) for entry in entries if _is_manifest(entry))
    return Scan(path, not real.is_dir(), entries, links, objects)


def checkout(path: Path, env: Mapping[str, str]) -> Path:
    """Where links may lead: the CI checkout, else the git work tree holding path, else path itself."""
    for variable in ("CI_PROJECT_DIR", "GITHUB_WORKSPACE"):
        if value := env.get(variable, "").strip():
            return Path(value).resolve()
    start = path.absolute()
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory.resolve()
    return start.resolve() if start.is_dir() else start.parent.resolve()


def _walk(directory: Path, prefix: str, boundary: Path, visiting: set[Path]) -> Iterator[Entry]:
    """Every entry below directory, links resolved, in flux's order; `visiting` holds the real
    directories being copied (a link back to one of them is a cycle: flux leaves it empty)."""
    _require_access(directory, os.R_OK | os.X_OK)
    for name in sorted(os.listdir(directory)):
        source = directory / name
        relative = f"{prefix}{name}"
        real = _resolve(source, relative, boundary)
        link = relative if source.is_symlink() else ""
        info = real.stat()
        if stat.S_ISDIR(info.st_mode):
            yield Entry(relative, real, is_dir=True, link=link)
            if real not in visiting:
                yield from (
                    _inherit(e, link) for e in _walk(real, f"{relative}/", boundary, visiting | {real})
                )
        elif stat.S_ISREG(info.st_mode):
            yield Entry(relative, real, is_dir=False, link=link)


def _inherit(entry: Entry, link: str) -> Entry:
    """An entry reached through a directory link names that link, unless it is a link itself."""
    return entry if entry.link or not link else Entry(entry.relative, entry.source, entry.is_dir, link)


def _resolve(source: Path, relative: str, boundary: Path) -> Path:
    if not source.is_symlink():
        return source
    try:
        real = source.resolve(strict=True)
    except (FileNotFoundError, RuntimeError) as exc:  # RuntimeError: a loop of links
        raise ManifestError(
            errno.ENOENT,
            f"symlink {relative} points to {os.readlink(source)!r}, which does not exist",
            str(source),
        ) from exc
    if real != boundary and boundary not in real.parents:
        raise ManifestError(
            errno.EACCES,
            f"symlink {relative} leads out of the checkout ({boundary}) to {real}: flux-ci packs what a "
            "link points to, and will not push a file of the runner; copy it into the checkout",
            str(source),
        )
    return real


def _require_access(path: Path, mode: int) -> None:
    # listdir alone would make an unreadable file look like a non-manifest; say so instead.
    if not os.access(path, mode):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))


def _is_manifest(entry: Entry) -> bool:
    return not entry.is_dir and entry.relative.lower().endswith(MANIFEST_SUFFIXES)


def count_objects(file: Path) -> int:
    """The Kubernetes objects in one manifest file: YAML documents with a top-level `kind`, or the
    objects of a JSON document (an object, a list of them, or a `*List` with `items`)."""
    _require_access(file, os.R_OK)
    text = file.read_text(encoding="utf-8", errors="replace")
    if text.lstrip().startswith(("{", "[")):  # JSON (also valid YAML): parse it for real
        try:
            return _json_objects(json.loads(text))
        except ValueError:
            return 0
    return sum(1 for document in _YAML_DOCUMENT.split(text) if _YAML_KIND.search(document))


def _json_objects(data: object) -> int:
    if isinstance(data, list):
        return sum(_json_objects(item) for item in data)
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str) or not data["kind"]:
        return 0
    items = data.get("items")
    if data["kind"].endswith("List") and isinstance(items, list):
        return _json_objects(items)
    return 1
