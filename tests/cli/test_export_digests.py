"""Digest pins: fixed inputs give these exact app, cache and rebased image digests and these
output lines. They guard refactors of the save path (issue 15): a change that alters what the
exporter, the cache image or the rebaser write must update the pins in the same commit, and say why.

Images record absolute paths (``CNB_LAYERS_DIR``, ``CNB_APP_DIR``, the run image's layout path),
so the workspace lives at one fixed path, guarded by a lock file for concurrent test runs (several
checkouts of the project may run this test on one machine at once). The launcher is a fixture file
here, so replacing the shipped launcher does not move these pins.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifecycle.image.layout import Layout
from tests.conftest import BUSYBOX, BUSYBOX_MANIFEST, LAYOUT_REPO, Run, base_env, require_tool
from tests.support.services import Registry

ROOT = Path("/tmp/lifecycle-digest-pin")
LOCK = Path("/tmp/lifecycle-digest-pin.lock")

APP_DIGEST = "sha256:6c83e1499f84c0a1022d56aebbced0c46ba62283e102d87995139b850ef1c6c4"
CACHE_DIGEST = "sha256:8b950f6f584a02dbe56da48690fb1f64af74254da88f09760cca14e935ab7081"
REBASED_DIGEST = "sha256:4be2c037c5c920e92dd592f116108377a6250e4174ce1e4e982d10e04616967a"
REGISTRY_CACHE_DIGEST = "sha256:caeab2a0dd142b10fc6ae5e629a10ec64b07f39535d1f6de860ec6b8dae14119"
APP_LAYERS = [  # busybox, acme/one:both, acme/one:run, acme/two:a-first, acme/two:z-last, launch SBOM,
    # app slice, app, launcher, config, process types
    "sha256:405fecb6a2fa4f29683f977e7e3b852bf6f8975a2aba647d234d2371894943da",
    "sha256:77865435f8fc25c7e714a8d064a5460599915719ed5063c20b7ab5fe65fad7c1",
    "sha256:04babe7d1c86bd3ecef823a0c9ffc6c38804dadd2965ae06fa6aca7339c8d981",
    "sha256:fc473f8983c5271318f47697ab8c7ff14b73e5db0758884fd47d3218341c990d",
    "sha256:8f613fedd37112d2e34611029aea57ac7a76562be4d43e9737f7a3288edaa659",
    "sha256:ff4b31c18022fb76824dea54c3180028e76d5743e96e5d3e24d2f4af6aed0de2",
    "sha256:8649824733beaf3f1c809b26512faff6988f22e77c861733c4243e6aaca9b484",
    "sha256:828661bfb8be48c2908c59c4960e082bd6fc83bb0fcaafc7bb50ca9bd0f3d5ec",
    "sha256:3dc5cb1ed23f42489c38f842d93b884ecb2049b9ddb638e7f6a214e5ad9b9dac",
    "sha256:3bf6174e991d942953303482496d1e1cfe531c1a3e92c7ec5f51d1f53a0ba8da",
    "sha256:9552041665399d0c4c620a35a4319fd4de20f193220ed9194c73ab142a6e89ef",
]
BUSYBOX_TOP = "sha256:40cf597a9181e86497f4121c604f9f0ab208950a98ca21db883f26b0a548a2eb"
LABEL_LINES = ["Setting default process type 'web'", "Adding label 'io.buildpacks.lifecycle.metadata'",
               "Adding label 'io.buildpacks.build.metadata'", "Adding label 'io.buildpacks.project.metadata'"]


@pytest.fixture
def root() -> Iterator[Path]:
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.rmtree(ROOT, ignore_errors=True)
        ROOT.mkdir(mode=0o755)
        try:
            yield ROOT
        finally:
            shutil.rmtree(ROOT, ignore_errors=True)


def _file(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def make_inputs(root: Path) -> None:
    """Two buildpacks (launch, cache, launch+cache layers, store.toml), a launch SBOM, an app with
    a slice and a symlink, two process types, a fixed launcher. The phases run as root with
    ``CNB_USER_ID=1000``, so they drop to that user (spec/trust-model.md): the layout root is that
    user's, as a platform prepares it; the analyzer hands ``<layers>`` to it (its parents' owners are
    in the layer tars)."""
    shutil.copytree(LAYOUT_REPO, root / "oci")
    for path in (root / "oci", *(root / "oci").rglob("*")):
        os.chown(path, 1000, 1000, follow_symlinks=False)
    layers, app = root / "layers", root / "app"
    _file(layers / "group.toml", '[[group]]\nid = "acme/one"\nversion = "1.0.0"\napi = "0.10"\n'
          '[[group]]\nid = "acme/two"\nversion = "2.0.0"\napi = "0.10"\n')
    one, two = layers / "acme_one", layers / "acme_two"
    _file(one / "run.toml", '[types]\nlaunch = true\n[metadata]\nversion = "1.0"\n')
    _file(one / "run" / "bin" / "tool", "#!/bin/sh\necho tool\n", 0o755)
    _file(one / "run" / "env.launch" / "GREETING", "hello")
    _file(one / "both.toml", "[types]\nlaunch = true\ncache = true\n")
    _file(one / "both" / "data.txt", "both\n")
    _file(one / "cached.toml", "[types]\ncache = true\n")
    _file(one / "cached" / "c.txt", "cache only\n")
    _file(one / "store.toml", "[metadata]\nrun = 1\n")
    _file(two / "z-last.toml", "[types]\nlaunch = true\n")
    _file(two / "z-last" / "z.txt", "z\n")
    _file(two / "a-first.toml", "[types]\nlaunch = true\n")
    _file(two / "a-first" / "a.txt", "a\n")
    _file(layers / "sbom" / "launch" / "acme_one" / "sbom.cdx.json", '{"bomFormat":"CycloneDX"}\n')
    _file(layers / "config" / "metadata.toml",
          'buildpack-default-process-type = "web"\n'
          '[[buildpacks]]\nid = "acme/one"\nversion = "1.0.0"\napi = "0.10"\n'
          '[[buildpacks]]\nid = "acme/two"\nversion = "2.0.0"\napi = "0.10"\n'
          '[[processes]]\ntype = "web"\ncommand = ["tool"]\nargs = ["serve"]\ndirect = true\n'
          'buildpack-id = "acme/one"\n'
          '[[processes]]\ntype = "worker"\ncommand = ["echo", "work"]\nargs = []\ndirect = false\n'
          'buildpack-id = "acme/two"\n'
          '[[slices]]\npaths = ["static/*"]\n'
          '[[labels]]\nkey = "org.example.team"\nvalue = "platform"\n')
    _file(app / "hello.txt", "hello app\n")
    _file(app / "static" / "index.html", "<p>hi</p>\n")
    _file(app / "bin" / "run.sh", "#!/bin/sh\necho run\n", 0o755)
    (app / "link").symlink_to("hello.txt")
    for d in (app, app / "static", app / "bin", layers, one, two):
        d.chmod(0o755)
    _file(root / "launcher", "#!/bin/sh\necho fixed launcher\n", 0o755)
    _file(root / "project-metadata.toml", '[source]\ntype = "git"\n')


def _lines(out: str) -> list[str]:
    """Output lines with the timings blanked (the only part that varies)."""
    return [re.sub(r", \d+\.\d\ds\)$", ", T)", line) for line in out.splitlines()]


def _digest(layout: Path, tag: str = "latest") -> str:
    return Layout(layout).image(tag).manifest_digest


def test_app_cache_and_rebased_digests_are_pinned(run: Run, root: Path) -> None:
    make_inputs(root)
    env = base_env(SOURCE_DATE_EPOCH="1700000000", CNB_USER_ID="1000", CNB_GROUP_ID="1000")
    oci, layers = root / "oci", root / "layers"
    common = ["-oci", "-oci-dir", str(oci), "-layers", str(layers)]
    res = run("analyzer", *common, "-run-image", "busybox", "my-app", env=env)
    assert res.returncode == 0, res.stdout
    export = [*common, "-app", str(root / "app"), "-launcher", str(root / "launcher"),
              "-cache-image", "oci:my-cache",  # D14: the explicit form keeps the cache image in the layout
              "-project-metadata", str(root / "project-metadata.toml"), "my-app", "my-app:v2"]
    res = run("exporter", *export, env=env)
    assert res.returncode == 0, res.stdout
    app_dir = oci / "index.docker.io" / "library" / "my-app" / "latest"
    v2_dir = oci / "index.docker.io" / "library" / "my-app" / "v2"
    cache_dir = oci / "index.docker.io" / "library" / "my-cache" / "latest"
    assert (_digest(app_dir), _digest(v2_dir, "v2"), _digest(cache_dir)) == (APP_DIGEST, APP_DIGEST, CACHE_DIGEST)
    assert [d.digest for d in Layout(app_dir).image().manifest.layers] == APP_LAYERS
    images = [f"*** Images ({APP_DIGEST}):", f"      {app_dir}", f"      {v2_dir}", "*** Manifest Size: 2006"]
    assert _lines(res.stdout) == [
        "Adding layer 'acme/one:both' (243 B, T)",
        "Adding layer 'acme/one:run' (340 B, T)",
        "Adding layer 'acme/two:a-first' (240 B, T)",
        "Adding layer 'acme/two:z-last' (247 B, T)",
        "Adding layer 'buildpacksio/lifecycle:launch.sbom' (995 B, T)",
        "Added 2/2 app layer(s)",
        "Adding layer 'buildpacksio/lifecycle:launcher' (174 B, T)",
        "Adding layer 'buildpacksio/lifecycle:config' (670 B, T)",
        "Adding layer 'buildpacksio/lifecycle:process-types' (178 B, T)",
        *LABEL_LINES,
        f"Saving {app_dir}...",
        f"Saving {v2_dir}...",
        *images,
        "Layer cache not found",
        "Adding cache layer 'acme/one:both'",
        "Adding cache layer 'acme/one:cached'",
    ], res.stdout
    report = tomllib.loads((layers / "report.toml").read_text())["image"]
    assert report["digest"] == APP_DIGEST
    assert report["tags"] == [str(app_dir), str(v2_dir)]

    # Again, with the first image as previous image: everything is reused, nothing moves.
    res = run("analyzer", *common, "-run-image", "busybox", "my-app", env=env)
    assert res.returncode == 0, res.stdout
    res = run("exporter", *export, env=env)
    assert res.returncode == 0, res.stdout
    assert (_digest(app_dir), _digest(cache_dir)) == (APP_DIGEST, CACHE_DIGEST)
    assert _lines(res.stdout) == [
        f"Reusing layers from image '{app_dir}'",
        "Reusing layer 'acme/one:both'",
        "Reusing layer 'acme/one:run'",
        "Reusing layer 'acme/two:a-first'",
        "Reusing layer 'acme/two:z-last'",
        "Reusing layer 'buildpacksio/lifecycle:launch.sbom'",
        "Reused 2/2 app layer(s)",
        "Reusing layer 'buildpacksio/lifecycle:launcher'",
        "Reusing layer 'buildpacksio/lifecycle:config'",
        "Reusing layer 'buildpacksio/lifecycle:process-types'",
        *LABEL_LINES,
        f"Saving {app_dir}...",
        f"Saving {v2_dir}...",
        *images,
        "Reusing cache layer 'acme/one:both'",
        "Reusing cache layer 'acme/one:cached'",
    ], res.stdout

    # Rebase onto a copy of the run image elsewhere (forced: its name is not in the metadata).
    other = oci / "example.com" / "other-run" / "latest"
    rebased_dir = oci / "index.docker.io" / "library" / "my-app" / "rebased"
    shutil.copytree(LAYOUT_REPO / "index.docker.io" / "library" / "busybox" / "latest", other)
    res = run("rebaser", "-oci", "-oci-dir", str(oci), "-report", str(layers / "rebase-report.toml"),
              "-run-image", "example.com/other-run", "-force", "my-app", "my-app:rebased", env=env)
    assert res.returncode == 0, res.stdout
    assert _digest(app_dir) == REBASED_DIGEST
    assert _digest(rebased_dir, "rebased") == REBASED_DIGEST
    assert _lines(res.stdout) == [
        f"Rebasing {app_dir} on run image {other}",
        "Warning: rebase app image: new base image 'example.com/other-run' not found in existing run image "
        f'metadata: {{"topLayer":"{BUSYBOX_TOP}","reference":"{other}@{BUSYBOX_MANIFEST}",'
        f'"image":"{oci}/index.docker.io/library/busybox/latest"}}',
        f"Saving {app_dir}...",
        f"Saving {rebased_dir}...",
        f"*** Images ({REBASED_DIGEST}):",
        f"      {app_dir}",
        f"      {rebased_dir}",
        "*** Manifest Size: 2006",
    ], res.stdout


def test_registry_export_writes_the_pinned_layers_and_cache(run: Run, registry: Registry, root: Path) -> None:
    """In registry mode the app image records the registry's address (so its digest varies with the
    port); its layers and the cache image do not."""
    make_inputs(root)
    subprocess.run([require_tool("skopeo"), "copy", "--dest-tls-verify=false", f"oci:{BUSYBOX}",
                    f"docker://{registry.host}/library/busybox:latest"], check=True, capture_output=True)
    env = base_env(SOURCE_DATE_EPOCH="1700000000", CNB_USER_ID="1000", CNB_GROUP_ID="1000")
    layers = root / "layers"
    common = ["-layers", str(layers), "-insecure-registry", registry.host]
    app_ref = f"{registry.host}/digest-pin-app"
    res = run("analyzer", *common, "-run-image", f"{registry.host}/library/busybox", app_ref, env=env)
    assert res.returncode == 0, res.stdout
    res = run("exporter", *common, "-app", str(root / "app"), "-launcher", str(root / "launcher"),
              "-cache-image", f"{registry.host}/digest-pin-cache",
              "-project-metadata", str(root / "project-metadata.toml"), app_ref, env=env)
    assert res.returncode == 0, res.stdout
    skopeo = require_tool("skopeo")

    def manifest(ref: str) -> tuple[str, list[str]]:
        raw = subprocess.run([skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"], check=True,
                             capture_output=True).stdout
        return "sha256:" + hashlib.sha256(raw).hexdigest(), [d["digest"] for d in json.loads(raw)["layers"]]

    report = tomllib.loads((layers / "report.toml").read_text())["image"]
    app_digest, app_layers = manifest(app_ref)
    assert report["digest"] == app_digest
    assert app_layers == APP_LAYERS
    assert manifest(f"{registry.host}/digest-pin-cache")[0] == REGISTRY_CACHE_DIGEST
