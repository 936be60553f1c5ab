"""The fresh-machine check: `make install` from a fresh copy of the repo in a fresh root installs every tool
the suite needs, one test per tool then passes there, and a second `make install` installs nothing.

The root is the debootstrap'd base rootfs (tests/image_build/make_base.sh: Debian bookworm minbase with
python3): none of the Debian packages, no Go tools, no venv. It runs offline (tests/install/fresh_root.sh:
private namespaces, loopback only) from what `make install` cached on this host:
- apt: a local repository of the .deb files the base lacks (fresh-inputs) replaces the Debian mirror;
- pip: the host venv's packages as wheels (fresh-inputs), through PIP_NO_INDEX and PIP_FIND_LINKS;
- Go: the machine's Go read-only at /usr/local/go (not on PATH: `make install` looks there), the host's
  module and build caches as overlays, GOPROXY=off; the tools land in the root's /var/cache/lifecycle-tools;
- the base rootfs tarball cache, read-only (so the root's `make install` debootstraps nothing).
The one thing installed before `make install` is `make` itself, as a user would.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.gotools import pins

RUNNER = REPO / "tests" / "install" / "fresh_root.sh"
BASE_CACHE = Path(os.environ.get("LIFECYCLE_BASE_CACHE", "/var/cache/lifecycle-base"))
BASE_TARBALL = BASE_CACHE / "bookworm-minbase-python3.tar"
FRESH = Path(os.environ.get("LIFECYCLE_FRESH_CACHE", "/var/cache/lifecycle-fresh"))
SRC = "/src/lifecycle"

# One test per tool, run inside the fresh root with what its `make install` installed.
SMOKE = {
    "skopeo": "tests/interop/test_layout_tools.py::test_skopeo_copy_is_read",
    "umoci": "tests/interop/test_layout_tools.py::test_umoci_layout_is_read",
    "oci-image-tool": "tests/interop/test_layout_tools.py::test_store_output_validates",
    "docker-registry": "tests/support/test_services.py::test_registry_serves_skopeo_push_and_pull",
    "dockerd": "tests/support/test_services.py::test_dockerd_loads_and_runs_busybox",
    "Go tools": "tests/support/test_gotools.py",
    "the launcher `make install` built": "tests/launch/test_build.py::test_launcher_is_static_and_small",
}


def debian_commands() -> dict[str, str]:
    """tests/tools/debian-packages.txt: command -> package."""
    out: dict[str, str] = {}
    for line in (REPO / "tests" / "tools" / "debian-packages.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            command, package = line.split()[:2]
            out[command] = package
    return out


def write_apt_repo(pool: Path, repo: Path) -> int:
    """A flat apt repository index (``repo/Packages``) for the .deb files in ``pool`` (``repo/pool``)."""
    stanzas = []
    for deb in sorted(pool.glob("*.deb")):
        control = subprocess.run(["dpkg-deb", "--field", str(deb)], check=True, capture_output=True,
                                 text=True).stdout.rstrip("\n")
        data = deb.read_bytes()
        stanzas.append(f"{control}\nFilename: pool/{deb.name}\nSize: {len(data)}\n"
                       f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "Packages").write_text("\n".join(stanzas))
    return len(stanzas)


def copy_source(root: Path) -> None:
    """The repo's files as a clone of it holds them once committed (tracked and new, not ignored ones)."""
    dest = root / SRC.lstrip("/")
    dest.mkdir(parents=True)
    subprocess.run(["bash", "-c", 'set -o pipefail; git ls-files -z --cached --others --exclude-standard '
                    '| tar --null --verbatim-files-from -T - -cf - | tar -C "$1" -xf -', "copy", str(dest)],
                   cwd=REPO, check=True)


class FreshRoot:
    """A rootfs from the base tarball and a runner for commands inside it."""

    def __init__(self, root: Path, scratch: Path) -> None:
        self.root, self.scratch = root, scratch

    def run(self, script: str, *, timeout: float) -> subprocess.CompletedProcess[str]:
        """``sh -c script`` as root in the fresh root (offline pip and Go); stdout and stderr merged."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRESH_")}
        env.update(FRESH_PIP_NO_INDEX="1", FRESH_PIP_FIND_LINKS=str(FRESH / "wheels"),
                   FRESH_PIP_DISABLE_PIP_VERSION_CHECK="1", FRESH_GOPROXY="off", FRESH_GOSUMDB="off",
                   FRESH_GOFLAGS="-mod=mod")
        return subprocess.run([str(RUNNER), str(self.root), str(self.scratch), "sh", "-c", script], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)


@pytest.fixture
def fresh_root() -> Iterator[FreshRoot]:
    """The base rootfs unpacked, its apt pointed at the local repository, the repo copied to /src/lifecycle."""
    if os.geteuid() != 0:
        pytest.fail("the fresh-machine check needs root (chroot, mounts; CI runs as root)")
    for need in (BASE_TARBALL, FRESH / "debs.installed", FRESH / "wheels.installed"):
        if not need.exists():
            pytest.fail(f"{need} is missing: run `make install` (the install step makes it)")
    work = Path(tempfile.mkdtemp(prefix="fresh-", dir="/var/tmp"))
    root, scratch = work / "root", work / "scratch"
    try:
        root.mkdir()
        scratch.mkdir()
        subprocess.run(["tar", "--numeric-owner", "-xf", str(BASE_TARBALL), "-C", str(root)], check=True)
        # apt: only the local repository (fresh_root.sh mounts the .deb files at /srv/debs/pool).
        write_apt_repo(FRESH / "debs", root / "srv" / "debs")
        (root / "etc" / "apt" / "sources.list").write_text("deb [trusted=yes] file:/srv/debs ./\n")
        for extra in (root / "etc" / "apt" / "sources.list.d").glob("*"):
            extra.unlink()
        # As in a Debian container image: maintainer scripts start no services (docker, docker-registry),
        # and dpkg does not fsync every file it unpacks.
        policy = root / "usr" / "sbin" / "policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        (root / "etc" / "dpkg" / "dpkg.cfg.d" / "unsafe-io").write_text("force-unsafe-io\n")
        copy_source(root)
        yield FreshRoot(root, scratch)
    finally:
        # The mounts lived in fresh_root.sh's own mount namespace, gone with it; --one-file-system all the same.
        subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)


def test_make_install_sets_up_a_fresh_machine(fresh_root: FreshRoot) -> None:
    commands = debian_commands()
    tools = pins()
    missing = fresh_root.run(
        "for c in " + " ".join(commands) + "; do command -v $c; done; "
        "test -e /var/cache/lifecycle-tools && echo go tools; command -v go; exit 0", timeout=60)
    assert missing.stdout.strip() == "", f"the fresh root already has: {missing.stdout}"

    prereq = fresh_root.run("apt-get update -q && apt-get install -y -q --no-install-recommends make",
                            timeout=300)
    assert prereq.returncode == 0, prereq.stdout[-3000:]

    first = fresh_root.run(f"make -C {SRC} --no-print-directory install", timeout=1200)
    assert first.returncode == 0, first.stdout[-5000:]
    lines = first.stdout.splitlines()
    debian = next((line for line in lines if line.startswith("setup: installed Debian packages ")), "")
    assert set(debian.split("(")[0].split()[4:]) == set(commands.values()), first.stdout
    go = next((line for line in lines if line.startswith("go tools: installed ")), "")
    assert {f"{name}@{pin.version}" for name, pin in tools.items()} <= {
        re.sub(r"\(\d+s\)$", "", word) for word in go.split()}, first.stdout
    assert any(line.startswith("setup: built build/launcher/launcher ") for line in lines), first.stdout
    assert any(line.startswith("setup: installed .venv ") for line in lines), first.stdout
    assert any(line.startswith("setup: made dist/wheels ") for line in lines), first.stdout
    assert re.fullmatch(r"setup: done \(\d+\.\ds\)", lines[-1]), first.stdout

    # Every command is there and runs; every Go tool is in the root's own tools directory.
    there = fresh_root.run("for c in " + " ".join(commands) + "; do command -v $c || echo missing $c; done; "
                           "pigz --version && debootstrap --version", timeout=60)
    assert there.returncode == 0 and "missing" not in there.stdout, there.stdout
    for name, pin in tools.items():
        assert os.access(fresh_root.root / "var/cache/lifecycle-tools" / f"{name}-{pin.version}" / name, os.X_OK)

    smoke = fresh_root.run(f"cd {SRC} && .venv/bin/pytest -q -p no:cacheprovider {' '.join(SMOKE.values())}",
                           timeout=900)
    assert smoke.returncode == 0, smoke.stdout[-5000:]
    assert re.search(r"\b\d+ passed\b", smoke.stdout) and "failed" not in smoke.stdout, smoke.stdout[-3000:]

    second = fresh_root.run(f"make -C {SRC} --no-print-directory install", timeout=300)
    assert second.returncode == 0, second.stdout
    assert len(second.stdout.splitlines()) == 1, second.stdout
    assert second.stdout.startswith("setup: nothing to install; in place: "), second.stdout
