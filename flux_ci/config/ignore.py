"""`--ignore-paths` as `flux push artifact` reads them: gitignore patterns, matched exactly as flux
matches them (fluxcd/pkg `sourceignore` over go-git v5.19.1 `plumbing/format/gitignore`, which flux
2.9.3 links), so the files flux-ci checks are the files flux packs.

go-git's rules, ported line by line (`pattern.go`, `matcher.go`):
- a line starting with `#`, or blank, is no pattern; `!` re-includes; trailing spaces are dropped
  unless escaped; a trailing `/` matches directories only;
- a pattern without `/` matches any path component (so everything under a matching directory is
  matched too); one with `/` is a glob over the components from the root, where `**` spans any
  number of directories;
- each component is matched with Go's `filepath.Match` (`*`, `?`, `[...]` with `^` negation, `\\`
  escapes), not Python's fnmatch;
- the last pattern that matches decides (exclude, or include for `!`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum


class _Result(Enum):
    NO_MATCH = 0
    EXCLUDE = 1
    INCLUDE = 2


@dataclass(frozen=True)
class Pattern:
    """One gitignore line, parsed as go-git's `ParsePattern` parses it (the domain is the root)."""

    parts: tuple[str, ...]
    inclusion: bool = False
    dir_only: bool = False
    is_glob: bool = False

    @classmethod
    def parse(cls, line: str) -> Pattern:
        inclusion = line.startswith("!")
        text = line[1:] if inclusion else line
        if not text.endswith("\\ "):
            text = text.rstrip(" ")
        dir_only = text.endswith("/")
        if dir_only:
            text = text[:-1]
        return cls(tuple(text.split("/")), inclusion, dir_only, "/" in text)

    def match(self, path: Sequence[str], is_dir: bool) -> _Result:
        if not path:
            return _Result.NO_MATCH
        matched = self._glob(path, is_dir) if self.is_glob else self._name(path, is_dir)
        if not matched:
            return _Result.NO_MATCH
        return _Result.INCLUDE if self.inclusion else _Result.EXCLUDE

    def _name(self, path: Sequence[str], is_dir: bool) -> bool:
        for index, name in enumerate(path):
            if not go_match(self.parts[0], name):
                continue
            return not (self.dir_only and not is_dir and index == len(path) - 1)
        return False

    def _glob(self, path: Sequence[str], is_dir: bool) -> bool:
        rest = list(path)
        matched = False
        traverse = False
        for index, part in enumerate(self.parts):
            if part == "":
                traverse = False
                continue
            if part == "**":
                if index == len(self.parts) - 1:
                    break
                traverse = True
                continue
            if "**" in part or not rest:
                return False
            if traverse:
                traverse = False
                while rest:
                    name = rest.pop(0)
                    if go_match(part, name):
                        matched = True
                        break
                    if not rest:
                        matched = False
            else:
                if not go_match(part, rest[0]):
                    return False
                matched = True
                rest.pop(0)
        return not (matched and self.dir_only and not is_dir and not rest) and matched


@dataclass(frozen=True)
class Matcher:
    """Patterns in order; the last one that matches a path decides (go-git's `matcher.Match`)."""

    patterns: tuple[Pattern, ...]

    @classmethod
    def of(cls, lines: Sequence[str]) -> Matcher:
        """The patterns of `--ignore-paths` values (each may hold several lines)."""
        parsed = [
            Pattern.parse(line)
            for value in lines
            for line in value.split("\n")
            if line.strip() and not line.startswith("#")
        ]
        return cls(tuple(parsed))

    def ignored(self, relative: str, *, is_dir: bool) -> bool:
        """Is `relative` (a /-separated path below the root) left out of the artifact?"""
        components = relative.split("/")
        for pattern in reversed(self.patterns):
            result = pattern.match(components, is_dir)
            if result is not _Result.NO_MATCH:
                return result is _Result.EXCLUDE
        return False


def go_match(pattern: str, name: str) -> bool:
    """Go's `filepath.Match(pattern, name)` on one path component; a malformed pattern matches
    nothing (Go returns ErrBadPattern, which go-git reads as no match)."""
    regex = _go_regex(pattern)
    return regex is not None and regex.fullmatch(name) is not None


@functools.lru_cache(maxsize=256)
def _go_regex(pattern: str) -> re.Pattern[str] | None:
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\":
            if index + 1 == len(pattern):
                return None
            index += 1
            out.append(re.escape(pattern[index]))
        elif char == "[":
            parsed = _go_class(pattern, index + 1)
            if parsed is None:
                return None
            text, index = parsed
            out.append(text)
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out), re.DOTALL)


def _go_class(pattern: str, start: int) -> tuple[str, int] | None:
    """A `[...]` character class from `start` (just past `[`): its regex and the index of its `]`."""
    index = start
    negated = index < len(pattern) and pattern[index] == "^"
    index += negated
    ranges: list[str] = []
    while True:
        if index >= len(pattern):
            return None
        if pattern[index] == "]" and ranges:
            break
        low, index = _class_char(pattern, index)
        if low is None:
            return None
        if index < len(pattern) and pattern[index] == "-":
            high, index = _class_char(pattern, index + 1)
            if high is None or high < low:
                return None
            ranges.append(f"{re.escape(low)}-{re.escape(high)}")
        else:
            ranges.append(re.escape(low))
    body = "".join(ranges)
    return (f"[^/{body}]" if negated else f"[{body}]"), index


def _class_char(pattern: str, index: int) -> tuple[str | None, int]:
    if index >= len(pattern) or pattern[index] in "-]":
        return None, index
    if pattern[index] == "\\":
        index += 1
        if index >= len(pattern):
            return None, index
    return pattern[index], index + 1
