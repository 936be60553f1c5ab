"""lifecycle.fs.Tree: reads by descriptor that never follow a symlink and never hang."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lifecycle.fs import NotRegularError, Tree, TreeError, tree


@pytest.fixture
def tree_dir(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.txt").write_text("inside")
    (tmp_path / "secret").write_text("outside")
    (root / "link").symlink_to(tmp_path / "secret")
    (root / "dirlink").symlink_to(tmp_path)
    os.mkfifo(root / "fifo")
    return root


def test_reads_regular_files_inside(tree_dir: Path) -> None:
    with Tree.open(tree_dir) as tree:
        assert tree.read_bounded("a/b/f.txt", 100) == b"inside"
        assert [e.rel for e in tree.walk()] == ["a", "a/b", "a/b/f.txt", "dirlink", "fifo", "link"]


@pytest.mark.parametrize("rel, words", [("link", "symlink"), ("dirlink/secret", "symlink"),
                                        ("fifo", "FIFO"), ("a", "directory"), ("../secret", "relative path"),
                                        ("/etc/passwd", "relative path")])
def test_refuses_what_is_not_a_regular_file_inside(tree_dir: Path, rel: str, words: str) -> None:
    with Tree.open(tree_dir) as tree, pytest.raises(TreeError) as info:
        tree.read_bounded(rel, 100)
    assert words in str(info.value)
    assert isinstance(info.value, NotRegularError) or words == "relative path"


def test_size_cap(tree_dir: Path) -> None:
    big = tree_dir / "big"
    with big.open("wb") as f:
        f.truncate(3 << 30)  # sparse: 3 GiB, no blocks
    with Tree.open(tree_dir) as tree, pytest.raises(TreeError, match="larger than 1024 bytes"):
        tree.read_bounded("big", 1024)


def test_symlinked_root_is_refused_only_when_asked(tree_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "alias").symlink_to(tree_dir)
    with Tree.open(tmp_path / "alias") as tree:
        assert tree.read_bounded("a/b/f.txt", 100) == b"inside"
    with pytest.raises(NotRegularError, match="symlink"):
        Tree.open(tmp_path / "alias", follow_root=False)


def test_walk_does_not_enter_symlinked_dirs(tree_dir: Path) -> None:
    with Tree.open(tree_dir) as tree:
        entries = {e.rel: e for e in tree.walk()}
    assert "dirlink/secret" not in entries and not entries["dirlink"].is_dir


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 200_000])
def test_read_upto_reads_in_pieces_what_one_read_would(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    for limit in (0, 1, 65536, 100_000, size, size + 1, 1 << 24):
        with open(path, "rb") as f:
            assert tree.read_upto(f, limit) == data[:limit]
