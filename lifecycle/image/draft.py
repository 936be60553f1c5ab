"""Image assembly as values: a config and its layers, edited by returning new drafts.

In the manner of go-containerregistry's ``mutate``: start from a base image (:meth:`Draft.on`) or
from nothing (:meth:`Draft.scratch`), :meth:`~Draft.append` layers (diffID, descriptor, history)
and :meth:`~Draft.edit` the config; :meth:`~Draft.write` puts the config and manifest into a
layout. Every manifest this project writes is built here (app images, rebased images, cache
images), always OCI-typed (D5). Each layer remembers the stored image its blob comes from, so a
store can link it (layouts), mount it (registries) or skip it (a sparse layout, a daemon that has it).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lifecycle.image import model as m
from lifecycle.image.layout import Layout
from lifecycle.image.parts import layer_descriptors, link_blob, oci_layer
from lifecycle.image.store import StoredImage


@dataclass(frozen=True)
class Part:
    """One layer of a draft: its blob descriptor and diffID, and the image its blob is in (None: the
    blob was written into the staging layout itself)."""

    descriptor: m.Descriptor
    diff_id: str
    source: StoredImage | None = None


@dataclass(frozen=True)
class Written:
    """A draft written into a layout: its config and manifest descriptors."""

    config: m.Descriptor
    manifest: m.Descriptor


@dataclass(frozen=True)
class Draft:
    """An image being assembled; every method returns a new draft."""

    config: Mapping[str, Any]
    parts: tuple[Part, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def scratch(cls, config: Mapping[str, Any]) -> Draft:
        """An image with no layers: ``config`` plus an empty ``rootfs`` and ``history``."""
        data = copy.deepcopy(dict(config))
        data["rootfs"] = {"type": "layers", "diff_ids": []}
        data["history"] = []
        return cls(config=data)

    @classmethod
    def on(cls, base: StoredImage, *, config: Mapping[str, Any] | None = None,
           history: Sequence[Mapping[str, Any]] | None = None) -> Draft:
        """``base``'s layers (as OCI layer types) under ``config`` (default: the base's config), with
        ``history`` for them (default: the config's own)."""
        data = copy.deepcopy(dict(config if config is not None else base.config.dump()))
        if history is not None:
            data["history"] = [dict(row) for row in history]
        data["rootfs"] = {"type": "layers", "diff_ids": list(base.diff_ids)}
        parts = tuple(Part(oci_layer(desc), diff_id, base)
                      for desc, diff_id in zip(layer_descriptors(base), base.diff_ids, strict=True))
        return cls(config=data, parts=parts)

    def append(self, *layers: tuple[Part, Mapping[str, Any] | None]) -> Draft:
        """Layers on top, each with its history entry (None: no entry, for callers that set the
        history whole)."""
        data = copy.deepcopy(dict(self.config))
        rootfs = data.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        history = data.get("history")
        for part, row in layers:
            rootfs["diff_ids"].append(part.diff_id)
            if row is not None:
                history = data.setdefault("history", [])
                history.append(dict(row))
        return replace(self, config=data, parts=(*self.parts, *(part for part, _ in layers)))

    def edit(self, change: Callable[[dict[str, Any]], None]) -> Draft:
        """The config changed by ``change`` (applied to a copy)."""
        data = copy.deepcopy(dict(self.config))
        change(data)
        return replace(self, config=data)

    def annotate(self, annotations: Mapping[str, str]) -> Draft:
        """Manifest annotations (replacing any)."""
        return replace(self, annotations=dict(annotations))

    @property
    def layers(self) -> list[m.Descriptor]:
        """The manifest's layer descriptors, bottom first."""
        return [part.descriptor for part in self.parts]

    @property
    def sources(self) -> list[StoredImage]:
        """The stored images the layers come from, in order of first use."""
        out: list[StoredImage] = []
        for part in self.parts:
            if part.source is not None and all(part.source is not seen for seen in out):
                out.append(part.source)
        return out

    def config_bytes(self) -> bytes:
        """The config blob."""
        return m.canonical_json(dict(self.config))

    def manifest_bytes(self, config: m.Descriptor) -> bytes:
        """The manifest blob, naming ``config``."""
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": m.OCI_MANIFEST,
            "config": config.dump(),
            "layers": [desc.dump() for desc in self.layers],
        }
        if self.annotations:
            manifest["annotations"] = dict(self.annotations)
        return m.canonical_json(manifest)

    def write(self, layout: Layout) -> Written:
        """Link the layers' blobs that are on local disk into ``layout`` (others stay missing: a
        sparse layout), then put the config and manifest blobs (not tagged)."""
        layout.init()
        for part in self.parts:
            if part.source is not None:
                link_blob(part.source, part.descriptor, layout)
        config = layout.put_blob(self.config_bytes(), m.OCI_CONFIG)
        manifest = layout.put_blob(self.manifest_bytes(config), m.OCI_MANIFEST)
        return Written(config=config, manifest=manifest)
