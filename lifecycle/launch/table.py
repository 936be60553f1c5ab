"""Render ``<layers>/config/launch.table``, what ``/cnb/lifecycle/launcher`` reads at launch.

Everything that depends only on ``metadata.toml`` is decided here, at export: the argument rules
per Buildpack API, which processes run directly, the buildpacks' layer directory names. The
launcher (Go, ``launcher/``) does what depends on the running container: env files, ``exec.d``,
user arguments, profiles. The format is JSON with a version the launcher checks
(``spec/launcher.md``); it never needs a TOML reader for ``metadata.toml``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from lifecycle.api import ApiVersion
from lifecycle.files.metadata import BuildMetadata, BuildpackRef, Process

__all__ = ["TABLE_FORMAT", "TABLE_NAME", "render_table", "write_table"]

# Bumped whenever the table's meaning changes; the launcher refuses any other value.
TABLE_FORMAT = 2
TABLE_NAME = "launch.table"

# Characters that would make a type unusable as a /cnb/process/<type> file name (upstream's list).
_BAD_TYPE_CHARS = frozenset("/><:|&\\")


def _api(bp: BuildpackRef) -> ApiVersion | None:
    if not bp.api:
        return None
    try:
        return ApiVersion.parse(bp.api)
    except ValueError:
        raise ValueError(f"buildpack {bp.id!r}: invalid api version {bp.api!r}") from None


def _check_value(value: str, where: str) -> str:
    if "\x00" in value:
        # argv and environment entries cannot hold NUL: fail at export, not at launch.
        raise ValueError(f"{where}: value contains a NUL byte: {value!r}")
    return value


def _process(proc: Process, by_id: dict[str, BuildpackRef]) -> dict[str, Any]:
    where = f"process {proc.type!r}"
    if proc.type in ("", ".", "..") or any(c in _BAD_TYPE_CHARS or not c.isprintable() for c in proc.type):
        raise ValueError(f"{where}: invalid process type {proc.type!r}")
    if not proc.command:
        raise ValueError(f"{where}: command must not be empty")
    for value in (*proc.command, *proc.args, proc.working_dir):
        _check_value(value, where)
    bp = by_id.get(proc.buildpack_id)
    api = _api(bp) if bp is not None else None
    refusal = ""
    # Upstream's Launcher.handleUserArgs (Platform API >= 0.10).
    if len(proc.command) > 1:
        user_args = "replace"  # fixed entries always pass; user args replace the overridable args
    elif api is None:
        user_args = "refuse"  # upstream needs the buildpack's API to decide, and fails without it
        refusal = (f"failed to find buildpack for process {proc.type} "
                   f"with buildpack ID {proc.buildpack_id}")
    elif api < ApiVersion(0, 9):
        user_args = "append"
    else:
        user_args = "replace"
    unknown = ""
    if proc.buildpack_id and bp is None:
        unknown = f"process type '{proc.type}' provided by unknown buildpack '{proc.buildpack_id}'"
    return {
        "type": proc.type,
        "command": list(proc.command),
        "args": list(proc.args),
        "user-args": user_args,
        "refusal": refusal,
        "direct": proc.direct,
        "unknown-buildpack": unknown,
        "working-dir": proc.working_dir,
        "exec-env": list(proc.exec_env),
    }


def render_table(meta: BuildMetadata) -> str:
    """The launch table for ``meta``, deterministic text (same metadata, same bytes).

    Raises ``ValueError`` for metadata the launcher could not run: an empty command, a process type
    unusable as a file name, an invalid buildpack API or id, a NUL byte in a value.
    """
    buildpacks = []
    by_id: dict[str, BuildpackRef] = {}
    for bp in meta.buildpacks:
        layer_dir = bp.id.replace("/", "_")  # upstream's launch.EscapeID
        if layer_dir in ("", ".", ".."):
            raise ValueError(f"invalid buildpack id {bp.id!r}")
        _api(bp)
        buildpacks.append({"id": bp.id, "dir": layer_dir})
        by_id.setdefault(bp.id, bp)
    # Every process, duplicates included: the launcher picks the first eligible one, as upstream.
    processes = [_process(p, by_id) for p in meta.processes]
    table = {"format": TABLE_FORMAT, "buildpacks": buildpacks, "processes": processes}
    return json.dumps(table, indent=1) + "\n"


def write_table(config_dir: Path, meta: BuildMetadata) -> Path:
    """Write ``config_dir/launch.table`` atomically (mode 0644) and return its path."""
    config_dir = Path(config_dir)
    text = render_table(meta)
    config_dir.mkdir(parents=True, exist_ok=True)
    target = config_dir / TABLE_NAME
    fd, tmp_name = tempfile.mkstemp(prefix=f".{TABLE_NAME}.", dir=config_dir)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(text.encode("utf-8"))
            tmp.flush()
            os.fchmod(tmp.fileno(), 0o644)  # mkstemp makes 0600; the image needs it world-readable
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target
