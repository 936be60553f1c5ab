"""Entry point of every console script and of ``cnb/lifecycle/<phase>``: the program's name picks
the phase (``analyzer``), or ``lifecycle <verb>`` does (``lifecycle analyze``)."""

from __future__ import annotations

import os
import sys

PHASES = {
    "analyzer": "analyze",
    "detector": "detect",
    "restorer": "restore",
    "builder": "build",
    "exporter": "export",
    "rebaser": "rebase",
    "creator": "create",
}
# Called by platforms, refused with one ERROR line (image extensions: lifecycle/cli/extender.py).
REFUSED = ("extender",)
VERBS = {verb: program for program, verb in PHASES.items()}


def main(argv: list[str] | None = None) -> int:
    """Dispatch on ``basename(argv[0])``; returns (and exits with) the phase's exit code."""
    from lifecycle import process

    process.prepare()
    argv = list(sys.argv if argv is None else argv)
    program = os.path.basename(argv[0]) if argv else "lifecycle"
    rest = argv[1:]
    if program not in PHASES and program not in REFUSED:
        if not rest or rest[0] in ("-h", "-help", "--help"):
            print("Usage: lifecycle <phase> [flags] [args]\nPhases: " + ", ".join(VERBS))
            return _exit(0 if rest else 3)
        if rest[0] in ("-version", "--version"):
            from lifecycle import __version__

            print(__version__)
            return _exit(0)
        verb, rest = rest[0], rest[1:]
        if verb not in VERBS:
            print(f"ERROR: failed to recognize phase: {verb}\nValid phases: {', '.join(VERBS)}")
            return _exit(3)
        program = VERBS[verb]
    from lifecycle.cli._command import program_environ, run_program

    return _exit(run_program(program, rest, program_environ()))


def _exit(code: int) -> int:
    sys.stdout.flush()
    raise SystemExit(code)
