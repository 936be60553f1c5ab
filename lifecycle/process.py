"""What a lifecycle program sets up in its own process before a phase runs: the C allocator's
settings, and pydantic without plugins (``prepare``, called once by the entry point,
``lifecycle.cli.main``; library users keep their process as it is). And ``release_free_memory``,
which the exporter calls before its layer builds: harmless in any process.
"""

from __future__ import annotations

import gc
import sys
import types
from typing import Any

_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def tune_allocator() -> bool:
    """One malloc arena for all threads. glibc gives each new thread an arena of its own, where
    the blocks the export threads free stay: the compressor's outputs (bursts of up to 128 KiB)
    cost 0.6 MiB more peak memory per export of the bench app in arenas of their own (measured;
    3 MiB when file chunks were 1 MiB bytes objects). The threads hold the GIL while they allocate,
    so one arena costs no waiting (measured: same wall and CPU time). Not set: a fixed mmap
    threshold, which would hand those bursts back to the system at once (0.3 MiB lower peak) but
    costs about 0.5 s of page faults per export. False where the C library has no ``mallopt``
    (musl) or refuses it: defaults are kept, only memory differs."""
    mallopt = _libc_function("mallopt")
    return mallopt is not None and bool(mallopt(_M_ARENA_MAX, 1))


def release_free_memory() -> None:
    """Collect garbage and hand the C heap's free pages back to the system (glibc's
    ``malloc_trim``; nothing else where there is none): called before a long streaming stretch,
    the exporter's layer builds, once reading and planning have freed what they used, so that
    what the stretch allocates does not come on top of it (0.4 MiB lower peak, measured)."""
    gc.collect()
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)


def _libc_function(name: str) -> Any:
    try:
        import ctypes

        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError, ImportError):
        return None


def _no_plugins() -> tuple[()]:
    return ()


def disable_pydantic_plugins() -> None:
    """pydantic looks for plugins (``pydantic`` entry points of every installed distribution)
    when it builds its first model: a plugin would see, and could change, the validation of files
    a buildpack or a registry wrote, and the lookup imports ``importlib.metadata`` and ``email``
    (1.5 MiB, measured) and reads every distribution's metadata. Its loader module is replaced by
    one that finds none, as ``PYDANTIC_DISABLE_PLUGINS=__all__`` would after the import. Must run
    before the first model is built; a pydantic that has already loaded its loader keeps it."""
    name = "pydantic.plugin._loader"
    if name in sys.modules:
        return
    loader = types.ModuleType(name, "pydantic's plugin loader, replaced by lifecycle.process: no plugins")
    loader.get_plugins = _no_plugins  # type: ignore[attr-defined]  # the one name pydantic imports from it
    sys.modules[name] = loader


def prepare() -> None:
    """``tune_allocator`` and ``disable_pydantic_plugins``, first thing in a lifecycle program."""
    tune_allocator()
    disable_pydantic_plugins()
