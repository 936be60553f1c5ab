"""Hostile input: bad references and damaged layouts.

Each case: exactly one ``ERROR:`` line, the documented exit code, no traceback, and nothing
written (no analyzed.toml, every layout directory byte-for-byte as before).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import BUSYBOX_LAYER, BUSYBOX_MANIFEST, Run, base_env
from tests.image.layouts import OCI_MANIFEST, add_image, add_index, blob_file, snapshot, write_index

BUSYBOX_PATH = "index.docker.io/library/busybox/latest"
CONFIG = "sha256:9d5226e6ce3fb6aee2822206a5ef85f38c303d2b37bfc894b419fca2c0501269"


def check(run: Run, root: Path, tmp_path: Path, args: list[str], code: int, message: str) -> str:
    before = snapshot(root)
    analyzed = tmp_path / "out" / "analyzed.toml"
    res = run("analyzer", "-oci", "-oci-dir", str(root), "-analyzed", str(analyzed), *args, env=base_env())
    assert res.returncode == code, res.stdout
    errors = [line for line in res.stdout.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1, res.stdout
    assert message in errors[0], res.stdout
    assert "Traceback" not in res.stdout
    assert not analyzed.exists() and not analyzed.parent.exists()
    assert snapshot(root) == before
    return errors[0]


# ---- references ------------------------------------------------------------------------------

@pytest.mark.parametrize(("flag", "value", "message"), [
    ("-run-image", "../busybox", "could not parse reference: ../busybox"),
    ("-run-image", "busybox/../../../etc", "could not parse reference"),
    ("-run-image", "./busybox", "could not parse reference"),
    ("-run-image", "/etc/passwd", "is outside the layout directory"),
    ("-run-image", "{root}/../etc", "is outside the layout directory"),
    ("-run-image", "{root}/index.docker.io/../../x", "is outside the layout directory"),
    ("-run-image", "{root}-sibling/x", "is outside the layout directory"),
    ("-run-image", "BusyBox", "could not parse reference: BusyBox"),
    ("-run-image", "busy box", "could not parse reference"),
    ("-run-image", "busybox:", "could not parse reference"),
    ("-run-image", "busybox::latest", "could not parse reference"),
    ("-run-image", "busybox@sha256:1234", "could not parse reference"),
    ("-run-image", "busybox:../../x", "could not parse reference"),
    ("-run-image", "a//b", "could not parse reference"),
    ("-run-image", "büsybox", "could not parse reference"),
    ("-run-image", "busybox\\..\\x", "could not parse reference"),
    ("-run-image", "~/x", "could not parse reference"),
    ("-previous-image", "../../x", "could not parse reference"),
    ("-previous-image", "/etc", "is outside the layout directory"),
    ("-tag", "../x", "could not parse reference"),
    ("-tag", "Upper/x", "could not parse reference"),
])
def test_bad_reference_flags(run: Run, oci_root: Path, tmp_path: Path, flag: str, value: str,
                             message: str) -> None:
    args = ["-run-image", "busybox", flag, value.format(root=oci_root), "my-app"]
    check(run, oci_root, tmp_path, args, 3, message)


@pytest.mark.parametrize("image", ["../../x", "/etc", "My-App", "app:", "app@sha256:00"])
def test_bad_output_image(run: Run, oci_root: Path, tmp_path: Path, image: str) -> None:
    check(run, oci_root, tmp_path, ["-run-image", "busybox", image], 3, "failed to parse arguments: ")


# ---- damaged layouts ------------------------------------------------------------------------

Damage = Callable[[Path], object]


def _write(name: str, text: str | bytes) -> Damage:
    def damage(layout: Path) -> None:
        data = text.encode() if isinstance(text, str) else text
        (layout / name).write_bytes(data)
    return damage


def _index(manifests: list[dict[str, object]]) -> Damage:
    return _write("index.json", json.dumps({"schemaVersion": 2, "manifests": manifests}))


def _nested_too_deep(layout: Path) -> None:
    desc = add_image(layout)
    for _ in range(6):
        desc = add_index(layout, [desc])
    write_index(layout, [desc])


def _index_pointing_to_missing_index(layout: Path) -> None:
    index = add_index(layout, [add_image(layout)])
    blob_file(layout, str(index["digest"])).unlink()
    write_index(layout, [index])


DAMAGES: list[tuple[str, Damage, str]] = [
    ("index-not-json", _write("index.json", "{not json"), "index.json is not valid JSON"),
    ("index-binary", _write("index.json", b"\xff\xfe\x00\x01"), "index.json is not valid JSON"),
    ("index-empty-file", _write("index.json", ""), "index.json is not valid JSON"),
    ("index-a-list", _write("index.json", "[1, 2]"), "index.json is not valid"),
    ("index-bad-field", _write("index.json", '{"manifests": 7}'), "index.json is not valid"),
    ("index-no-manifests", _index([]), "no manifests in"),
    ("index-no-manifests-key", _write("index.json", '{"schemaVersion": 2}'), "no manifests in"),
    ("manifest-missing", lambda p: blob_file(p, BUSYBOX_MANIFEST).unlink(), "is missing from layout"),
    ("manifest-wrong-digest", lambda p: blob_file(p, BUSYBOX_MANIFEST).write_text("{}"), "is corrupt"),
    ("manifest-wrong-size", _index([{"mediaType": OCI_MANIFEST, "digest": BUSYBOX_MANIFEST, "size": 526}]),
     "descriptor says 526"),
    ("manifest-not-json", _index([{"mediaType": OCI_MANIFEST, "digest": BUSYBOX_LAYER, "size": 772999}]),
     "is not valid JSON"),
    ("manifest-digest-path", _index([{"mediaType": OCI_MANIFEST, "digest": "sha256:../../../../etc/passwd",
                                      "size": 3}]), "invalid digest"),
    ("manifest-unknown-type", _index([{"mediaType": "text/html", "digest": BUSYBOX_MANIFEST, "size": 527}]),
     "unexpected media type"),
    ("config-missing", lambda p: blob_file(p, CONFIG).unlink(), "is missing from layout"),
    ("config-corrupt", lambda p: blob_file(p, CONFIG).write_bytes(b"x" * 1457), "is corrupt"),
    ("index-blob-missing", _index_pointing_to_missing_index, "is missing from layout"),
    ("nested-too-deep", _nested_too_deep, "nested too deeply"),
    ("layout-version", _write("oci-layout", '{"imageLayoutVersion": "2.0.0"}'),
     "unsupported imageLayoutVersion '2.0.0'"),
    ("layout-version-missing", _write("oci-layout", "{}"), "unsupported imageLayoutVersion 'None'"),
    ("layout-file-not-json", _write("oci-layout", "1.0.0"), "invalid oci-layout file"),
]


@pytest.mark.parametrize(("damage", "message"), [d[1:] for d in DAMAGES], ids=[d[0] for d in DAMAGES])
def test_damaged_run_image(run: Run, oci_root: Path, tmp_path: Path, damage: Damage, message: str) -> None:
    damage(oci_root / BUSYBOX_PATH)
    line = check(run, oci_root, tmp_path, ["-run-image", "busybox", "my-app"], 32, message)
    assert line.startswith(f"ERROR: failed to analyze: reading run image: invalid image layout at {oci_root}/")


def test_damaged_previous_image(run: Run, oci_root: Path, tmp_path: Path) -> None:
    app = oci_root / "index.docker.io" / "library" / "my-app" / "latest"
    app.mkdir(parents=True)
    (app / "index.json").write_text("{not json")
    check(run, oci_root, tmp_path, ["-run-image", "busybox", "my-app"], 32,
          "failed to analyze: reading previous image: ")
