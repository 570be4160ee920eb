"""`make mutation`: mutation testing of the pure decision modules, judged by the unit tests (mutmut 3).

    python -m tests.mutation            run mutmut over SCOPE, then score it
    python -m tests.mutation --score    score the results of the last run only

mutmut (configured in pyproject.toml, `[tool.mutmut]`) copies flux_ci into `mutants/`, changes one
thing at a time in each function of SCOPE (an operator, a constant, a return value...) and runs the
unit tests that call that function. A mutant is killed when a test fails (or it times out); it
survives when every test still passes: a change of the code no test notices. The score of a module
is killed / all its mutants in SCOPE ("no tests" counts as survived).

Every survivor must be listed in docs/mutation.md with the reason it is equivalent (it behaves like
the original for every input flux-ci can see); the run fails on a survivor not listed there, and on a
score under its target. Not part of `make test`: it takes minutes (docs/mutation.md says how many).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs" / "mutation.md"

# The pure decision modules, and the functions of each that decide (mutmut's names: `x_<function>`,
# `xǁ<Class>ǁ<method>`). Where a module mixes decisions and orchestration, only the decisions: the
# orchestration (waiting, threads, child processes) is checked end to end against the real tools.
SCOPE: Mapping[str, tuple[str, ...]] = {
    "flux_ci/kube/verdicts.py": ("*",),
    "flux_ci/delivery/rollback.py": ("x_plan", "x_targets"),
    "flux_ci/config/values.py": ("*",),
    "flux_ci/config/settings.py": ("x_field_problems", "xǁSettingsǁrequire"),
    "flux_ci/secrets.py": ("*",),
    "flux_ci/errors.py": ("*",),
    "flux_ci/delivery/fleet.py": ("x_combined", "x__rank", "xǁClusterǁoutcome"),
}
TARGETS = {"flux_ci/kube/verdicts.py": 0.90}
OVERALL_TARGET = 0.80
_KILLED = {1, 3, 36, -24, 24, 152, 255, 37}  # tests failed, timed out, or the type checker refused it
_LISTED = re.compile(r"^\| `([\w.ǁ]+__mutmut_\d+)` \|", re.MULTILINE)


def dotted(module: str) -> str:
    return module.removesuffix(".py").replace("/", ".")


def patterns() -> list[str]:
    return [f"{dotted(module)}.{name}__mutmut_*" for module, names in SCOPE.items() for name in names]


def in_scope(mutant: str) -> str | None:
    """The module of SCOPE a mutant name belongs to, or None."""
    for module, names in SCOPE.items():
        prefix = f"{dotted(module)}."
        if mutant.startswith(prefix):
            function = mutant[len(prefix) :].rsplit("__mutmut_", 1)[0]
            if any(fnmatch.fnmatchcase(function, name) for name in names):
                return module
    return None


@dataclass
class Score:
    killed: int = 0
    total: int = 0

    @property
    def ratio(self) -> float:
        return self.killed / self.total if self.total else 1.0


def results(mutants_dir: Path) -> dict[str, int | None]:
    """Every mutant in SCOPE and its exit code, from mutmut's `.meta` files."""
    found: dict[str, int | None] = {}
    for module in SCOPE:
        meta = mutants_dir / f"{module}.meta"
        if meta.exists():
            codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
            found |= {name: code for name, code in codes.items() if in_scope(name)}
    return found


def score(codes: Mapping[str, int | None]) -> tuple[dict[str, Score], list[str]]:
    scores = {module: Score() for module in SCOPE}
    survivors = []
    for name, code in sorted(codes.items()):
        module = in_scope(name)
        assert module is not None
        scores[module].total += 1
        if code in _KILLED:
            scores[module].killed += 1
        else:
            survivors.append(name)
    return scores, survivors


def explained() -> set[str]:
    """The surviving mutants docs/mutation.md lists as equivalent."""
    return set(_LISTED.findall(DOCS.read_text(encoding="utf-8"))) if DOCS.exists() else set()


def _figures(found: Score) -> str:
    return f"{found.killed:>4}/{found.total:<4} {found.ratio:6.1%}"


def report(codes: Mapping[str, int | None]) -> int:
    scores, survivors = score(codes)
    overall = Score(sum(s.killed for s in scores.values()), sum(s.total for s in scores.values()))
    width = max(map(len, scores))
    for module, module_score in scores.items():
        target = TARGETS.get(module)
        goal = f" (target {target:.0%})" if target else ""
        print(f"  {module:<{width}}  {_figures(module_score)}{goal}")
    print(f"  {'overall':<{width}}  {_figures(overall)} (target {OVERALL_TARGET:.0%})")
    problems = [
        f"{module}: {scores[module].ratio:.1%} killed, under its target {target:.0%}"
        for module, target in TARGETS.items()
        if scores[module].ratio < target
    ]
    if overall.ratio < OVERALL_TARGET:
        problems.append(f"overall: {overall.ratio:.1%} killed, under the target {OVERALL_TARGET:.0%}")
    unexplained = [name for name in survivors if name not in explained()]
    if unexplained:
        problems.append(
            f"{len(unexplained)} surviving mutants not listed in docs/mutation.md "
            "(kill each with a test, or list it with why it is equivalent; `mutmut show NAME`):\n    "
            + "\n    ".join(unexplained)
        )
    if not codes:
        problems.append("no mutant was run")
    for problem in problems:
        print(f"mutation: {problem}", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--score", action="store_true", help="score the last run without running mutmut")
    args = parser.parse_args(argv)
    if not args.score:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "mutmut", "run", *patterns()], cwd=ROOT, check=False)
        print(f"mutation: mutmut ran in {time.monotonic() - started:.0f}s (exit {done.returncode})")
        if done.returncode != 0:
            return done.returncode
    return report(results(ROOT / "mutants"))


if __name__ == "__main__":
    sys.exit(main())
