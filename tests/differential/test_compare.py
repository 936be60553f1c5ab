"""The differential comparison can fail: a change to any compared field of one side is reported
(unless a kept difference covers exactly that field), so an equal result means equal fields."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lifecycle.image import model as m
from lifecycle.image.layout import Layout
from tests.differential import compare
from tests.differential.workspace import OURS, UPSTREAM, Side

LIFECYCLE = "io.buildpacks.lifecycle.metadata"
BUILD = "io.buildpacks.build.metadata"
LAYER = {"mediaType": m.OCI_LAYER_GZIP, "size": 10}
CONFIG: dict[str, Any] = {
    "architecture": "amd64", "os": "linux", "created": "1980-01-01T00:00:01Z",
    "config": {"Env": ["PATH=/cnb/process:/bin", "CNB_LAYERS_DIR=/layers"], "Entrypoint": ["/cnb/process/web"],
               "WorkingDir": "/workspace",
               "Labels": {LIFECYCLE: json.dumps({"app": [{"sha": "sha256:" + "a" * 64}],
                                                 "buildpacks": [{"key": "acme/one", "layers": {"run": {
                                                     "sha": "sha256:" + "b" * 64, "data": {"count": 3}}}}]}),
                          BUILD: json.dumps({"launcher": {"version": "1.0"}, "processes": [{"type": "web"}]}),
                          "org.example.team": "platform"}},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64, "sha256:" + "2" * 64, "sha256:" + "3" * 64]},
    "history": [{"created": "1980-01-01T00:00:01Z", "created_by": "run image"},
                {"created": "1980-01-01T00:00:01Z", "created_by": "Layer: 'run', Created by buildpack: acme/one@1"},
                {"created": "1980-01-01T00:00:01Z", "created_by": "Application Layer"}],
}
ANALYZED = '[run-image]\nreference = "<oci>/busybox@sha256:1"\n[metadata.buildpacks]\nkey = "acme/one"\n'
REPORT = '[image]\ntags = ["<oci>/my-app"]\nmanifest-size = 900\n'


def _side(root: Path, name: str, config: dict[str, Any], analyzed: str = ANALYZED, report: str = REPORT) -> Side:
    side = Side(name, root / name, root / "layers", root / "app")
    layout = Layout(side.image_dir())
    cfg = layout.put_blob(m.canonical_json(config), m.OCI_CONFIG)
    layers = [{**LAYER, "digest": "sha256:" + str(i) * 64} for i in range(1, len(config["rootfs"]["diff_ids"]) + 1)]
    manifest = layout.put_blob(m.canonical_json({"schemaVersion": 2, "mediaType": m.OCI_MANIFEST,
                                                 "config": cfg.dump(), "layers": layers}), m.OCI_MANIFEST)
    layout.set_tag(manifest, "latest")
    side.layers.mkdir(parents=True, exist_ok=True)
    (side.layers / "analyzed.toml").write_text(analyzed)
    (side.layers / "report.toml").write_text(report)
    return side


def _label(config: dict[str, Any], key: str, change: Callable[[Any], None]) -> None:
    value = json.loads(config["config"]["Labels"][key])
    change(value)
    config["config"]["Labels"][key] = json.dumps(value)


CHANGES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "env value": (lambda c: c["config"]["Env"].__setitem__(1, "CNB_LAYERS_DIR=/other"), "config/env/CNB_LAYERS_DIR"),
    "env order": (lambda c: c["config"]["Env"].reverse(), "config/env-order"),
    "entrypoint": (lambda c: c["config"].__setitem__("Entrypoint", ["/cnb/lifecycle/launcher"]),
                   "config/config/Entrypoint"),
    "working dir": (lambda c: c["config"].__setitem__("WorkingDir", "/app"), "config/config/WorkingDir"),
    "label JSON field": (lambda c: _label(c, LIFECYCLE, lambda v: v["buildpacks"][0]["layers"]["run"]["data"]
                                          .__setitem__("count", 4)),
                         f"config/labels/{LIFECYCLE}/buildpacks/0/layers/run/data/count"),
    "plain label": (lambda c: c["config"]["Labels"].__setitem__("org.example.team", "apps"),
                    "config/labels/org.example.team"),
    "history entry": (lambda c: c["history"][0].__setitem__("created_by", "other"), "config/history/0/created_by"),
    "history length": (lambda c: c["history"].append({"created_by": "extra"}), "config/history"),
    "created": (lambda c: c.__setitem__("created", "2023-11-14T22:13:20Z"), "config/created"),
    "layer order": (lambda c: c["rootfs"]["diff_ids"].reverse(), "config/diff_ids/0:run image"),
    "buildpack layer diffID": (lambda c: c["rootfs"]["diff_ids"].__setitem__(1, "sha256:" + "9" * 64),
                               "config/diff_ids/1:Layer: 'run', Created by buildpack: acme/one@1"),
    "layer count": (lambda c: (c["rootfs"]["diff_ids"].append("sha256:" + "4" * 64),
                               c["history"].append({"created_by": "Application Slice: 1"})), "manifest/layers"),
}


@pytest.mark.parametrize("what", list(CHANGES))
def test_a_changed_image_field_is_reported(tmp_path: Path, what: str) -> None:
    change, key = CHANGES[what]
    ours = copy.deepcopy(CONFIG)
    change(ours)
    diffs = compare.differences(compare.image(_side(tmp_path, UPSTREAM, CONFIG)),
                                compare.image(_side(tmp_path, OURS, ours)))
    assert any(d.startswith(f"{key}: ") for d in diffs), diffs


def test_equal_images_and_kept_differences_report_nothing(tmp_path: Path) -> None:
    ours = copy.deepcopy(CONFIG)
    _label(ours, BUILD, lambda v: v["launcher"].__setitem__("version", "0.9"))  # kept: lifecycle-version
    assert compare.differences(compare.image(_side(tmp_path, UPSTREAM, CONFIG)),
                               compare.image(_side(tmp_path, OURS, ours))) == []


@pytest.mark.parametrize("name,ours,key", [
    ("analyzed.toml", ANALYZED.replace('key = "acme/one"', 'key = "acme/two"'),
     "analyzed.toml/metadata/buildpacks/key"),
    ("analyzed.toml", ANALYZED + '[image]\nreference = "<oci>/my-app@sha256:2"\n', "analyzed.toml/image/reference"),
    ("report.toml", REPORT.replace('"<oci>/my-app"', '"<oci>/my-app", "<oci>/my-app/v2"'), "report.toml/image/tags"),
])
def test_a_changed_toml_field_is_reported(tmp_path: Path, name: str, ours: str, key: str) -> None:
    up = _side(tmp_path, UPSTREAM, CONFIG)
    mine = _side(tmp_path, OURS, CONFIG, **{name.split(".")[0]: ours})
    diffs = compare.differences(compare.toml_file(up, name), compare.toml_file(mine, name))
    assert [d.split(":")[0] for d in diffs] == [key]


def test_a_changed_layer_decision_is_reported() -> None:
    up = "Adding layer 'acme/one:run'\nReusing layer 'acme/two:z'\nAdded 1/1 app layer(s)\n"
    ours = ("Adding layer 'acme/one:run' (1 kB, 0.01s)\nAdding layer 'acme/two:z' (1 kB, 0.01s)\n"
            "Added 1/1 app layer(s)\n")
    assert compare.differences(compare.layer_lines(up), compare.layer_lines(ours))
    same = "Adding layer 'acme/one:run' (1 kB, 0.01s)\nReusing layer 'acme/two:z'\nAdded 1/1 app layer(s)\n"
    assert compare.differences(compare.layer_lines(up), compare.layer_lines(same)) == []
