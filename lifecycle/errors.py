"""Exit codes and the one exception type the library raises.

Only ``lifecycle.cli`` turns a :class:`LifecycleError` into a process exit; the codes follow
upstream's ``cmd/exit.go`` and ``platform/exit.go``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, grouped by phase decade as in the Platform spec."""

    OK = 0
    FAILED = 1
    USAGE = 2
    INVALID_ARGS = 3
    PLATFORM_API = 11
    BUILDPACK_API = 12
    DETECT_FAIL = 20
    DETECT_BUILDPACK_ERROR = 21
    DETECT_OTHER = 22
    ANALYZE = 32
    RESTORE = 42
    BUILD_BUILDPACK = 51
    BUILD_OTHER = 52
    EXPORT = 62
    REBASE = 72
    LAUNCH = 82


class LifecycleError(Exception):
    """A failure with a user-facing message and the exit code it maps to."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message


class InputError(LifecycleError):
    """Bad flags, env or input files: exit 3."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.INVALID_ARGS)


class ImageError(LifecycleError):
    """An image (layout, registry, daemon) could not be read or written.

    The phase that catches it re-raises with its own exit code via :func:`phase_error`.
    """


def phase_error(action: str, cause: BaseException | str, code: ExitCode) -> LifecycleError:
    """Wrap ``cause`` as upstream does: ``failed to <action>: <cause>``."""
    return LifecycleError(f"failed to {action}: {cause}", code)
