"""App images run by the compiled launcher under a real dockerd: on a shell-less run image (one static
binary and /etc/passwd, nothing else) and on busybox, built with the creator from test buildpacks."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import base_env, run_program
from tests.e2e.conftest import Workspace, skopeo_to_daemon
from tests.support.services import Dockerd

# The app (a static Go binary). Named setvar* it is an exec.d executable instead: it writes one
# variable on fd 3.
PRINTER_GO = """package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	name := filepath.Base(os.Args[0])
	if strings.HasPrefix(name, "setvar") {
		fd3 := os.NewFile(3, "fd3")
		fmt.Fprintf(fd3, "FROM_EXECD = \\"%s saw %s\\"\\n", name, os.Getenv("GREETING"))
		return
	}
	wd, _ := os.Getwd()
	fmt.Printf("args=%q\\n", os.Args[1:])
	fmt.Printf("GREETING=%s\\n", os.Getenv("GREETING"))
	fmt.Printf("FROM_EXECD=%s\\n", os.Getenv("FROM_EXECD"))
	fmt.Printf("wd=%s\\n", wd)
}
"""
PASSWD = "root:x:0:0:root:/root:/sbin/nologin\ncnb:x:1000:1000:cnb:/home/cnb:/sbin/nologin\n"
ACTIONS = ["override", "default", "append", "prepend", "none"]


def _go() -> str:
    found = shutil.which("go") or ("/usr/local/go/bin/go" if os.path.exists("/usr/local/go/bin/go") else None)
    if found is None:
        pytest.fail("go is not installed (the test compiles its static app with Go)")
    return found


@pytest.fixture(scope="module")
def printer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("printer")
    (src / "go.mod").write_text("module printer\n\ngo 1.22\n")
    (src / "main.go").write_text(PRINTER_GO)
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": ""}
    res = subprocess.run([_go(), "build", "-trimpath", "-o", "printer", "."], cwd=src, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return src / "printer"


def _blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def write_run_image(layout: Path, files: dict[str, tuple[bytes, int]]) -> None:
    """An OCI layout with one uncompressed layer holding ``files`` (path -> content, mode) and
    their parent dirs, nothing else; tagged ``latest``."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(p).parents[i]) for p in files for i in range(len(Path(p).parents) - 1)})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for path, (content, mode) in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(content), mode, 0
            tar.addfile(info, io.BytesIO(content))
    layer, layer_size = _blob(layout, buf.getvalue())
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": [layer]}}
    cfg, cfg_size = _blob(layout, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": cfg_size},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer,
                            "size": layer_size}]}
    man, man_size = _blob(layout, json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man, "size": man_size,
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


def write_buildpack(root: Path, bp_id: str, api: str, build: str) -> None:
    bp = root / bp_id.replace("/", "_") / "1.0.0"
    (bp / "bin").mkdir(parents=True)
    (bp / "buildpack.toml").write_text(f'api = "{api}"\n[buildpack]\nid = "{bp_id}"\nversion = "1.0.0"\n')
    (bp / "bin" / "detect").write_text("#!/bin/sh\nexit 0\n")
    (bp / "bin" / "build").write_text("#!/bin/sh\nset -eu\nlayers=$CNB_LAYERS_DIR\n" + build)
    for script in ("detect", "build"):
        (bp / "bin" / script).chmod(0o755)


def write_order(path: Path, *bp_ids: str) -> None:
    group = "".join(f'[[order.group]]\nid = "{b}"\nversion = "1.0.0"\n' for b in bp_ids)
    path.write_text("[[order]]\n" + group)


def build_app(ws: Workspace, run_image: str, buildpacks: Path, order: Path) -> str:
    res = run_program("creator", "-oci", "-oci-dir", str(ws.oci), "-layers", str(ws.layers), "-app", str(ws.app),
                      "-buildpacks", str(buildpacks), "-order", str(order), "-run-image", run_image, "my-app",
                      env=base_env())
    assert res.returncode == 0, res.stdout
    return res.stdout


class Runner:
    def __init__(self, dockerd: Dockerd, image: str) -> None:
        self.dockerd, self.image = dockerd, image

    def __call__(self, *args: str, entrypoint: str | None = None, env: dict[str, str] | None = None,
                 code: int = 0) -> tuple[str, str]:
        argv = ["run", "--rm", "--network", "none"]
        for k, v in (env or {}).items():
            argv += ["-e", f"{k}={v}"]
        if entrypoint:
            argv += ["--entrypoint", entrypoint]
        res = self.dockerd.run(*argv, self.image, *args, check=False)
        assert res.returncode == code, res.stdout + res.stderr
        return res.stdout, res.stderr


@pytest.fixture
def loaded(dockerd: Dockerd) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        dockerd.run("rmi", "-f", name, check=False)


@pytest.mark.dockerd
def test_shell_less_run_image(tmp_path: Path, printer: Path, dockerd: Dockerd, loaded: list[str]) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.base.mkdir()
    ws.fresh()
    write_run_image(ws.oci / "index.docker.io" / "library" / "shellless" / "latest",
                    {"etc/passwd": (PASSWD.encode(), 0o644), "usr/local/bin/printer": (printer.read_bytes(), 0o755)})
    bps = tmp_path / "buildpacks"
    write_buildpack(bps, "test/static", "0.10", f"""mkdir -p "$layers/tools/exec.d" "$layers/tools/env.launch"
cp {printer} "$layers/tools/exec.d/setvar"
printf Hello > "$layers/tools/env.launch/GREETING"
printf '[types]\\nlaunch = true\\n' > "$layers/tools.toml"
cat > "$layers/launch.toml" <<'EOF'
[[processes]]
type = "web"
command = ["/usr/local/bin/printer", "web-fixed"]
args = ["web-default"]
default = true

[[processes]]
type = "other"
command = ["printer"]
args = ["other-default"]
working-dir = "/usr"
EOF
""")
    write_order(tmp_path / "order.toml", "test/static")
    build_app(ws, "shellless", bps, tmp_path / "order.toml")
    name = f"launcher-shellless-{os.getpid()}:latest"
    skopeo_to_daemon(ws.image_dir(), dockerd.host, name)
    loaded.append(name)
    run = Runner(dockerd, name)
    execd = "FROM_EXECD=setvar saw Hello"

    out, err = run()  # the default process
    assert (out, err) == (f'args=["web-fixed" "web-default"]\nGREETING=Hello\n{execd}\nwd={ws.app}\n', "")
    out, _ = run("a", "b c")  # user args replace the overridable args
    assert out.splitlines()[0] == 'args=["web-fixed" "a" "b c"]'
    out, _ = run(entrypoint="/cnb/process/other")  # another process; found on PATH; its working dir
    assert out == f'args=["other-default"]\nGREETING=Hello\n{execd}\nwd=/usr\n'
    out, _ = run("x", entrypoint="/cnb/process/other")
    assert out.splitlines()[0] == 'args=["x"]'
    out, _ = run("--", "printer", "$GREETING", entrypoint="/cnb/lifecycle/launcher")  # direct: no expansion
    assert out.splitlines()[:2] == ['args=["$GREETING"]', "GREETING=Hello"]
    # A user command without `--` needs a shell, and this image has none: one ERROR line, exit 82.
    out, err = run("printer", "x", entrypoint="/cnb/lifecycle/launcher", code=82)
    assert out == ""
    assert err.startswith("ERROR: failed to launch: shell exec: this process needs a shell and the image has none")
    assert err.count("\n") == 1


def _expected(cur: str | None, action: str, value: str, delim: str) -> str | None:
    """The value after one env file (an independent model of the rules in spec/launcher.md)."""
    if action in ("override", "none"):
        return value
    if action == "default":
        return cur if cur else value
    if action == "prepend":
        return value + (delim + cur if cur else "")
    return (cur + delim if cur else "") + value  # append


@pytest.mark.dockerd
def test_busybox_semantics(tmp_path: Path, dockerd: Dockerd, loaded: list[str]) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.base.mkdir()
    ws.fresh()
    bps = tmp_path / "buildpacks"
    files_one, files_two = [], []
    for a1, a2 in itertools.product(ACTIONS, ACTIONS):
        for prefix in ("U", "P"):  # U: unset before the launch, P: set by `docker run -e`
            var = f"{prefix}_{a1}_{a2}"
            for files, action, value in ((files_one, a1, "one"), (files_two, a2, "two")):
                suffix = "" if action == "none" else f".{action}"
                files.append(f'printf {value} > "$d/{var}{suffix}"; printf + > "$d/{var}.delim"')
    write_buildpack(bps, "test/one", "0.10", 'd="$layers/l/env.launch"; mkdir -p "$d" "$layers/l/exec.d/env"\n'
                    + "\n".join(files_one) + "\n" + """printf Hello > "$layers/l/env.launch/GREETING"
cat > "$layers/l/exec.d/env/setvar" <<'EOF'
#!/bin/sh
echo "FROM_EXECD = \\"$GREETING from exec.d\\"" >&3
EOF
chmod 755 "$layers/l/exec.d/env/setvar"
printf '[types]\\nlaunch = true\\n' > "$layers/l.toml"
cat > "$layers/launch.toml" <<'EOF'
[[processes]]
type = "env"
command = ["env"]
default = true

[[processes]]
type = "echo"
command = ["echo"]
args = ["one-default"]
EOF
""")
    write_buildpack(bps, "test/two", "0.8", 'd="$layers/m/env.launch"; mkdir -p "$d"\n' + "\n".join(files_two)
                    + """
printf '[types]\\nlaunch = true\\n' > "$layers/m.toml"
cat > "$layers/launch.toml" <<'EOF'
[[processes]]
type = "old"
command = "echo"
args = ["$GREETING", "old-default"]
direct = false
EOF
""")
    write_order(tmp_path / "order.toml", "test/one", "test/two")
    build_app(ws, "busybox", bps, tmp_path / "order.toml")
    name = f"launcher-busybox-{os.getpid()}:latest"
    skopeo_to_daemon(ws.image_dir(), dockerd.host, name)
    loaded.append(name)
    run = Runner(dockerd, name)

    # The user's quoted argument stays one argument.
    assert run("sh", "-c", 'echo "hello world"', entrypoint="/cnb/lifecycle/launcher") == ("hello world\n", "")
    assert run("sh", "-c", 'echo "hello world"', entrypoint="/cnb/process/echo")[0] == 'sh -c echo "hello world"\n'
    # Buildpack API 0.8: a shell process, tokens expanded, user args appended.
    assert run(entrypoint="/cnb/process/old") == ("Hello old-default\n", "")
    assert run("$HOSTNAME-x", entrypoint="/cnb/process/old", env={"HOSTNAME": "h"})[0] == "Hello old-default h-x\n"
    # Buildpack API 0.10: user args replace.
    assert run("mine", entrypoint="/cnb/process/echo")[0] == "mine\n"

    preset = {f"P_{a1}_{a2}": "orig" for a1, a2 in itertools.product(ACTIONS, ACTIONS)}
    out, err = run(env={**preset, "HOSTNAME": "app-host"})
    assert err == ""
    got = dict(line.split("=", 1) for line in out.splitlines())
    want: dict[str, str] = {
        "HOSTNAME": "app-host", "HOME": "/root", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "GREETING": "Hello", "FROM_EXECD": "Hello from exec.d",
    }
    for a1, a2 in itertools.product(ACTIONS, ACTIONS):
        for prefix, start in (("U", None), ("P", "orig")):
            value = _expected(_expected(start, a1, "one", "+"), a2, "two", "+")
            assert value is not None
            want[f"{prefix}_{a1}_{a2}"] = value
    assert got == want
