"""Hand directories to the CNB user before the drop, without following a link out of them."""

from __future__ import annotations

import errno
import os
import stat

from lifecycle.fs.tree import Tree
from lifecycle.priv.user import BuildUser


def ensure_owner(user: BuildUser, *paths: str | os.PathLike[str]) -> None:
    """Give each existing directory in ``paths``, and everything in it, to ``user``.

    Upstream's rule: a tree whose top already belongs to the user is left alone (a fresh tree the
    user made is all theirs). Entries are changed with ``lchown`` relative to their parent's
    descriptor, so a symlink is re-owned itself and never followed. A non-directory with more than
    one hard link is left as it is: it may be a link a buildpack made to a file outside the tree,
    and chowning it would hand that file over. Missing paths and non-directories are skipped.
    """
    for path in paths:
        if not path:
            continue
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode) or (st.st_uid, st.st_gid) == (user.uid, user.gid):
            continue
        with Tree.open(path) as tree:
            _hand(user, tree)


def ensure_owner_below(user: BuildUser, root: str | os.PathLike[str], rel: str | os.PathLike[str]) -> None:
    """Give the directory ``root/rel``, and everything in it, to ``user`` as :func:`ensure_owner`
    does, reaching it from ``root`` one component at a time without following a symlink: when any
    part of ``rel`` is a symlink or not a directory, or is missing, nothing changes. ``root``
    itself and the directories between it and ``rel`` keep their owners."""
    try:
        base = Tree.open(root)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return
        raise
    with base:
        try:
            tree = base.subtree(rel)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return
            raise
        with tree:
            st = os.fstat(tree.fd)
            if (st.st_uid, st.st_gid) != (user.uid, user.gid):
                _hand(user, tree)


def _hand(user: BuildUser, tree: Tree) -> None:
    os.fchown(tree.fd, user.uid, user.gid)
    for entry in tree.walk():
        if (entry.st.st_uid, entry.st.st_gid) == (user.uid, user.gid):
            continue
        if not entry.is_dir and entry.st.st_nlink > 1:
            continue
        parent, _, name = entry.rel.rpartition("/")
        with tree.subtree(parent) if parent else Tree(os.dup(tree.fd), tree.root) as holder:
            os.chown(name, user.uid, user.gid, dir_fd=holder.fd, follow_symlinks=False)
