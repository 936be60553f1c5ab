"""Go ``flag`` syntax on top of click: ``-name``, ``-name=value``, ``-bool=false``.

Rewrites argv before typer parses it, so only ``--name`` options need declaring. Like Go, flag
parsing stops at the first positional argument or at ``--``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lifecycle.platform.settings import parse_go_bool

HELP = {"h", "help"}


def normalize(argv: Sequence[str], takes_value: Mapping[str, bool]) -> list[str]:
    """Return argv with Go-style flags rewritten to click's ``--name`` form.

    ``takes_value`` maps every accepted flag name (aliases included) to whether it takes a value.
    Unknown names are left alone so click reports them (exit 2).
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--" or not token.startswith("-") or token == "-":
            out.extend(argv[i:])
            break
        body = token[2:] if token.startswith("--") else token[1:]
        name, eq, value = body.partition("=")
        if name in HELP:
            out.append("--help")
            i += 1
            continue
        if name not in takes_value:
            # Unknown: hand click the long form so its error names the flag (exit 2).
            out.append(f"--{body}" if name else token)
            i += 1
            continue
        if takes_value[name]:
            if eq:
                out.append(f"--{name}={value}")
                i += 1
            else:
                out.append(f"--{name}")
                if i + 1 < len(argv):
                    out.append(argv[i + 1])
                i += 2
            continue
        if not eq:
            out.append(f"--{name}")
        else:
            parsed = parse_go_bool(value)
            if parsed is None:
                # Go rejects it; keep a form click rejects too (exit 2).
                out.append(f"--{name}={value}")
            else:
                out.append(f"--{name}" if parsed else f"--no-{name}")
        i += 1
    return out
