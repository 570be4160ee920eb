"""The `flux-ci` console script and `python -m flux_ci`: the CLI, started lean.

This module imports nothing heavy itself, so what `run` sets up holds before typer, pydantic and sh load.
"""

from __future__ import annotations

import gc
import os
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
    from flux_ci.cli import run as run_cli  # noqa: PLC0415 - after the two settings above

    run_cli()


if __name__ == "__main__":
    run()
