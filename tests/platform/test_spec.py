"""spec/ stays true to the code: the flag table, the analyzer's flags, the exit codes."""

from __future__ import annotations

import re

from lifecycle.errors import ExitCode
from lifecycle.platform.flags import COMMON, ENV_ONLY, FLAGS, Flag
from tests.conftest import REPO

SPEC = REPO / "spec"


def _default(flag: Flag) -> str:
    value = flag.default
    if value is None or value == "" or value == ():
        return ""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _row(flag: Flag, with_name: bool = True) -> str:
    cells = [f"`-{flag.name}`" if with_name else "",
             ", ".join(f"`-{a}`" for a in flag.aliases),
             ", ".join(f"`{e}`" for e in flag.env),
             _default(flag), flag.kind, flag.help]
    return "| " + " | ".join(cells) + " |"


def _rows(text: str, heading: str) -> list[str]:
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [re.sub(r" +", " ", line.strip()) for line in section.splitlines()
            if line.startswith("|") and not line.startswith("|---") and "| kind |" not in line]


def _norm(row: str) -> str:
    return re.sub(r" +", " ", row)


def test_flag_table_matches_code() -> None:
    text = (SPEC / "flags.md").read_text()
    documented = _rows(text, "Flags")
    expected = [_norm(_row(f)) for f in FLAGS.values()]
    missing = [r for r in expected if r not in documented]
    stale = [r for r in documented if r not in expected]
    assert not missing and not stale, f"spec/flags.md out of date.\nadd:\n{missing}\nremove:\n{stale}"


def test_env_only_table_matches_code() -> None:
    documented = _rows((SPEC / "flags.md").read_text(), "Environment only")
    expected = [_norm(_row(f, with_name=False)) for f in ENV_ONLY.values()]
    assert sorted(documented) == sorted(expected)


def test_analyzer_page_lists_its_flags() -> None:
    from lifecycle.cli import analyzer

    text = (SPEC / "analyzer.md").read_text()
    inputs = text.split("## Inputs", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in inputs.splitlines() if line.startswith("| `-")]
    documented = {name for cell in first_cells for name in re.findall(r"`-([a-z-]+)`", cell)}
    assert documented == set(analyzer.FLAGS) | set(COMMON)
    for name in documented:
        for alias in FLAGS[name].aliases:
            assert f"`-{alias}`" in inputs
        for env in FLAGS[name].env:
            assert f"`{env}`" in text or name in ("cache-image", "launch-cache", "skip-layers", "uid", "gid",
                                                  "insecure-registry")


def test_exit_codes_page_lists_every_code() -> None:
    text = (SPEC / "exit-codes.md").read_text()
    table = text.split("\n## ", 1)[0]
    documented = {int(n) for line in table.splitlines() if line.startswith("| ")
                  for n in re.findall(r"\b(\d+)\b", line.split("|")[1])}
    assert {int(c) for c in ExitCode} <= documented
