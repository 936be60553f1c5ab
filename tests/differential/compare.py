"""One normalizer per compared artifact; each turns it into ``{"<artifact>/<field path>": value}``.

Values are compared as parsed data (TOML, JSON), so formatting is not a difference; an empty
string or table is the same as an absent one (upstream writes empty ``sha = ""`` fields, we omit
them). Label values that hold JSON are parsed and compared field by field. Each side's OCI root is
replaced by ``<oci>``.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path
from typing import Any

from tests.differential.known_differences import KNOWN
from tests.differential.workspace import OURS, UPSTREAM, Side

Flat = dict[str, Any]


def flatten(value: Any, prefix: str, out: Flat) -> Flat:
    """``{"a": {"b": [1]}}`` -> ``{prefix/a/b/0: 1}``; empty strings, tables and lists vanish."""
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(item, f"{prefix}/{key}", out)
    elif isinstance(value, list) and value and all(isinstance(v, dict | list) for v in value):
        for i, item in enumerate(value):
            flatten(item, f"{prefix}/{i}", out)
    elif value not in ("", [], None):
        out[prefix] = value
    return out


def _scrub(value: Any, side: Side) -> Any:
    if isinstance(value, str):
        for name in (UPSTREAM, OURS):  # an image copied from the other side names that side's root
            value = value.replace(str(side.home.parent / name / "oci"), "<oci>")
        return value
    if isinstance(value, list):
        return [_scrub(v, side) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, side) for k, v in value.items()}
    return value


def toml_file(side: Side, name: str) -> Flat:
    """``analyzed.toml`` or ``report.toml`` field by field."""
    return flatten(_scrub(tomllib.loads(side.file(name).read_text()), side), name, {})


def _blob(layout: Path, digest: str) -> Any:
    return json.loads((layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_text())


def image(side: Side, name: str = "my-app", tag: str = "latest") -> Flat:
    """The app image: its index.json descriptor, manifest (media types, layer count), config (env,
    entrypoint, labels parsed as JSON, history, diffIDs in order, everything else)."""
    layout = side.image_dir(name, tag)
    index = json.loads((layout / "index.json").read_text())
    out: Flat = {"index/manifests": len(index["manifests"])}
    descriptor = index["manifests"][0]
    flatten({k: v for k, v in descriptor.items() if k not in ("digest", "size")}, "index/descriptor", out)
    manifest = _blob(layout, descriptor["digest"])
    out["manifest/layers"] = len(manifest["layers"])
    out["manifest/mediaType"] = manifest.get("mediaType", "")
    out["manifest/config/mediaType"] = manifest["config"]["mediaType"]
    out["manifest/layer-mediaTypes"] = sorted({layer["mediaType"] for layer in manifest["layers"]})
    flatten(manifest.get("annotations", {}), "manifest/annotations", out)
    config = _blob(layout, manifest["config"]["digest"])
    labels = (config.get("config") or {}).pop("Labels", None) or {}
    for key, value in labels.items():
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        flatten(_scrub(parsed, side), f"config/labels/{key}", out) if isinstance(parsed, dict) else \
            out.__setitem__(f"config/labels/{key}", parsed)
    env = (config.get("config") or {}).pop("Env", None) or []
    for item in env:
        key, _, value = item.partition("=")
        out[f"config/env/{key}"] = value
    out["config/env-order"] = [item.partition("=")[0] for item in env]
    history = config.pop("history", [])
    out["config/history"] = len(history)
    for i, entry in enumerate(history):
        flatten(entry, f"config/history/{i}", out)
    diff_ids = config.pop("rootfs", {}).get("diff_ids", [])
    out["config/diff_ids"] = len(diff_ids)
    for i, diff_id in enumerate(diff_ids):  # named by what made the layer, so a table row can name one
        made_by = history[i].get("created_by", "") if len(history) == len(diff_ids) else ""
        out[f"config/diff_ids/{i}:{made_by}"] = diff_id
    flatten(_scrub(config, side), "config", out)
    return out


_TIMING = re.compile(r" \([^)]*\)$")


def layer_lines(output: str) -> Flat:
    """The exporter's per-layer decisions, in order: ``Adding``/``Reusing layer '<id>'`` and the
    app-layer count line (our size and time suffix dropped)."""
    lines = [_TIMING.sub("", line) for line in output.splitlines()
             if re.match(r"(Adding|Reusing) layer '|(Added|Reused) \d+/\d+ app layer", line)]
    return {"log/layers": lines}


def differences(upstream: Flat, ours: Flat) -> list[str]:
    """Every field whose value differs (or exists on one side only), unless listed in KNOWN."""
    out = []
    for key in sorted(upstream.keys() | ours.keys()):
        if upstream.get(key) == ours.get(key):
            continue
        if any(fnmatch.fnmatchcase(key, pattern) for known in KNOWN.values() for pattern in known.fields):
            continue
        out.append(f"{key}: upstream {upstream.get(key)!r}, ours {ours.get(key)!r}")
    return out


def kept_in_use(upstream: Flat, ours: Flat) -> set[str]:
    """The ids of the kept differences that cover a field that does differ here."""
    differing = [key for key in upstream.keys() | ours.keys() if upstream.get(key) != ours.get(key)]
    return {name for name, known in KNOWN.items()
            if any(fnmatch.fnmatchcase(key, pattern) for key in differing for pattern in known.fields)}
