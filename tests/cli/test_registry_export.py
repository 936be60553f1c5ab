"""Registry mode end to end: the creator publishes the sample app to a real docker-registry on
127.0.0.1; skopeo reads it back; a rebuild uploads nothing it does not need; basic auth."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tomllib
from pathlib import Path

from tests.conftest import BIN, Run, base_env, require_tool
from tests.support.peak import run_for_peak
from tests.support.sample import push_busybox, sample_build_args
from tests.support.services import Registry

UPLOADS = ("POST", "PUT", "PATCH")
# The session registry is shared with other tests: this module's own repository name.
APP = "registry-export-app"


def creator(run: Run, reg: Registry, work: Path, *, env: dict[str, str] | None = None) -> tuple[int, str]:
    res = run("creator", *sample_build_args(work), "-insecure-registry", reg.host,
              "-run-image", f"{reg.host}/library/busybox", f"{reg.host}/{APP}", env=env)
    return res.returncode, res.stdout


def test_creator_publishes_and_rebuild_uploads_nothing_new(run: Run, registry: Registry, tmp_path: Path) -> None:
    push_busybox(registry.host)
    code, out = creator(run, registry, tmp_path)
    assert code == 0, out
    report = tomllib.loads((tmp_path / "layers" / "report.toml").read_text())["image"]
    assert report["tags"] == [f"{registry.host}/{APP}"]
    skopeo = require_tool("skopeo")
    inspect = json.loads(subprocess.run([skopeo, "inspect", "--tls-verify=false", f"docker://{registry.host}/{APP}"],
                                        check=True, capture_output=True, text=True).stdout)
    assert inspect["Digest"] == report["digest"]
    copy = tmp_path / "copy"
    subprocess.run([skopeo, "copy", "--src-tls-verify=false", f"docker://{registry.host}/{APP}:latest",
                    f"oci:{copy}:latest"], check=True, capture_output=True)
    assert (copy / "index.json").is_file()
    # The run image's layer was mounted or found, never uploaded again from here.
    mark = registry.mark()
    code, out = creator(run, registry, tmp_path)
    assert code == 0, out
    assert "Reusing layer 'samples/hello:hello'" in out
    assert "Reused 1/1 app layer(s)" in out
    again = tomllib.loads((tmp_path / "layers" / "report.toml").read_text())["image"]
    assert again["digest"] == report["digest"]
    blob_uploads = [r for r in registry.requests_since(mark) if r[0] in UPLOADS and "/blobs/" in r[1]]
    # Only the analyzer's write check: one upload session opened and cancelled, no blob sent.
    assert blob_uploads == [("POST", f"/v2/{APP}/blobs/uploads/", 202)]
    # A changed app uploads its new layer, config and nothing else.
    (tmp_path / "app" / "hello.txt").write_text("changed\n")
    mark = registry.mark()
    code, out = creator(run, registry, tmp_path)
    assert code == 0, out
    started = [r for r in registry.requests_since(mark) if r[0] == "POST" and "/blobs/uploads/" in r[1]]
    assert 2 <= len(started) <= 3, started  # the analyzer's write check, the app layer (+ config)


def test_registry_behind_basic_auth(run: Run, registry: Registry, tmp_path: Path) -> None:
    secured = registry.start_another(auth=("alice", "s3cret"))
    push_busybox(secured.host, creds="alice:s3cret")
    token = base64.b64encode(b"alice:s3cret").decode()
    env = base_env(CNB_REGISTRY_AUTH=json.dumps({secured.host: f"Basic {token}"}))
    code, out = creator(run, secured, tmp_path / "ok", env=env)
    assert code == 0, out
    code, out = creator(run, secured, tmp_path / "denied")
    assert code != 0
    errors = [line for line in out.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, out
    assert "Traceback" not in out


def test_tags_on_another_registry_are_refused(run: Run, tmp_path: Path) -> None:
    for program, args in (("analyzer", ["-run-image", "127.0.0.1:1/busybox", "-tag", "example.com/app:v2"]),
                          ("exporter", ["-run-image", "127.0.0.1:1/busybox"])):
        extra = ["example.com/app:v2"] if program == "exporter" else []
        res = run(program, "-layers", str(tmp_path), *args, "127.0.0.1:1/app", *extra)
        assert res.returncode == 3, res.stdout
        assert res.stdout.strip().splitlines()[-1] == "ERROR: writing to multiple registries is unsupported", \
            res.stdout
        assert sum(line.startswith("ERROR:") for line in res.stdout.splitlines()) == 1


def test_a_large_layer_streams_to_the_registry(run: Run, registry: Registry, tmp_path: Path) -> None:
    """A 160 MiB incompressible app layer (over the 64 MiB chunked-upload threshold) is pushed in
    PATCH chunks read from its blob file: the exporter's peak memory stays under 100 MiB (issue 15),
    and the registry holds exactly the image the report names."""
    push_busybox(registry.host, "library/busybox-large")
    layers, app = tmp_path / "layers", tmp_path / "app"
    (layers / "config").mkdir(parents=True)
    (layers / "config" / "metadata.toml").write_text("")
    (layers / "group.toml").write_text("")
    app.mkdir()
    with open(app / "random.bin", "wb") as out:
        for _ in range(160):
            out.write(os.urandom(1 << 20))
    common = ["-layers", str(layers), "-insecure-registry", registry.host]
    image = f"{registry.host}/{APP}-large"
    res = run("analyzer", *common, "-run-image", f"{registry.host}/library/busybox-large", image)
    assert res.returncode == 0, res.stdout
    mark = registry.mark()
    log = tmp_path / "exporter.log"
    with open(log, "w") as sink:  # measured from a small starter: a pytest worker's own peak is larger
        done = run_for_peak([str(BIN / "exporter"), *common, "-app", str(app), image], env=base_env(), stdout=sink)
    out = log.read_text()
    assert done.returncode == 0, out + done.stderr
    assert done.peak_mib < 100, f"peak {done.peak_mib:.0f} MiB"
    patches = [r for r in registry.requests_since(mark) if r[0] == "PATCH"]
    assert len(patches) >= 2, patches  # chunked: the layer is larger than one chunk
    digest = tomllib.loads((layers / "report.toml").read_text())["image"]["digest"]
    inspect = json.loads(subprocess.run([require_tool("skopeo"), "inspect", "--tls-verify=false", f"docker://{image}"],
                                        check=True, capture_output=True, text=True).stdout)
    assert inspect["Digest"] == digest

