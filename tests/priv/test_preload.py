"""lifecycle.priv.preload: a phase that drops imports nothing afterwards (after the drop the
interpreter's files may be out of the CNB user's reach), and loads the registry and daemon stacks
only in the modes that use them.

Each phase runs as root with ``CNB_USER_ID=1000`` under a wrapper that notes the loaded modules right
after the real drop; at exit, any module loaded since was imported after the drop. (Imports that
fail, like a library's optional ones, load nothing and fail the same way before and after it.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_export_digests import make_inputs
from tests.conftest import BIN, base_env
from tests.support.sample import load_busybox, push_busybox, sample_build_args
from tests.support.services import Dockerd, Registry

_GUARD = r"""
import json, os, sys
out, program, args = sys.argv[1], sys.argv[2], sys.argv[3:]
at_drop = set()

import lifecycle.cli._command as command
real_drop = command.drop_to

def drop_then_watch(user):
    real_drop(user)
    at_drop.update(sys.modules)

command.drop_to = drop_then_watch

def report():
    # built into the interpreter: nothing to read
    late = sorted(set(sys.modules) - at_drop - set(sys.builtin_module_names)) if at_drop else ["(no drop)"]
    loaded = [m for m in ("httpx", "ssl", "docker", "requests") if m in sys.modules]
    with open(out, "w") as f:
        json.dump({"uid": os.getuid(), "late": late, "loaded": loaded}, f)

import atexit
atexit.register(report)
sys.argv = [program, *args]
from lifecycle.cli.main import main
main()
"""


def _run_watched(tmp: Path, program: str, *args: str, env: dict[str, str]) -> dict[str, object]:
    """Run ``program`` dropped under the watching wrapper; exit code 0 asserted; the report."""
    out = tmp / "watch" / f"{program}.json"
    res = subprocess.run([sys.executable, "-c", _GUARD, str(out), program, *args], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout
    report: dict[str, object] = json.loads(out.read_text())
    assert report["uid"] == 1000  # it did drop
    return report


@pytest.fixture
def root() -> Iterator[Path]:
    """A work directory the CNB user can reach (pytest's own are root's alone), with a ``watch``
    directory it can write its reports to."""
    if os.geteuid() != 0:
        pytest.fail("the drop needs root")
    work = Path(tempfile.mkdtemp(prefix="lifecycle-preload-"))
    try:
        work.chmod(0o755)
        (work / "watch").mkdir(mode=0o777)
        (work / "watch").chmod(0o777)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _dropped_env() -> dict[str, str]:
    return base_env(CNB_USER_ID="1000", CNB_GROUP_ID="1000", PATH=f"{BIN}:/usr/bin:/bin")


def test_layout_phases_import_nothing_after_the_drop_and_no_registry_or_daemon_stack(root: Path) -> None:
    make_inputs(root)
    env = _dropped_env()
    common = ["-oci", "-oci-dir", str(root / "oci"), "-layers", str(root / "layers")]
    export = [*common, "-app", str(root / "app"), "-launcher", str(root / "launcher"), "-cache-image", "oci:my-cache"]
    for program, args in (("analyzer", [*common, "-run-image", "busybox", "my-app"]),
                          ("exporter", [*export, "my-app"]),
                          ("rebaser", ["-oci", "-oci-dir", str(root / "oci"), "-run-image", "busybox",
                                       "-report", str(root / "watch" / "rebase-report.toml"), "my-app"])):
        report = _run_watched(root, program, *args, env=env)
        assert report["late"] == [], f"{program}: {' '.join(map(str, report['late']))}"
        assert report["loaded"] == [], program
    # every phase in one process: detect (buildpacks in threads), build, export, and a cache
    sample = sample_build_args(root / "sample")
    report = _run_watched(root, "creator", "-oci", "-oci-dir", str(root / "oci"), *sample, "-run-image", "busybox",
                          "-cache-image", "oci:sample-cache", "sample-app", env=env)
    assert report["late"] == [], f"creator: {' '.join(map(str, report['late']))}"
    assert report["loaded"] == [], "creator"


def test_registry_phases_import_nothing_after_the_drop(root: Path, registry: Registry) -> None:
    make_inputs(root)
    run_image = push_busybox(registry.host, "library/busybox-preload")
    env = _dropped_env()
    common = ["-layers", str(root / "layers"), "-insecure-registry", registry.host]
    image = f"{registry.host}/preload-app"
    for program, args in (("analyzer", [*common, "-run-image", run_image, image]),
                          ("exporter", [*common, "-app", str(root / "app"), "-launcher", str(root / "launcher"),
                                        image])):
        report = _run_watched(root, program, *args, env=env)
        assert report["late"] == [], f"{program}: {' '.join(map(str, report['late']))}"
        assert report["loaded"] == ["httpx", "ssl"], program


def test_daemon_phases_import_nothing_after_the_drop(root: Path, root_only_dockerd: Dockerd) -> None:
    make_inputs(root)
    load_busybox(root_only_dockerd.host, "busybox-preload:latest")
    env = _dropped_env() | {"DOCKER_HOST": root_only_dockerd.host}
    common = ["-daemon", "-layers", str(root / "layers")]
    for program, args in (("analyzer", [*common, "-run-image", "busybox-preload", "preload-app"]),
                          ("exporter", [*common, "-app", str(root / "app"), "-launcher", str(root / "launcher"),
                                        "preload-app"])):
        report = _run_watched(root, program, *args, env=env)
        assert report["late"] == [], f"{program}: {' '.join(map(str, report['late']))}"
        assert "docker" in report["loaded"] and "httpx" not in report["loaded"], program
