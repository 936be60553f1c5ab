"""The analyzer through its console script and through cnb/lifecycle/analyzer."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUSYBOX_LAYER, BUSYBOX_MANIFEST, REPO, Run, base_env
from tests.image.layouts import (
    DOCKER_LIST,
    add_image,
    add_index,
    blob_file,
    make_layout,
    named,
    on,
    snapshot,
    write_index,
)

PROGRAMS = ["analyzer", str(REPO / "cnb" / "lifecycle" / "analyzer")]
BUSYBOX_PATH = "index.docker.io/library/busybox/latest"
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower(), "amd64")


def analyze(run: Run, tmp_path: Path, *flags: str, program: str = "analyzer", image: str = "my-app",
            env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the analyzer with ``flags`` and ``-analyzed <tmp>/analyzed.toml``; return result and path."""
    analyzed = tmp_path / "analyzed.toml"
    res = run(program, *flags, "-analyzed", str(analyzed), image, env=env or base_env())
    return res, analyzed


def ok(res: subprocess.CompletedProcess[str], analyzed: Path) -> dict[str, Any]:
    assert res.returncode == 0, res.stdout
    assert "ERROR:" not in res.stdout and "Traceback" not in res.stdout
    return tomllib.loads(analyzed.read_text())


def failed(res: subprocess.CompletedProcess[str], analyzed: Path, code: int, message: str) -> str:
    """One ``ERROR:`` line containing ``message``, exit ``code``, no traceback, nothing written."""
    assert res.returncode == code, res.stdout
    errors = [line for line in res.stdout.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1, res.stdout
    assert message in errors[0], res.stdout
    assert "Traceback" not in res.stdout
    assert not analyzed.exists()
    return errors[0]


def busybox_ref(root: Path) -> str:
    return f"{root}/{BUSYBOX_PATH}@{BUSYBOX_MANIFEST}"


# ---- the run image on disk -------------------------------------------------------------------

@pytest.mark.parametrize("sparse", [False, True], ids=["full", "sparse"])
@pytest.mark.parametrize("program", PROGRAMS, ids=["analyzer", "cnb-lifecycle-analyzer"])
def test_busybox_run_image(run: Run, oci_root: Path, tmp_path: Path, program: str, sparse: bool) -> None:
    if sparse:
        blob_file(oci_root / BUSYBOX_PATH, BUSYBOX_LAYER).unlink()
    before = snapshot(oci_root)
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", "busybox",
                            program=program)
    data = ok(res, analyzed)
    assert data["run-image"] == {
        "reference": busybox_ref(oci_root),
        "image": f"{oci_root}/{BUSYBOX_PATH}",
        "target": {"os": "linux", "arch": "amd64"},
    }
    assert data["image"] == {"reference": ""}
    assert data["metadata"] == {}
    assert f'Image with name "{oci_root}/index.docker.io/library/my-app/latest" not found' in res.stdout
    assert snapshot(oci_root) == before  # reading never writes (and never fills in a sparse blob)


@pytest.mark.parametrize("name", ["busybox", "busybox:latest", "docker.io/busybox", "library/busybox",
                                  "index.docker.io/library/busybox:latest"])
def test_busybox_spellings(run: Run, oci_root: Path, tmp_path: Path, name: str) -> None:
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", name)
    assert ok(res, analyzed)["run-image"]["reference"] == busybox_ref(oci_root)


def test_run_image_as_path_under_root(run: Run, oci_root: Path, tmp_path: Path) -> None:
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root),
                            "-run-image", busybox_ref(oci_root))
    assert ok(res, analyzed)["run-image"]["reference"] == busybox_ref(oci_root)


# ---- flags, env vars, aliases, precedence ---------------------------------------------------

@pytest.mark.parametrize(("names", "value"), [
    (("CNB_USE_OCI", "CNB_OCI_PATH"), "true"), (("CNB_USE_LAYOUT", "CNB_LAYOUT_DIR"), "1"),
    (("CNB_USE_OCI", "CNB_LAYOUT_DIR"), "T"), (("CNB_USE_LAYOUT", "CNB_OCI_PATH"), "TRUE"),
])
def test_env_selects_oci(run: Run, oci_root: Path, tmp_path: Path, names: tuple[str, str], value: str) -> None:
    env = base_env(**{names[0]: value, names[1]: str(oci_root)}, CNB_RUN_IMAGE="busybox")
    res, analyzed = analyze(run, tmp_path, env=env)
    assert ok(res, analyzed)["run-image"]["reference"] == busybox_ref(oci_root)


@pytest.mark.parametrize("program", PROGRAMS, ids=["analyzer", "cnb-lifecycle-analyzer"])
def test_env_only(run: Run, oci_root: Path, tmp_path: Path, program: str) -> None:
    layers = tmp_path / "layers"
    env = base_env(CNB_USE_OCI="true", CNB_OCI_PATH=str(oci_root), CNB_RUN_IMAGE="busybox",
                   CNB_LAYERS_DIR=str(layers))
    res = run(program, "my-app", env=env)
    assert res.returncode == 0, res.stdout
    data = tomllib.loads((layers / "analyzed.toml").read_text())
    assert data["run-image"]["reference"] == busybox_ref(oci_root)


@pytest.mark.parametrize("flags", [
    ["-oci", "-oci-dir", "{root}", "-run-image", "busybox"],
    ["--oci", "--oci-dir", "{root}", "--run-image", "busybox"],
    ["-oci=true", "-oci-dir={root}", "-run-image=busybox"],
    ["--oci=1", "--oci-dir={root}", "--run-image=busybox"],
    ["-layout", "-layout-dir", "{root}", "-run-image", "busybox"],
    ["--layout", "--layout-dir={root}", "-run-image=busybox"],
    ["-layout=t", "-oci-dir", "{root}", "--run-image", "busybox"],
    ["-oci=false", "-layout", "-oci-dir", "{root}", "-run-image", "busybox"],  # the last one wins, as in Go
])
def test_go_flag_forms(run: Run, oci_root: Path, tmp_path: Path, flags: list[str]) -> None:
    args = [f.format(root=oci_root) for f in flags]
    res, analyzed = analyze(run, tmp_path, *args)
    assert ok(res, analyzed)["run-image"]["reference"] == busybox_ref(oci_root)


NO_DAEMON = "unix:///nonexistent/docker.sock"


@pytest.mark.parametrize("flag", ["-oci=false", "--oci=0", "-layout=F", "--layout=False"])
def test_flag_false_beats_env_true(run: Run, oci_root: Path, tmp_path: Path, flag: str) -> None:
    # With OCI on, -daemon is "exporting to multiple targets"; with the flag it is daemon mode alone.
    env = base_env(CNB_USE_OCI="true", CNB_USE_LAYOUT="true", CNB_OCI_PATH=str(oci_root), DOCKER_HOST=NO_DAEMON)
    res, analyzed = analyze(run, tmp_path, "-daemon", "-run-image", "busybox", env=env)
    failed(res, analyzed, 3, "exporting to multiple targets is unsupported")
    res, analyzed = analyze(run, tmp_path, flag, "-daemon", "-run-image", "busybox", env=env)
    line = failed(res, analyzed, res.returncode, "")
    assert res.returncode != 0 and "multiple targets" not in line and "/nonexistent/docker.sock" in line


def test_oci_false_uses_registry(run: Run, oci_root: Path, tmp_path: Path) -> None:
    env = base_env(CNB_USE_OCI="true", CNB_OCI_PATH=str(oci_root))
    res, analyzed = analyze(run, tmp_path, "-oci=false", "-run-image", "127.0.0.1:9/busybox",
                            image="127.0.0.1:9/my-app", env=env)
    line = failed(res, analyzed, res.returncode, "127.0.0.1:9")
    assert res.returncode != 0 and "could not be found at path" not in line


def test_flags_beat_env(run: Run, oci_root: Path, tmp_path: Path) -> None:
    env = base_env(CNB_USE_OCI="true", CNB_OCI_PATH=str(tmp_path / "elsewhere"),
                   CNB_LAYOUT_DIR=str(tmp_path / "elsewhere"), CNB_RUN_IMAGE="cnb/not-there")
    res, analyzed = analyze(run, tmp_path, "-layout-dir", str(oci_root), "-run-image", "busybox", env=env)
    assert ok(res, analyzed)["run-image"]["reference"] == busybox_ref(oci_root)


def test_first_env_alias_wins(run: Run, oci_root: Path, tmp_path: Path) -> None:
    env = base_env(CNB_USE_OCI="true", CNB_OCI_PATH=str(oci_root), CNB_LAYOUT_DIR=str(tmp_path / "nope"))
    res, analyzed = analyze(run, tmp_path, "-run-image", "busybox", env=env)
    assert ok(res, analyzed)["run-image"]["reference"] == busybox_ref(oci_root)


def test_empty_env_counts_as_unset(run: Run, oci_root: Path, tmp_path: Path) -> None:
    env = base_env(CNB_USE_OCI="", CNB_USE_LAYOUT="true", CNB_OCI_PATH="", CNB_LAYOUT_DIR=str(oci_root),
                   CNB_RUN_IMAGE="busybox")
    res, analyzed = analyze(run, tmp_path, env=env)
    assert ok(res, analyzed)["run-image"]["reference"] == busybox_ref(oci_root)


def test_unparsable_bool_env_is_false(run: Run, oci_root: Path, tmp_path: Path) -> None:
    env = base_env(CNB_USE_OCI="yes", CNB_USE_DAEMON="true", DOCKER_HOST=NO_DAEMON,
                   CNB_OCI_PATH=str(oci_root), CNB_RUN_IMAGE="busybox")
    res, analyzed = analyze(run, tmp_path, env=env)
    line = failed(res, analyzed, res.returncode, "")
    assert res.returncode != 0 and "multiple targets" not in line


def test_relative_oci_dir(run: Run, oci_root: Path, tmp_path: Path) -> None:
    res = run("analyzer", "-oci", "-oci-dir", "oci", "-run-image", "busybox", "-analyzed", "a.toml",
              "my-app", cwd=oci_root.parent)
    assert res.returncode == 0, res.stdout
    data = tomllib.loads((oci_root.parent / "a.toml").read_text())
    assert data["run-image"]["reference"] == busybox_ref(oci_root)


def test_layers_moves_analyzed_default(run: Run, oci_root: Path, tmp_path: Path) -> None:
    env = base_env(CNB_LAYERS_DIR=str(tmp_path / "env-layers"))
    res = run("analyzer", "-oci", "-oci-dir", str(oci_root), "-run-image", "busybox",
              "-layers", str(tmp_path / "flag-layers"), "my-app", env=env)
    assert res.returncode == 0, res.stdout
    assert (tmp_path / "flag-layers" / "analyzed.toml").is_file()
    assert not (tmp_path / "env-layers").exists()


def test_analyzed_env_beats_layers_default(run: Run, oci_root: Path, tmp_path: Path) -> None:
    env = base_env(CNB_ANALYZED_PATH=str(tmp_path / "x" / "a.toml"))
    res = run("analyzer", "-oci", "-oci-dir", str(oci_root), "-run-image", "busybox",
              "-layers", str(tmp_path / "layers"), "my-app", env=env)
    assert res.returncode == 0, res.stdout
    assert (tmp_path / "x" / "a.toml").is_file()
    assert not (tmp_path / "layers" / "analyzed.toml").exists()


# ---- the RFC's example layout (fallback) -------------------------------------------------------

def test_rfc_fallback_selects_tag(run: Run, oci_root: Path, tmp_path: Path) -> None:
    layout = oci_root / "cnb" / "my-full-stack-run"
    focal = add_image(layout, files={"focal": b"focal"})
    bionic = add_image(layout, files={"bionic": b"bionic"})
    write_index(layout, [named(focal, "focal"), named(bionic, "bionic")])
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root),
                            "-run-image", "cnb/my-full-stack-run:bionic")
    data = ok(res, analyzed)
    assert data["run-image"]["reference"] == f"{layout}@{bionic['digest']}"
    assert data["run-image"]["image"] == str(layout)


def test_rfc_fallback_missing_tag(run: Run, oci_root: Path, tmp_path: Path) -> None:
    make_layout(oci_root / "cnb" / "my-full-stack-run", "bionic")
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root),
                            "-run-image", "cnb/my-full-stack-run:focal")
    failed(res, analyzed, 32, "reference name mismatch")


def test_canonical_wins_over_fallback(run: Run, oci_root: Path, tmp_path: Path) -> None:
    make_layout(oci_root / "busybox", "latest")
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", "busybox")
    assert ok(res, analyzed)["run-image"]["reference"] == busybox_ref(oci_root)


# ---- the previous image ----------------------------------------------------------------------

LABEL = {
    "app": [{"sha": "sha256:a1"}],
    "buildpacks": [{
        "key": "example/node", "version": "1.0.0",
        "layers": {"node": {"sha": "sha256:b1", "data": {"version": "20", "runImage": "kept"},
                            "build": False, "launch": True, "cache": True},
                   "empty": {"sha": "sha256:b2", "data": None, "build": False, "launch": True,
                             "cache": False}},
        "store": {"metadata": {"topLayer": "kept", "n": 1}},
    }],
    "config": {"sha": "sha256:c1"},
    "launcher": {"sha": "sha256:d1"},
    "process-types": {"sha": ""},
    "runImage": {"topLayer": "sha256:e1", "reference": "/oci/run@sha256:f1", "image": "busybox",
                 "mirrors": ["mirror.example.com/busybox"]},
    "stack": {"runImage": {"image": "busybox", "mirrors": ["mirror.example.com/busybox"]}},
}


def test_previous_image_metadata(run: Run, oci_root: Path, tmp_path: Path) -> None:
    app = oci_root / "index.docker.io" / "library" / "my-app" / "latest"
    desc = make_layout(app, "latest", labels={"io.buildpacks.lifecycle.metadata": json.dumps(LABEL)})
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", "busybox")
    data = ok(res, analyzed)
    assert data["image"] == {"reference": f"{app}@{desc['digest']}"}
    assert data["metadata"] == {
        "app": [{"sha": "sha256:a1"}],
        "buildpacks": [{
            "key": "example/node", "version": "1.0.0",
            "layers": {"node": {"sha": "sha256:b1", "metadata": {"version": "20", "runImage": "kept"},
                                "build": False, "launch": True, "cache": True},
                       "empty": {"sha": "sha256:b2", "build": False, "launch": True, "cache": False}},
            "store": {"metadata": {"topLayer": "kept", "n": 1}},
        }],
        "config": {"sha": "sha256:c1"},
        "launcher": {"sha": "sha256:d1"},
        "process-types": {"sha": ""},
        "run-image": {"top-layer": "sha256:e1", "reference": "/oci/run@sha256:f1", "image": "busybox",
                      "mirrors": ["mirror.example.com/busybox"]},
        "stack": {"run-image": {"image": "busybox", "mirrors": ["mirror.example.com/busybox"]}},
    }
    text = analyzed.read_text()
    assert text.index("[image]") < text.index("[metadata") < text.index("[run-image]")
    assert data["run-image"]["reference"] == busybox_ref(oci_root)


def test_previous_image_flag_and_env(run: Run, oci_root: Path, tmp_path: Path) -> None:
    prev = oci_root / "example.com" / "team" / "old" / "v1"
    desc = make_layout(prev, "v1", labels={"io.buildpacks.lifecycle.metadata": '{"app": []}'})
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", "busybox",
                            "-previous-image", "example.com/team/old:v1")
    assert ok(res, analyzed)["image"] == {"reference": f"{prev}@{desc['digest']}"}
    env = base_env(CNB_PREVIOUS_IMAGE="example.com/team/old:v1")
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", "busybox",
                            env=env)
    assert ok(res, analyzed)["image"] == {"reference": f"{prev}@{desc['digest']}"}


@pytest.mark.parametrize("label", ["not json", "[1, 2]", ""])
def test_previous_image_bad_label_is_ignored(run: Run, oci_root: Path, tmp_path: Path, label: str) -> None:
    app = oci_root / "index.docker.io" / "library" / "my-app" / "latest"
    desc = make_layout(app, "latest", labels={"io.buildpacks.lifecycle.metadata": label})
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", "busybox")
    data = ok(res, analyzed)
    assert data["image"] == {"reference": f"{app}@{desc['digest']}"}
    assert data["metadata"] == {}


# ---- digests, media types, nested indexes, ref.name -------------------------------------------

@pytest.mark.parametrize("name", [f"busybox@{BUSYBOX_MANIFEST}", f"busybox:1.36@{BUSYBOX_MANIFEST}",
                                  f"docker.io/library/busybox@{BUSYBOX_MANIFEST}"])
def test_digest_reference(run: Run, oci_root: Path, tmp_path: Path, name: str) -> None:
    hexpart = BUSYBOX_MANIFEST.split(":", 1)[1]
    target = oci_root / "index.docker.io" / "library" / "busybox" / "sha256" / hexpart
    shutil.copytree(oci_root / BUSYBOX_PATH, target)
    shutil.rmtree(oci_root / BUSYBOX_PATH)
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", name)
    data = ok(res, analyzed)
    assert data["run-image"]["reference"] == f"{target}@{BUSYBOX_MANIFEST}"


def test_digest_reference_mismatch(run: Run, oci_root: Path, tmp_path: Path) -> None:
    wrong = "sha256:" + "0" * 64
    shutil.copytree(oci_root / BUSYBOX_PATH, oci_root / "index.docker.io/library/busybox/sha256" / ("0" * 64))
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", f"busybox@{wrong}")
    failed(res, analyzed, 32, "digest mismatch")


def test_docker_manifest_list_index_json(run: Run, oci_root: Path, tmp_path: Path) -> None:
    layout = oci_root / "index.docker.io" / "library" / "crane-run" / "latest"
    desc = add_image(layout, docker=True)
    write_index(layout, [on(desc, "linux", "amd64")], media_type=DOCKER_LIST)
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", "crane-run")
    assert ok(res, analyzed)["run-image"]["reference"] == f"{layout}@{desc['digest']}"


@pytest.mark.parametrize("nested_type", ["application/vnd.oci.image.index.v1+json", DOCKER_LIST])
def test_nested_multi_platform_index(run: Run, oci_root: Path, tmp_path: Path, nested_type: str) -> None:
    layout = oci_root / "index.docker.io" / "cnb" / "multi" / "latest"
    docker = nested_type == DOCKER_LIST
    amd = on(add_image(layout, arch="amd64", docker=docker), "linux", "amd64")
    arm = on(add_image(layout, arch="arm64", variant="v8", docker=docker), "linux", "arm64", "v8")
    index = add_index(layout, [amd, arm], media_type=nested_type)
    write_index(layout, [named(index, "latest")])
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", "cnb/multi")
    data = ok(res, analyzed)
    chosen = amd if ARCH == "amd64" else arm
    assert data["run-image"]["reference"] == f"{layout}@{chosen['digest']}"
    assert data["run-image"]["target"]["arch"] == ARCH


def test_nested_index_without_this_platform(run: Run, oci_root: Path, tmp_path: Path) -> None:
    layout = oci_root / "index.docker.io" / "cnb" / "foreign" / "latest"
    other = on(add_image(layout, arch="s390x"), "linux", "s390x")
    write_index(layout, [add_index(layout, [other])])
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", "cnb/foreign")
    failed(res, analyzed, 32, "no manifest for platform linux/")


def test_ref_name_mismatch(run: Run, oci_root: Path, tmp_path: Path) -> None:
    make_layout(oci_root / "index.docker.io" / "cnb" / "run" / "bionic", "focal")
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", "cnb/run:bionic")
    line = failed(res, analyzed, 32, "reference name mismatch")
    assert "want 'bionic', found 'focal'" in line


# ---- the RFC's error cases (D6) ----------------------------------------------------------------

def test_run_image_missing(run: Run, oci_root: Path, tmp_path: Path) -> None:
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", "cnb/bad-run-image")
    line = failed(res, analyzed, 3, "the run-image could not be found at path: ")
    assert line == (f"ERROR: the run-image could not be found at path: "
                    f"{oci_root}/index.docker.io/cnb/bad-run-image/latest "
                    f"(also tried: {oci_root}/cnb/bad-run-image)")


@pytest.mark.parametrize("run_toml", [None, "", "[[images]]\nmirrors = []\n", "images = []\n"],
                         ids=["absent", "empty", "no-image", "empty-list"])
def test_no_run_image(run: Run, oci_root: Path, tmp_path: Path, run_toml: str | None) -> None:
    path = tmp_path / "run.toml"
    if run_toml is not None:
        path.write_text(run_toml)
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run", str(path))
    line = failed(res, analyzed, 3, "")
    assert line == "ERROR: -run-image is required when OCI feature is enabled"


def test_run_image_from_run_toml(run: Run, oci_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[[images]]\nimage = "busybox"\nmirrors = ["mirror.example.com/busybox"]\n')
    env = base_env(CNB_RUN_PATH=str(path))
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), env=env)
    assert ok(res, analyzed)["run-image"]["reference"] == busybox_ref(oci_root)


@pytest.mark.parametrize("args,env", [
    (["-oci", "-daemon"], {}),
    (["-layout", "-daemon=true"], {}),
    (["-oci"], {"CNB_USE_DAEMON": "true"}),
    ([], {"CNB_USE_OCI": "1", "CNB_USE_DAEMON": "1"}),
])
def test_oci_with_daemon(run: Run, oci_root: Path, tmp_path: Path, args: list[str], env: dict[str, str]) -> None:
    res, analyzed = analyze(run, tmp_path, *args, "-oci-dir", str(oci_root), "-run-image", "busybox",
                            env=base_env(**env))
    line = failed(res, analyzed, 3, "")
    assert line == "ERROR: exporting to multiple targets is unsupported"


# ---- Platform API (D7) -------------------------------------------------------------------------

def test_platform_api_unset_warns(run: Run, oci_root: Path, tmp_path: Path) -> None:
    env = base_env()
    del env["CNB_PLATFORM_API"]
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", "busybox", env=env)
    ok(res, analyzed)
    warnings = [line for line in res.stdout.splitlines() if line.startswith("Warning: ")]
    assert warnings == ["Warning: CNB_PLATFORM_API is not set; using the newest supported Platform API 0.15"]


@pytest.mark.parametrize("api", ["0.12", "0.13", "0.14", "0.15"])
def test_platform_api_supported(run: Run, oci_root: Path, tmp_path: Path, api: str) -> None:
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", "busybox",
                            env=base_env(CNB_PLATFORM_API=api))
    ok(res, analyzed)
    assert "Warning:" not in res.stdout


@pytest.mark.parametrize(("api", "message"), [
    ("0.11", "failed to set platform API: platform API version '0.11' is incompatible with the lifecycle"),
    ("0.16", "failed to set platform API: platform API version '0.16' is incompatible with the lifecycle"),
    ("1.0", "failed to set platform API: platform API version '1.0' is incompatible with the lifecycle"),
    ("abc", "failed to parse platform API 'abc'"),
])
def test_platform_api_unsupported(run: Run, oci_root: Path, tmp_path: Path, api: str, message: str) -> None:
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", "busybox",
                            env=base_env(CNB_PLATFORM_API=api))
    assert failed(res, analyzed, 11, message) == f"ERROR: {message}"


# ---- run image target ----------------------------------------------------------------------------

def test_run_image_target(run: Run, oci_root: Path, tmp_path: Path) -> None:
    layout = oci_root / "index.docker.io" / "cnb" / "jammy-run" / "latest"
    labels = {"io.buildpacks.base.id": "io.buildpacks.stacks.jammy",
              "io.buildpacks.base.distro.name": "ubuntu", "io.buildpacks.base.distro.version": "22.04"}
    make_layout(layout, "latest", arch="arm", variant="v7", labels=labels)
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", "cnb/jammy-run")
    data = ok(res, analyzed)
    assert data["run-image"]["target"] == {
        "id": "io.buildpacks.stacks.jammy", "os": "linux", "arch": "arm", "arch-variant": "v7",
        "distro": {"name": "ubuntu", "version": "22.04"},
    }
    text = analyzed.read_text()
    assert "[run-image.target]" in text and "[run-image.target.distro]" in text


def test_run_image_target_partial_distro(run: Run, oci_root: Path, tmp_path: Path) -> None:
    layout = oci_root / "index.docker.io" / "cnb" / "alpine-run" / "latest"
    make_layout(layout, "latest", labels={"io.buildpacks.base.distro.name": "alpine"})
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", "cnb/alpine-run")
    target = ok(res, analyzed)["run-image"]["target"]
    assert target == {"os": "linux", "arch": "amd64", "distro": {"name": "alpine", "version": ""}}


def test_run_image_without_os(run: Run, oci_root: Path, tmp_path: Path) -> None:
    make_layout(oci_root / "index.docker.io" / "cnb" / "no-os" / "latest", "latest", os_name="")
    res, analyzed = analyze(run, tmp_path, "-oci", "-oci-dir", str(oci_root), "-run-image", "cnb/no-os")
    line = failed(res, analyzed, 32, "")
    assert line == "ERROR: failed to analyze: failed to find OS in run image config"


def test_analyzed_not_writable(run: Run, oci_root: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    analyzed = tmp_path / "file" / "analyzed.toml"
    res = run("analyzer", "-oci", "-oci-dir", str(oci_root), "-run-image", "busybox",
              "-analyzed", str(analyzed), "my-app")
    assert res.returncode == 32, res.stdout
    assert res.stdout.splitlines()[-1].startswith("ERROR: failed to write analyzed: ")
    assert "Traceback" not in res.stdout


def test_launch_cache_without_daemon_is_ignored_with_upstreams_warning(run: Run, oci_root: Path,
                                                                       tmp_path: Path) -> None:
    res = run("analyzer", "-oci", "-oci-dir", str(oci_root), "-layers", str(tmp_path), "-run-image", "busybox",
              "-launch-cache", str(tmp_path / "launch-cache"), "my-app")
    assert res.returncode == 0, res.stdout
    assert "Warning: Ignoring -launch-cache, only intended for use with -daemon" in res.stdout.splitlines()
