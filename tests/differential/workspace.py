"""Inputs for the differential tests, and one runner that puts them through upstream's phase and ours.

Images record absolute paths (layer entry names, ``CNB_LAYERS_DIR``, ``CNB_APP_DIR``), so both
lifecycles must see the layers and app dirs at the same paths. Each side keeps its own copy, and
:meth:`Side.mounted` renames that copy onto the shared paths while its phase runs: the same inputs
at the same paths, one side at a time, and neither side sees files the other wrote (ours writes
``config/launch.table`` into the layers dir). Each side has its own OCI root; the comparison replaces
that root with ``<oci>``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import LAYOUT_REPO, base_env, run_program
from tests.support.gotools import go_tool, upstream_phase

UPSTREAM = "upstream"
OURS = "ours"


def _file(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def make_layers(layers: Path, *, processes: str = "", default: str = "web", slices: str = "") -> None:
    """Two buildpacks: launch, build-only, cache-only and launch+cache layers, env, store.toml, a label."""
    one, two = layers / "acme_one", layers / "acme_two"
    _file(layers / "group.toml", '[[group]]\nid = "acme/one"\nversion = "1.0.0"\napi = "0.10"\n'
          '[[group]]\nid = "acme/two"\nversion = "2.0.0"\napi = "0.10"\n')
    _file(one / "run.toml", '[types]\nlaunch = true\n[metadata]\nversion = "1.0"\ncount = 3\n')
    _file(one / "run" / "bin" / "tool", "#!/bin/sh\necho tool\n", 0o755)
    _file(one / "run" / "env.launch" / "GREETING", "hello")
    _file(one / "both.toml", "[types]\nlaunch = true\ncache = true\n")
    _file(one / "both" / "data.txt", "both\n")
    _file(one / "build.toml", "[types]\nbuild = true\n")
    _file(one / "build" / "b.txt", "build only\n")
    _file(one / "cached.toml", "[types]\ncache = true\n")
    _file(one / "cached" / "c.txt", "cache only\n")
    _file(one / "store.toml", "[metadata]\nrun = 1\n")
    _file(two / "z-last.toml", "[types]\nlaunch = true\n")
    _file(two / "z-last" / "z.txt", "z\n")
    _file(two / "a-first.toml", "[types]\nlaunch = true\n")
    _file(two / "a-first" / "a.txt", "a\n")
    deep = two / "a-first" / ("d" * 60) / ("e" * 60)  # entry names past 100 bytes: USTAR prefix split
    _file(deep / "file.txt", "deep\n")
    (two / "a-first" / "long-link").symlink_to("/" + "t" * 120)  # link target past 100 bytes: PAX
    _file(two / "a-first" / "caf\u00e9.txt", "non-ascii name: PAX\n")
    (two / "a-first" / "sticky").mkdir()
    (two / "a-first" / "sticky").chmod(0o1777)
    _file(layers / "sbom" / "launch" / "acme_one" / "run" / "sbom.cdx.json", '{"bomFormat":"CycloneDX"}\n')
    processes = processes or (
        '[[processes]]\ntype = "web"\ncommand = ["tool"]\nargs = ["serve"]\ndirect = true\nbuildpack-id = "acme/one"\n'
        '[[processes]]\ntype = "worker"\ncommand = ["echo", "work"]\nargs = []\ndirect = false\n'
        'buildpack-id = "acme/two"\n')
    _file(layers / "config" / "metadata.toml",
          (f'buildpack-default-process-type = "{default}"\n' if default else "")
          + '[[buildpacks]]\nid = "acme/one"\nversion = "1.0.0"\napi = "0.10"\n'
          '[[buildpacks]]\nid = "acme/two"\nversion = "2.0.0"\napi = "0.10"\n'
          + processes + slices
          + '[[labels]]\nkey = "org.example.team"\nvalue = "platform"\n')
    for d in (layers, one, two):
        d.chmod(0o755)


def make_app(app: Path) -> None:
    """Files, a symlink, an empty dir, and names whose byte order differs from a walk's (``sub``,
    ``sub.txt``, ``sub/x``)."""
    _file(app / "hello.txt", "hello app\n")
    _file(app / "static" / "index.html", "<p>hi</p>\n")
    _file(app / "static" / "css" / "site.css", "p {}\n")
    _file(app / "bin" / "run.sh", "#!/bin/sh\necho run\n", 0o755)
    _file(app / "sub" / "x.txt", "x\n")
    _file(app / "sub.txt", "sub\n")
    (app / "empty").mkdir()
    (app / "link").symlink_to("hello.txt")
    for d in (app, app / "static", app / "static" / "css", app / "bin", app / "sub", app / "empty"):
        d.chmod(0o755)


@dataclass
class Side:
    """One lifecycle's copy of the inputs and its outputs."""

    name: str
    home: Path
    shared_layers: Path
    shared_app: Path
    outputs: list[str] = field(default_factory=list)

    @property
    def oci(self) -> Path:
        return self.home / "oci"

    @property
    def layers(self) -> Path:
        return self.home / "layers"

    @property
    def app(self) -> Path:
        return self.home / "app"

    def image_dir(self, name: str = "my-app", tag: str = "latest") -> Path:
        return self.oci / "index.docker.io" / "library" / name / tag

    @contextmanager
    def mounted(self) -> Iterator[None]:
        """This side's layers and app dirs at the shared paths, for the duration of a phase."""
        self.layers.rename(self.shared_layers)
        self.app.rename(self.shared_app)
        try:
            yield
        finally:
            self.shared_layers.rename(self.layers)
            self.shared_app.rename(self.app)

    def file(self, name: str) -> Path:
        """An output file the phases wrote into the layers dir (``analyzed.toml``, ``report.toml``)."""
        return self.layers / name


@dataclass
class Pair:
    """Upstream and ours on the same inputs."""

    root: Path
    bindir: Path
    launcher: Path
    upstream: Side
    ours: Side

    @property
    def sides(self) -> tuple[Side, Side]:
        return self.upstream, self.ours

    def each(self, fn: object) -> None:
        """Apply ``fn(path)`` to both sides' copies (a change made to the inputs of both)."""
        for side in self.sides:
            fn(side)  # type: ignore[operator]

    def run(self, side: Side, phase: str, *args: str, env: dict[str, str] | None = None) -> str:
        """Run ``phase`` of ``side``'s lifecycle in layout mode; its output, asserting success."""
        env = base_env(CNB_EXPERIMENTAL_MODE="silent", **(env or {}))
        common = ["-layers", str(self.root / "layers")]
        with side.mounted():
            if side.name == UPSTREAM:
                res = subprocess.run([str(upstream_phase(phase, self.bindir)), "-layout", "-layout-dir", str(side.oci),
                                      *common, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, timeout=300)
            else:
                res = run_program(phase, "-oci", "-oci-dir", str(side.oci), *common, *args, env=env)
        assert res.returncode == 0, f"{side.name} {phase}: {res.stdout}"
        side.outputs.append(res.stdout)
        return res.stdout

    def analyze(self, *args: str, image: str = "my-app", env: dict[str, str] | None = None) -> None:
        for side in self.sides:
            self.run(side, "analyzer", "-run-image", "busybox", *args, image, env=env)

    def export(self, *args: str, image: str = "my-app", env: dict[str, str] | None = None) -> None:
        for side in self.sides:
            self.run(side, "exporter", "-app", str(self.root / "app"), "-launcher", str(self.launcher), *args, image,
                     env=env)


def make_pair(root: Path, **layers_options: str) -> Pair:
    """Both sides with the busybox layout root, the layers of :func:`make_layers` and the app of
    :func:`make_app`; upstream's launcher binary goes into both images."""
    launcher = root / "launcher"
    shutil.copy(go_tool("launcher"), launcher)
    os.chmod(launcher, 0o755)
    sides = []
    for name in (UPSTREAM, OURS):
        home = root / name
        shutil.copytree(LAYOUT_REPO, home / "oci")
        make_layers(home / "layers", **layers_options)
        make_app(home / "app")
        sides.append(Side(name, home, root / "layers", root / "app"))
    root.chmod(0o755)
    return Pair(root, root / "bin", launcher, sides[0], sides[1])


def read_json(path: Path) -> object:
    return json.loads(path.read_text())
