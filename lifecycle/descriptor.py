"""What this lifecycle declares to platforms: ``lifecycle.toml`` in the lifecycle tarball and the
lifecycle image's labels. pack takes its decisions from them (spec/image.md, "Declared version").

``packaging/dist.py`` writes them into the tarball and the image.
"""

from __future__ import annotations

import json

from lifecycle.api import BUILDPACK_APIS, PLATFORM_APIS

# Not the package version: the upstream lifecycle version whose behaviour platforms may assume of
# us. pack needs >= 0.7.4 to run the creator and >= 0.7.5 for untrusted builds (the lifecycle
# image); from 0.19.0 on it hands builds with image extensions to the creator, which we do not
# extend, so the declared version stays below that. The APIs below say the rest honestly.
DECLARED_VERSION = "0.18.0"
VERSION_LABEL = "io.buildpacks.lifecycle.version"
APIS_LABEL = "io.buildpacks.lifecycle.apis"


def apis() -> dict[str, dict[str, list[str]]]:
    """Supported and deprecated Buildpack and Platform APIs, oldest first."""
    return {
        "buildpack": {"deprecated": [], "supported": [str(v) for v in BUILDPACK_APIS]},
        "platform": {"deprecated": [], "supported": [str(v) for v in PLATFORM_APIS]},
    }


def lifecycle_toml() -> str:
    """The tarball's ``lifecycle.toml``, as pack reads it."""

    def strings(values: list[str]) -> str:
        return "[" + ", ".join(f'"{v}"' for v in values) + "]"

    lines = []
    for kind, sets in apis().items():
        lines += [f"[apis.{kind}]", f"  deprecated = {strings(sets['deprecated'])}",
                  f"  supported = {strings(sets['supported'])}", ""]
    lines += ["[lifecycle]", f'  version = "{DECLARED_VERSION}"', ""]
    return "\n".join(lines)


def labels() -> dict[str, str]:
    """The lifecycle image's labels."""
    return {VERSION_LABEL: DECLARED_VERSION, APIS_LABEL: json.dumps(apis(), separators=(",", ":"))}

