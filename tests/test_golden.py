"""Every golden file of real output (tests/data) is read by a test: a capture nobody reads is either
a test that went missing or a file to delete."""

from __future__ import annotations

import re
from pathlib import Path

DATA = Path(__file__).parent / "data"
TESTS = Path(__file__).parent
# golden.text/obj("dir/name"), or an f-string `f"dir/watch-{name}-kind.stdout"` and its names.
_FORMATTED = re.compile(r"""f["']((?:flux|oras|kubectl|cosign)/[^"'{]*)\{\w+\}([^"']*)["']""")


def _sources() -> dict[Path, str]:
    return {
        path: path.read_text(encoding="utf-8")
        for path in TESTS.rglob("*.py")
        if path.name != "test_golden.py" and "data" not in path.parts
    }


def _used(relative: str, sources: dict[Path, str]) -> bool:
    for source in sources.values():
        if relative in source:
            return True
        for prefix, suffix in _FORMATTED.findall(source):
            if (
                relative.startswith(prefix)
                and relative.endswith(suffix)
                and len(relative) > len(prefix + suffix)
            ):
                word = relative[len(prefix) : len(relative) - len(suffix)]
                if f'"{word}"' in source:  # the name the f-string is filled with, in the same file
                    return True
    return False


def test_every_golden_file_is_read_by_a_test() -> None:
    sources = _sources()
    files = [
        p.relative_to(DATA).as_posix() for p in sorted(DATA.rglob("*")) if p.is_file() and p.suffix != ".md"
    ]
    assert files
    unused = [name for name in files if not _used(name, sources)]
    assert unused == [], "golden files no test reads: use them or delete them (and their README rows)"


def test_a_file_named_nowhere_counts_as_unused() -> None:
    sources = {Path("t.py"): 'text(f"kubectl/watch-{name}-kustomizations.stdout")\nRecording("redeploy")\n'}
    assert _used("kubectl/watch-redeploy-kustomizations.stdout", sources)
    assert not _used("kubectl/watch-rerun-kustomizations.stdout", sources)
    assert not _used("oras/never.stderr", sources)
