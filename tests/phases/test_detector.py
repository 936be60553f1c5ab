"""The detector through its console script, with throw-away sh buildpacks."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, Run, base_env
from tests.phases.buildpacks import Workspace, write_buildpack, write_order

PROVIDE = 'cat > "$CNB_BUILD_PLAN_PATH" <<EOF\n{plan}\nEOF\n'


def plan(text: str) -> str:
    """A detect body that writes ``text`` as the build plan and passes."""
    return PROVIDE.format(plan=text) + "exit 0"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path).make()


def toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def detect(run: Run, ws: Workspace, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run("detector", *ws.detector_args(*extra), env=base_env(**env))


def test_group_passes_and_files_are_written(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "acme/long-name", "1.0", api="0.9",
                    extra_toml='homepage = "https://example.com"')
    write_buildpack(ws.buildpacks, "b", "2.0")
    write_order(ws.order, [("acme/long-name", "1.0"), ("b", "2.0")])
    result = detect(run, ws)
    assert result.returncode == 0, result.stdout
    assert "acme/long-name 1.0\nb              2.0\n" in result.stdout
    assert "participating" not in result.stdout
    group = toml(ws.layers / "group.toml")
    assert group == {"group": [{"id": "acme/long-name", "version": "1.0", "api": "0.9",
                                "homepage": "https://example.com"},
                               {"id": "b", "version": "2.0", "api": "0.10"}]}
    assert toml(ws.layers / "plan.toml") == {"entries": []}


def test_no_group_passes_exits_20(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "a", detect="echo 'not my app'; exit 100")
    write_order(ws.order, [("a", "1.0")])
    result = detect(run, ws)
    assert result.returncode == 20, result.stdout
    lines = result.stdout.splitlines()
    assert lines[-3:] == ["ERROR: No buildpack groups passed detection.",
                          "ERROR: Please check that you are running against the correct path.",
                          "ERROR: failed to detect: no buildpacks participating"]
    # on failure the held-back debug lines are shown, buildpack output included
    assert "======== Output: a@1.0 ========" in lines
    assert "not my app" in lines
    assert "fail: a@1.0" in lines
    assert not (ws.layers / "group.toml").exists()


def test_buildpack_error_exits_21_and_shows_output(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "bad", detect="echo 'something broke' >&2; exit 3")
    write_order(ws.order, [("bad", "1.0")])
    result = detect(run, ws)
    assert result.returncode == 21, result.stdout
    lines = result.stdout.splitlines()
    assert "======== Output: bad@1.0 ========" in lines
    assert "something broke" in lines
    assert "err:  bad@1.0 (3)" in lines
    assert lines[-2:] == ["ERROR: No buildpack groups passed detection.",
                          "ERROR: failed to detect: buildpack(s) failed with err"]


def test_error_in_an_optional_buildpack_does_not_fail_the_group(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "bad", detect="exit 7")
    write_buildpack(ws.buildpacks, "good")
    write_order(ws.order, [("bad", "1.0", True), ("good", "1.0")])
    result = detect(run, ws)
    assert result.returncode == 0, result.stdout
    assert "err:  bad@1.0 (7)" in result.stdout
    assert [e["id"] for e in toml(ws.layers / "group.toml")["group"]] == ["good"]


def test_output_is_debug_only_on_success(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "a", detect="echo 'hello from detect'")
    write_order(ws.order, [("a", "1.0")])
    assert "hello from detect" not in detect(run, ws).stdout
    result = detect(run, ws, "-log-level", "debug")
    assert "======== Output: a@1.0 ========\nhello from detect\n" in result.stdout
    assert "pass: a@1.0" in result.stdout


def test_optional_buildpacks_and_first_passing_group(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "never", detect="exit 100")
    write_buildpack(ws.buildpacks, "maybe", detect="exit 100")
    write_buildpack(ws.buildpacks, "yes")
    write_order(ws.order, [("never", "1.0"), ("yes", "1.0")], [("maybe", "1.0", True), ("yes", "1.0")])
    result = detect(run, ws)
    assert result.returncode == 0, result.stdout
    assert "1 of 2 buildpacks participating\nyes 1.0\n" in result.stdout
    assert toml(ws.layers / "group.toml") == {"group": [{"id": "yes", "version": "1.0", "api": "0.10"}]}


def test_a_group_of_only_optional_failures_does_not_pass(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "maybe", detect="exit 100")
    write_order(ws.order, [("maybe", "1.0", True)])
    assert detect(run, ws).returncode == 20


def test_plan_resolution_provides_and_requires(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "node", detect=plan('[[provides]]\nname = "node"'))
    write_buildpack(ws.buildpacks, "app", detect=plan(
        '[[requires]]\nname = "node"\n[requires.metadata]\nversion = "20"\nlaunch = true'))
    write_order(ws.order, [("node", "1.0"), ("app", "1.0")])
    result = detect(run, ws)
    assert result.returncode == 0, result.stdout
    assert toml(ws.layers / "plan.toml") == {"entries": [{
        "providers": [{"id": "node", "version": "1.0"}],
        "requires": [{"name": "node", "metadata": {"version": "20", "launch": True}}]}]}


def test_unmet_require_or_unused_provide_fails_the_group(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "wants", detect=plan('[[requires]]\nname = "missing"'))
    write_buildpack(ws.buildpacks, "gives", detect=plan('[[provides]]\nname = "unused"'))
    write_order(ws.order, [("wants", "1.0")], [("gives", "1.0")])
    result = detect(run, ws)
    assert result.returncode == 20, result.stdout
    assert "fail: wants@1.0 requires missing" in result.stdout
    assert "fail: gives@1.0 provides unused unused" in result.stdout


def test_provider_must_come_before_requirer(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "app", detect=plan('[[requires]]\nname = "node"'))
    write_buildpack(ws.buildpacks, "node", detect=plan('[[provides]]\nname = "node"'))
    write_order(ws.order, [("app", "1.0"), ("node", "1.0")])
    assert detect(run, ws).returncode == 20


def test_optional_buildpack_with_unmet_require_is_dropped(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "extra", detect=plan('[[requires]]\nname = "nothing"'))
    write_buildpack(ws.buildpacks, "main")
    write_order(ws.order, [("extra", "1.0", True), ("main", "1.0")])
    result = detect(run, ws)
    assert result.returncode == 0, result.stdout
    assert "1 of 2 buildpacks participating" in result.stdout
    assert [e["id"] for e in toml(ws.layers / "group.toml")["group"]] == ["main"]


def test_or_alternatives(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "multi", detect=plan(
        '[[provides]]\nname = "x"\n[[or]]\n[[or.provides]]\nname = "y"'))
    write_buildpack(ws.buildpacks, "user", detect=plan('[[requires]]\nname = "y"'))
    write_order(ws.order, [("multi", "1.0"), ("user", "1.0")])
    result = detect(run, ws, "-log-level", "debug")
    assert result.returncode == 0, result.stdout
    assert "Resolving plan... (try #2)" in result.stdout
    entries = toml(ws.layers / "plan.toml")["entries"]
    assert entries == [{"providers": [{"id": "multi", "version": "1.0"}], "requires": [{"name": "y"}]}]


def test_top_level_version_in_requires_is_an_error(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "old", detect=plan('[[provides]]\nname = "a"\n[[requires]]\nname = "a"\n'
                                                      'version = "1"'))
    write_order(ws.order, [("old", "1.0")])
    result = detect(run, ws)
    assert result.returncode == 21
    assert 'buildpack old has a "version" key which is not supported' in result.stdout


def test_detect_environment_and_arguments(run: Run, ws: Workspace) -> None:
    (ws.platform / "env").mkdir()
    (ws.platform / "env" / "FROM_PLATFORM").write_text("yes")
    body = ('echo "cwd=$(pwd)"; echo "args=$1 $2"; echo "bpdir=$CNB_BUILDPACK_DIR"; '
            'echo "platform=$CNB_PLATFORM_DIR"; echo "plan=$CNB_BUILD_PLAN_PATH"; '
            'echo "os=$CNB_TARGET_OS"; echo "fp=${FROM_PLATFORM:-unset}"; echo "secret=${SECRET:-unset}"; '
            'echo "execenv=${CNB_EXEC_ENV:-unset}"')
    bp_dir = write_buildpack(ws.buildpacks, "env", detect=body)
    write_buildpack(ws.buildpacks, "clear", detect='echo "clear-fp=${FROM_PLATFORM:-unset}"', clear_env=True)
    write_order(ws.order, [("env", "1.0"), ("clear", "1.0")])
    result = detect(run, ws, "-log-level", "debug", SECRET="leak")
    assert result.returncode == 0, result.stdout
    out = result.stdout
    assert f"cwd={ws.app}" in out
    assert f"bpdir={bp_dir}" in out
    assert f"platform={ws.platform}" in out
    assert "plan=" in out and "/plan.toml" in out
    assert f"args={ws.platform} " in out
    assert "os=linux" in out
    assert "fp=yes" in out
    assert "clear-fp=unset" in out
    assert "secret=unset" in out  # the lifecycle's own environment is not passed through
    assert "execenv=unset" in out  # Buildpack API 0.10 < 0.12


def test_system_buildpacks_wrap_each_group(run: Run, ws: Workspace) -> None:
    for name in ("pre", "main", "post"):
        write_buildpack(ws.buildpacks, name)
    write_order(ws.order, [("main", "1.0")])
    (ws.root / "system.toml").write_text(
        '[[system.pre.buildpacks]]\nid = "pre"\nversion = "1.0"\n'
        '[[system.post.buildpacks]]\nid = "post"\nversion = "1.0"\noptional = true\n'
        '[[system.post.buildpacks]]\nid = "main"\nversion = "1.0"\n')
    result = detect(run, ws)
    assert result.returncode == 0, result.stdout
    ids = [e["id"] for e in toml(ws.layers / "group.toml")["group"]]
    assert ids == ["pre", "main", "post"]


def test_composite_buildpack_expands_its_order(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "meta", detect=None, build=None,
                    extra_toml='[[order]]\n[[order.group]]\nid = "inner"\nversion = "1.0"\n')
    write_buildpack(ws.buildpacks, "inner")
    write_buildpack(ws.buildpacks, "after")
    write_order(ws.order, [("meta", "1.0"), ("after", "1.0")])
    result = detect(run, ws)
    assert result.returncode == 0, result.stdout
    ids = [e["id"] for e in toml(ws.layers / "group.toml")["group"]]
    assert ids == ["inner", "after"]


def test_custom_group_and_plan_paths(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "a")
    write_order(ws.order, [("a", "1.0")])
    out = ws.root / "out"
    result = detect(run, ws, "-group", str(out / "g.toml"), "-plan", str(out / "p.toml"))
    assert result.returncode == 0, result.stdout
    assert (out / "g.toml").exists() and (out / "p.toml").exists()


def test_unsupported_buildpack_api_exits_12(run: Run, ws: Workspace) -> None:
    write_buildpack(ws.buildpacks, "ancient", api="0.2")
    write_order(ws.order, [("ancient", "1.0")])
    result = detect(run, ws)
    assert result.returncode == 12
    assert ("ERROR: failed to set API for buildpack 'ancient@1.0': buildpack API version '0.2' is "
            "incompatible with the lifecycle") in result.stdout


def test_missing_buildpack_and_missing_order(run: Run, ws: Workspace) -> None:
    write_order(ws.order, [("ghost", "1.0")])
    result = detect(run, ws)
    assert result.returncode == 22  # upstream: 1; this project never exits 1 for bad input
    assert "ERROR: failed to initialize detector: failed to read" in result.stdout
    assert "ghost/1.0/buildpack.toml" in result.stdout
    ws.order.unlink()
    result = detect(run, ws)
    assert result.returncode == 22
    assert "ERROR: failed to initialize detector: reading order:" in result.stdout


def test_positional_arguments_are_refused(run: Run, ws: Workspace) -> None:
    result = run("detector", "extra", env=base_env())
    assert result.returncode == 3
    assert "ERROR: failed to parse arguments: received unexpected arguments" in result.stdout


def test_sample_buildpacks_detect_the_sample_apps(run: Run, tmp_path: Path) -> None:
    common = ["-buildpacks", str(REPO / "cnb" / "buildpacks"), "-order", str(REPO / "cnb" / "order.toml"),
              "-layers", str(tmp_path)]
    result = run("detector", *common, "-app", str(REPO / "samples" / "apps" / "hello"), env=base_env())
    assert result.returncode == 0, result.stdout
    assert [e["id"] for e in toml(tmp_path / "group.toml")["group"]] == ["samples/hello"]
    result = run("detector", *common, "-app", str(REPO / "samples" / "apps" / "txt"), env=base_env())
    assert result.returncode == 0, result.stdout
    assert [e["id"] for e in toml(tmp_path / "group.toml")["group"]] == ["samples/only-txt"]


def _jammy_analyzed(ws: Workspace) -> Path:
    """analyzed.toml whose run image is ubuntu 22.04 on linux/amd64."""
    path = ws.root / "analyzed.toml"
    path.write_text('[run-image]\nreference = "r@sha256:' + "0" * 64 + '"\n[run-image.target]\nos = "linux"\n'
                    'arch = "amd64"\n[run-image.target.distro]\nname = "ubuntu"\nversion = "22.04"\n')
    return path


@pytest.mark.parametrize(("api", "stacks", "passes"), [
    # Buildpack API below 0.10 listing several stacks: the stacks say nothing about targets (upstream's
    # simple_buildpack acceptance case, which detects on an ubuntu 22.04 run image).
    ("0.9", ["io.buildpacks.stacks.bionic", "io.buildpacks.stacks.jammy"], True),
    # Below 0.10 with bionic as the only stack, and from 0.10 on: bionic means ubuntu 18.04.
    ("0.9", ["io.buildpacks.stacks.bionic"], False),
    ("0.10", ["io.buildpacks.stacks.bionic", "io.buildpacks.stacks.jammy"], False),
    # "*" matches any target.
    ("0.10", ["io.buildpacks.stacks.bionic", "*"], True),
])
def test_stacks_map_to_targets_per_buildpack_api(run: Run, ws: Workspace, api: str, stacks: list[str],
                                                 passes: bool) -> None:
    extra = "".join(f'[[stacks]]\nid = "{s}"\n' for s in stacks)
    write_buildpack(ws.buildpacks, "simple", api=api, build=None, extra_toml=extra)
    write_order(ws.order, [("simple", "1.0")])
    result = detect(run, ws, "-analyzed", str(_jammy_analyzed(ws)))
    if passes:
        assert result.returncode == 0, result.stdout
        assert toml(ws.layers / "group.toml")["group"][0]["id"] == "simple"
    else:
        assert result.returncode == 21, result.stdout
        assert "unable to satisfy target os/arch constraints" in result.stdout
