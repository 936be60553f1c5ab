"""Registry mode against a real docker-registry on 127.0.0.1, plus transport edge cases on a mock.

Real: analyzer in registry mode (run image pushed with skopeo), basic auth via CNB_REGISTRY_AUTH and
the Docker config, clean one-line errors, push_layout_image read back by skopeo, uploads only of
missing blobs (counted in the registry's access log), cross-repo mounts for sparse layouts, chunked
uploads, indexes. Mock (httpx.MockTransport): bearer-token flow, retries, give-up.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from lifecycle.errors import ImageError
from lifecycle.image import registry as regmod
from lifecycle.image import registry_client as clientmod
from lifecycle.image.auth import Keychain, parse_docker_config, parse_registry_auth
from lifecycle.image.registry import RegistryClient, RegistryStore, parse_challenge, push_layout_image
from tests.conftest import BUSYBOX, BUSYBOX_LAYER, BUSYBOX_MANIFEST, Run, base_env, require_tool
from tests.image.layouts import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, layer_tar, put_blob, put_json
from tests.support.sample import push_busybox
from tests.support.services import Registry

pytestmark = [pytest.mark.registry]

BUSYBOX_CONFIG = "sha256:9d5226e6ce3fb6aee2822206a5ef85f38c303d2b37bfc894b419fca2c0501269"
BUSYBOX_DIFF_ID = "sha256:40cf597a9181e86497f4121c604f9f0ab208950a98ca21db883f26b0a548a2eb"


# ---- helpers -------------------------------------------------------------------------------
def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([require_tool("skopeo"), *args], capture_output=True, text=True, timeout=300)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def app_layout(path: Path, files: dict[str, bytes], *, tag: str = "latest", sparse: bool = False,
               labels: dict[str, str] | None = None) -> str:
    """busybox's layer + one app layer, OCI types, tagged ``tag``; returns the manifest digest."""
    path.mkdir(parents=True, exist_ok=True)
    alg, hexpart = BUSYBOX_LAYER.split(":")
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    if not sparse:
        shutil.copyfile(BUSYBOX / "blobs" / alg / hexpart, blobs / hexpart)
    base_layer = {"mediaType": OCI_LAYER_GZIP, "digest": BUSYBOX_LAYER,
                  "size": (BUSYBOX / "blobs" / alg / hexpart).stat().st_size}
    raw = layer_tar(files)
    app = put_blob(path, gzip.compress(raw, compresslevel=6, mtime=0), OCI_LAYER_GZIP)
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Labels": labels or {}},
              "rootfs": {"type": "layers",
                         "diff_ids": [BUSYBOX_DIFF_ID, "sha256:" + hashlib.sha256(raw).hexdigest()]}}
    cfg = put_json(path, config, OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cfg, "layers": [base_layer, app]}
    desc = put_json(path, manifest, OCI_MANIFEST)
    desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return str(desc["digest"])


def uploads(requests: list[tuple[str, str, int]]) -> list[str]:
    """The blob upload completions (PUT .../blobs/uploads/...)."""
    return [uri for method, uri, _ in requests if method == "PUT" and "/blobs/uploads/" in uri]


def analyze(run: Run, tmp_path: Path, *args: str, env: dict[str, str] | None = None
            ) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / "analyzed.toml"
    res = run("analyzer", "-analyzed", str(out), *args, env=env or base_env())
    return res, out


def one_error(res: subprocess.CompletedProcess[str], code: int) -> str:
    assert res.returncode == code, res.stdout
    errors = [line for line in res.stdout.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1, res.stdout
    assert "Traceback" not in res.stdout
    return errors[0]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def secured(registry: Registry) -> Registry:
    """A registry behind htpasswd basic auth (alice / s3cret) holding busybox."""
    reg = registry.start_another(auth=("alice", "s3cret"))
    push_busybox(reg.host, creds="alice:s3cret")
    return reg


# ---- analyzer in registry mode -------------------------------------------------------------
def test_analyzer_registry_mode(registry: Registry, run: Run, tmp_path: Path) -> None:
    run_image = push_busybox(registry.host)
    short = f"{registry.host}/busybox"  # not Docker Hub: no library/ is added
    push_busybox(registry.host, repo="busybox")
    res, out = analyze(run, tmp_path, "-run-image", short, "-insecure-registry", registry.host,
                       f"{registry.host}/my-app")
    assert res.returncode == 0, res.stdout
    assert f'Image with name "{registry.host}/my-app" not found' in res.stdout
    data = tomllib.loads(out.read_text())
    assert data["image"] == {"reference": ""}
    assert data["run-image"]["reference"] == f"{short}@{BUSYBOX_MANIFEST}"
    assert data["run-image"]["image"] == short
    assert data["run-image"]["target"] == {"os": "linux", "arch": "amd64"}
    assert run_image == f"{registry.host}/library/busybox"


def test_analyzer_registry_mode_from_env_and_previous_image(registry: Registry, run: Run,
                                                           tmp_path: Path) -> None:
    label = {"io.buildpacks.lifecycle.metadata": json.dumps({"runImage": {"topLayer": "sha256:abc",
                                                                           "reference": "x"}})}
    layout = tmp_path / "prev"
    digest = app_layout(layout, {"app/hello.txt": b"hi\n"}, labels=label)
    push_layout_image(layout, "latest", f"{registry.host}/apps/prev:v1", mount_from=[],
                      insecure_registries=[registry.host])
    run_image = push_busybox(registry.host)
    env = base_env(CNB_RUN_IMAGE=f"{run_image}:latest", CNB_INSECURE_REGISTRIES=f"{registry.host},other:5000")
    res, out = analyze(run, tmp_path, f"{registry.host}/apps/prev:v1", env=env)
    assert res.returncode == 0, res.stdout
    data = tomllib.loads(out.read_text())
    assert data["image"]["reference"] == f"{registry.host}/apps/prev@{digest}"
    assert data["metadata"]["run-image"]["top-layer"] == "sha256:abc"
    assert data["run-image"]["reference"] == f"{run_image}@{BUSYBOX_MANIFEST}"


def test_analyzer_run_image_missing_in_registry(registry: Registry, run: Run, tmp_path: Path) -> None:
    res, _ = analyze(run, tmp_path, "-run-image", f"{registry.host}/nothing/here", "-insecure-registry",
                     registry.host, f"{registry.host}/my-app")
    assert "the run-image could not be found" in one_error(res, 3)


def test_plain_http_only_when_listed(registry: Registry, run: Run, tmp_path: Path) -> None:
    run_image = push_busybox(registry.host)
    res, _ = analyze(run, tmp_path, "-run-image", run_image, f"{registry.host}/my-app")
    line = one_error(res, 32)
    assert f"https://{registry.host}/v2/" in line
    assert "-insecure-registry" in line


def test_registry_down(run: Run, tmp_path: Path) -> None:
    from tests.support.services import free_port

    host = f"127.0.0.1:{free_port()}"
    res, out = analyze(run, tmp_path, "-run-image", f"{host}/busybox", "-insecure-registry", host,
                       f"{host}/my-app")
    line = one_error(res, 32)
    assert "cannot connect to the registry" in line and host in line
    assert not out.exists()


def test_basic_auth_with_cnb_registry_auth(secured: Registry, run: Run, tmp_path: Path) -> None:
    auth = json.dumps({secured.host: basic("alice", "s3cret")})
    env = base_env(CNB_REGISTRY_AUTH=auth, CNB_INSECURE_REGISTRIES=secured.host)
    res, out = analyze(run, tmp_path, "-run-image", f"{secured.host}/library/busybox",
                       f"{secured.host}/my-app", env=env)
    assert res.returncode == 0, res.stdout
    data = tomllib.loads(out.read_text())
    assert data["run-image"]["reference"] == f"{secured.host}/library/busybox@{BUSYBOX_MANIFEST}"


def test_basic_auth_with_docker_config(secured: Registry, run: Run, tmp_path: Path) -> None:
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    token = base64.b64encode(b"alice:s3cret").decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {f"http://{secured.host}": {"auth": token}}}))
    env = base_env(DOCKER_CONFIG=str(config_dir), CNB_INSECURE_REGISTRIES=secured.host)
    res, out = analyze(run, tmp_path, "-run-image", f"{secured.host}/library/busybox",
                       f"{secured.host}/my-app", env=env)
    assert res.returncode == 0, res.stdout
    assert BUSYBOX_MANIFEST in out.read_text()


@pytest.mark.parametrize("auth", [None, basic("alice", "wrong")])
def test_basic_auth_missing_or_wrong(secured: Registry, run: Run, tmp_path: Path, auth: str | None) -> None:
    env = base_env(CNB_INSECURE_REGISTRIES=secured.host, DOCKER_CONFIG=str(tmp_path))
    if auth:
        env["CNB_REGISTRY_AUTH"] = json.dumps({secured.host: auth})
    res, out = analyze(run, tmp_path, "-run-image", f"{secured.host}/library/busybox",
                       f"{secured.host}/my-app", env=env)
    line = one_error(res, 32)
    assert "UNAUTHORIZED" in line
    assert ("no credentials" in line) == (auth is None)
    assert not out.exists()


def test_bad_registry_auth_json(run: Run, tmp_path: Path) -> None:
    env = base_env(CNB_REGISTRY_AUTH="{not json")
    res, _ = analyze(run, tmp_path, "-run-image", "127.0.0.1:1/x", "127.0.0.1:1/my-app", env=env)
    assert "CNB_REGISTRY_AUTH" in one_error(res, 3)


# ---- push_layout_image -----------------------------------------------------------------------
def test_push_read_back_and_incremental(registry: Registry, tmp_path: Path) -> None:
    layout = tmp_path / "app"
    digest = app_layout(layout, {"app/a.txt": b"one\n"})
    ref = f"{registry.host}/apps/incr:v1"
    mark = registry.mark()
    got = push_layout_image(layout, "latest", ref, mount_from=[], insecure_registries=[registry.host])
    assert got == digest
    first = registry.requests_since(mark)
    assert len(uploads(first)) == 3  # busybox layer, app layer, config
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}").stdout)
    assert info["Digest"] == digest
    assert info["Layers"][0] == BUSYBOX_LAYER
    back = tmp_path / "back"
    skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{back}:latest")
    index = json.loads((back / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest

    # Same image again: only HEADs and the manifest PUT.
    mark = registry.mark()
    assert push_layout_image(layout, "latest", ref, mount_from=[], insecure_registries=[registry.host]) == digest
    again = registry.requests_since(mark)
    assert uploads(again) == []
    assert [m for m, _, _ in again if m not in ("HEAD",)] == ["PUT"]

    # A changed app layer: only the new layer and the new config are uploaded.
    layout2 = tmp_path / "app2"
    digest2 = app_layout(layout2, {"app/a.txt": b"two\n"})
    mark = registry.mark()
    assert push_layout_image(layout2, "latest", f"{registry.host}/apps/incr:v2", mount_from=[],
                             insecure_registries=[registry.host]) == digest2
    changed = registry.requests_since(mark)
    assert len(uploads(changed)) == 2
    assert not any(BUSYBOX_LAYER.replace(":", "%3A") in uri for uri in uploads(changed))


def test_push_sparse_layout_mounts_from_run_image_repo(registry: Registry, tmp_path: Path) -> None:
    run_repo = push_busybox(registry.host, repo="runs/busybox")
    layout = tmp_path / "sparse"
    digest = app_layout(layout, {"app/b.txt": b"b\n"}, sparse=True)
    ref = f"{registry.host}/apps/sparse:latest"
    mark = registry.mark()
    got = push_layout_image(layout, "latest", ref, mount_from=[f"{run_repo}:latest", "other.example/x"],
                            insecure_registries=[registry.host])
    assert got == digest
    reqs = registry.requests_since(mark)
    assert any(m == "POST" and "mount=" in uri and s == 201 for m, uri, s in reqs)
    assert len(uploads(reqs)) == 2  # app layer + config; the busybox layer was mounted
    skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path / 'full'}:latest")
    assert (tmp_path / "full" / "blobs" / "sha256" / BUSYBOX_LAYER.split(":")[1]).is_file()


def test_push_sparse_layout_without_source_fails_clearly(registry: Registry, tmp_path: Path) -> None:
    layout = tmp_path / "sparse"
    app_layout(layout, {"app/c.txt": b"c\n"}, sparse=True)
    other = f"{registry.host}/empty/repo"
    with pytest.raises(ImageError) as err:
        push_layout_image(layout, "latest", f"{registry.host}/apps/orphan:latest", mount_from=[other],
                          insecure_registries=[registry.host])
    text = str(err.value)
    assert BUSYBOX_LAYER in text and "missing from layout" in text and "empty/repo" in text
    assert RegistryStore(insecure_registries=[registry.host]).find(f"{registry.host}/apps/orphan") is None


def test_push_chunked(registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clientmod, "CHUNKED_UPLOAD_THRESHOLD", 1000)
    monkeypatch.setattr(clientmod, "UPLOAD_CHUNK", 4096)
    layout = tmp_path / "big"
    digest = app_layout(layout, {"app/big.bin": hashlib.sha512(b"x").digest() * 300})
    ref = f"{registry.host}/apps/chunked:latest"
    mark = registry.mark()
    assert push_layout_image(layout, "latest", ref, mount_from=[], insecure_registries=[registry.host]) == digest
    assert sum(1 for m, _, _ in registry.requests_since(mark) if m == "PATCH") > 3
    skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path / 'back'}:latest")


def test_push_and_find_index(registry: Registry, tmp_path: Path) -> None:
    layout = tmp_path / "multi"
    amd = app_layout(layout, {"app/amd": b"amd64\n"})
    manifest = json.loads((layout / "blobs" / "sha256" / amd.split(":")[1]).read_bytes())
    config = json.loads((layout / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).read_bytes())
    config["architecture"] = "arm64"
    manifest["config"] = put_json(layout, config, OCI_CONFIG)
    arm = put_json(layout, manifest, OCI_MANIFEST)
    amd_desc = {"mediaType": OCI_MANIFEST, "digest": amd,
                "size": (layout / "blobs" / "sha256" / amd.split(":")[1]).stat().st_size,
                "platform": {"os": "linux", "architecture": "amd64"}}
    arm_desc = {**arm, "platform": {"os": "linux", "architecture": "arm64"}}
    index = put_json(layout, {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                              "manifests": [arm_desc, amd_desc]}, "application/vnd.oci.image.index.v1+json")
    index["annotations"] = {"org.opencontainers.image.ref.name": "multi"}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [index]}))
    ref = f"{registry.host}/apps/multi:latest"
    assert push_layout_image(layout, "multi", ref, mount_from=[],
                             insecure_registries=[registry.host]) == index["digest"]
    store = RegistryStore(insecure_registries=[registry.host])
    image = store.find(ref)
    assert image is not None
    assert image.manifest_digest == amd  # this machine's platform (the tests run on amd64 CI)
    assert image.identifier == f"{registry.host}/apps/multi@{amd}"
    by_digest = store.find(f"{registry.host}/apps/multi@{index['digest']}")
    assert by_digest is not None and by_digest.manifest_digest == amd
    assert store.find(f"{registry.host}/apps/multi@{arm['digest']}") is not None


def test_find_checks_digest_and_reports_missing(registry: Registry) -> None:
    run_repo = push_busybox(registry.host)
    store = RegistryStore(insecure_registries=[registry.host])
    image = store.find(f"{run_repo}@{BUSYBOX_MANIFEST}")
    assert image is not None
    assert image.config.os == "linux" and image.diff_ids == [BUSYBOX_DIFF_ID]
    assert image.manifest.config.digest == BUSYBOX_CONFIG
    assert store.find(f"{run_repo}:nope") is None
    assert store.find(f"{registry.host}/no/such/repo") is None
    assert store.find(f"{run_repo}@sha256:{'0' * 64}") is None
    client = store.client(registry.host)
    blob = b"".join(client.stream_blob("library/busybox", BUSYBOX_LAYER))
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == BUSYBOX_LAYER


# ---- mock transport: bearer tokens, retries --------------------------------------------------
def mock_client(handler: Callable[[httpx.Request], httpx.Response], keychain: Keychain | None = None
                ) -> RegistryClient:
    return RegistryClient("reg.example", keychain=keychain, transport=httpx.MockTransport(handler),
                          sleep=lambda _s: None)


MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": OCI_CONFIG, "digest": BUSYBOX_CONFIG, "size": 1},
                       "layers": []}).encode()


def test_bearer_token_flow() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append({"url": str(request.url), "auth": request.headers.get("Authorization")})
        if request.url.host == "auth.example":
            assert request.headers.get("Authorization") == basic("bob", "pw")
            assert request.url.params.get("service") == "reg"
            assert request.url.params.get_list("scope") == ["repository:team/app:pull"]
            return httpx.Response(200, json={"token": "T0K"})
        if request.headers.get("Authorization") != "Bearer T0K":
            return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.example/token",'
                                                                    'service="reg",scope="repository:team/app:pull"'},
                                  json={"errors": [{"code": "UNAUTHORIZED", "message": "auth required"}]})
        return httpx.Response(200, content=MANIFEST, headers={"Content-Type": OCI_MANIFEST})

    client = mock_client(handler, Keychain(parse_registry_auth(json.dumps({"reg.example": basic("bob", "pw")}))))
    got = client.get_manifest("team/app", "latest")
    assert got == (MANIFEST, OCI_MANIFEST)
    assert [s["url"].split("?")[0] for s in seen] == ["https://reg.example/v2/team/app/manifests/latest",
                                                      "https://auth.example/token",
                                                      "https://reg.example/v2/team/app/manifests/latest"]
    client.get_manifest("team/app", "latest")  # token cached: one request
    assert len(seen) == 4 and seen[-1]["auth"] == "Bearer T0K"


def test_anonymous_bearer_token_and_header_passthrough() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example":
            assert "Authorization" not in request.headers
            return httpx.Response(200, json={"access_token": "ANON"})
        if request.headers.get("Authorization") in ("Bearer ANON", "Bearer given"):
            return httpx.Response(200, content=MANIFEST, headers={"Content-Type": OCI_MANIFEST})
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.example/t"'})

    assert mock_client(handler).get_manifest("a/b", "latest") is not None
    given = Keychain(parse_registry_auth(json.dumps({"https://reg.example": "Bearer given"})))
    assert mock_client(handler, given).get_manifest("a/b", "latest") is not None


def test_retries_transient_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("boom", request=request)
        if calls["n"] == 2:
            return httpx.Response(429, headers={"Retry-After": "1"})
        return httpx.Response(200, content=MANIFEST, headers={"Content-Type": OCI_MANIFEST})

    assert mock_client(handler).get_manifest("a/b", "latest") is not None
    assert calls["n"] == 3


def test_gives_up_after_few_attempts() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return httpx.Response(503, json={"errors": [{"code": "UNAVAILABLE", "message": "later"}]})

    with pytest.raises(ImageError) as err:
        mock_client(handler).get_manifest("a/b", "latest")
    assert calls["n"] == regmod.ATTEMPTS
    assert "UNAVAILABLE: later" in str(err.value) and "gave up" in str(err.value)


def test_client_errors_are_not_retried() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return httpx.Response(400, json={"errors": [{"code": "MANIFEST_INVALID", "message": "bad"}]})

    with pytest.raises(ImageError, match="MANIFEST_INVALID: bad"):
        mock_client(handler).get_manifest("a/b", "latest")
    assert calls["n"] == 1


def test_manifest_digest_is_verified() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=MANIFEST + b" ", headers={"Content-Type": OCI_MANIFEST})

    digest = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
    with pytest.raises(ImageError, match="corrupt"):
        mock_client(handler).get_manifest("a/b", digest)


def test_parse_challenge_and_auth_sources(tmp_path: Path) -> None:
    scheme, params = parse_challenge('Bearer realm="https://a/t",service="s",scope="repository:x:pull,push"')
    assert scheme == "bearer" and params == {"realm": "https://a/t", "service": "s",
                                             "scope": "repository:x:pull,push"}
    (tmp_path / "config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"u:p").decode()},
        "localhost:5000": {"username": "a", "password": "b"},
        "broken": {"auth": "!!!"}}}))
    creds = parse_docker_config(tmp_path / "config.json")
    assert creds["index.docker.io"].username == "u" and creds["index.docker.io"].password == "p"
    assert creds["localhost:5000"].basic == basic("a", "b")
    assert "broken" not in creds
    env_wins = Keychain.from_environ({"DOCKER_CONFIG": str(tmp_path),
                                      "CNB_REGISTRY_AUTH": json.dumps({"localhost:5000": basic("c", "d")})})
    cred = env_wins.get("localhost:5000")
    assert cred is not None and cred.username == "c"
