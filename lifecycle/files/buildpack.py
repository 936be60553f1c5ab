"""``buildpack.toml``: a buildpack's descriptor, found at ``<buildpacks>/<id with _>/<version>/``.

::

    api = "0.10"
    [buildpack]
      id = "samples/hello"
      version = "0.0.1"
      name = "Hello"
      homepage = "..."
      clear-env = false
      exec-env = ["production"]     # Buildpack API 0.12
      sbom-formats = [...]
    [[targets]]
      os = "linux"
      arch = "amd64"
      [[targets.distros]]
        name = "ubuntu"
        version = "22.04"
    [[order]]                        # composite buildpacks only
      [[order.group]]
        id = "..."
        version = "..."
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError

from lifecycle.api import ApiVersion
from lifecycle.errors import LifecycleError
from lifecycle.files import _toml
from lifecycle.files._model import KebabModel
from lifecycle.files.group import escape_id
from lifecycle.files.order import OrderGroup

__all__ = ["BuildpackInfo", "BuildpackToml", "Distro", "TargetSpec", "lookup", "read"]




class BuildpackInfo(KebabModel):
    """``[buildpack]``."""

    id: str = ""
    version: str = ""
    name: str = ""
    homepage: str = ""
    clear_env: bool = False
    exec_env: list[str] = Field(default_factory=list)
    sbom_formats: list[str] = Field(default_factory=list)


class Distro(KebabModel):
    """``[[targets.distros]]``."""

    name: str = ""
    version: str = ""


class TargetSpec(KebabModel):
    """``[[targets]]``: where the buildpack can run; empty fields match anything."""

    os: str = ""
    arch: str = ""
    arch_variant: str = ""
    distros: list[Distro] = Field(default_factory=list)


class _Stack(KebabModel):
    id: str = ""


class BuildpackToml(KebabModel):
    """The whole file, plus the directory it was read from."""

    api: str = ""
    buildpack: BuildpackInfo = Field(default_factory=BuildpackInfo)
    order: list[OrderGroup] = Field(default_factory=list)
    targets: list[TargetSpec] = Field(default_factory=list)
    stacks: list[_Stack] = Field(default_factory=list)
    dir: Path = Field(default=Path("."), exclude=True)

    @property
    def is_composite(self) -> bool:
        """A composite buildpack has an ``[[order]]`` and no executables."""
        return bool(self.order)

    def target_list(self) -> list[TargetSpec]:
        """Declared targets; inferred as upstream when none: the ``io.buildpacks.stacks.bionic``
        stack is ubuntu 18.04 on linux/amd64 from Buildpack API 0.10, or below 0.10 when it is the
        only stack listed (a pre-0.10 buildpack listing several stacks says nothing about targets);
        ``*``: any; else ``bin/build``: linux."""
        if self.targets:
            return list(self.targets)
        out: list[TargetSpec] = []
        for stack in self.stacks:
            if stack.id == "io.buildpacks.stacks.bionic":
                if not self._bionic_is_a_target():
                    continue
                bionic = Distro(name="ubuntu", version="18.04")
                out.append(TargetSpec(os="linux", arch="amd64", distros=[bionic]))
            elif stack.id == "*":
                out.append(TargetSpec())
        if not out and (self.dir / "bin" / "build").exists():
            out.append(TargetSpec(os="linux"))
        return out

    def _bionic_is_a_target(self) -> bool:
        try:
            at_least_0_10 = ApiVersion.parse(self.api) >= ApiVersion(0, 10)
        except ValueError:
            at_least_0_10 = False
        return at_least_0_10 or len(self.stacks) == 1


def read(path: Path) -> BuildpackToml:
    """Read a ``buildpack.toml``; errors are :class:`LifecycleError` (code 1, callers re-wrap)."""
    path = Path(path)
    try:
        data = _toml.load(path)
        descriptor = BuildpackToml.model_validate(data or {})
    except LifecycleError as exc:
        raise LifecycleError(exc.message) from None
    except ValidationError as exc:
        raise LifecycleError(f"failed to parse {path}: {exc.errors()[0]['msg']}") from None
    return descriptor.model_copy(update={"dir": path.parent.resolve()})


def lookup(buildpacks_dir: Path, buildpack_id: str, version: str) -> BuildpackToml:
    """``<buildpacks>/<id with / as _>/<version>/buildpack.toml``."""
    return read(Path(buildpacks_dir) / escape_id(buildpack_id) / version / "buildpack.toml")
