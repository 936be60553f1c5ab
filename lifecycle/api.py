"""Platform and Buildpack API versions this lifecycle supports (decision D7)."""

from __future__ import annotations

from functools import total_ordering

from lifecycle.errors import ExitCode, LifecycleError


@total_ordering
class ApiVersion:
    """A ``<major>.<minor>`` API version."""

    def __init__(self, major: int, minor: int) -> None:
        self.major = major
        self.minor = minor

    @classmethod
    def parse(cls, text: str) -> ApiVersion:
        """Parse ``0.12``; raise ValueError on anything else."""
        parts = text.strip().split(".")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise ValueError(text)
        return cls(int(parts[0]), int(parts[1]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiVersion) and (self.major, self.minor) == (other.major, other.minor)

    def __lt__(self, other: ApiVersion) -> bool:
        return (self.major, self.minor) < (other.major, other.minor)

    def __hash__(self) -> int:
        return hash((self.major, self.minor))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def __repr__(self) -> str:
        return f"ApiVersion({self})"


PLATFORM_APIS = tuple(ApiVersion(0, m) for m in range(12, 16))
BUILDPACK_APIS = tuple(ApiVersion(0, m) for m in range(7, 13))
NEWEST_PLATFORM = PLATFORM_APIS[-1]


def platform_api(value: str | None) -> tuple[ApiVersion, bool]:
    """Resolve ``CNB_PLATFORM_API``: returns (version, was_defaulted).

    Unset means the newest supported version (the caller warns); unsupported or unparsable
    values are exit 11 with upstream's messages.
    """
    if value is None or value == "":
        return NEWEST_PLATFORM, True
    try:
        version = ApiVersion.parse(value)
    except ValueError:
        raise LifecycleError(f"failed to parse platform API '{value}'", ExitCode.PLATFORM_API) from None
    if version not in PLATFORM_APIS:
        raise LifecycleError(
            f"failed to set platform API: platform API version '{value}' is incompatible with the lifecycle",
            ExitCode.PLATFORM_API,
        )
    return version, False


def buildpack_api_supported(value: str) -> bool:
    """Whether a buildpack declaring API ``value`` can run here."""
    try:
        return ApiVersion.parse(value) in BUILDPACK_APIS
    except ValueError:
        return False
