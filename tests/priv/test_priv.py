"""lifecycle.priv: the drop to the CNB user and handing trees over without following links."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle.priv import build_user, ensure_owner

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")


def test_ensure_owner_lchowns_and_skips_hard_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("root's")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "file").write_text("x")
    (tree / "link").symlink_to(outside)
    (tree / "dirlink").symlink_to(tmp_path)
    os.link(outside, tree / "hard")
    ensure_owner(build_user(1000, 1000), tree)
    for path in (tree, tree / "sub", tree / "sub" / "file", tree / "link", tree / "dirlink"):
        st = os.lstat(path)
        assert (st.st_uid, st.st_gid) == (1000, 1000), path
    for path in (outside, tmp_path):  # neither the symlinks' targets nor the hard-linked file
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (0, 0), path


def test_ensure_owner_skips_missing_and_already_owned(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    (mine / "rootfile").parent.mkdir()
    (mine / "rootfile").write_text("x")
    os.chown(mine, 1000, 1000)
    ensure_owner(build_user(1000, 1000), mine, tmp_path / "missing", "")
    assert os.stat(mine / "rootfile").st_uid == 0  # upstream's rule: an owned top means an owned tree


def test_drop_to_changes_every_id() -> None:
    code = ("import os; from lifecycle.priv import build_user, drop_to; drop_to(build_user(1000, 1001)); "
            "print(os.getresuid(), os.getresgid(), os.getgroups())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(1000, 1000, 1000) (1001, 1001, 1001) []"


def test_ensure_owner_below_hands_only_the_directory_reached_without_symlinks(tmp_path: Path) -> None:
    from lifecycle.priv import ensure_owner_below

    user = build_user(1000, 1000)
    root = tmp_path / "oci"
    image = root / "index.docker.io" / "library" / "app" / "latest"
    (image / "blobs").mkdir(parents=True)
    (image / "index.json").write_text("{}")
    ensure_owner_below(user, root, "index.docker.io/library/app/latest")
    for path in (image, image / "blobs", image / "index.json"):
        assert (os.lstat(path).st_uid, os.lstat(path).st_gid) == (1000, 1000), path
    for path in (root, root / "index.docker.io", image.parent):  # the way there keeps its owners
        assert os.lstat(path).st_uid == 0, path

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "latest").mkdir(parents=True)
    (root / "index.docker.io" / "library" / "linked").symlink_to(elsewhere)
    (image.parent / "tagged").symlink_to(elsewhere / "latest")
    ensure_owner_below(user, root, "index.docker.io/library/linked/latest")  # a symlink on the way
    ensure_owner_below(user, root, "index.docker.io/library/app/tagged")  # a symlink at the end
    ensure_owner_below(user, root, "index.docker.io/library/app/missing")
    ensure_owner_below(user, root, "index.docker.io/library/app/latest/index.json")  # not a directory
    for path in (elsewhere, elsewhere / "latest"):
        assert os.lstat(path).st_uid == 0, path
