"""Read and write TOML: tomllib to read, tomlkit to write, atomic replace, no ``None`` values."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

import tomlkit
from pydantic import BaseModel, ValidationError

from lifecycle.errors import InputError, LifecycleError
from lifecycle.fs.tree import read_file
from lifecycle.image.layout import atomic_write
from lifecycle.image.model import validation_text

M = TypeVar("M", bound=BaseModel)

# Every TOML file the lifecycle reads (platform files, buildpack.toml, files buildpacks write) is
# far smaller; a bigger one, or a FIFO, device or directory in its place, is refused at once.
MAX_TOML = 16 * 1024 * 1024


def load(path: Path, *, missing_ok: bool = False, error: type[LifecycleError] = InputError) -> dict[str, Any] | None:
    """Parse a TOML file: the one place TOML files are read (``lifecycle.fs.read_file``: capped at
    :data:`MAX_TOML`, never waiting on a FIFO). Absent: None when ``missing_ok``. Anything else
    wrong (not a regular file, too large, not UTF-8, not TOML, nested too deeply) raises ``error``."""
    try:
        data = read_file(path, MAX_TOML)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise error(f"failed to read {path}: file not found") from None
    except OSError as exc:
        raise error(f"failed to read {path}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(data.decode())
    except UnicodeDecodeError as exc:
        raise error(f"failed to read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"failed to parse {path}: {exc}") from None
    except RecursionError:
        raise error(f"failed to parse {path}: nested too deeply") from None


def validate(model: type[M], data: Any, path: Path, error: type[LifecycleError] = InputError) -> M:
    """``model.model_validate(data)``; wrong types are ``error`` naming the file and the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(f"failed to parse {path}: {validation_text(exc)}") from None


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
