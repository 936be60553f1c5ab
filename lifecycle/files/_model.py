"""The base model of every TOML file: kebab-case keys, unknown keys ignored (as Go's decoder does)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class KebabModel(BaseModel):
    """Fields ``foo_bar`` read and write as ``foo-bar``; extra keys are ignored."""

    model_config = ConfigDict(alias_generator=lambda s: s.replace("_", "-"), populate_by_name=True,
                              extra="ignore")
