"""The resolver: reference -> layout directory (D2), its fallback, and its containment guarantee."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifecycle.errors import InputError
from lifecycle.image import ref as refs
from lifecycle.image.resolver import Resolver, split_identifier, within
from tests.conftest import BUSYBOX_MANIFEST, LAYOUT_REPO
from tests.image.layouts import make_layout

HEX = BUSYBOX_MANIFEST.split(":", 1)[1]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resolver") / "oci"
    shutil.copytree(LAYOUT_REPO, path)
    make_layout(path / "cnb" / "my-full-stack-run", "bionic")
    return path


@pytest.mark.parametrize(("reference", "paths"), [
    ("my-full-stack-run", ["index.docker.io/library/my-full-stack-run/latest", "my-full-stack-run"]),
    ("cnb/my-full-stack-run:bionic", ["index.docker.io/cnb/my-full-stack-run/bionic", "cnb/my-full-stack-run"]),
    ("my-registry.com/cnb/app", ["my-registry.com/cnb/app/latest", "my-registry.com/cnb/app"]),
    ("docker.io/busybox", ["index.docker.io/library/busybox/latest", "docker.io/busybox"]),
    ("localhost:5000/app:v1", ["localhost:5000/app/v1", "localhost:5000/app"]),
    (f"busybox:1@sha256:{HEX}", [f"index.docker.io/library/busybox/sha256/{HEX}", "busybox"]),
    # the name as written is already the canonical repository directory: no second candidate
    ("index.docker.io/library/busybox", ["index.docker.io/library/busybox/latest",
                                         "index.docker.io/library/busybox"]),
])
def test_candidates(root: Path, reference: str, paths: list[str]) -> None:
    got = [str(loc.path.relative_to(root)) for loc in Resolver(root).candidates(reference)]
    assert got == paths


def test_canonical_and_selection(root: Path) -> None:
    r = Resolver(root)
    loc = r.canonical("cnb/my-full-stack-run:bionic")
    assert loc.path == root / "index.docker.io/cnb/my-full-stack-run/bionic"
    assert (loc.tag, loc.digest) == ("bionic", None)
    d = r.canonical(f"busybox@sha256:{HEX}")
    assert (d.tag, d.digest) == (None, f"sha256:{HEX}")


def test_locate_prefers_canonical_then_fallback(root: Path) -> None:
    r = Resolver(root)
    found = r.locate("busybox")
    assert found is not None and found.path == root / "index.docker.io/library/busybox/latest"
    fallback = r.locate("cnb/my-full-stack-run:bionic")
    assert fallback is not None and fallback.path == root / "cnb/my-full-stack-run"
    assert fallback.tag == "bionic"
    assert r.locate("cnb/nothing-here") is None
    assert r.tried("cnb/nothing-here") == [str(root / "index.docker.io/cnb/nothing-here/latest"),
                                           str(root / "cnb/nothing-here")]


def test_paths_under_root(root: Path) -> None:
    r = Resolver(root)
    busybox = root / "index.docker.io/library/busybox/latest"
    loc = r.canonical(str(busybox))
    assert (loc.path, loc.tag, loc.digest, loc.ref) == (busybox, None, None, None)
    loc = r.canonical(f"{busybox}@{BUSYBOX_MANIFEST}")
    assert (loc.path, loc.digest) == (busybox, BUSYBOX_MANIFEST)
    assert r.locate(f"{busybox}/") is not None


@pytest.mark.parametrize("reference", [
    "/etc/passwd", "/", "{root}/../etc", "{root}x/y", "{root}/a/../../b", "../busybox", "a/../../b",
    "BusyBox", "busybox::latest", "büsybox",
])
def test_refused(root: Path, reference: str) -> None:
    with pytest.raises(InputError, match=r"^failed to parse arguments: "):
        Resolver(root).candidates(reference.format(root=root))


def test_split_identifier() -> None:
    assert split_identifier(f"/oci/x@{BUSYBOX_MANIFEST}") == ("/oci/x", BUSYBOX_MANIFEST)
    assert split_identifier(f"x@{BUSYBOX_MANIFEST}") == (f"x@{BUSYBOX_MANIFEST}", None)
    assert split_identifier("/oci/x@sha256:12") == ("/oci/x@sha256:12", None)


def test_within() -> None:
    assert within(Path("/oci"), Path("/oci"))
    assert within(Path("/oci"), Path("/oci/a/../b"))
    assert not within(Path("/oci"), Path("/ocix"))
    assert not within(Path("/oci"), Path("/oci/../x"))


# ---- property: random text never escapes the root and never crashes ------------------------

_SEGMENTS = st.sampled_from(["..", ".", "", "a", "busybox", "library", "index.docker.io", "docker.io",
                             "localhost:5000", "cnb", "sha256", "A", "ü", "a:b", "x@y", "~", "-", "_",
                             "latest", f"sha256:{HEX}", "\x00", "\udc80", " ", "%2e%2e"])


@st.composite
def path_like(draw: st.DrawFn, root: str) -> str:
    parts = draw(st.lists(_SEGMENTS, max_size=6))
    text = "/".join(parts)
    prefix = draw(st.sampled_from(["", "/", root, root + "/", root + "/.."]))
    suffix = draw(st.sampled_from(["", ":latest", ":bionic", f"@sha256:{HEX}", "@sha256:", ":"]))
    return prefix + text + suffix


def _texts(root: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=40),
        st.text(alphabet="abc./:@-_0123456789ABü", max_size=40),
        st.from_regex(r"[a-z0-9./:@_-]{1,40}", fullmatch=True),
        path_like(root),
    )


def _assert_inside(root: Path, path: Path) -> None:
    normal = os.path.normpath(path)
    assert str(path) == normal, f"not normalised: {path!r}"
    assert os.path.commonpath([str(root), normal]) == str(root), f"outside the root: {path!r}"
    assert ".." not in path.parts


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_random_references_stay_inside(root: Path, data: st.DataObject) -> None:
    text = data.draw(_texts(str(root)))
    with contextlib.suppress(refs.ReferenceError):
        refs.parse(text)
    resolver = Resolver(root)
    for call in (resolver.canonical, resolver.candidates, resolver.locate):
        try:
            result = call(text)
        except InputError as exc:
            assert exc.code == 3
            continue
        locations = result if isinstance(result, list) else [result]
        for loc in locations:
            if loc is not None:
                _assert_inside(resolver.root, loc.path)
