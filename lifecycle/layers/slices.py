"""App layers: slices (``[[slices]]`` globs from launch.toml) and the rest of the app dir.

Globs follow Go's ``filepath.Match`` relative to the app dir: ``*`` and ``?`` never match ``/``.
A glob that matches a directory takes the whole directory. Earlier slices win; every file no
slice took goes into the final app layer. Entries are sorted by path, as upstream's are.
"""

from __future__ import annotations

import itertools
import os
import posixpath
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from lifecycle.layers.tar import Entry, parent_entries, path_entry


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    pattern = pattern.strip("/")
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end]
                if body.startswith("^"):
                    body = "!" + body[1:]
                body = body.replace("\\", "\\\\")
                out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def _tree(app: Path) -> tuple[list[str], dict[str, list[str]]]:
    """Every path under ``app`` (relative, lexical walk order) and each directory's children
    (``""`` is ``app`` itself); symlinks to directories are not entered."""
    paths: list[str] = []
    children: dict[str, list[str]] = {}

    def walk(directory: str, rel: str) -> None:
        kids = children.setdefault(rel, [])
        with os.scandir(directory) as listing:  # the entry types come with the names: no stat calls
            found = sorted((os.fsencode(e.name), e.name, e.is_dir(follow_symlinks=False)) for e in listing)
        for _key, name, is_dir in found:
            child_rel = f"{rel}/{name}" if rel else name
            paths.append(child_rel)
            kids.append(child_rel)
            if is_dir:
                walk(os.path.join(directory, name), child_rel)

    walk(os.fspath(app), "")
    return paths, children


def _take(rel: str, children: dict[str, list[str]], taken: dict[str, bool], matched: set[str]) -> None:
    """``rel`` and everything below it that is not taken yet."""
    if taken[rel]:
        return
    for child in children.get(rel, []):
        _take(child, children, taken, matched)
    matched.add(rel)
    taken[rel] = True


def plan_slices(app: Path, slices: list[list[str]]) -> tuple[list[set[str]], set[str]]:
    """For each slice, the relative paths its layer holds; and the paths no later layer holds.

    Upstream's rules, so the layers match its bytes: a slice holds what its globs match (a matched
    directory with everything below it, unless an earlier slice took it) plus the directories
    above those, the app dir (``""``) included; such a directory counts as taken once every entry
    directly in it is taken, and then the final app layer leaves it out.
    """
    paths, children = _tree(app)
    taken = dict.fromkeys(["", *paths], False)
    result: list[set[str]] = []
    for globs in slices:
        regexes = [_glob_regex(posixpath.normpath(g)) for g in globs]
        matched: set[str] = set()
        for rel in paths:
            if any(r.match(rel) for r in regexes):
                _take(rel, children, taken, matched)
        parents: set[str] = set()
        for rel in matched:
            parts = rel.split("/")
            for i in range(len(parts)):
                parent = "/".join(parts[:i])
                if parent not in matched:
                    parents.add(parent)
        for parent in sorted(parents, key=lambda d: -d.count("/") - (d != "")):
            taken[parent] = all(taken[c] for c in children.get(parent, []))
        result.append(matched | parents)
    return result, {rel for rel, done in taken.items() if done}


def _layer_entries(app: Path, image_app: str, rels: Iterable[str], uid: int, gid: int) -> Iterator[Entry]:
    """The app dir's parents (their own owners), then ``rels`` sorted by path (``-uid``/``-gid``);
    nothing at all when ``rels`` is empty (upstream writes an empty tar then)."""
    named = sorted(((f"{image_app}/{rel}" if rel else image_app, rel) for rel in rels),
                   key=lambda item: os.fsencode(item[0]))
    if not named:
        return
    yield from parent_entries(image_app, app)
    root = os.fspath(app)
    for name, rel in named:
        entry = path_entry(f"{root}/{rel}" if rel else app, name, uid, gid)
        if entry.kind != "skip":
            yield entry


def slice_entries(app: Path, image_app: str, rels: set[str], uid: int, gid: int) -> Iterator[Entry]:
    """The entries of one slice (``rels`` from :func:`plan_slices`)."""
    return _layer_entries(app, image_app, rels, uid, gid)


def rest_entries(app: Path, image_app: str, taken: set[str], uid: int, gid: int) -> Iterator[Entry]:
    """The final app layer: the app dir and everything in it no slice took, in the same order as
    :func:`_layer_entries` but streamed from the walk (no list of the whole tree is held)."""
    found = (item for item in _path_order(os.fspath(app), "") if item[0] not in taken)
    first = ("", os.fspath(app)) if "" not in taken else next(found, None)
    if first is None:
        return
    yield from parent_entries(image_app, app)
    for rel, path in itertools.chain([first], found):
        entry = path_entry(path, f"{image_app}/{rel}" if rel else image_app, uid, gid)
        if entry.kind != "skip":
            yield entry


def _path_order(directory: str, rel: str) -> Iterator[tuple[str, str]]:
    """(relative path, path) of everything below ``directory``, sorted by the bytes of the whole
    path: a directory sorts by its name, what is in it as if named ``<name>/...``, so siblings such
    as ``a.txt`` (``.`` sorts before ``/``) come between directory ``a`` and ``a/b``."""
    with os.scandir(directory) as listing:  # entry types come with the names: no stat calls
        found = []
        for child in listing:
            key = os.fsencode(child.name)
            found.append((key, child.name, False))
            if child.is_dir(follow_symlinks=False):
                found.append((key + b"/", child.name, True))
    found.sort()
    for _key, name, contents in found:
        child_rel = f"{rel}/{name}" if rel else name
        path = os.path.join(directory, name)
        if contents:
            yield from _path_order(path, child_rel)
        else:
            yield child_rel, path


def outside_symlinks(app: Path) -> list[tuple[str, str]]:
    """Symlinks in ``app`` whose target leaves it (relative to the link, or absolute), each
    directory's in name order before its subdirectories'."""
    root = os.path.normpath(os.path.abspath(app))
    bad: list[tuple[str, str]] = []

    def walk(directory: str) -> None:
        try:
            with os.scandir(directory) as listing:  # is_symlink/is_dir from the listing: no stat calls
                found = sorted(listing, key=lambda e: e.name)
        except OSError:  # unreadable: the layer's walk reports it
            return
        for entry in found:
            if not entry.is_symlink():
                continue
            target = os.readlink(entry.path)
            resolved = os.path.normpath(target if target.startswith("/") else os.path.join(directory, target))
            if resolved != root and not resolved.startswith(root + "/"):
                bad.append((entry.path, target))
        for entry in found:
            if entry.is_dir(follow_symlinks=False):
                walk(entry.path)

    walk(root)
    return bad
