"""Logging in upstream's plain line shape, through structlog.

Every line goes to stdout: ``ERROR: ...``, ``Warning: ...``, plain info lines and ``===> PHASE``
banners. Key/value context is shown only at debug level, so platforms that parse the output see
exactly what upstream prints.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import MutableMapping
from typing import Any, TextIO


class _LazyAsyncio(types.ModuleType):
    """Stands in for ``asyncio`` in structlog's modules, which name it only inside their ``async``
    methods (never called here); the real module is imported on first use of an attribute."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module("asyncio"), name)


# structlog imports rich, when it is installed (typer's help needs it), for its console renderer
# and traceback formatting, neither used here: hidden during the import, that is 4 MiB less memory
# and a sixth less start-up for every phase. typer still imports rich when it needs it. Its
# modules also import asyncio (and through it ssl), 9 MiB more, for async logging methods only:
# they get a stand-in that imports asyncio if one of those is ever called.
_saved = {name: sys.modules.get(name) for name in ("rich", "asyncio")}
sys.modules["rich"] = None  # type: ignore[assignment]  # None makes `import rich` fail
if _saved["asyncio"] is None:
    sys.modules["asyncio"] = _LazyAsyncio("asyncio")
try:
    import structlog
finally:
    for _name, _module in _saved.items():
        if _module is None:
            del sys.modules[_name]
        else:
            sys.modules[_name] = _module

LEVELS = {"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40}

_PREFIX = {"warning": "Warning: ", "error": "ERROR: ", "debug": "", "info": "", "critical": "ERROR: "}


class _Renderer:
    def __init__(self, show_context: bool) -> None:
        self.show_context = show_context

    def __call__(self, _logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
        message = str(event.pop("event", ""))
        line = _PREFIX.get(method, "") + message
        if self.show_context:
            extras = " ".join(f"{k}={v}" for k, v in sorted(event.items()) if k != "level")
            if extras:
                line = f"{line} ({extras})"
        return line


def configure(level: str = "info", stream: TextIO | None = None) -> None:
    """Configure structlog once per process; ``level`` is one of debug, info, warn, error."""
    numeric = LEVELS.get(level.lower(), 20)
    structlog.configure(
        processors=[_Renderer(show_context=numeric <= 10)],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )


def get_logger() -> Any:
    """Return the process logger (``debug/info/warning/error`` methods)."""
    return structlog.get_logger()


def valid_level(level: str) -> bool:
    """Whether ``level`` is a log level the CLI accepts."""
    return level.lower() in LEVELS
