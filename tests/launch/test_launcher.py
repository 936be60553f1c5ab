"""Run the POSIX sh launcher (cnb/lifecycle/launcher) for real, under dash and busybox ash."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from lifecycle.launch.script import render_launch_script, write_launch_script

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "cnb" / "lifecycle" / "launcher"
BUSYBOX_LAYER = (REPO / "tests" / "fixtures" / "layout-repo" / "index.docker.io" / "library" / "busybox" / "latest"
                 / "blobs" / "sha256" / "405fecb6a2fa4f29683f977e7e3b852bf6f8975a2aba647d234d2371894943da")
BASE_PATH = "/cnb/process:/usr/local/bin:/usr/bin:/bin:/cnb/lifecycle"


@pytest.fixture(scope="session")
def busybox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not BUSYBOX_LAYER.exists():
        pytest.fail(f"busybox layer fixture missing: {BUSYBOX_LAYER}")
    dest = tmp_path_factory.mktemp("busybox") / "busybox"
    with tarfile.open(BUSYBOX_LAYER) as tar:
        src = tar.extractfile("bin/busybox")  # a hard link in the layer; tarfile resolves it
        assert src is not None
        dest.write_bytes(src.read())
    dest.chmod(0o755)
    return dest


@pytest.fixture(params=["dash", "busybox"])
def shell(request: pytest.FixtureRequest) -> list[str]:
    """The interpreter the launcher runs under (argv prefix)."""
    if request.param == "dash":
        return ["/bin/sh"]
    return [str(request.getfixturevalue("busybox")), "sh"]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


def _toml(metadata: Mapping[str, Any]) -> str:
    lines = [f"{k} = {_toml_value(v)}" for k, v in metadata.items() if not isinstance(v, list)]
    for key in ("buildpacks", "processes"):
        for table in metadata.get(key, []):
            lines.append(f"[[{key}]]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


class Image:
    """A fake app-image filesystem: /cnb, layers and app dir under a tmp root."""

    def __init__(self, root: Path, shell: list[str]) -> None:
        self.root = root
        self.shell = shell
        self.layers = root / "layers"
        self.app = root / "workspace"
        (root / "cnb" / "lifecycle").mkdir(parents=True)
        (root / "cnb" / "process").mkdir()
        self.launcher = root / "cnb" / "lifecycle" / "launcher"
        shutil.copy2(LAUNCHER, self.launcher)
        self.app.mkdir()
        self.layers.mkdir()

    def metadata(self, metadata: Mapping[str, Any]) -> Path:
        config = self.layers / "config"
        config.mkdir(exist_ok=True)
        (config / "metadata.toml").write_text(_toml(metadata))
        return write_launch_script(config)

    def file(self, rel: str, content: str = "") -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        return path

    def entry(self, ptype: str | None) -> Path:
        if ptype is None:
            return self.launcher
        link = self.root / "cnb" / "process" / ptype
        if not link.is_symlink():
            link.symlink_to("../lifecycle/launcher")
        return link

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            "PATH": BASE_PATH,
            "CNB_LAYERS_DIR": str(self.layers),
            "CNB_APP_DIR": str(self.app),
            "CNB_PLATFORM_API": "0.12",
        }
        env.update(extra or {})
        return env

    def run(
        self,
        *args: str,
        ptype: str | None = None,
        env: Mapping[str, str] | None = None,
        via_kernel: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        prefix: Sequence[str] = [] if via_kernel else self.shell
        return subprocess.run(
            [*prefix, str(self.entry(ptype)), *args],
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def run_env(self, *args: str, ptype: str | None = None, **kw: Any) -> dict[str, str]:
        """Run a process that prints `env -0`; return the child's environment."""
        result = self.run(*args, ptype=ptype, **kw)
        assert result.returncode == 0, result.stderr
        return dict(item.split("=", 1) for item in result.stdout.split("\0") if item)


def _standard_metadata(app: Path) -> dict[str, Any]:
    new, old = "acme/new", "acme/old"
    return {
        "buildpack-default-process-type": "web",
        "buildpacks": [
            {"id": new, "version": "1.0.0", "api": "0.10"},
            {"id": old, "version": "0.1.0", "api": "0.8"},
        ],
        "processes": [
            {"type": "web", "command": ["printf", "%s|"], "args": ["a", "b"], "buildpack-id": new},
            {"type": "echo-new", "command": ["echo"], "args": ["default"], "buildpack-id": new},
            {
                "type": "echo.old",
                "command": ["echo"],
                "args": ["default"],
                "direct": True,
                "buildpack-id": old,
            },
            {"type": "shell-old", "command": ["echo"], "args": ["default"], "buildpack-id": old},
            {"type": "script-old", "command": ['echo "script $FOO"; exit 7'], "buildpack-id": old},
            {"type": "env", "command": ["env", "-0"], "buildpack-id": new, "exec-env": ["production"]},
            {"type": "envsh", "command": ["env"], "args": ["-0"], "buildpack-id": old},
            {"type": "wd", "command": ["pwd"], "buildpack-id": new, "working-dir": str(app / "sub")},
            {"type": "badwd", "command": ["pwd"], "buildpack-id": new, "working-dir": "/nonexistent/dir"},
            {"type": "orphan", "command": ["echo"], "args": ["x"], "buildpack-id": "gone/bp"},
            {
                "type": "quoting",
                "command": ["printf", "<%s>\n"],
                "args": ["it's", 'dq"x', "with  space", "$HOME", "line1\nline2\n\n", "back\\slash", "", "*"],
                "buildpack-id": new,
            },
        ],
    }


@pytest.fixture
def image(tmp_path: Path, shell: list[str]) -> Image:
    img = Image(tmp_path / "img", shell)
    img.metadata(_standard_metadata(img.app))
    (img.app / "sub").mkdir()
    new, old = "layers/acme_new", "layers/acme_old"
    # acme/new, layer a-layer: bin + lib + env files
    (img.root / new / "a-layer" / "bin").mkdir(parents=True)
    (img.root / new / "a-layer" / "lib").mkdir()
    img.file(f"{new}/a-layer/env/FOO", "bar")
    img.file(f"{new}/a-layer/env/OVR", "env")
    img.file(f"{new}/a-layer/env.launch/OVR.override", "launch")
    img.file(f"{new}/a-layer/env/OVR.weird", "ignored suffix")
    img.file(f"{new}/a-layer/env/DEF.default", "ignored-default")
    img.file(f"{new}/a-layer/env/DEF2.default", "d2")
    img.file(f"{new}/a-layer/env/APP.append", "x")
    img.file(f"{new}/a-layer/env/APP.delim", ":")
    img.file(f"{new}/a-layer/env/PRE.prepend", "y")
    img.file(f"{new}/a-layer/env/NEWAPP.append", "v")
    img.file(f"{new}/a-layer/env/NEWAPP.delim", ":")
    img.file(f"{new}/a-layer/env/QUOTED", 'it\'s "q" $HOME `x` \\n\n\n')
    img.file(f"{new}/a-layer/env/BAD-NAME", "cannot be a shell variable")
    img.file(f"{new}/a-layer/env/ORDER.override", "a")
    img.file(f"{new}/a-layer/env.launch/env/TYPED", "typed-env")
    img.file(f"{new}/a-layer/env.launch/web/TYPED", "typed-web")
    img.file(f"{new}/a-layer/profile.d/01.sh", 'export PROF="${PROF-}1"\n')
    img.file(f"{new}/a-layer/profile.d/envsh/02.sh", 'export PROF="${PROF-}t"\n')
    img.file(f"{new}/a-layer/profile.d/web/02.sh", 'export PROF="${PROF-}w"\n')
    # acme/new, layer b-layer (sorted after a-layer)
    img.file(f"{new}/b-layer/env/ORDER.append", "b")
    img.file(f"{new}/b-layer/env/ORDER.delim", ",")
    # skipped: *.ignore layers and plain files in the buildpack dir
    img.file(f"{new}/z.ignore/env/IGN", "x")
    (img.root / new / "z.ignore" / "bin").mkdir()
    img.file(f"{new}/a-layer.toml", "[types]\nlaunch = true\n")
    # acme/old comes second in [[buildpacks]]
    (img.root / old / "l" / "bin").mkdir(parents=True)
    img.file(f"{old}/l/env/ORDER.append", "c")
    img.file(f"{old}/l/env/ORDER.delim", ",")
    # a profile that clobbers positional args and turns on -u must not break the launcher
    img.file(f"{old}/l/profile.d/03.sh", 'export PROF="${PROF-}3"\nset -- clobbered\nset -u\n')
    img.file("workspace/.profile", 'export PROF="${PROF-}app"\n')
    return img


# ---- process selection -------------------------------------------------------------------------


def test_default_process(image: Image) -> None:
    result = image.run()
    assert (result.returncode, result.stdout, result.stderr) == (0, "a|b|", "")


def test_typed_process_via_symlink_name(image: Image) -> None:
    result = image.run(ptype="echo-new")
    assert (result.returncode, result.stdout) == (0, "default\n")


def test_symlink_run_directly_by_kernel(image: Image) -> None:
    assert image.run("x", ptype="web", via_kernel=True).stdout == "x|"
    assert image.run(via_kernel=True).stdout == "a|b|"


def test_user_args_replace_for_buildpack_api_0_9_plus(image: Image) -> None:
    assert image.run("u1", "u 2", ptype="echo-new").stdout == "u1 u 2\n"


def test_user_args_append_for_buildpack_api_below_0_9(image: Image) -> None:
    assert image.run("u1", "u 2", ptype="echo.old").stdout == "default u1 u 2\n"


def test_multi_entry_command_keeps_entries_and_replaces_args(image: Image) -> None:
    assert image.run(ptype="web").stdout == "a|b|"
    assert image.run("x", "y z", ptype="web").stdout == "x|y z|"


def test_legacy_shell_process_expands_tokens(image: Image) -> None:
    # API < 0.9, not direct, with args: each token is expanded like a double-quoted word.
    result = image.run("u1", "$FOO", "a  b", ptype="shell-old")
    assert (result.returncode, result.stdout) == (0, "default u1 bar a  b\n")


def test_legacy_script_process_and_exit_code(image: Image) -> None:
    result = image.run(ptype="script-old")
    assert (result.returncode, result.stdout) == (7, "script bar\n")


def test_double_dash_execs_directly_without_expansion(image: Image) -> None:
    result = image.run("--", "printf", "%s|", "$FOO", "it's", "a b")
    assert (result.returncode, result.stdout) == (0, "$FOO|it's|a b|")


def test_single_word_runs_as_shell_script(image: Image) -> None:
    result = image.run('printf "%s" "$FOO"; exit 7')
    assert (result.returncode, result.stdout) == (7, "bar")


def test_command_with_args_expands_each_token(image: Image) -> None:
    result = image.run("printf", "[%s]", "$FOO", "x y")
    assert (result.returncode, result.stdout) == (0, "[bar][x y]")


def test_exit_code_propagated(image: Image) -> None:
    assert image.run("--", "sh", "-c", "exit 7").returncode == 7
    assert image.run("sh", "-c", "exit 9").returncode == 9


def test_no_default_requires_command(tmp_path: Path, shell: list[str]) -> None:
    img = Image(tmp_path / "img", shell)
    img.metadata({"buildpacks": [], "processes": [{"type": "web", "command": ["true"]}]})
    result = img.run()
    assert result.returncode == 82
    assert result.stdout == ""
    assert result.stderr.startswith("ERROR: ")
    assert "when there is no default process a command is required" in result.stderr
    assert result.stderr.count("\n") == 1


def test_unknown_type_symlink_falls_back_to_launcher_mode(image: Image) -> None:
    assert image.run(ptype="nope").stdout == "a|b|"  # default process
    assert image.run("echo hi", ptype="nope").stdout == "hi\n"  # shell command


def test_unknown_type_symlink_without_default_errors(tmp_path: Path, shell: list[str]) -> None:
    img = Image(tmp_path / "img", shell)
    img.metadata({"processes": [{"type": "web", "command": ["true"]}]})
    result = img.run(ptype="nope")
    assert result.returncode == 82
    assert "when there is no default process a command is required" in result.stderr


def test_missing_table_means_no_processes(tmp_path: Path, shell: list[str]) -> None:
    img = Image(tmp_path / "img", shell)
    result = img.run("--", "printf", "ok")
    assert (result.returncode, result.stdout) == (0, "ok")
    assert img.run("echo sh-ok").stdout == "sh-ok\n"
    assert img.run(ptype="web").returncode == 82  # unknown name, no args, no default


def test_missing_command_is_launcher_error(image: Image) -> None:
    result = image.run("--", "no-such-command-xyz")
    assert result.returncode == 82
    assert result.stderr == (
        'ERROR: failed to launch: path lookup: exec: "no-such-command-xyz": '
        "executable file not found in $PATH\n"
    )


def test_process_of_unknown_buildpack_with_args_errors(image: Image) -> None:
    result = image.run("y", ptype="orphan")
    assert result.returncode == 82
    assert "failed to find buildpack for process orphan with buildpack ID gone/bp" in result.stderr


# ---- environment -------------------------------------------------------------------------------


def test_env_files_applied_in_order(image: Image) -> None:
    env = image.run_env(ptype="env", env={"DEF": "preset", "APP": "base", "PRE": "base"})
    assert env["FOO"] == "bar"
    assert env["OVR"] == "launch"  # env/ then env.launch/ (override)
    assert env["DEF"] == "preset"  # .default does not replace a set value
    assert env["DEF2"] == "d2"
    assert env["APP"] == "base:x"  # .append with .delim
    assert env["PRE"] == "ybase"  # .prepend without .delim
    assert env["NEWAPP"] == "v"  # no delimiter when the old value is empty
    assert env["ORDER"] == "a,b,c"  # layers by name, buildpacks in order
    assert env["QUOTED"] == 'it\'s "q" $HOME `x` \\n\n\n'  # verbatim, trailing newlines kept
    assert env["TYPED"] == "typed-env"  # env.launch/<type>/
    assert "IGN" not in env
    assert not any(k.startswith("BAD") for k in env)


def test_untyped_process_skips_typed_env(image: Image) -> None:
    env = image.run_env("--", "env", "-0")
    assert "TYPED" not in env
    assert env["OVR"] == "launch"


def test_bin_and_lib_dirs(image: Image) -> None:
    env = image.run_env(ptype="env")
    new_bin = image.layers / "acme_new" / "a-layer" / "bin"
    old_bin = image.layers / "acme_old" / "l" / "bin"
    assert env["PATH"] == f"{old_bin}:{new_bin}:/usr/local/bin:/usr/bin:/bin"
    assert env["LD_LIBRARY_PATH"] == str(image.layers / "acme_new" / "a-layer" / "lib")


def test_layer_bin_found_on_path(image: Image) -> None:
    tool = image.file("layers/acme_new/a-layer/bin/hello-tool", '#!/bin/sh\necho tool "$@"\n')
    tool.chmod(0o755)
    result = image.run("hello-tool", "x")
    assert (result.returncode, result.stdout) == (0, "tool x\n")


def test_cnb_vars_stripped_and_launcher_dirs_removed_from_path(image: Image) -> None:
    env = image.run_env(ptype="env", env={"CNB_DEPRECATION_MODE": "quiet", "CNB_OTHER": "kept"})
    for name in (
        "CNB_LAYERS_DIR",
        "CNB_APP_DIR",
        "CNB_PROCESS_TYPE",
        "CNB_PLATFORM_API",
        "CNB_DEPRECATION_MODE",
    ):
        assert name not in env
    assert env["CNB_OTHER"] == "kept"
    assert "/cnb/process" not in env["PATH"].split(":")
    assert "/cnb/lifecycle" not in env["PATH"].split(":")
    assert not any(k.startswith("cnb_") for k in env)  # launcher internals stay unexported


def test_cnb_process_type_warns_and_is_stripped(image: Image) -> None:
    result = image.run(ptype="env", env={"CNB_PROCESS_TYPE": "web"})
    assert result.returncode == 0
    assert "CNB_PROCESS_TYPE is not supported" in result.stderr
    assert "CNB_PROCESS_TYPE=" not in result.stdout


def test_profiles_sourced_for_shell_process(image: Image) -> None:
    env = image.run_env(ptype="envsh")
    assert env["PROF"] == "1t3app"  # profile.d, profile.d/<type>, next buildpack, app .profile


def test_profiles_sourced_for_user_shell_command(image: Image) -> None:
    result = image.run('printf %s "$PROF"')
    assert (result.returncode, result.stdout) == (0, "13app")


def test_profiles_not_sourced_for_direct_process(image: Image) -> None:
    assert "PROF" not in image.run_env(ptype="env")
    assert "PROF" not in image.run_env("--", "env", "-0")


# ---- working dir and quoting -------------------------------------------------------------------


def test_working_dir(image: Image) -> None:
    assert image.run(ptype="wd").stdout == f"{image.app / 'sub'}\n"
    assert image.run("--", "pwd").stdout == f"{image.app}\n"


def test_bad_working_dir_is_launcher_error(image: Image) -> None:
    result = image.run(ptype="badwd")
    assert (result.returncode, result.stderr) == (
        82,
        "ERROR: failed to launch: change directory: /nonexistent/dir\n",
    )


def test_bad_app_dir_is_launcher_error(image: Image) -> None:
    result = image.run("--", "true", env={"CNB_APP_DIR": str(image.root / "missing")})
    assert result.returncode == 82
    assert "change to app directory" in result.stderr


def test_values_with_quotes_spaces_newlines_survive(image: Image) -> None:
    result = image.run(ptype="quoting")
    assert result.returncode == 0, result.stderr
    expected = ["it's", 'dq"x', "with  space", "$HOME", "line1\nline2\n\n", "back\\slash", "", "*"]
    assert result.stdout == "".join(f"<{a}>\n" for a in expected)
    user = ["o'neil", "a\nb", "$(touch pwned)", "*"]
    result = image.run(*user, ptype="quoting")
    assert result.stdout == "".join(f"<{a}>\n" for a in user)
    assert not (image.app / "pwned").exists()


# ---- rendering ---------------------------------------------------------------------------------


def test_render_is_deterministic_and_written_atomically(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    metadata = _standard_metadata(tmp_path)
    (config / "metadata.toml").write_text(_toml(metadata))
    first = write_launch_script(config).read_bytes()
    path = write_launch_script(config)
    assert path == config / "launch.sh"
    assert path.read_bytes() == first
    assert render_launch_script(metadata) == first.decode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in config.iterdir()) == ["launch.sh", "metadata.toml"]


def test_missing_metadata_renders_empty_table(tmp_path: Path) -> None:
    path = write_launch_script(tmp_path / "config")
    text = path.read_text()
    assert "cnb_default_type=''" in text
    assert "cnb_launch" not in text


@pytest.mark.parametrize("ptype", ["", ".", "..", "a/b", "a b", "a:b", "a|b", "a&b", "a>b", "a\\b", "a\tb"])
def test_invalid_process_types_rejected(ptype: str) -> None:
    with pytest.raises(ValueError, match="invalid process type"):
        render_launch_script({"processes": [{"type": ptype, "command": ["x"]}]})


def test_malformed_metadata_rejected() -> None:
    with pytest.raises(ValueError):
        render_launch_script({"processes": [{"type": "web", "command": []}]})
    with pytest.raises(ValueError):
        render_launch_script({"processes": [{"type": "web", "command": ["x"], "args": "notalist"}]})
    with pytest.raises(ValueError):
        render_launch_script({"buildpacks": [{"id": "a", "api": "zero"}]})
    with pytest.raises(ValueError):
        render_launch_script({"processes": [{"type": "web", "command": ["x\x00y"]}]})


def test_duplicate_types_first_wins(tmp_path: Path, shell: list[str]) -> None:
    img = Image(tmp_path / "img", shell)
    img.metadata(
        {
            "processes": [
                {"type": "web", "command": ["echo", "first"]},
                {"type": "web", "command": ["echo", "second"]},
            ]
        }
    )
    assert img.run(ptype="web").stdout == "first\n"


def test_launcher_is_executable_posix_sh() -> None:
    assert LAUNCHER.read_text().startswith("#!/bin/sh\n")
    assert os.access(LAUNCHER, os.X_OK)
