"""A buildpack's ``launch.toml`` and ``build.toml`` (in ``<layers>/<buildpack>/``).

``launch.toml``::

    [[labels]]     key, value
    [[processes]]  type, command, args, default, working-dir, exec-env  (direct: Buildpack API < 0.9)
    [[slices]]     paths

``command`` is an array for Buildpack API >= 0.9 (``direct`` is then forbidden: processes are
direct), a string before (``direct`` defaults to false). ``build.toml``: ``[[unmet]] name``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from lifecycle.api import ApiVersion
from lifecycle.errors import LifecycleError
from lifecycle.files import _toml
from lifecycle.files._model import KebabModel
from lifecycle.files.metadata import Label, Process, Slice

__all__ = [
    "FORBIDDEN_TYPE_CHARACTERS",
    "BuildToml",
    "LaunchToml",
    "ProcessEntry",
    "read_build_toml",
    "read_launch_toml",
]

FORBIDDEN_TYPE_CHARACTERS = "/><:|&\\"




class ProcessEntry(KebabModel):
    """A ``[[processes]]`` entry after API-specific decoding."""

    type: str = ""
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    direct: bool = True
    default: bool = False
    working_dir: str = ""
    exec_env: list[str] = Field(default_factory=list)

    def to_process(self, buildpack_id: str) -> Process:
        """The ``metadata.toml`` form (no ``default``)."""
        return Process(type=self.type, command=self.command, args=self.args, direct=self.direct,
                       buildpack_id=buildpack_id, working_dir=self.working_dir, exec_env=self.exec_env)


class LaunchToml(KebabModel):
    """The whole ``launch.toml``."""

    labels: list[Label] = Field(default_factory=list)
    processes: list[ProcessEntry] = Field(default_factory=list)
    slices: list[Slice] = Field(default_factory=list)
    bom: list[dict[str, Any]] = Field(default_factory=list)


class _Unmet(KebabModel):
    name: str = ""


class BuildToml(KebabModel):
    """The whole ``build.toml``."""

    unmet: list[_Unmet] = Field(default_factory=list)
    bom: list[dict[str, Any]] = Field(default_factory=list)


def _load(path: Path) -> dict[str, Any] | None:
    return _toml.load(path, missing_ok=True, error=LifecycleError)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _process(raw: Any, api: ApiVersion, path: Path) -> ProcessEntry:
    if not isinstance(raw, dict):
        raise LifecycleError(f"failed to parse {path}: [[processes]] entries must be tables")
    command = raw.get("command", [] if api >= ApiVersion(0, 9) else "")
    if api < ApiVersion(0, 9):
        if not isinstance(command, str):
            raise LifecycleError(f"failed to parse {path}: process.command must be a string "
                                 f"for Buildpack API {api}")
        commands = [command]
        direct = raw.get("direct", False)
    else:
        if "direct" in raw:
            raise LifecycleError("process.direct is not supported on this buildpack version")
        if not _strings(command):
            raise LifecycleError(f"failed to parse {path}: process.command must be an array of strings "
                                 f"for Buildpack API {api}")
        commands = list(command)
        direct = True
    fields = {k: v for k, v in raw.items() if k not in ("command", "direct")}
    try:
        return ProcessEntry.model_validate({**fields, "command": commands, "direct": direct})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise LifecycleError(f"failed to parse {path}: process.{where}: {err['msg']}") from None


def read_launch_toml(path: Path, api: ApiVersion) -> LaunchToml | None:
    """Decode ``launch.toml`` for Buildpack API ``api``; None when the file does not exist."""
    path = Path(path)
    data = _load(path)
    if data is None:
        return None
    processes = data.get("processes") or []
    if not isinstance(processes, list):
        raise LifecycleError(f"failed to parse {path}: processes must be an array of tables")
    decoded = [_process(p, api, path) for p in processes]
    rest = {k: v for k, v in data.items() if k != "processes"}
    try:
        launch = LaunchToml.model_validate(rest)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise LifecycleError(f"failed to parse {path}: {where}: {err['msg']}") from None
    return launch.model_copy(update={"processes": decoded})


def read_build_toml(path: Path) -> BuildToml:
    """Decode ``build.toml``; a missing file is empty."""
    path = Path(path)
    data = _load(path)
    try:
        return BuildToml.model_validate(data or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise LifecycleError(f"failed to parse {path}: {where}: {err['msg']}") from None
