"""A buildpack's declared Buildpack API: the detector and the builder refuse the same ones."""

from __future__ import annotations

from lifecycle.api import BUILDPACK_APIS, ApiVersion
from lifecycle.errors import ExitCode, LifecycleError


def verify_buildpack_api(name: str, api: str) -> None:
    """Exit 12 when a buildpack's API is unparsable or unsupported."""
    try:
        version = ApiVersion.parse(api)
    except ValueError:
        raise LifecycleError(f"failed to parse buildpack API '{api}' for buildpack '{name}'",
                             ExitCode.BUILDPACK_API) from None
    if version not in BUILDPACK_APIS:
        raise LifecycleError(f"failed to set API for buildpack '{name}': buildpack API version '{api}' "
                             "is incompatible with the lifecycle", ExitCode.BUILDPACK_API)
