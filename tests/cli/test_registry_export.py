"""Registry mode end to end: the creator publishes the sample app to a real docker-registry on
127.0.0.1; skopeo reads it back; a rebuild uploads nothing it does not need; basic auth."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
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


def large_app(work: Path) -> tuple[Path, Path]:
    """A layers directory and an app of one 160 MiB incompressible file (its layer is streamed)."""
    layers, app = work / "layers", work / "app"
    (layers / "config").mkdir(parents=True)
    (layers / "config" / "metadata.toml").write_text("")
    (layers / "group.toml").write_text("")
    app.mkdir()
    with open(app / "random.bin", "wb") as out:
        for _ in range(160):
            out.write(os.urandom(1 << 20))
    return layers, app


def start_export(run: Run, reg: Registry, work: Path, name: str) -> subprocess.Popen[str]:
    """Analyze, then start the exporter of :func:`large_app` to ``<reg>/<name>`` (stdout piped,
    stderr with it)."""
    push_busybox(reg.host, f"library/busybox-{name}")
    layers, app = large_app(work)
    common = ["-layers", str(layers), "-insecure-registry", reg.host]
    res = run("analyzer", *common, "-run-image", f"{reg.host}/library/busybox-{name}", f"{reg.host}/{name}")
    assert res.returncode == 0, res.stdout
    return subprocess.Popen([str(BIN / "exporter"), *common, "-app", str(app), f"{reg.host}/{name}"], env=base_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_patch(reg: Registry, repository: str, proc: subprocess.Popen[str]) -> None:
    """Wait (up to 120 s) until the registry logs a PATCH into an upload session of ``repository``."""
    deadline = time.monotonic() + 120
    while not any(r[0] == "PATCH" and r[1].startswith(f"/v2/{repository}/blobs/uploads/") for r in reg.requests()):
        assert proc.poll() is None and time.monotonic() < deadline, "no PATCH while the exporter ran"
        time.sleep(0.02)


def test_a_large_layer_is_uploaded_while_it_is_built(run: Run, registry: Registry, tmp_path: Path) -> None:
    """The app layer's upload session has begun taking chunks before the exporter says the
    layer is built (``Added 1/1 app layer(s)``, printed once its blob is complete): upload and build
    overlap (issue 15). The registry holds the image the report names."""
    name = f"{APP}-overlap"
    proc = start_export(run, registry, tmp_path, name)
    assert proc.stdout is not None
    lines: list[tuple[float, str]] = [(time.time(), line) for line in iter(proc.stdout.readline, "")]
    assert proc.wait(timeout=300) == 0, "".join(line for _, line in lines)
    built = next(when for when, line in lines if "Added 1/1 app layer(s)" in line)
    chunks = [r.start for r in registry.completed()
              if r.method == "PATCH" and r.uri.startswith(f"/v2/{name}/blobs/uploads/") and r.status == 202]
    assert len(chunks) >= 2, chunks
    assert chunks[0] < built, f"first chunk started {chunks[0]:.3f}, layer built {built:.3f}"
    digest = tomllib.loads((tmp_path / "layers" / "report.toml").read_text())["image"]["digest"]
    inspect = json.loads(subprocess.run([require_tool("skopeo"), "inspect", "--tls-verify=false",
                                         f"docker://{registry.host}/{name}"],
                                        check=True, capture_output=True, text=True).stdout)
    assert inspect["Digest"] == digest


def test_a_registry_gone_mid_stream_is_one_error(run: Run, registry: Registry, tmp_path: Path) -> None:
    """The registry stops while the app layer streams to it: one ``ERROR:`` line, the export exit
    code (62, spec/exit-codes.md), no traceback, and no hang (the build does not wait for the dead
    upload)."""
    other = registry.start_another()
    name = f"{APP}-gone"
    proc = start_export(run, other, tmp_path, name)
    wait_for_patch(other, name, proc)
    other.stop()
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 62, out
    errors = [line for line in out.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and errors[0].startswith("ERROR: failed to export: "), out
    assert out.splitlines()[-1] == errors[0]
    assert "Traceback" not in out


def test_a_large_layer_streams_to_the_registry(run: Run, registry: Registry, tmp_path: Path) -> None:
    """A 160 MiB incompressible app layer (over the 64 MiB chunked-upload threshold) is pushed in
    PATCH chunks read from its blob file: the exporter's peak memory stays under 100 MiB (issue 15),
    and the registry holds exactly the image the report names."""
    push_busybox(registry.host, "library/busybox-large")
    layers, app = large_app(tmp_path)
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

