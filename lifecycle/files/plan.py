"""Build plans: ``plan.toml`` (detector -> builder), a buildpack's detect output, its build input.

``plan.toml``::

    [[entries]]
      [[entries.providers]]
        id = "samples/hello"
        version = "0.0.1"
      [[entries.requires]]
        name = "hello"
        [entries.requires.metadata]
          key = "value"

A buildpack's ``bin/detect`` writes ``[[provides]]``/``[[requires]]`` plus ``[[or]]`` alternatives
(:class:`DetectPlan`); its ``bin/build`` reads ``[[entries]]`` of requires (:class:`BuildpackPlan`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from lifecycle.files import _toml
from lifecycle.files._model import KebabModel

__all__ = ["BuildpackPlan", "DetectPlan", "Plan", "PlanEntry", "PlanSections", "Provide", "Provider",
           "Require", "read", "write"]




class Require(KebabModel):
    """A requirement: ``name``, deprecated top-level ``version``, free-form ``metadata``."""

    name: str = ""
    version: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)

    def to_toml_dict(self) -> dict[str, Any]:
        """``name``, ``version`` (when set) and ``metadata`` (when not empty)."""
        out: dict[str, Any] = {"name": self.name}
        if self.version:
            out["version"] = self.version
        if self.metadata:
            out["metadata"] = self.metadata
        return out


class Provide(KebabModel):
    """A provision: ``name``."""

    name: str = ""


class Provider(KebabModel):
    """A buildpack that provides a plan entry."""

    id: str
    version: str = ""


class PlanEntry(KebabModel):
    """One ``[[entries]]`` of ``plan.toml``."""

    providers: list[Provider] = Field(default_factory=list)
    requires: list[Require] = Field(default_factory=list)


class Plan(KebabModel):
    """``plan.toml``."""

    entries: list[PlanEntry] = Field(default_factory=list)

    def find(self, buildpack_id: str) -> BuildpackPlan:
        """The requires of every entry ``buildpack_id`` provides: that buildpack's plan."""
        out: list[Require] = []
        for entry in self.entries:
            if any(p.id == buildpack_id for p in entry.providers):
                out.extend(entry.requires)
        return BuildpackPlan(entries=out)

    def without(self, met: list[str]) -> Plan:
        """Drop the entries one of whose requires is named in ``met`` (already provided)."""
        kept = [e for e in self.entries if not any(r.name in met for r in e.requires)]
        return Plan(entries=kept)

    def to_toml_dict(self) -> dict[str, Any]:
        """``[[entries]]`` with providers and requires."""
        return {"entries": [
            {"providers": [{"id": p.id, "version": p.version} for p in e.providers],
             "requires": [r.to_toml_dict() for r in e.requires]}
            for e in self.entries]}


class PlanSections(KebabModel):
    """One alternative of a detect plan."""

    requires: list[Require] = Field(default_factory=list)
    provides: list[Provide] = Field(default_factory=list)


class DetectPlan(PlanSections):
    """What ``bin/detect`` writes to ``CNB_BUILD_PLAN_PATH``: a primary plan and ``[[or]]``."""

    or_: list[PlanSections] = Field(default_factory=list, alias="or")

    def alternatives(self) -> list[PlanSections]:
        """The primary sections, then each ``[[or]]``."""
        return [PlanSections(requires=self.requires, provides=self.provides), *self.or_]


class BuildpackPlan(KebabModel):
    """The plan given to one buildpack's ``bin/build`` (``CNB_BP_PLAN_PATH``)."""

    entries: list[Require] = Field(default_factory=list)

    def to_toml_dict(self) -> dict[str, Any]:
        """``[[entries]]`` of requires."""
        return {"entries": [r.to_toml_dict() for r in self.entries]}


def read(path: Path) -> Plan:
    """Read ``plan.toml``; a missing or unparsable file is an input error."""
    return _toml.validate(Plan, _toml.load(Path(path)) or {}, path)


def write(path: Path, plan: Plan) -> None:
    """Write ``plan.toml`` atomically."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    _toml.write(Path(path), plan.to_toml_dict())
