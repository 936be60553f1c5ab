"""The builder through its console script, with throw-away sh buildpacks."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, Run, base_env
from tests.phases.buildpacks import Workspace, write_buildpack, write_group

LAYER_TOML = 'cat > "$CNB_LAYERS_DIR/{name}.toml" <<EOF\n[types]\n{types}\n[metadata]\nk = "v"\nEOF\n'


def layer_toml(name: str, types: str) -> str:
    return LAYER_TOML.format(name=name, types=types)


def launch_toml(text: str) -> str:
    return f'cat > "$CNB_LAYERS_DIR/launch.toml" <<"EOF"\n{text}\nEOF\n'


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path).make()


def toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def build(run: Run, ws: Workspace, *extra: str, plan: str = "",
          **env: str) -> subprocess.CompletedProcess[str]:
    (ws.layers / "plan.toml").write_text(plan)
    return run("builder", *ws.builder_args(*extra), env=base_env(**env))


def test_later_buildpack_sees_earlier_build_layers(run: Run, ws: Workspace) -> None:
    first = (
        'L="$CNB_LAYERS_DIR/tools"; mkdir -p "$L/bin" "$L/lib" "$L/env" "$L/env.build" "$L/env.launch"\n'
        'printf "#!/bin/sh\\necho tool-ran\\n" > "$L/bin/tool"; chmod +x "$L/bin/tool"\n'
        'printf "from-env" > "$L/env/FOO"\n'
        'printf "build-only" > "$L/env.build/BUILD_ONLY.override"\n'
        'printf "launch-only" > "$L/env.launch/LAUNCH_ONLY"\n'
        'printf "first" > "$L/env.build/LIST.override"; printf "from-layer" > "$L/env.build/PLAT"\n'
        'printf "dflt" > "$L/env.build/KEEP.default"\n'
        + layer_toml("tools", "build = true")
        + 'L2="$CNB_LAYERS_DIR/tools2"; mkdir -p "$L2/env.build"\n'
          'printf "second" > "$L2/env.build/LIST.append"; printf "," > "$L2/env.build/LIST.delim"\n'
        + layer_toml("tools2", "build = true\ncache = true")
        + 'R="$CNB_LAYERS_DIR/runtime"; mkdir -p "$R/bin"; printf "#!/bin/sh\\n" > "$R/bin/rt"; '
          'chmod +x "$R/bin/rt"\n'
        + layer_toml("runtime", "launch = true")
    )
    second = ('tool; echo "FOO=$FOO BUILD_ONLY=$BUILD_ONLY LIST=$LIST KEEP=$KEEP PLAT=$PLAT"\n'
              'echo "LAUNCH_ONLY=${LAUNCH_ONLY:-unset}"; command -v rt || echo "rt not on PATH"\n'
              'echo "LD=$LD_LIBRARY_PATH"; echo "PATH=$PATH"')
    write_buildpack(ws.buildpacks, "first", build=first)
    write_buildpack(ws.buildpacks, "second", build=second)
    write_group(ws.layers / "group.toml", ("first", "1.0", "0.10"), ("second", "1.0", "0.10"))
    (ws.platform / "env").mkdir()
    (ws.platform / "env" / "PLAT").write_text("platform")
    (ws.platform / "env" / "KEEP").write_text("platform")
    result = build(run, ws)
    assert result.returncode == 0, result.stdout
    out = result.stdout
    tools = ws.layers / "first" / "tools"
    assert "tool-ran" in out
    # layer env files apply in layer order; platform env files override them
    assert "FOO=from-env BUILD_ONLY=build-only LIST=first,second KEEP=platform PLAT=platform" in out
    assert "LAUNCH_ONLY=unset" in out
    assert "rt not on PATH" in out
    assert f"LD={tools / 'lib'}\n" in out
    assert f"PATH={tools / 'bin'}:" in out


def test_build_environment_and_plan(run: Run, ws: Workspace) -> None:
    body = ('echo "cwd=$(pwd) args=$1 $2"; echo "layers=$CNB_LAYERS_DIR"; echo "platform=$CNB_PLATFORM_DIR"; '
            'echo "bpdir=$CNB_BUILDPACK_DIR"; echo "target=$CNB_TARGET_OS/$CNB_TARGET_ARCH/'
            '${CNB_TARGET_DISTRO_NAME:-}"; echo "secret=${SECRET:-unset}"; echo "P=${P:-unset}"; '
            'cat "$CNB_BP_PLAN_PATH"')
    bp_dir = write_buildpack(ws.buildpacks, "acme/env", build=body)
    write_buildpack(ws.buildpacks, "clear", build='echo "clear P=${P:-unset}"', clear_env=True)
    write_group(ws.layers / "group.toml", ("acme/env", "1.0", "0.10"), ("clear", "1.0", "0.10"))
    (ws.platform / "env").mkdir()
    (ws.platform / "env" / "P").write_text("from-platform")
    (ws.layers / "analyzed.toml").write_text(
        '[run-image]\nreference = "x"\n[run-image.target]\nos = "linux"\narch = "arm64"\n'
        '[run-image.target.distro]\nname = "busybox"\nversion = "1.36"\n')
    plan = ('[[entries]]\n[[entries.providers]]\nid = "acme/env"\nversion = "1.0"\n'
            '[[entries.requires]]\nname = "dep"\n[entries.requires.metadata]\nv = "1"\n'
            '[[entries]]\n[[entries.providers]]\nid = "other"\nversion = "1.0"\n'
            '[[entries.requires]]\nname = "not-mine"\n')
    result = build(run, ws, plan=plan, SECRET="x")
    assert result.returncode == 0, result.stdout
    out = result.stdout
    assert f"cwd={ws.app} args={ws.layers / 'acme_env'} {ws.platform}" in out
    assert f"layers={ws.layers / 'acme_env'}" in out
    assert f"platform={ws.platform}" in out
    assert f"bpdir={bp_dir}" in out
    assert "target=linux/arm64/busybox" in out
    assert "secret=unset" in out
    assert "P=from-platform" in out
    assert "clear P=unset" in out
    assert 'name = "dep"' in out and 'v = "1"' in out
    assert "not-mine" not in out


def test_metadata_toml(run: Run, ws: Workspace) -> None:
    a = launch_toml('[[labels]]\nkey = "a.label"\nvalue = "A"\n'
                    '[[processes]]\ntype = "web"\ncommand = ["a-web", "--port"]\nargs = ["8080"]\ndefault = true\n'
                    '[[processes]]\ntype = "worker"\ncommand = ["a-worker"]\nworking-dir = "/tmp"\n'
                    '[[slices]]\npaths = ["static/*"]')
    b = launch_toml('[[processes]]\ntype = "cli"\ncommand = ["b-cli"]\n'
                    '[[processes]]\ntype = "worker"\ncommand = ["b-worker"]')
    write_buildpack(ws.buildpacks, "a", build=a, extra_toml='homepage = "https://a.example"')
    write_buildpack(ws.buildpacks, "b", build=b, api="0.9")
    write_group(ws.layers / "group.toml", ("a", "1.0", "0.10"), ("b", "1.0", "0.9"))
    result = build(run, ws)
    assert result.returncode == 0, result.stdout
    md = toml(ws.layers / "config" / "metadata.toml")
    assert md == {
        "buildpack-default-process-type": "web",
        "buildpacks": [{"id": "a", "version": "1.0", "api": "0.10"}, {"id": "b", "version": "1.0", "api": "0.9"}],
        "labels": [{"key": "a.label", "value": "A"}],
        "processes": [
            {"type": "cli", "command": ["b-cli"], "args": [], "direct": True, "buildpack-id": "b"},
            {"type": "web", "command": ["a-web", "--port"], "args": ["8080"], "direct": True, "buildpack-id": "a"},
            {"type": "worker", "command": ["b-worker"], "args": [], "direct": True, "buildpack-id": "b"},
        ],
        "slices": [{"paths": ["static/*"]}],
    }


def test_redefining_the_default_process_clears_it(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "a", build=launch_toml('[[processes]]\ntype = "web"\ncommand = ["a"]\n'
                                                          'default = true'))
    write_buildpack(ws.buildpacks, "b", build=launch_toml('[[processes]]\ntype = "web"\ncommand = ["b"]'))
    write_group(ws.layers / "group.toml", ("a", "1.0", "0.10"), ("b", "1.0", "0.10"))
    result = build(run, ws)
    assert result.returncode == 0, result.stdout
    assert ("Warning: redefining the following default process type with a process not marked as default: web"
            in result.stdout)
    assert "buildpack-default-process-type" not in toml(ws.layers / "config" / "metadata.toml")


def test_legacy_string_commands_for_buildpack_api_0_8(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "old", api="0.8",
                    build=launch_toml('[[processes]]\ntype = "web"\ncommand = "echo hi"\n'
                                      '[[processes]]\ntype = "direct"\ncommand = "run"\ndirect = true'))
    write_group(ws.layers / "group.toml", ("old", "1.0", "0.8"))
    result = build(run, ws)
    assert result.returncode == 0, result.stdout
    procs = toml(ws.layers / "config" / "metadata.toml")["processes"]
    assert procs == [
        {"type": "direct", "command": ["run"], "args": [], "direct": True, "buildpack-id": "old"},
        {"type": "web", "command": ["echo hi"], "args": [], "direct": False, "buildpack-id": "old"},
    ]


@pytest.mark.parametrize(("launch", "message"), [
    ('[[processes]]\ntype = "a"\ncommand = ["x"]\ndefault = true\n'
     '[[processes]]\ntype = "b"\ncommand = ["y"]\ndefault = true',
     "ERROR: failed to build: multiple default process types aren't allowed"),
    ('[[processes]]\ntype = "we/b"\ncommand = ["x"]',
     "ERROR: failed to build: invalid process type 'we/b': type may not contain characters '/><:|&\\'"),
    ('[[processes]]\ntype = ""\ncommand = ["x"]', "ERROR: failed to build: type is required for all processes"),
    ('[[processes]]\ntype = "web"\ncommand = ["x"]\ndirect = true',
     "ERROR: failed to build: process.direct is not supported on this buildpack version"),
])
def test_invalid_launch_toml_exits_52(run: Run, ws: Workspace, launch: str, message: str) -> None:
    write_buildpack(ws.buildpacks, "a", build=launch_toml(launch))
    write_group(ws.layers / "group.toml", ("a", "1.0", "0.10"))
    result = build(run, ws)
    assert result.returncode == 52, result.stdout
    assert result.stdout.splitlines()[-1] == message
    assert result.stdout.count("ERROR:") == 1
    assert not (ws.layers / "config" / "metadata.toml").exists()


def test_failing_build_exits_51_with_its_output(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "ok", build="echo 'ok built'")
    write_buildpack(ws.buildpacks, "boom", build="echo 'compiling...'; echo 'compiler exploded' >&2; exit 3")
    write_buildpack(ws.buildpacks, "never", build="echo 'should not run'")
    write_group(ws.layers / "group.toml", ("ok", "1.0", "0.10"), ("boom", "1.0", "0.10"),
                ("never", "1.0", "0.10"))
    result = build(run, ws)
    assert result.returncode == 51, result.stdout
    out = result.stdout
    assert "ok built" in out and "compiling..." in out and "compiler exploded" in out
    assert "should not run" not in out
    assert out.splitlines()[-1] == "ERROR: failed to build: exit status 3"


def test_ignored_layers_are_renamed(run: Run, ws: Workspace) -> None:
    body = ('cd "$CNB_LAYERS_DIR"; mkdir -p ignored kept no-toml; echo x > ignored/f\n'
            + layer_toml("ignored", "launch = false")
            + layer_toml("kept", "cache = true")
            + 'printf "[metadata]\\nx = 1\\n" > notypes.toml; mkdir notypes')
    write_buildpack(ws.buildpacks, "a", build=body)
    write_group(ws.layers / "group.toml", ("a", "1.0", "0.10"))
    result = build(run, ws)
    assert result.returncode == 0, result.stdout
    bp = ws.layers / "a"
    assert (bp / "ignored.ignore" / "f").exists() and not (bp / "ignored").exists()
    assert (bp / "notypes.ignore").is_dir()
    assert (bp / "kept").is_dir() and (bp / "no-toml").is_dir()
    assert (bp / "ignored.toml").exists()


def test_top_level_layer_flags_are_refused(run: Run, ws: Workspace) -> None:
    body = 'mkdir "$CNB_LAYERS_DIR/old"; printf "launch = true\\n" > "$CNB_LAYERS_DIR/old.toml"'
    write_buildpack(ws.buildpacks, "a", build=body)
    write_group(ws.layers / "group.toml", ("a", "1.0", "0.10"))
    result = build(run, ws)
    assert result.returncode == 52, result.stdout
    assert result.stdout.splitlines()[-1] == (
        "ERROR: failed to build: failed to process buildpack layer: failed to decode layer metadata file: "
        f"the launch, cache and build flags should be in the types table of {ws.layers / 'a' / 'old.toml'}")


def test_unmet_and_build_toml(run: Run, ws: Workspace) -> None:
    plan = ('[[entries]]\n[[entries.providers]]\nid = "a"\nversion = "1.0"\n[[entries.providers]]\n'
            'id = "b"\nversion = "1.0"\n[[entries.requires]]\nname = "dep"\n')
    write_buildpack(ws.buildpacks, "a", build='printf "[[unmet]]\\nname = \\"dep\\"\\n" > '
                                              '"$CNB_LAYERS_DIR/build.toml"')
    write_buildpack(ws.buildpacks, "b", build='grep -q dep "$CNB_BP_PLAN_PATH" && echo "b got dep"')
    write_group(ws.layers / "group.toml", ("a", "1.0", "0.10"), ("b", "1.0", "0.10"))
    result = build(run, ws, plan=plan)
    assert result.returncode == 0, result.stdout
    assert "b got dep" in result.stdout
    write_buildpack(ws.buildpacks, "a", build='printf "[[unmet]]\\nname = \\"other\\"\\n" > '
                                              '"$CNB_LAYERS_DIR/build.toml"')
    result = build(run, ws, plan=plan)
    assert result.returncode == 52
    assert "ERROR: failed to build: unmet.name 'other' must match a requested dependency" in result.stdout


def test_sbom_files_are_copied(run: Run, ws: Workspace) -> None:
    body = ('mkdir "$CNB_LAYERS_DIR/l"; echo "{}" > "$CNB_LAYERS_DIR/l.sbom.cdx.json"; '
            'echo "{}" > "$CNB_LAYERS_DIR/launch.sbom.spdx.json"\n' + layer_toml("l", "launch = true\ncache = true"))
    write_buildpack(ws.buildpacks, "a/b", build=body,
                    extra_toml='sbom-formats = ["application/vnd.cyclonedx+json", "application/spdx+json"]')
    write_group(ws.layers / "group.toml", ("a/b", "1.0", "0.10"))
    result = build(run, ws)
    assert result.returncode == 0, result.stdout
    sbom = ws.layers / "sbom"
    assert (sbom / "launch" / "a_b" / "l" / "sbom.cdx.json").exists()
    assert (sbom / "cache" / "a_b" / "l" / "sbom.cdx.json").exists()
    assert (sbom / "launch" / "a_b" / "sbom.spdx.json").exists()


def test_missing_group_and_positional_args(run: Run, ws: Workspace) -> None:
    result = build(run, ws)
    assert result.returncode == 3
    assert "group.toml" in result.stdout
    result = run("builder", "x", env=base_env())
    assert result.returncode == 3
    assert "ERROR: failed to parse arguments: received unexpected arguments" in result.stdout


def test_samples_build_and_reuse_the_cached_layer(run: Run, ws: Workspace) -> None:
    shutil.copytree(REPO / "samples" / "apps" / "hello", ws.app, dirs_exist_ok=True)
    common = ["-buildpacks", str(REPO / "cnb" / "buildpacks"), "-layers", str(ws.layers), "-app", str(ws.app)]
    result = run("detector", *common, "-order", str(REPO / "cnb" / "order.toml"), env=base_env())
    assert result.returncode == 0, result.stdout
    result = run("builder", *common, env=base_env())
    assert result.returncode == 0, result.stdout
    assert "samples/hello: building cached layer" in result.stdout
    md = toml(ws.layers / "config" / "metadata.toml")
    assert md["buildpack-default-process-type"] == "web"
    assert [p["type"] for p in md["processes"]] == ["web", "worker"]
    hello = ws.layers / "samples_hello"
    assert (hello / "hello" / "env.launch" / "GREETING").read_text() == "Hello"
    assert os.access(hello / "hello" / "bin" / "hello", os.X_OK)
    assert toml(hello / "cache-data.toml")["types"] == {"launch": False, "build": False, "cache": True}
    # what the restorer leaves: metadata only (no [types]) and the layer directory
    checksum = toml(hello / "cache-data.toml")["metadata"]["checksum"]
    (hello / "cache-data.toml").write_text(f'[metadata]\nchecksum = "{checksum}"\n')
    result = run("builder", *common, env=base_env())
    assert result.returncode == 0, result.stdout
    assert "samples/hello: reusing cached layer" in result.stdout
    (ws.app / "hello.txt").write_text("changed\n")
    result = run("builder", *common, env=base_env())
    assert "samples/hello: building cached layer" in result.stdout


# -- privileges ---------------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")

WHOAMI = ('id -u > "$CNB_LAYERS_DIR/uid"; id -g > "$CNB_LAYERS_DIR/gid"; echo "home=$HOME"\n'
          'mkdir "$CNB_LAYERS_DIR/made"; touch "$CNB_LAYERS_DIR/made/file"\n' + layer_toml("made", "launch = true"))


@pytest.fixture
def open_ws() -> Iterator[Workspace]:
    """A workspace any user can traverse (pytest's tmp_path root is 0700)."""
    root = Path(tempfile.mkdtemp(prefix="lifecycle-priv-"))
    try:
        yield Workspace(root).make()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@needs_root
def test_buildpacks_run_as_root_with_uid_0(run: Run, open_ws: Workspace) -> None:
    ws = open_ws
    write_buildpack(ws.buildpacks, "who", build=WHOAMI, detect='id -u > "$CNB_PLATFORM_DIR/../detect-uid"')
    (ws.order).write_text('[[order]]\n[[order.group]]\nid = "who"\nversion = "1.0"\n')
    result = run("detector", *ws.detector_args("-uid", "0", "-gid", "0"), env=base_env())
    assert result.returncode == 0, result.stdout
    assert (ws.root / "detect-uid").read_text().strip() == "0"
    result = run("builder", *ws.builder_args("-uid", "0", "-gid", "0"), env=base_env())
    assert result.returncode == 0, result.stdout
    assert (ws.layers / "who" / "uid").read_text().strip() == "0"
    assert (ws.layers / "who" / "made" / "file").stat().st_uid == 0


@needs_root
def test_buildpacks_run_as_the_build_user(run: Run, open_ws: Workspace) -> None:
    ws = open_ws
    detect = 'id -u > /tmp/"$(basename "$(dirname "$CNB_PLATFORM_DIR")")".detect-uid; echo "dhome=$HOME"'
    write_buildpack(ws.buildpacks, "who", build=WHOAMI, detect=detect)
    (ws.order).write_text('[[order]]\n[[order.group]]\nid = "who"\nversion = "1.0"\n')
    # a root-owned layer left by an earlier phase must become writable for the build user
    (ws.layers / "who").mkdir()
    (ws.layers / "who" / "old.toml").write_text("[types]\ncache = true\n")
    ws.open_up()
    env = base_env(CNB_USER_ID="1000", CNB_GROUP_ID="1000")
    result = run("detector", *ws.detector_args("-log-level", "debug"), env=env)
    assert result.returncode == 0, result.stdout
    marker = Path("/tmp") / f"{ws.root.name}.detect-uid"
    try:
        assert marker.read_text().strip() == "1000"
    finally:
        marker.unlink(missing_ok=True)
    assert "dhome=" in result.stdout and "dhome=/root" not in result.stdout
    result = run("builder", *ws.builder_args("-uid", "1000", "-gid", "1000"), env=env)
    assert result.returncode == 0, result.stdout
    bp = ws.layers / "who"
    assert (bp / "uid").read_text().strip() == "1000"
    assert (bp / "gid").read_text().strip() == "1000"
    for path in (bp, bp / "made", bp / "made" / "file", bp / "uid", bp / "old.toml"):
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (1000, 1000), path
    # the phase itself ran as the build user (spec/trust-model.md): its own output is theirs too
    for path in (ws.layers / "config" / "metadata.toml", ws.layers / "group.toml", ws.layers / "plan.toml"):
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (1000, 1000), path
