"""lifecycle.layers.slices: the final app layer streams its entries in the order of the sorted
full paths, as the materialized listing does (upstream's order)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lifecycle.layers import slices


@pytest.fixture
def app(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    # '-' and '.' sort before '/': "a-b" and "a.txt" come between directory "a" and "a/x"
    for rel in ["a/x", "a/y/z", "a-b/q", "a0/w", "b/.hidden", "c d/e"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / "a.txt").write_text("t")
    (root / "a!").write_text("bang")
    (root / "link").symlink_to("a")
    (root / "empty").mkdir()
    return root


@pytest.mark.parametrize("taken", [set(), {"a/x"}, {"", "a", "a/x", "a/y", "a/y/z"}])
def test_rest_entries_match_the_sorted_listing(app: Path, taken: set[str]) -> None:
    paths, _children = slices._tree(app)
    expected = list(slices._layer_entries(app, "/workspace", [r for r in ["", *paths] if r not in taken], 1000, 1000))
    streamed = list(slices.rest_entries(app, "/workspace", taken, 1000, 1000))
    assert [e.name for e in streamed] == [e.name for e in expected]
    assert streamed == expected
    names = [os.fsencode(e.name) for e in streamed if e.name.startswith("/workspace")]
    assert names == sorted(names)


def test_nothing_left_gives_no_entries(app: Path) -> None:
    paths, _children = slices._tree(app)
    assert list(slices.rest_entries(app, "/workspace", {"", *paths}, 0, 0)) == []


def test_outside_symlinks(app: Path, tmp_path: Path) -> None:
    (app / "a" / "y" / "out").symlink_to(tmp_path)
    (app / "up").symlink_to("../app/a")
    assert slices.outside_symlinks(app) == [(str(app / "a" / "y" / "out"), str(tmp_path))]
