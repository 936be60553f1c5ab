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

from pydantic import Field

from lifecycle.files import _toml
from lifecycle.files._model import KebabModel

__all__ = ["Order", "OrderEntry", "OrderGroup", "read"]




class OrderEntry(KebabModel):
    """One ``[[order.group]]`` element."""

    id: str
    version: str = ""
    optional: bool = False


class OrderGroup(KebabModel):
    """One ``[[order]]`` table."""

    group: list[OrderEntry] = Field(default_factory=list)


class Order(KebabModel):
    """The whole file."""

    order: list[OrderGroup] = Field(default_factory=list)
    order_extensions: list[OrderGroup] = Field(default_factory=list)


def read(path: Path) -> Order:
    """Read ``order.toml``; a missing or unparsable file is an input error."""
    return _toml.validate(Order, _toml.load(Path(path)) or {}, path)
