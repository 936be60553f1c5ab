"""Digest pins: fixed inputs give these exact app, cache and rebased image digests and these
output lines. They guard refactors of the save path (issue 15): a change that alters what the
exporter, the cache image or the rebaser write must update the pins in the same commit, and say why.

Images record absolute paths (``CNB_LAYERS_DIR``, ``CNB_APP_DIR``, the run image's layout path),
so the workspace lives at one fixed path, guarded by a lock file for concurrent test runs (several
checkouts of the project may run this test on one machine at once). The launcher is a fixture file
here, so replacing the shipped launcher does not move these pins.

The pins are unchanged since main at 7fd0598, where the second round of issue 15 (stores that say
what they lack, the creator composing phases) started: that commit's code passes this test with
them (checked by running it with that commit's tree first on ``PYTHONPATH``), so the same inputs
give the same app, cache and rebased image digests before and after that refactor.
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
from tests.conftest import BUSYBOX_MANIFEST, LAYOUT_REPO, Run, base_env, require_tool
from tests.support.sample import push_busybox
from tests.support.services import Registry

ROOT = Path("/tmp/lifecycle-digest-pin")
LOCK = Path("/tmp/lifecycle-digest-pin.lock")

APP_DIGEST = "sha256:5dc0793ec564621ae245f8d6585ed242853f8cde502c0ae8667e83ee35e44dcd"
CACHE_DIGEST = "sha256:89bdca4412f699d93a62637064874af40f06fbe360017391499f72cb709ee79f"
REBASED_DIGEST = "sha256:93dc6c2aefeb80a5643231487cc74f0d6f3c0fb0669f518d253e3df92ff89b19"
REGISTRY_CACHE_DIGEST = "sha256:6cc7bf75bf770fe1796d0bd2b6744add2af62c810cafafc3785162bb04d1a2f3"
APP_LAYERS = [  # busybox, acme/one:both, acme/one:run, acme/two:a-first, acme/two:z-last, launch SBOM,
    # app slice, app, launcher, config, process types
    "sha256:405fecb6a2fa4f29683f977e7e3b852bf6f8975a2aba647d234d2371894943da",
    "sha256:a8d9b4cef38f6b9c6d96c874062f38b2dc70fa5196cd9878e510df64b4718367",
    "sha256:41960d619f25795bd8d4f15ba1c035ee4b5e52f2f4d2f3ff52216aabc9ee69e2",
    "sha256:31fb9ed5cb7c426e6d908a1fbc713ed84cb853c4e2941f2b195109f7a4c9a50f",
    "sha256:c9dcedc1432d5168d097db671a97d7a759fe005046c95fc31912dc401ee13185",
    "sha256:78b78cdaa0fd86fe568bbf99c9c14d9d539361dc0a0a74fa95b6404bb4b9c3b3",
    "sha256:5a5a4cdf54df87958a5146e64dbe6a8c1efa1e5bf606040a84bea19ba65c0e5c",
    "sha256:6ff683744344ef121fe77e6523589793288a855a841ce92967e7995f61e94a21",
    "sha256:ef0a4d76a2245825bae1a1768125646c5140b373adf2977ab3386a0421fcfebc",
    "sha256:2685580dd4e38b710e398fee74c04809ee92c95ed692fc73dbf2d912659a7f25",
    "sha256:40415dbfe1bd115cc33707a10b3dce57246ea133d4118bea92af645e5448b4dc",
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
    images = [f"*** Images ({APP_DIGEST}):", f"      {app_dir}", f"      {v2_dir}", "*** Manifest Size: 2007"]
    assert _lines(res.stdout) == [
        "Adding layer 'acme/one:both' (261 B, T)",
        "Adding layer 'acme/one:run' (356 B, T)",
        "Adding layer 'acme/two:a-first' (260 B, T)",
        "Adding layer 'acme/two:z-last' (263 B, T)",
        "Adding layer 'buildpacksio/lifecycle:launch.sbom' (1.0 kB, T)",
        "Added 2/2 app layer(s)",
        "Adding layer 'buildpacksio/lifecycle:launcher' (188 B, T)",
        "Adding layer 'buildpacksio/lifecycle:config' (683 B, T)",
        "Adding layer 'buildpacksio/lifecycle:process-types' (181 B, T)",
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
        "*** Manifest Size: 2007",
    ], res.stdout


def test_registry_export_writes_the_pinned_layers_and_cache(run: Run, registry: Registry, root: Path) -> None:
    """In registry mode the app image records the registry's address (so its digest varies with the
    port); its layers and the cache image do not."""
    make_inputs(root)
    push_busybox(registry.host)
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
