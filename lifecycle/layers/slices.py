"""App layers: slices (``[[slices]]`` globs from launch.toml) and the rest of the app dir.

Globs follow Go's ``filepath.Match`` relative to the app dir: ``*`` and ``?`` never match ``/``.
A glob that matches a directory takes the whole directory. Earlier slices win; every file no
slice took goes into the final app layer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from lifecycle.layers.tar import Entry, dir_entries, parent_entries


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


def _all_paths(app: Path) -> list[str]:
    """Every path under ``app``, relative, lexically ordered (directories before their content)."""
    out: list[str] = []

    def walk(directory: Path, rel: str) -> None:
        for name in sorted(os.listdir(directory)):
            child_rel = f"{rel}/{name}" if rel else name
            out.append(child_rel)
            child = directory / name
            if child.is_dir() and not child.is_symlink():
                walk(child, child_rel)

    walk(app, "")
    return out


def plan_slices(app: Path, slices: list[list[str]]) -> tuple[list[set[str]], set[str]]:
    """For each slice, the relative paths it takes; and the union of all taken paths."""
    paths = _all_paths(app)
    taken: set[str] = set()
    result: list[set[str]] = []
    for globs in slices:
        regexes = [_glob_regex(g) for g in globs]
        mine: set[str] = set()
        for rel in paths:
            if rel in taken or any(rel.startswith(t + "/") for t in mine):
                continue
            if any(r.match(rel) for r in regexes):
                mine.add(rel)
                if (app / rel).is_dir() and not (app / rel).is_symlink():
                    mine.update(p for p in paths if p.startswith(rel + "/"))
        mine -= taken
        taken |= mine
        result.append(mine)
    return result, taken


def slice_entries(app: Path, image_app: str, rels: set[str], uid: int, gid: int) -> Iterator[Entry]:
    """The entries of one slice: the app dir's parents, the app dir, the taken paths and their
    parent directories inside the app."""
    yield from parent_entries(image_app, app)
    dirs: set[str] = set()
    for rel in rels:
        parts = rel.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
    wanted = rels | dirs
    for entry in dir_entries(app, image_app, uid, gid):
        rel = entry.name[len(image_app):].lstrip("/")
        if rel == "" or rel in wanted:
            yield entry


def rest_entries(app: Path, image_app: str, taken: set[str], uid: int, gid: int) -> Iterator[Entry]:
    """Everything no slice took (directories are always kept so the tree stays whole)."""
    yield from parent_entries(image_app, app)
    for entry in dir_entries(app, image_app, uid, gid):
        rel = entry.name[len(image_app):].lstrip("/")
        if rel in taken and entry.kind != "dir":
            continue
        yield entry


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
