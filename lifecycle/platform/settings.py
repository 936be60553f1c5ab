"""Resolve inputs: flag > env > default, Go-style env parsing, ``<layers>`` placeholders.

This is the only module that reads the process environment's ``CNB_*`` values; it receives the
environment as a mapping, so it is testable without a CLI and phases never read env or argv.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from lifecycle.platform.flags import ENV_ONLY, FLAGS, LAYERS_PLACEHOLDER, Flag

T = TypeVar("T")

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_go_bool(text: str) -> bool | None:
    """Go's ``strconv.ParseBool``: None when the text is not a Go boolean."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def _from_env(flag: Flag, environ: Mapping[str, str]) -> Any:
    for name in flag.env:
        raw = environ.get(name, "")
        if raw == "":
            continue  # upstream: an empty value is the same as an unset one
        if flag.kind == "bool":
            # Upstream: an unparsable bool env counts as false.
            return bool(parse_go_bool(raw))
        if flag.kind == "int":
            try:
                return int(raw)
            except ValueError:
                return flag.default
        if flag.kind == "list":
            return tuple(p for p in raw.split(",") if p)
        return raw
    return None


class Settings:
    """Resolved inputs of one phase run, keyed by flag name."""

    def __init__(self, given: Mapping[str, Any], environ: Mapping[str, str], cwd: Path | None = None) -> None:
        self.given = dict(given)
        self.environ = dict(environ)
        self.cwd = cwd or Path.cwd()
        self._values: dict[str, Any] = {}
        for table in (FLAGS, ENV_ONLY):
            for name, flag in table.items():
                self._values[name] = self._resolve(flag)
        layers = self._values["layers"]
        for name, flag in FLAGS.items():
            value = self._values[name]
            if isinstance(value, str) and value.startswith(LAYERS_PLACEHOLDER):
                value = layers + value[len(LAYERS_PLACEHOLDER):]
            if flag.kind == "path" and value:
                value = os.path.normpath(os.path.join(self.cwd, value))
            self._values[name] = value
        # Upstream: order.toml falls back to /cnb/order.toml when <layers>/order.toml is absent.
        if (not self.was_given("order") and not _env_set(FLAGS["order"], environ)
                and not os.path.exists(self._values["order"])):
            self._values["order"] = "/cnb/order.toml"

    def _resolve(self, flag: Flag) -> Any:
        if flag.name in self.given and self.given[flag.name] is not None:
            value = self.given[flag.name]
            if flag.kind == "list":
                return tuple(value)
            return value
        env_value = _from_env(flag, self.environ)
        if env_value is not None:
            return env_value
        return flag.default

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def was_given(self, name: str) -> bool:
        """Whether ``name`` came from a flag (not env or default)."""
        return self.given.get(name) is not None

    def from_env_or_flag(self, name: str) -> bool:
        """Whether ``name`` was set explicitly by a flag or an env var."""
        flag = FLAGS.get(name) or ENV_ONLY[name]
        return self.was_given(name) or _env_set(flag, self.environ)

    def pick(self, cls: type[T], **overrides: Any) -> T:
        """Build the dataclass ``cls`` from the settings whose names match its fields."""
        assert dataclasses.is_dataclass(cls)
        kwargs: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if field.name in overrides:
                kwargs[field.name] = overrides[field.name]
                continue
            key = field.name.replace("_", "-")
            if key in self._values:
                value = self._values[key]
                if field.type in ("Path", "Path | None") and isinstance(value, str):
                    value = Path(value) if value else None
                kwargs[field.name] = value
        return cls(**kwargs)


def _env_set(flag: Flag, environ: Mapping[str, str]) -> bool:
    return any(environ.get(name, "") != "" for name in flag.env)
