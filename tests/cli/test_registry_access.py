"""Registry-mode access checks before any build work (upstream's analyzer): a real docker-registry
with a read-only user (htpasswd + the storage's read-only mode) refuses the push check, and the
creator stops in its analyze step with upstream's message, exit 32, nothing detected or pushed."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.conftest import Run, base_env
from tests.support.sample import push_busybox, sample_build_args
from tests.support.services import Registry

USER = ("reader", "r3ad-only")


@pytest.fixture(scope="module")
def readonly(registry: Registry) -> Registry:
    """A registry the user may log in to and pull from, but not push to."""
    return registry.start_another(auth=USER, readonly=True)


def _auth(*regs: Registry) -> dict[str, str]:
    token = base64.b64encode(f"{USER[0]}:{USER[1]}".encode()).decode()
    return base_env(CNB_REGISTRY_AUTH=json.dumps({r.host: f"Basic {token}" for r in regs}))


def _creator(run: Run, tmp_path: Path, registries: list[Registry], *args: str,
             env: dict[str, str]) -> tuple[int, str]:
    insecure = [x for r in registries for x in ("-insecure-registry", r.host)]
    res = run("creator", *sample_build_args(tmp_path), *insecure, *args, env=env)
    return res.returncode, res.stdout


def test_output_image_without_push_access_fails_before_build(run: Run, registry: Registry, readonly: Registry,
                                                              tmp_path: Path) -> None:
    run_image = push_busybox(registry.host)
    output = f"{readonly.host}/team/app"
    mark = readonly.mark()
    code, out = _creator(run, tmp_path, [registry, readonly], "-run-image", run_image, output,
                         env=_auth(readonly))
    assert code == 32, out
    errors = [line for line in out.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, out
    assert errors[0].startswith("ERROR: failed to initialize analyzer: validating registry write access: "
                                f"failed to ensure registry read/write access to {output}: "), out
    assert "===> DETECTING" not in out and "Traceback" not in out
    assert not (tmp_path / "layers" / "analyzed.toml").exists()
    # Only the checks reached the registry: manifest reads and the refused upload session.
    assert {(method, status) for method, _uri, status in readonly.requests_since(mark)} <= {
        ("GET", 401), ("GET", 404), ("HEAD", 404), ("POST", 401), ("POST", 405)}


def test_every_tag_is_checked(registry: Registry, readonly: Registry) -> None:
    """A writable output image and a -tag the user may not push: the tag is named (upstream checks
    the output image and every tag; on one registry, as the CLI requires, the library call shows it)."""
    from lifecycle.errors import LifecycleError
    from lifecycle.image.access import ensure_registry_access
    from lifecycle.image.auth import Keychain
    from lifecycle.image.registry import RegistryStore

    store = RegistryStore(insecure_registries=[registry.host, readonly.host],
                          keychain=Keychain.from_environ(_auth(readonly)))
    tag = f"{readonly.host}/team/app:v2"
    with pytest.raises(LifecycleError) as caught:
        ensure_registry_access(store, write=[f"{registry.host}/access-app", tag])
    assert caught.value.code == 32
    assert str(caught.value).startswith("failed to initialize analyzer: validating registry write access: "
                                        f"failed to ensure registry read/write access to {tag}: ")


def test_registry_cache_image_without_push_access_fails(run: Run, registry: Registry, readonly: Registry,
                                                         tmp_path: Path) -> None:
    run_image = push_busybox(registry.host)
    cache = f"{readonly.host}/team/cache"
    code, out = _creator(run, tmp_path, [registry, readonly], "-run-image", run_image,
                         "-cache-image", cache, f"{registry.host}/access-app", env=_auth(readonly))
    assert code == 32, out
    assert (f"ERROR: failed to initialize analyzer: validating registry write access: failed to ensure "
            f"registry read/write access to {cache}: ") in out
    assert "===> DETECTING" not in out


def test_unreadable_previous_image_fails(run: Run, registry: Registry, readonly: Registry, tmp_path: Path) -> None:
    """No credentials for the registry of -previous-image: the read check is refused (401)."""
    run_image = push_busybox(registry.host)
    previous = f"{readonly.host}/team/app"
    code, out = _creator(run, tmp_path, [registry, readonly], "-run-image", run_image,
                         "-previous-image", previous, f"{registry.host}/access-app", env=base_env())
    assert code == 32, out
    assert ("ERROR: failed to initialize analyzer: validating registry read access: failed to ensure "
            f"registry read access to {previous}: ") in out
    assert "===> DETECTING" not in out


def test_writable_registry_passes_the_checks(run: Run, registry: Registry, tmp_path: Path) -> None:
    run_image = push_busybox(registry.host)
    code, out = _creator(run, tmp_path, [registry], "-run-image", run_image, "-tag",
                         f"{registry.host}/access-app:v2", f"{registry.host}/access-app", env=base_env())
    assert code == 0, out
    assert "===> EXPORTING" in out
