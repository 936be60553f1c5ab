"""Render ``<layers>/config/launch.sh``, the process table the sh launcher sources.

Run images may have no Python (busybox only), so all TOML parsing and the per-process
argument rules are resolved here, at export time.  The output defines, for
``/cnb/lifecycle/launcher``:

* ``cnb_table_format`` -- format marker the launcher checks (currently ``1``);
* ``cnb_default_type`` -- ``buildpack-default-process-type`` or empty;
* ``cnb_buildpacks CMD...`` -- runs ``CMD... <bp layer dir name>`` once per buildpack, in order;
* ``cnb_process TYPE [USER_ARGS...]`` -- returns 1 for an unknown type; otherwise computes the
  final argv and calls the launcher's ``cnb_launch TYPE MODE WORKDIR ARGV...`` (which never
  returns).  ``MODE`` is ``direct`` (exec argv), ``shell`` (no args: ``sh -c ARGV0``; args: each
  token expanded as a double-quoted shell word, then exec) or ``script`` (``sh -c ARGV0 ARGS...``,
  Buildpack API < 0.4).

Every value is emitted as a single-quoted shell word, so nothing from metadata.toml is ever
evaluated while the table is sourced.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TABLE_FORMAT", "render_launch_script", "write_launch_script"]

# Bumped whenever the launcher/table contract changes; the launcher refuses other values.
TABLE_FORMAT = 1

_API_RE = re.compile(r"^(\d+)(?:\.(\d+))?$")
# Characters that would make a type unusable as a /cnb/process/<type> file name or path segment.
_BAD_TYPE_CHARS = frozenset("/><:|&\\")

_Version = tuple[int, int]


@dataclass(frozen=True)
class _Buildpack:
    id: str
    api: _Version | None


def _quote(value: str) -> str:
    """Return ``value`` as one single-quoted POSIX shell word."""
    if "\x00" in value:
        # A shell variable or argv entry cannot hold NUL; fail at export, not at launch.
        raise ValueError(f"value contains a NUL byte: {value!r}")
    return "'" + value.replace("'", "'\\''") + "'"


def _parse_api(value: Any, where: str) -> _Version | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where}: api must be a string, got {type(value).__name__}")
    match = _API_RE.match(value.strip())
    if match is None:
        raise ValueError(f"{where}: invalid api version {value!r}")
    return int(match.group(1)), int(match.group(2) or 0)


def _str_field(table: Mapping[str, Any], key: str, where: str, default: str = "") -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{where}: {key} must be a string, got {type(value).__name__}")
    return value


def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be an array of strings")
    return list(value)


def _tables(metadata: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = metadata.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ValueError(f"{key} must be an array of tables")
    return list(value)


def _validate_type(ptype: str, where: str) -> None:
    bad = ptype in ("", ".", "..") or any(
        c in _BAD_TYPE_CHARS or c.isspace() or not c.isprintable() for c in ptype
    )
    if bad:
        raise ValueError(f"{where}: invalid process type {ptype!r}")


def _escape_id(bp_id: str) -> str:
    """Layer directory name of a buildpack, as upstream ``launch.EscapeID``."""
    return bp_id.replace("/", "_")


def _buildpacks(metadata: Mapping[str, Any]) -> list[_Buildpack]:
    result = []
    for i, table in enumerate(_tables(metadata, "buildpacks")):
        where = f"buildpacks[{i}]"
        bp_id = _str_field(table, "id", where)
        if _escape_id(bp_id) in ("", ".", ".."):
            raise ValueError(f"{where}: invalid buildpack id {bp_id!r}")
        result.append(_Buildpack(bp_id, _parse_api(table.get("api"), where)))
    return result


def _set_line(words: Sequence[str], tail: str = "") -> str:
    """``set -- w1 w2 ... [tail]`` with every word quoted."""
    parts = ["set", "--", *(_quote(w) for w in words)]
    if tail:
        parts.append(tail)
    return " ".join(parts)


def _render_process(table: Mapping[str, Any], where: str, buildpacks: Sequence[_Buildpack]) -> list[str]:
    """Case-branch body for one process; "$@" holds the user args on entry."""
    ptype = _str_field(table, "type", where)
    raw_command = table.get("command")
    # Platform API < 0.10 wrote the command as a single string.
    command = [raw_command] if isinstance(raw_command, str) else _str_list(raw_command, f"{where}.command")
    if not command:
        raise ValueError(f"{where}: command must not be empty")
    args = _str_list(table.get("args", []), f"{where}.args")
    direct = table.get("direct", False)
    if not isinstance(direct, bool):
        raise ValueError(f"{where}: direct must be a boolean")
    bp_id = _str_field(table, "buildpack-id", where)
    workdir = _str_field(table, "working-dir", where)

    bp = next((b for b in buildpacks if b.id == bp_id), None)
    api = bp.api if bp is not None else None

    lines: list[str] = []
    # Argument rules of upstream Launcher.handleUserArgs (Platform API >= 0.10).
    if len(command) > 1:
        # Extra command entries are always passed; user args replace the overridable args.
        if args:
            lines.append(f'if [ "$#" -eq 0 ]; then {_set_line(args)}; fi')
        lines.append(_set_line(command[1:], '"$@"'))
    elif api is None:
        # Upstream needs the buildpack API to decide replace-vs-append and fails without it.
        msg = (
            f"determine start command: failed to find buildpack for process {ptype} with buildpack ID {bp_id}"
        )
        lines.append(f'if [ "$#" -gt 0 ]; then cnb_fail {_quote(msg)}; fi')
        lines.append(_set_line(args))
    elif api < (0, 9):
        if args:
            lines.append(_set_line(args, '"$@"'))
    elif args:
        lines.append(f'if [ "$#" -eq 0 ]; then {_set_line(args)}; fi')

    if direct or (api is not None and api >= (0, 9)):
        mode = "direct"
    elif bp_id and bp is None:
        # Upstream isScript(): with args, a process from an unknown buildpack is an error.
        msg = f"process type '{ptype}' provided by unknown buildpack '{bp_id}'"
        lines.append(f'if [ "$#" -gt 0 ]; then cnb_fail {_quote(msg)}; fi')
        mode = "shell"
    elif api is not None and api < (0, 4):
        mode = "script"
    else:
        mode = "shell"

    launch = ["cnb_launch", _quote(ptype), mode, _quote(workdir), _quote(command[0]), '"$@"']
    lines.append(" ".join(launch))
    return lines


def render_launch_script(metadata: Mapping[str, Any]) -> str:
    """Render the sh-sourceable process table for ``/cnb/lifecycle/launcher``.

    ``metadata`` is the parsed ``<layers>/config/metadata.toml``.  The result is
    deterministic (same input, same text).  Raises ``ValueError`` for malformed
    metadata, process types unusable as file names, or values containing NUL.
    """
    buildpacks = _buildpacks(metadata)
    default_type = _str_field(metadata, "buildpack-default-process-type", "metadata")
    _quote(default_type)

    out = [
        "# Generated by the lifecycle from <layers>/config/metadata.toml; sourced by",
        "# /cnb/lifecycle/launcher. Do not edit: every value is a single-quoted word.",
        f"cnb_table_format={TABLE_FORMAT}",
        f"cnb_default_type={_quote(default_type)}",
        "",
        "cnb_buildpacks() {",
        "  :",
    ]
    out.extend(f'  "$@" {_quote(_escape_id(bp.id))}' for bp in buildpacks)
    out += ["}", "", "cnb_process() {", "  case $1 in"]

    seen: set[str] = set()
    for i, table in enumerate(_tables(metadata, "processes")):
        where = f"processes[{i}]"
        ptype = _str_field(table, "type", where)
        _validate_type(ptype, where)
        body = _render_process(table, where, buildpacks)
        if ptype in seen:
            # Upstream FindProcessType picks the first match; later duplicates are unreachable.
            continue
        seen.add(ptype)
        out.append(f"    {_quote(ptype)})")
        out.append("      shift")
        out.extend(f"      {line}" for line in body)
        out.append("      ;;")
    out += ["  esac", "  return 1", "}", ""]
    return "\n".join(out)


def write_launch_script(config_dir: Path) -> Path:
    """Render ``config_dir/metadata.toml`` into ``config_dir/launch.sh`` and return its path.

    A missing ``metadata.toml`` yields a table with no processes and no buildpacks.
    The file is replaced atomically (temp file + ``os.replace``) with mode 0644.
    """
    config_dir = Path(config_dir)
    metadata_path = config_dir / "metadata.toml"
    try:
        with metadata_path.open("rb") as f:
            metadata: Mapping[str, Any] = tomllib.load(f)
    except FileNotFoundError:
        metadata = {}
    text = render_launch_script(metadata)

    config_dir.mkdir(parents=True, exist_ok=True)
    target = config_dir / "launch.sh"
    fd, tmp_name = tempfile.mkstemp(prefix=".launch.sh.", dir=config_dir)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(text.encode("utf-8"))
            tmp.flush()
            os.fchmod(tmp.fileno(), 0o644)  # mkstemp creates 0600; the image needs world-readable
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target
