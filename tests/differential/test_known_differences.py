"""spec/upstream-differences.md and tests/differential/known_differences.py list the same ids."""

from __future__ import annotations

import re

from tests.conftest import REPO
from tests.differential.known_differences import KNOWN

PAGE = REPO / "spec" / "upstream-differences.md"


def test_page_lists_every_kept_difference_and_no_other() -> None:
    text = PAGE.read_text()
    table = text.split("## Kept differences", 1)[1].split("\n## ", 1)[0]
    ids = re.findall(r"^\| `([a-z0-9-]+)` \|", table, re.M)
    assert sorted(ids) == sorted(KNOWN)
    assert len(ids) == len(set(ids))


def test_every_row_names_fields_and_a_reason() -> None:
    for known in KNOWN.values():
        assert known.fields and all(known.fields)
        assert known.reason
