"""App layers: slices (``[[slices]]`` globs from launch.toml) and the rest of the app dir.

Globs follow Go's ``filepath.Match`` relative to the app dir: ``*`` and ``?`` never match ``/``.
A glob that matches a directory takes the whole directory. Earlier slices win; every file no
slice took goes into the final app layer. Entries are sorted by path, as upstream's are.
"""

from __future__ import annotations

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

    def walk(directory: Path, rel: str) -> None:
        kids = children.setdefault(rel, [])
        for name in sorted(os.listdir(directory), key=os.fsencode):
            child_rel = f"{rel}/{name}" if rel else name
            paths.append(child_rel)
            kids.append(child_rel)
            child = directory / name
            if child.is_dir() and not child.is_symlink():
                walk(child, child_rel)

    walk(app, "")
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
    for name, rel in named:
        entry = path_entry(app / rel if rel else app, name, uid, gid)
        if entry.kind != "skip":
            yield entry


def slice_entries(app: Path, image_app: str, rels: set[str], uid: int, gid: int) -> Iterator[Entry]:
    """The entries of one slice (``rels`` from :func:`plan_slices`)."""
    return _layer_entries(app, image_app, rels, uid, gid)


def rest_entries(app: Path, image_app: str, taken: set[str], uid: int, gid: int) -> Iterator[Entry]:
    """The final app layer: the app dir and everything in it no slice took."""
    paths, _children = _tree(app)
    return _layer_entries(app, image_app, [rel for rel in ["", *paths] if rel not in taken], uid, gid)


def outside_symlinks(app: Path) -> list[tuple[str, str]]:
    """Symlinks in ``app`` whose target leaves it (relative to the link, or absolute)."""
    root = os.path.normpath(os.path.abspath(app))
    bad: list[tuple[str, str]] = []
    for directory, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                continue
            target = os.readlink(path)
            resolved = os.path.normpath(target if target.startswith("/") else os.path.join(directory, target))
            if resolved != root and not resolved.startswith(root + "/"):
                bad.append((path, target))
    return bad
