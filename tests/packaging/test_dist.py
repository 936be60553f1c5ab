"""The frozen phases (packaging/freeze.sh) and the lifecycle tarball (packaging/dist.py), as pack reads it.

The frozen executable is built once per run (tests/support/dist.py). Docker-based checks (a build
image without python3, pack itself) are in tests/e2e/test_pack.py.
"""

from __future__ import annotations

import filecmp
import subprocess
import tarfile
import tomllib
from pathlib import Path

from lifecycle import __version__
from lifecycle.api import BUILDPACK_APIS, PLATFORM_APIS
from lifecycle.descriptor import DECLARED_VERSION
from tests.conftest import BUSYBOX_MANIFEST, base_env, run_program
from tests.support.dist import DIST, PYTHON, freeze, launcher

PHASES = ("analyzer", "detector", "restorer", "builder", "exporter", "creator", "rebaser", "extender")


def frozen_env() -> dict[str, str]:
    """No venv on PATH and no Python variables: the frozen executable must not need them."""
    env = base_env(PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    return {k: v for k, v in env.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}


def test_tarball_holds_lifecycle_toml_and_the_phases(lifecycle_tarball: Path, frozen: Path) -> None:
    assert lifecycle_tarball.name == f"lifecycle-{DECLARED_VERSION}+linux.x86-64.tgz"
    with tarfile.open(lifecycle_tarball) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"lifecycle.toml", "lifecycle", "lifecycle/lifecycle", "lifecycle/launcher",
                                *(f"lifecycle/{p}" for p in PHASES)}
        descriptor = tomllib.loads(tar.extractfile("lifecycle.toml").read().decode())  # type: ignore[union-attr]
        binary = tar.extractfile("lifecycle/lifecycle").read()  # type: ignore[union-attr]
        launcher_bytes = tar.extractfile("lifecycle/launcher").read()  # type: ignore[union-attr]
    assert descriptor == {
        "apis": {"buildpack": {"deprecated": [], "supported": [str(v) for v in BUILDPACK_APIS]},
                 "platform": {"deprecated": [], "supported": [str(v) for v in PLATFORM_APIS]}},
        "lifecycle": {"version": DECLARED_VERSION},
    }
    assert descriptor["apis"]["platform"]["supported"] == ["0.12", "0.13", "0.14", "0.15"]
    for phase in PHASES:
        assert members[f"lifecycle/{phase}"].issym() and members[f"lifecycle/{phase}"].linkname == "lifecycle"
    assert binary == (frozen / "lifecycle").read_bytes() and binary[:4] == b"\x7fELF"
    assert launcher_bytes == launcher().read_bytes()
    for m in members.values():
        assert (m.uid, m.gid, m.mtime) == (0, 0, 0), m.name
        if m.isfile() and m.name != "lifecycle.toml":
            assert m.mode == 0o755, m.name


def test_tarball_is_reproducible(lifecycle_tarball: Path, frozen: Path, tmp_path: Path) -> None:
    res = subprocess.run([str(PYTHON), str(DIST), "tarball", str(frozen), str(launcher()), str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert Path(res.stdout.strip()).read_bytes() == lifecycle_tarball.read_bytes()


def test_frozen_phases_dispatch_on_the_name_they_are_called_by(frozen: Path) -> None:
    env = frozen_env()
    for program, args in (("analyzer", ["-version"]), ("lifecycle", ["-version"]), ("creator", ["-version"])):
        res = run_program(frozen / program, *args, env=env)
        assert (res.returncode, res.stdout) == (0, f"{__version__}\n"), (program, res.stdout)
    res = run_program(frozen / "analyzer", "-help", env=env)
    assert res.returncode == 0 and "Usage: analyzer" in res.stdout, res.stdout
    res = run_program(frozen / "lifecycle", "bogus", env=env)
    assert res.returncode == 3 and res.stdout.startswith("ERROR: failed to recognize phase: bogus"), res.stdout
    res = run_program(frozen / "extender", "-app", "/workspace", "-kind", "build", env=env)
    assert (res.returncode, res.stdout) == (3, "ERROR: image extensions are not supported: this lifecycle has "
                                                "no extender\n"), res.stdout


def test_frozen_analyzer_matches_the_console_script(frozen: Path, oci_root: Path, tmp_path: Path) -> None:
    results = {}
    for name, program, env in (("frozen", frozen / "analyzer", frozen_env()), ("script", "analyzer", base_env())):
        layers = tmp_path / name
        layers.mkdir()
        res = run_program(program, "-oci", "-oci-dir", str(oci_root), "-layers", str(layers),
                          "-run-image", "busybox", "my-app", env=env)
        assert res.returncode == 0, res.stdout
        bad = run_program(program, "-oci", "-daemon", "-oci-dir", str(oci_root), "-layers", str(layers),
                          "-run-image", "busybox", "my-app", env=env)
        results[name] = (res.stdout, (layers / "analyzed.toml").read_text(), bad.returncode, bad.stdout)
    assert results["frozen"] == results["script"]
    assert BUSYBOX_MANIFEST in results["frozen"][1]
    assert results["frozen"][2:] == (3, "ERROR: exporting to multiple targets is unsupported\n")


def test_freezing_twice_gives_the_same_bytes(frozen: Path, tmp_path: Path) -> None:
    again = freeze(tmp_path / "again")
    assert filecmp.cmp(frozen / "lifecycle", again / "lifecycle", shallow=False), (
        "two freezes of one tree differ; spec/image.md lists what the bytes depend on")
