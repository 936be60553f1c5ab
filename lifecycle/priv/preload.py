"""Modules imported before the drop, because after it they may be out of reach.

After the drop the interpreter's own files may be unreadable by the CNB user: a Python under a
root-only home (pyenv on build hosts), or the frozen executable's unpack directory, which only
root can read. A module imported lazily after the drop would then fail. So before the drop a phase
imports every lifecycle module it may use, and the library modules those import inside functions.

The registry and Docker daemon stacks (httpx with ssl; docker-py with requests) are most of that
memory, so they are imported only by a phase that may use them: about 13 MiB less for a layout or
daemon export (measured).
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil

# Lifecycle modules that reach a registry (by name: every ``lifecycle.image.registry*`` module and the
# registry cache), and the library modules they import only when they run.
REGISTRY_MODULES = ("lifecycle.image.registry", "lifecycle.cache.registry_image")
REGISTRY_LIBRARIES = ("encodings.idna", "httpcore")
# The same for a Docker daemon (every ``lifecycle.image.daemon*`` module).
DAEMON_MODULES = ("lifecycle.image.daemon",)
DAEMON_LIBRARIES = ("docker", "docker.errors", "http.client")
# Library modules imported inside functions by the rest.
LAZY_MODULES = ("bz2", "concurrent.futures.thread", "lzma", "socket", "tarfile", "tempfile", "unicodedata")


def preload(*, registry: bool, daemon: bool) -> list[str]:
    """Import the lifecycle's modules and the library modules they import lazily, leaving out the
    registry stack unless ``registry`` and the daemon stack unless ``daemon``; returns the
    lifecycle modules left out."""
    import lifecycle

    skipped: tuple[str, ...] = ()
    libraries: tuple[str, ...] = LAZY_MODULES
    if registry:
        libraries += REGISTRY_LIBRARIES
    else:
        skipped += REGISTRY_MODULES
    if daemon:
        libraries += DAEMON_LIBRARIES
    else:
        skipped += DAEMON_MODULES
    left_out: list[str] = []
    for info in pkgutil.walk_packages(lifecycle.__path__, "lifecycle."):
        if info.name.startswith(skipped):
            left_out.append(info.name)
        else:
            importlib.import_module(info.name)
    for name in libraries:
        with contextlib.suppress(ImportError):  # optional; the code that needs it says so when used
            importlib.import_module(name)
    return left_out
