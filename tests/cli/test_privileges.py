"""spec/trust-model.md's privilege table is what the CLI modules declare as ``PRIVILEGES``."""

from __future__ import annotations

import importlib

from lifecycle.priv import Privileges
from tests.conftest import REPO

PHASES = ("analyzer", "detector", "restorer", "builder", "exporter", "creator", "rebaser")


def _table() -> dict[str, tuple[tuple[str, ...], bool, bool, bool]]:
    text = (REPO / "spec" / "trust-model.md").read_text()
    rows: dict[str, tuple[tuple[str, ...], bool, bool, bool]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in PHASES:
            dirs = () if cells[1] == "none" else tuple(d.strip().strip("`") for d in cells[1].split(","))
            rows[cells[0]] = (dirs, cells[2] == "yes", cells[3] == "yes", cells[4] == "yes")
    return rows


def test_spec_table_matches_each_phases_declaration() -> None:
    table = _table()
    assert set(table) == set(PHASES)
    for phase in PHASES:
        declared = importlib.import_module(f"lifecycle.cli.{phase}").PRIVILEGES
        assert isinstance(declared, Privileges)
        assert table[phase] == (declared.chown, declared.layout_outputs, declared.keychain, declared.daemon), phase


def test_declared_dirs_are_flags_of_the_phase() -> None:
    for phase in PHASES:
        module = importlib.import_module(f"lifecycle.cli.{phase}")
        assert set(module.PRIVILEGES.chown) <= set(module.FLAGS), phase
