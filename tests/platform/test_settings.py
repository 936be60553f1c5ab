"""Input resolution: flag > env > default, Go booleans, aliases and ``<layers>`` placeholders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lifecycle.platform.flags import ENV_ONLY, FLAGS, LAYERS_PLACEHOLDER
from lifecycle.platform.settings import Settings, parse_go_bool


def settings(given: dict[str, Any] | None = None, cwd: Path = Path("/work"), **env: str) -> Settings:
    return Settings(given or {}, env, cwd=cwd)


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_go_true(text: str) -> None:
    assert parse_go_bool(text) is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_go_false(text: str) -> None:
    assert parse_go_bool(text) is False


@pytest.mark.parametrize("text", ["", "yes", "no", "on", "tRue", " true", "2"])
def test_go_not_bool(text: str) -> None:
    assert parse_go_bool(text) is None


def test_defaults() -> None:
    s = settings()
    for name, flag in FLAGS.items():
        value = s[name]
        if isinstance(flag.default, str) and flag.default.startswith(LAYERS_PLACEHOLDER):
            continue
        if name == "order":
            continue
        expected = flag.default
        if flag.kind == "list":
            expected = tuple(expected or ())  # type: ignore[arg-type]
        assert value == expected, name
    assert s["oci"] is False and s["oci-dir"] == "/oci" and s["layers"] == "/layers"
    assert s["analyzed"] == "/layers/analyzed.toml"
    for name, flag in ENV_ONLY.items():
        assert s[name] == flag.default


def test_flag_beats_env_beats_default() -> None:
    assert settings(CNB_RUN_IMAGE="env")["run-image"] == "env"
    assert settings({"run-image": "flag"}, CNB_RUN_IMAGE="env")["run-image"] == "flag"
    assert settings({"run-image": None}, CNB_RUN_IMAGE="env")["run-image"] == "env"
    assert settings({"oci": False}, CNB_USE_OCI="true")["oci"] is False
    assert settings({"oci": True}, CNB_USE_OCI="false")["oci"] is True
    assert settings({"oci-dir": "/flag"}, CNB_OCI_PATH="/env", CNB_LAYOUT_DIR="/env2")["oci-dir"] == "/flag"


def test_env_aliases_in_order() -> None:
    assert settings(CNB_USE_LAYOUT="1")["oci"] is True
    assert settings(CNB_LAYOUT_DIR="/l")["oci-dir"] == "/l"
    assert settings(CNB_OCI_PATH="/o", CNB_LAYOUT_DIR="/l")["oci-dir"] == "/o"
    assert settings(CNB_USE_OCI="false", CNB_USE_LAYOUT="true")["oci"] is False


def test_empty_env_is_unset() -> None:
    assert settings(CNB_OCI_PATH="")["oci-dir"] == "/oci"
    assert settings(CNB_OCI_PATH="", CNB_LAYOUT_DIR="/l")["oci-dir"] == "/l"
    assert settings(CNB_USE_OCI="", CNB_USE_LAYOUT="true")["oci"] is True
    assert settings(CNB_LAYERS_DIR="")["analyzed"] == "/layers/analyzed.toml"


def test_env_parsing() -> None:
    assert settings(CNB_USE_OCI="yes")["oci"] is False  # like upstream: unparsable means false
    assert settings(CNB_USER_ID="1000", CNB_GROUP_ID="x")["uid"] == 1000
    assert settings(CNB_GROUP_ID="x")["gid"] == 0
    assert settings(CNB_INSECURE_REGISTRIES="a.io,b.io:5000,")["insecure-registry"] == ("a.io", "b.io:5000")
    assert settings({"tag": ["a", "b"]})["tag"] == ("a", "b")


def test_layers_placeholders_follow_layers() -> None:
    placeholders = [n for n, f in FLAGS.items()
                    if isinstance(f.default, str) and f.default.startswith(LAYERS_PLACEHOLDER)]
    assert {"analyzed", "group", "plan", "report", "project-metadata", "order"} <= set(placeholders)
    by_flag = settings({"layers": "/flag-layers"}, CNB_LAYERS_DIR="/env-layers")
    by_env = settings(CNB_LAYERS_DIR="/env-layers")
    for name in placeholders:
        if name == "order":
            continue
        suffix = str(FLAGS[name].default)[len(LAYERS_PLACEHOLDER):]
        assert by_flag[name] == "/flag-layers" + suffix
        assert by_env[name] == "/env-layers" + suffix
    assert settings({"layers": "/l", "analyzed": "/x/a.toml"})["analyzed"] == "/x/a.toml"
    assert settings({"layers": "/l"}, CNB_ANALYZED_PATH="/y/a.toml")["analyzed"] == "/y/a.toml"


def test_relative_paths_are_made_absolute(tmp_path: Path) -> None:
    s = settings({"layers": "layers", "oci-dir": "oci/../repo"}, cwd=tmp_path, CNB_RUN_PATH="run.toml")
    assert s["layers"] == str(tmp_path / "layers")
    assert s["analyzed"] == str(tmp_path / "layers" / "analyzed.toml")
    assert s["oci-dir"] == str(tmp_path / "repo")
    assert s["run"] == str(tmp_path / "run.toml")
    assert s["run-image"] == ""  # not a path: never touched


def test_order_falls_back_to_cnb(tmp_path: Path) -> None:
    layers = tmp_path / "layers"
    assert settings({"layers": str(layers), "order": None})["order"] == "/cnb/order.toml"
    layers.mkdir()
    (layers / "order.toml").write_text("")
    assert settings({"layers": str(layers), "order": None})["order"] == str(layers / "order.toml")
    missing = str(tmp_path / "given.toml")
    assert settings({"layers": str(layers), "order": missing})["order"] == missing
    assert settings({"layers": str(tmp_path / "none")}, CNB_ORDER_PATH=missing)["order"] == missing


def test_was_given_and_from_env_or_flag() -> None:
    s = settings({"run-image": "x", "oci": None}, CNB_USE_OCI="true", CNB_OCI_PATH="")
    assert s.was_given("run-image") and not s.was_given("oci")
    assert s.from_env_or_flag("oci") and s.from_env_or_flag("run-image")
    assert not s.from_env_or_flag("oci-dir")
    assert not s.from_env_or_flag("exec-env")
