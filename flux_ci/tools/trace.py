"""The trace of external commands (-v, FLUX_CI_TRACE): one masked, shell-quoted line as a command
starts, one with its outcome and duration as it ends, and at -vv what it printed.

Lines go to stderr, one write each (threads' lines never run into each other). Before the settings
are read the wanted level is not known yet: lines above the level given are held, with their level,
until `settle` says which of them to print.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

_PRINTING = threading.Lock()


class Trace:
    """Where a runner's trace lines go, and which of them are wanted."""

    def __init__(self, level: int = 0, *, log: TextIO | None = None, hold: bool = False) -> None:
        self.level = level
        self._log = log
        self._held: list[tuple[int, str]] | None = [] if hold else None
        self._lock = threading.Lock()

    def settle(self, level: int) -> None:
        """The settings are read: print the held lines they ask for; from now on `level` holds."""
        with self._lock:
            held, self._held = self._held or [], None
            self.level = level
        for line_level, line in held:
            if line_level <= level:
                self.print(line)

    def wants(self, level: int) -> bool:
        """Would a line of this level be printed (or held until the settings say)?"""
        return self.level >= level or self._held is not None

    def say(self, line: str, *, level: int = 0) -> None:
        """Print a line now, or hold a trace line (level ≥ 1) the settings may still ask for."""
        if level > self.level:
            with self._lock:
                if self._held is not None:
                    self._held.append((level, line))
                    return
            if level > self.level:  # `settle` ran meanwhile and does not want it
                return
        self.print(line)

    def print(self, line: str) -> None:
        # Looked up per line, not at import: tests swap sys.stderr, and the trace must follow.
        log = self._log or sys.stderr
        with _PRINTING:
            log.write(line + "\n")
            log.flush()
