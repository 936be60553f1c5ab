"""Reference parsing and normalisation (decision D2, upstream-lifecycle.md §5)."""

from __future__ import annotations

import pytest

from lifecycle.image import ref as refs

HEX = "f75f3d1a317fc82c793d567de94fc8df2bece37acd5f2bd364a0d91a0d1f3dab"


@pytest.mark.parametrize(("text", "parts"), [
    # upstream's unit-test table (imgutil layout/util_test.go)
    ("my-full-stack-run", "index.docker.io/library/my-full-stack-run/latest"),
    ("my-full-stack-run:bionic", "index.docker.io/library/my-full-stack-run/bionic"),
    (f"my-full-stack-run@sha256:{HEX}", f"index.docker.io/library/my-full-stack-run/sha256/{HEX}"),
    ("cnb/my-full-stack-run", "index.docker.io/cnb/my-full-stack-run/latest"),
    ("cnb/my-full-stack-run:bionic", "index.docker.io/cnb/my-full-stack-run/bionic"),
    ("my-registry.com/my-full-stack-run", "my-registry.com/my-full-stack-run/latest"),
    (f"my-registry.com/cnb/my-full-stack-run@sha256:{HEX}", f"my-registry.com/cnb/my-full-stack-run/sha256/{HEX}"),
    # derived rows
    ("docker.io/busybox", "index.docker.io/library/busybox/latest"),
    ("index.docker.io/library/busybox:latest", "index.docker.io/library/busybox/latest"),
    ("localhost:5000/app:v1", "localhost:5000/app/v1"),
    ("localhost/app", "localhost/app/latest"),
    (f"repo:tag@sha256:{HEX}", f"index.docker.io/library/repo/sha256/{HEX}"),
    ("a.b/c/d/e:T_1.x-y", "a.b/c/d/e/T_1.x-y"),
])
def test_path_parts(text: str, parts: str) -> None:
    assert "/".join(refs.parse(text).path_parts()) == parts


@pytest.mark.parametrize("text", [
    "", " busybox", "busybox ", "my-bad-image-reference::latest", "MyApp", "busy box", "busybox:",
    "busybox@sha256:1234", "busybox@sha111:" + HEX, "busybox@sha256:" + HEX.upper(), "a//b", "/abs",
    "../x", "a/../b", "./a", "a/./b", "a/", ":tag", "@sha256:" + HEX, "-a", "a-", "a..b",
    "bad_host_/x", "host:port/x", "h:99999999/x", "..:5000/x", "a@b@c", "b" * 256,
    "a:" + "t" * 129, "a:.tag", "a:-tag", "büsybox", "a\x00b", "a\nb", "a\\b",
])
def test_rejects(text: str) -> None:
    with pytest.raises(refs.ReferenceError, match="could not parse reference"):
        refs.parse(text)


def test_fields() -> None:
    r = refs.parse("docker.io/busybox")
    assert (r.registry, r.repository, r.tag, r.digest) == ("index.docker.io", "library/busybox", "latest", None)
    assert r.identifier == "latest"
    assert str(r) == "index.docker.io/library/busybox:latest"
    d = refs.parse(f"busybox:1.36@sha256:{HEX}")
    assert d.tag is None and d.digest == f"sha256:{HEX}"
    assert d.identifier == f"sha256:{HEX}"
    assert str(d) == f"index.docker.io/library/busybox@sha256:{HEX}"


@pytest.mark.parametrize(("text", "written"), [
    ("cnb/my-full-stack-run:bionic", "cnb/my-full-stack-run"),
    ("busybox", "busybox"),
    (f"repo:tag@sha256:{HEX}", "repo"),
    ("localhost:5000/app:v1", "localhost:5000/app"),
    ("docker.io/busybox", "docker.io/busybox"),
])
def test_written_name(text: str, written: str) -> None:
    assert refs.parse(text).written_name() == written


def test_valid_digest() -> None:
    assert refs.valid_digest(f"sha256:{HEX}")
    assert refs.valid_digest("sha512:" + "a" * 128)
    for bad in ("sha256:" + HEX[:-1], "sha256:" + HEX.upper(), "sha256" + HEX, "md5:" + HEX, "sha256:../x"):
        assert not refs.valid_digest(bad)
