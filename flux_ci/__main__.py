"""`python -m flux_ci` runs the same CLI as the `flux-ci` console script."""

from __future__ import annotations

from flux_ci.cli import run

if __name__ == "__main__":
    run()
