"""A child's output as flux-ci reads it: stdout as it arrives (until the child exits, even while a
grandchild holds the pipe), whole lines, decoded text, and what the -vv trace shows of it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

from flux_ci.tools.supervise import Child, readable, wait_slice

READ_SIZE = 1 << 16

# What the -vv trace shows of a child's stdout: the lines a summariser makes of it (of the whole output
# for `run`, of each line for `stream`). None: the output itself.
TraceOutput = Callable[[str], Iterable[str]]


def stdout_chunks(child: Child) -> Iterator[bytes]:
    """The child's stdout as it arrives, until the child has exited and the pipe is drained.

    One poll on the pipe and on the child's pidfd: data, EOF or the exit wakes it at once. The pipe
    may stay open after the child exits (a grandchild holding it), so the exit ends the reading.
    """
    fd = child.stdout_fd
    watched = [fd] if child.exit_fd is None else [fd, child.exit_fd]
    while True:
        ready = readable(watched, wait_slice(child))
        chunk = read(fd) if ready or child.exit_fd is None else None
        if chunk:
            yield chunk
        elif chunk == b"":  # EOF
            break
        elif (ready or child.exit_fd is None) and child.has_exited():
            yield from iter(lambda: read(fd) or b"", b"")  # what it wrote just before exiting
            break
    child.wait_exited()


def traced(text: str, trace_output: TraceOutput | None) -> list[str]:
    """The lines the -vv trace shows of a child's output."""
    if trace_output is None:
        return [line.rstrip() for line in text.splitlines()]
    return list(trace_output(text))


def lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Whole lines (with their newline) as soon as each is complete; a last partial line at the end."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        end = pending.rfind(b"\n") + 1
        if end:
            text, pending = decode(pending[:end]), pending[end:]
            for line in text[:-1].split("\n"):
                yield line + "\n"
    if pending:
        yield decode(pending)


def read(fd: int) -> bytes | None:
    """Up to 64 KiB; b"" at EOF; None when nothing is there yet."""
    try:
        return os.read(fd, READ_SIZE)
    except BlockingIOError:
        return None


def decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")
