"""The `flux-ci` console script and `python -m flux_ci`: the CLI, started lean.

This module imports nothing heavy itself, so what `run` sets up holds before typer, pydantic and sh load.
"""

from __future__ import annotations

import gc
import os
import sys
from typing import NoReturn


def run() -> NoReturn:
    # Loading typer, pydantic and sh allocates objects that all live until exit: the cyclic garbage
    # collector would walk them about 90 times while they load, find nothing, and cost a deploy
    # 15 ms of its ~0.3 s of CPU. It stays off until the command has loaded what it needs
    # (`cli.startup_done` freezes that and turns it back on); --help and usage errors end before.
    gc.disable()
    # pydantic looks for plugins in every installed distribution's entry points when it builds
    # the first validator; flux-ci uses none. A value the user set is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # SIGINT/SIGTERM stop every child from the first; then the command's tools' version checks start,
    # its first children, while typer and pydantic load.
    from flux_ci.cli import startup  # noqa: PLC0415 - after the two settings above, like every import here
    from flux_ci.tools.supervise import install_signal_handlers  # noqa: PLC0415

    install_signal_handlers()
    early = startup.start_for(sys.argv[1:])
    from flux_ci.cli.app import run as run_cli  # noqa: PLC0415

    run_cli(early)


if __name__ == "__main__":
    run()
