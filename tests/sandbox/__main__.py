"""python -m tests.sandbox {up,down,env,demo}: the one way in for `make sandbox-*` and people.

`up` prints only the env file's path on stdout (so `. "$(python -m tests.sandbox up)"` works);
progress and errors go to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.sandbox.clusters import MAX_CLUSTERS
from tests.sandbox.controllers import CONTROLLERS
from tests.sandbox.demo import demo
from tests.sandbox.errors import SandboxError
from tests.sandbox.lifecycle import down, up
from tests.sandbox.state import ENV_FILE, default_state_dir


def _progress(message: str) -> None:
    print(f"sandbox: {message}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox", description=__doc__)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="state directory (default: $FLUX_CI_SANDBOX_DIR or <repo>/.sandbox)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start (or reuse) the sandbox; print the env file")
    start.add_argument("--anonymous", action="store_true", help="registry without auth")
    start.add_argument(
        "--clusters",
        type=int,
        choices=range(1, MAX_CLUSTERS + 1),
        default=1,
        help="Kubernetes clusters sharing the registry (N > 1: contexts flux-ci-sandbox-2 to -N as well)",
    )
    start.add_argument(
        "--controllers",
        default=",".join(CONTROLLERS),
        help="comma list of the Flux controllers to run (default: all four; `make demo`: two)",
    )
    commands.add_parser("down", help="stop every sandbox process and remove the state dir")
    commands.add_parser("env", help="print the env file of the running sandbox")
    commands.add_parser("demo", help="deploy the examples with flux-ci")
    return parser


def _run(args: argparse.Namespace) -> int:
    state_dir: Path = (args.state_dir or default_state_dir()).resolve()
    if args.command == "up":
        controllers = [name.strip() for name in args.controllers.split(",") if name.strip()]
        state = up(
            state_dir,
            anonymous=args.anonymous,
            clusters=args.clusters,
            report=_progress,
            controllers=controllers,
        )
        print(state.state_dir / ENV_FILE)
    elif args.command == "down":
        if not state_dir.exists():
            _progress(f"no sandbox in {state_dir}")
            return 0
        stopped = down(state_dir)
        _progress(f"stopped {len(stopped)} process(es); removed {state_dir}")
    elif args.command == "env":
        env_file = state_dir / ENV_FILE
        if not env_file.exists():
            _progress(f"no sandbox running in {state_dir}: run `make sandbox-up`")
            return 1
        print(env_file)
    else:
        return demo(state_dir)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except SandboxError as error:
        _progress(f"error: {error}")
        return 1
    except NotImplementedError as error:
        _progress(str(error))
        return 1
    except KeyboardInterrupt:
        _progress("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
