"""The environment buildpack executables get (upstream ``env`` package semantics).

Start: only ``HOME``, ``HOSTNAME``, the proxy variables, ``CNB_STACK_ID`` and the root-dir variables
(``PATH``, ``LD_LIBRARY_PATH``, ``LIBRARY_PATH``, ``CPATH``, ``PKG_CONFIG_PATH``) pass through from the
lifecycle's environment. After each buildpack, its ``build = true`` layers add ``<layer>/bin`` etc.
(prepended, ``:``-separated) and their ``env/`` and ``env.build/`` files. For one executable, the
platform's ``<platform>/env/<NAME>`` files (unless ``clear-env``) override, except root-dir variables
which they prepend; ``<build-config>/env/`` files apply last with default action ``default``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from lifecycle.errors import ExitCode, LifecycleError
from lifecycle.fs.tree import read_file

# One env var value: the kernel refuses a single environment string over 128 KiB at exec anyway.
MAX_ENV_FILE = 1024 * 1024

INCLUDE = ("CNB_STACK_ID", "HOSTNAME", "HOME", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
           "NO_PROXY", "no_proxy")

ROOT_DIRS: dict[str, tuple[str, ...]] = {
    "bin": ("PATH",),
    "lib": ("LD_LIBRARY_PATH", "LIBRARY_PATH"),
    "include": ("CPATH",),
    "pkgconfig": ("PKG_CONFIG_PATH",),
}
_ROOT_VARS = {v for names in ROOT_DIRS.values() for v in names}


def _prefix(value: str, sep: str) -> str:
    return sep + value if value else ""


def _suffix(value: str, sep: str) -> str:
    return value + sep if value else ""


def _env_files(directory: Path, fn: Callable[[str, str], None]) -> None:
    """Call ``fn(name, content)`` for each regular file (or symlink to one) in ``directory``, by name."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return
    except NotADirectoryError:
        return
    for name in names:
        path = directory / name
        if path.is_dir():
            continue
        fn(name, _read_env_file(path).decode(errors="surrogateescape"))


def _read_env_file(path: Path) -> bytes:
    """An env file's bytes (capped, never waiting on a FIFO a buildpack put there)."""
    try:
        return read_file(path, MAX_ENV_FILE)
    except OSError as exc:
        raise LifecycleError(f"failed to read env file {path}: {exc.strerror or exc}", ExitCode.BUILD_OTHER) from None


def _delim(directory: Path, name: str, default: str) -> str:
    if not os.path.lexists(directory / f"{name}.delim"):
        return default
    return _read_env_file(directory / f"{name}.delim").decode(errors="surrogateescape")


def apply_env_dir(values: dict[str, str], directory: Path, default_action: str) -> None:
    """Apply ``<NAME>[.<action>]`` files: override, default, prepend, append (``.delim`` separators)."""

    def one(filename: str, content: str) -> None:
        name, _, action = filename.partition(".")
        action = action or default_action
        current = values.get(name, "")
        if action == "prepend":
            values[name] = content + _prefix(current, _delim(directory, name, ""))
        elif action == "append":
            values[name] = _suffix(current, _delim(directory, name, "")) + content
        elif action == "override":
            values[name] = content
        elif action == "default":
            if not current:
                values[name] = content
        elif action == "":
            values[name] = content + _prefix(current, _delim(directory, name, os.pathsep))
        # other suffixes (e.g. ``.delim``) are not actions

    _env_files(directory, one)


class BuildEnv:
    """The accumulating build environment of one detect or build run."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.values = {k: v for k, v in environ.items() if k in INCLUDE or k in _ROOT_VARS}

    def add_root_dir(self, layer: Path) -> None:
        """Prepend ``<layer>/bin`` to PATH, ``<layer>/lib`` to LD_LIBRARY_PATH and LIBRARY_PATH, etc."""
        for sub, names in ROOT_DIRS.items():
            child = Path(layer).absolute() / sub
            if not child.exists():
                continue
            for name in names:
                self.values[name] = str(child) + _prefix(self.values.get(name, ""), os.pathsep)

    def add_env_dir(self, directory: Path, default_action: str = "override") -> None:
        """Apply a layer's ``env/`` or ``env.build/`` directory."""
        apply_env_dir(self.values, Path(directory), default_action)

    def with_overrides(self, platform_dir: Path | None, build_config_dir: Path | None) -> dict[str, str]:
        """The environment for one executable: platform env files, then build-config env files."""
        values = dict(self.values)
        if platform_dir is not None:
            def platform(name: str, content: str) -> None:
                if name in _ROOT_VARS:
                    values[name] = content + _prefix(values.get(name, ""), os.pathsep)
                else:
                    values[name] = content
            _env_files(Path(platform_dir) / "env", platform)
        if build_config_dir is not None:
            apply_env_dir(values, Path(build_config_dir) / "env", "default")
        return values
