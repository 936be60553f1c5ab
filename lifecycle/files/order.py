"""``order.toml``: the buildpack groups the detector tries, in order.

::

    [[order]]
      [[order.group]]
        id = "samples/hello"
        version = "0.0.1"
        optional = true        # default false

``[[order-extensions]]`` (image extensions) is read so that its presence can be reported; this
lifecycle does not run extensions.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from lifecycle.files import _toml

__all__ = ["Order", "OrderEntry", "OrderGroup", "read"]


class _Kebab(BaseModel):
    model_config = ConfigDict(alias_generator=lambda s: s.replace("_", "-"), populate_by_name=True,
                              extra="ignore")


class OrderEntry(_Kebab):
    """One ``[[order.group]]`` element."""

    id: str
    version: str = ""
    optional: bool = False


class OrderGroup(_Kebab):
    """One ``[[order]]`` table."""

    group: list[OrderEntry] = Field(default_factory=list)


class Order(_Kebab):
    """The whole file."""

    order: list[OrderGroup] = Field(default_factory=list)
    order_extensions: list[OrderGroup] = Field(default_factory=list)


def read(path: Path) -> Order:
    """Read ``order.toml``; a missing or unparsable file is an input error."""
    return Order.model_validate(_toml.read(Path(path)) or {})
