"""Run-image target: ``CNB_TARGET_*`` for buildpacks and the buildpack ``[[targets]]`` match.

The target comes from ``analyzed.toml``'s ``[run-image.target]``; when it has no distro, the build
host's ``/etc/os-release`` (``ID``, ``VERSION_ID``) fills it in, and a missing OS/arch defaults to
linux and the host architecture, as upstream.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from lifecycle.files.analyzed import Analyzed
from lifecycle.files.buildpack import TargetSpec

_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
           "armv6l": "arm", "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
           "riscv64": "riscv64"}


@dataclass(frozen=True)
class RunTarget:
    """The run image's os/arch/variant/distro as buildpacks see it."""

    os: str = ""
    arch: str = ""
    arch_variant: str = ""
    distro_name: str | None = None
    distro_version: str | None = None

    def env(self) -> dict[str, str]:
        """``CNB_TARGET_OS``, ``CNB_TARGET_ARCH`` and the optional ones when set."""
        out = {"CNB_TARGET_OS": self.os, "CNB_TARGET_ARCH": self.arch}
        if self.arch_variant:
            out["CNB_TARGET_ARCH_VARIANT"] = self.arch_variant
        if self.distro_name:
            out["CNB_TARGET_DISTRO_NAME"] = self.distro_name
        if self.distro_version:
            out["CNB_TARGET_DISTRO_VERSION"] = self.distro_version
        return out

    def satisfies(self, spec: TargetSpec) -> bool:
        """Upstream's match: empty fields on either side match; declared distros must match one."""
        def same(a: str, b: str) -> bool:
            return not a or not b or a == b
        if not (same(self.os, spec.os) and same(self.arch, spec.arch)
                and same(self.arch_variant, spec.arch_variant)):
            return False
        if not spec.distros:
            return True
        if self.distro_name is None and self.distro_version is None:
            return False
        return any(same(self.distro_name or "", d.name) and same(self.distro_version or "", d.version)
                   for d in spec.distros)


def _os_release(path: Path = Path("/etc/os-release")) -> tuple[str, str] | None:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    name = version = ""
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or "=" in value:
            continue
        if key == "ID":
            name = value.strip("\" ")
        elif key == "VERSION_ID":
            version = value.strip("\" ")
    return (name, version) if name or version else None


def run_target(analyzed: Analyzed | None) -> tuple[RunTarget, bool]:
    """The run target and whether ``/etc/os-release`` was consulted (upstream logs that once)."""
    target = analyzed.run_image.target if analyzed and analyzed.run_image else None
    os_name = (target.os if target else "") or ""
    arch = (target.arch if target else "") or ""
    variant = (target.arch_variant if target else "") or ""
    if target is not None and target.distro is not None:
        return RunTarget(os_name, arch, variant, target.distro.name, target.distro.version), False
    os_name = os_name or "linux"
    arch = arch or _GOARCH.get(platform.machine().lower(), platform.machine().lower())
    release = _os_release()
    if release is None:
        return RunTarget(os_name, arch, variant), True
    return RunTarget(os_name, arch, variant, release[0], release[1]), True
