"""Read and write TOML: tomllib to read, tomlkit to write, atomic replace, no ``None`` values."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomlkit

from lifecycle.errors import InputError
from lifecycle.image.layout import atomic_write


def read(path: Path, *, missing_ok: bool = False) -> dict[str, Any] | None:
    """Parse a TOML file; a missing file gives None when ``missing_ok``, else an input error."""
    try:
        text = Path(path).read_bytes().decode()
    except FileNotFoundError:
        if missing_ok:
            return None
        raise InputError(f"failed to read {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"failed to read {path}: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"failed to parse {path}: {exc}") from None


def strip_none(value: Any) -> Any:
    """Drop ``None`` recursively (TOML has no null; upstream omits empty values)."""
    if isinstance(value, dict):
        return {k: strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [strip_none(v) for v in value if v is not None]
    return value


def dumps(data: dict[str, Any]) -> str:
    """Serialise a dict to TOML text."""
    return tomlkit.dumps(strip_none(data))


def write(path: Path, data: dict[str, Any]) -> None:
    """Write TOML atomically (other phases read these files)."""
    atomic_write(Path(path), dumps(data).encode())
