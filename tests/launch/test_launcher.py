"""Run the built launcher (build/launcher/launcher) for real on a fake app filesystem, and compare
its environment handling with upstream's launcher v0.21.17 on the same inputs."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from lifecycle.files import metadata as metadata_file
from lifecycle.launch.table import TABLE_FORMAT, render_table, write_table
from tests.support.gotools import go_tool

BASE_PATH = "/cnb/process:/usr/local/bin:/usr/bin:/bin:/cnb/lifecycle"
NEW, OLD = "acme/new", "acme/old"


class Image:
    """A fake app-image filesystem under a tmp root: /cnb, layers, the app dir."""

    def __init__(self, root: Path, launcher: Path) -> None:
        self.root = root
        self.layers = root / "layers"
        self.app = root / "workspace"
        self.launcher = launcher
        (root / "cnb" / "process").mkdir(parents=True)
        self.app.mkdir()
        self.layers.mkdir()

    def metadata(self, data: Mapping[str, Any]) -> Path:
        """Write metadata.toml (upstream reads it) and the launch table (ours reads it)."""
        meta = metadata_file.BuildMetadata.model_validate(data)
        metadata_file.write(self.layers / "config" / "metadata.toml", meta)
        return write_table(self.layers / "config", meta)

    def file(self, rel: str, content: str = "", mode: int = 0o644) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(mode)
        return path

    def entry(self, ptype: str | None, launcher: Path | None = None) -> Path:
        target = launcher or self.launcher
        if ptype is None:
            return target
        link = self.root / "cnb" / ("upstream" if launcher else "process") / ptype
        link.parent.mkdir(exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(target)
        return link

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {"PATH": BASE_PATH, "CNB_LAYERS_DIR": str(self.layers), "CNB_APP_DIR": str(self.app),
               "CNB_PLATFORM_API": "0.15"}
        env.update(extra or {})
        return env

    def run(self, *args: str, ptype: str | None = None, env: Mapping[str, str] | None = None,
            launcher: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.entry(ptype, launcher)), *args], env=self.env(env), capture_output=True,
                              text=True, timeout=60, check=False, cwd=self.root)

    def run_env(self, *args: str, ptype: str | None = None, **kw: Any) -> dict[str, str]:
        """Run a process that prints ``env -0``; return the child's environment."""
        result = self.run(*args, ptype=ptype, **kw)
        assert result.returncode == 0, result.stderr
        return dict(item.split("=", 1) for item in result.stdout.split("\0") if item)


def _standard_metadata(app: Path) -> dict[str, Any]:
    return {
        "buildpacks": [{"id": NEW, "version": "1.0.0", "api": "0.10"}, {"id": OLD, "version": "0.1.0", "api": "0.8"}],
        "processes": [
            {"type": "web", "command": ["printf", "%s|"], "args": ["a", "b"], "buildpack-id": NEW},
            {"type": "echo-new", "command": ["echo"], "args": ["default"], "buildpack-id": NEW},
            {"type": "echo.old", "command": ["echo"], "args": ["default"], "direct": True, "buildpack-id": OLD},
            {"type": "shell-old", "command": ["echo"], "args": ["default"], "direct": False, "buildpack-id": OLD},
            {"type": "script-old", "command": ['echo "script $FOO"; exit 7'], "direct": False, "buildpack-id": OLD},
            {"type": "env", "command": ["env", "-0"], "buildpack-id": NEW},
            {"type": "envsh", "command": ["env"], "args": ["-0"], "direct": False, "buildpack-id": OLD},
            {"type": "wd", "command": ["pwd"], "buildpack-id": NEW, "working-dir": str(app / "sub")},
            {"type": "badwd", "command": ["pwd"], "buildpack-id": NEW, "working-dir": "/nonexistent/dir"},
            {"type": "orphan", "command": ["echo"], "args": ["x"], "buildpack-id": "gone/bp"},
            {"type": "quoting", "command": ["printf", "<%s>\n"],
             "args": ["it's", 'dq"x', "with  space", "$HOME", "line1\nline2\n\n", "back\\slash", "", "*"],
             "buildpack-id": NEW},
            {"type": "dev-only", "command": ["echo", "dev"], "buildpack-id": NEW, "exec-env": ["development"]},
        ],
    }


@pytest.fixture
def image(tmp_path: Path, launcher_bin: Path) -> Image:
    img = Image(tmp_path / "img", launcher_bin)
    img.metadata(_standard_metadata(img.app))
    (img.app / "sub").mkdir()
    new, old = "layers/acme_new", "layers/acme_old"
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
    img.file(f"{new}/a-layer/env/ORDER.override", "a")
    img.file(f"{new}/a-layer/env.launch/env/TYPED", "typed-env")
    img.file(f"{new}/a-layer/env.launch/web/TYPED", "typed-web")
    img.file(f"{new}/a-layer/profile.d/01.sh", 'export PROF="${PROF-}1"\n')
    img.file(f"{new}/a-layer/profile.d/envsh/02.sh", 'export PROF="${PROF-}t"\n')
    img.file(f"{new}/a-layer/profile.d/web/02.sh", 'export PROF="${PROF-}w"\n')
    img.file(f"{new}/b-layer/env/ORDER.append", "b")
    img.file(f"{new}/b-layer/env/ORDER.delim", ",")
    img.file(f"{new}/a-layer.toml", "[types]\nlaunch = true\n")
    (img.root / old / "l" / "bin").mkdir(parents=True)
    img.file(f"{old}/l/env/ORDER.append", "c")
    img.file(f"{old}/l/env/ORDER.delim", ",")
    img.file(f"{old}/l/profile.d/03.sh", 'export PROF="${PROF-}3"\n')
    img.file("workspace/.profile", 'export PROF="${PROF-}app"\n')
    return img


# ---- process selection and arguments ------------------------------------------------------------


def test_typed_process_via_link_name(image: Image) -> None:
    result = image.run(ptype="web")
    assert (result.returncode, result.stdout, result.stderr) == (0, "a|b|", "")
    assert image.run(ptype="echo-new").stdout == "default\n"


def test_launcher_without_arguments_needs_a_command(image: Image) -> None:
    # As upstream: only the entry point's name selects a process; no default behind the launcher.
    result = image.run()
    assert (result.returncode, result.stdout) == (82, "")
    assert result.stderr == ("ERROR: failed to launch: determine start command: "
                             "when there is no default process a command is required\n")


def test_user_args_replace_for_buildpack_api_0_9_plus(image: Image) -> None:
    assert image.run("u1", "u 2", ptype="echo-new").stdout == "u1 u 2\n"


def test_user_args_append_for_buildpack_api_below_0_9(image: Image) -> None:
    assert image.run("u1", "u 2", ptype="echo.old").stdout == "default u1 u 2\n"


def test_multi_entry_command_keeps_entries_and_replaces_args(image: Image) -> None:
    assert image.run("x", "y z", ptype="web").stdout == "x|y z|"


def test_shell_process_expands_tokens(image: Image) -> None:
    # Each token goes through `eval echo`, so inner runs of blanks collapse, as upstream's do.
    result = image.run("u1", "$FOO", "a  b", ptype="shell-old")
    assert (result.returncode, result.stdout) == (0, "default u1 bar a b\n")


def test_shell_process_without_args_is_a_script(image: Image) -> None:
    result = image.run(ptype="script-old")
    assert (result.returncode, result.stdout) == (7, "script bar\n")


def test_double_dash_execs_directly_without_expansion(image: Image) -> None:
    result = image.run("--", "printf", "%s|", "$FOO", "it's", "a b")
    assert (result.returncode, result.stdout) == (0, "$FOO|it's|a b|")


def test_single_word_runs_as_shell_script(image: Image) -> None:
    result = image.run('printf "%s" "$FOO"; exit 7')
    assert (result.returncode, result.stdout) == (7, "bar")


def test_user_command_keeps_quoted_argument(image: Image) -> None:
    result = image.run("sh", "-c", 'echo "hello world"')
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello world\n", "")


def test_command_with_args_expands_each_token(image: Image) -> None:
    result = image.run("printf", "[%s]", "$FOO", "x y")
    assert (result.returncode, result.stdout) == (0, "[bar][x y]")


def test_exit_code_propagated(image: Image) -> None:
    assert image.run("--", "sh", "-c", "exit 7").returncode == 7
    assert image.run("sh", "-c", "exit 9").returncode == 9


def test_unknown_link_name_is_launcher_mode(image: Image) -> None:
    assert image.run("echo hi", ptype="nope").stdout == "hi\n"
    assert image.run(ptype="nope").returncode == 82


def test_missing_command_is_launcher_error(image: Image) -> None:
    result = image.run("--", "no-such-command-xyz")
    assert (result.returncode, result.stderr) == (82, 'ERROR: failed to launch: path lookup: exec: '
                                                      '"no-such-command-xyz": executable file not found in $PATH\n')


def test_process_of_unknown_buildpack_with_args_errors(image: Image) -> None:
    result = image.run("y", ptype="orphan")
    assert result.returncode == 82
    assert result.stderr == ("ERROR: failed to launch: determine start command: "
                             "failed to find buildpack for process orphan with buildpack ID gone/bp\n")


def test_exec_env_filters_processes_on_platform_0_15(image: Image) -> None:
    result = image.run(ptype="dev-only")
    assert (result.returncode, result.stderr) == (
        82, "ERROR: failed to launch: determine start command: process type dev-only was not found\n")
    assert image.run(ptype="dev-only", env={"CNB_EXEC_ENV": "development"}).stdout == "dev\n"
    assert image.run(ptype="dev-only", env={"CNB_PLATFORM_API": "0.14"}).stdout == "dev\n"


def test_duplicate_types_first_wins(tmp_path: Path, launcher_bin: Path) -> None:
    img = Image(tmp_path / "img", launcher_bin)
    img.metadata({"processes": [{"type": "web", "command": ["echo", "first"]},
                                {"type": "web", "command": ["echo", "second"]}]})
    assert img.run(ptype="web").stdout == "first\n"


# ---- environment --------------------------------------------------------------------------------


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


def test_untyped_process_skips_typed_env(image: Image) -> None:
    env = image.run_env("--", "env", "-0")
    assert "TYPED" not in env
    assert env["OVR"] == "launch"


def test_exact_app_env(image: Image) -> None:
    env = image.run_env(ptype="env", env={"CNB_DEPRECATION_MODE": "quiet", "CNB_PROCESS_TYPE": "",
                                          "CNB_OTHER": "kept", "HOME": "/home/x"})
    new_bin = image.layers / "acme_new" / "a-layer" / "bin"
    old_bin = image.layers / "acme_old" / "l" / "bin"
    assert env == {
        "PATH": f"{old_bin}:{new_bin}:/usr/local/bin:/usr/bin:/bin",
        "LD_LIBRARY_PATH": str(image.layers / "acme_new" / "a-layer" / "lib"),
        "CNB_OTHER": "kept", "HOME": "/home/x",
        "FOO": "bar", "OVR": "launch", "DEF": "ignored-default", "DEF2": "d2", "APP": "x", "PRE": "y",
        "NEWAPP": "v", "QUOTED": 'it\'s "q" $HOME `x` \\n\n\n', "ORDER": "a,b,c", "TYPED": "typed-env",
    }


def test_cnb_process_type_warns_on_stdout_as_upstream(image: Image) -> None:
    result = image.run("--", "true", env={"CNB_PROCESS_TYPE": "web"})
    assert result.returncode == 0
    assert result.stdout == ("Warning: CNB_PROCESS_TYPE is not supported in Platform API 0.15\n"
                             "Warning: Run with ENTRYPOINT 'web' to invoke the 'web' process type\n")


def test_profiles_sourced_for_shell_process(image: Image) -> None:
    env = image.run_env(ptype="envsh")
    assert env["PROF"] == "1t3app"  # profile.d, profile.d/<type>, next buildpack, app .profile


def test_profiles_sourced_for_user_shell_command(image: Image) -> None:
    result = image.run('printf %s "$PROF"')
    assert (result.returncode, result.stdout) == (0, "13app")


def test_profiles_not_sourced_for_direct_process(image: Image) -> None:
    assert "PROF" not in image.run_env(ptype="env")
    assert "PROF" not in image.run_env("--", "env", "-0")


def test_env_file_names_cannot_alter_the_launcher(image: Image) -> None:
    for name in ("OPTIND.override", "IFS", "cnb_table_format", "CNB_LAYERS_DIR", "PS4.prepend", "A=B"):
        image.file(f"layers/acme_new/c-layer/env/{name}", "zz")
    env = image.run_env(ptype="env")
    assert (env["OPTIND"], env["IFS"], env["cnb_table_format"], env["CNB_LAYERS_DIR"]) == ("zz",) * 4
    assert "A" not in env and "A=B" not in env
    assert image.run(ptype="web").stdout == "a|b|"


# ---- exec.d -------------------------------------------------------------------------------------

EXECD = """#!/bin/sh
printf 'EXECD_%s = "from exec.d"\\n' "$(basename "$0" | tr a-z A-Z)" >&3
echo "exec.d $(basename "$0") on stdout"
"""


def test_exec_d_sets_variables_in_order(image: Image) -> None:
    image.file("layers/acme_new/a-layer/exec.d/one", EXECD, 0o755)
    image.file("layers/acme_new/a-layer/exec.d/env/typed", EXECD, 0o755)
    image.file("layers/acme_new/a-layer/exec.d/web/not-for-env", EXECD, 0o755)
    image.file("layers/acme_old/l/exec.d/two", "#!/bin/sh\nprintf 'TWO = \"%s\"' \"$EXECD_ONE+$FOO\" >&3\n", 0o755)
    result = image.run(ptype="env")
    assert result.returncode == 0, result.stderr
    out, _, env0 = result.stdout.partition("exec.d typed on stdout\n")
    assert out == "exec.d one on stdout\n"
    env = dict(item.split("=", 1) for item in env0.split("\0") if item)
    assert (env["EXECD_ONE"], env["EXECD_TYPED"], env["TWO"]) == ("from exec.d", "from exec.d", "from exec.d+bar")
    assert "EXECD_NOT-FOR-ENV" not in env


def test_exec_d_toml_forms(image: Image) -> None:
    toml = "\n".join([
        "# comment",
        'A = "basic \\"q\\" \\t\\u00e9"',
        "'B' = 'literal \\n'",
        'C = """',
        "multi \\",
        '   line"""',
        "D = \'\'\'",
        "raw\'\'\'   # trailing comment",
        '"E F" = ""',
        "",
    ])
    script = "#!/bin/sh\ncat >&3 <<'EOF'\n" + toml + "EOF\n"
    image.file("layers/acme_new/a-layer/exec.d/toml", script, 0o755)
    env = image.run_env(ptype="env")
    assert env["A"] == 'basic "q" \té'
    assert env["B"] == "literal \\n"
    assert env["C"] == "multi line"
    assert env["D"] == "raw"
    assert env["E F"] == ""


@pytest.mark.parametrize(("script", "message"), [
    ("#!/bin/sh\nexit 3\n", "failed to execute exec.d file at path '{path}': exit status 3"),
    ("#!/bin/sh\necho 'A = 1' >&3\n", "failed to decode output from exec.d file at path '{path}': "
                                       "line 1: value must be a string"),
    ("#!/bin/sh\necho '[t]' >&3\n", "failed to decode output from exec.d file at path '{path}': "
                                     "line 1: tables are not allowed, only NAME = \"value\" pairs"),
])
def test_exec_d_failures(image: Image, script: str, message: str) -> None:
    path = image.file("layers/acme_new/a-layer/exec.d/bad", script, 0o755)
    result = image.run(ptype="env")
    assert (result.returncode, result.stdout) == (82, "")
    assert result.stderr == f"ERROR: failed to launch: exec.d: {message.format(path=path)}\n"


# ---- working dir, quoting, the table ------------------------------------------------------------


def test_working_dir(image: Image) -> None:
    assert image.run(ptype="wd").stdout == f"{image.app / 'sub'}\n"
    assert image.run("--", "pwd").stdout == f"{image.app}\n"


def test_bad_working_dir_is_launcher_error(image: Image) -> None:
    result = image.run(ptype="badwd")
    assert (result.returncode, result.stderr) == (
        82, "ERROR: failed to launch: change directory: chdir /nonexistent/dir: no such file or directory\n")


def test_values_with_quotes_spaces_newlines_survive(image: Image) -> None:
    expected = ["it's", 'dq"x', "with  space", "$HOME", "line1\nline2\n\n", "back\\slash", "", "*"]
    assert image.run(ptype="quoting").stdout == "".join(f"<{a}>\n" for a in expected)
    user = ["o'neil", "a\nb", "$(touch pwned)", "*"]
    assert image.run(*user, ptype="quoting").stdout == "".join(f"<{a}>\n" for a in user)
    assert not (image.app / "pwned").exists()


def test_unknown_table_format_is_refused(image: Image) -> None:
    table = image.layers / "config" / "launch.table"
    table.write_text(table.read_text().replace(f'"format": {TABLE_FORMAT}', '"format": 3'))
    result = image.run(ptype="web")
    assert (result.returncode, result.stdout) == (82, "")
    assert result.stderr == (f"ERROR: failed to read launch table: {table}: format 3 is not supported "
                             f"(this launcher reads format {TABLE_FORMAT})\n")


def test_missing_table_is_an_error(tmp_path: Path, launcher_bin: Path) -> None:
    img = Image(tmp_path / "img", launcher_bin)
    result = img.run("--", "true")
    assert result.returncode == 82
    assert result.stderr.startswith("ERROR: failed to read launch table: open ")


def test_platform_api_required(image: Image) -> None:
    env = image.env()
    del env["CNB_PLATFORM_API"]
    result = subprocess.run([str(image.launcher), "--", "true"], env=env, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 11
    assert result.stderr == ("ERROR: failed to get platform API version; please set "
                             "'CNB_PLATFORM_API' to specify the desired platform API version\n")


def test_render_is_deterministic_and_written_atomically(tmp_path: Path) -> None:
    meta = metadata_file.BuildMetadata.model_validate(_standard_metadata(tmp_path))
    first = write_table(tmp_path / "config", meta).read_bytes()
    path = write_table(tmp_path / "config", meta)
    assert path.read_bytes() == first == render_table(meta).encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in (tmp_path / "config").iterdir()) == ["launch.table"]


@pytest.mark.parametrize("ptype", ["", ".", "..", "a/b", "a:b", "a|b", "a&b", "a>b", "a\\b", "a\nb"])
def test_invalid_process_types_rejected(ptype: str) -> None:
    meta = metadata_file.BuildMetadata.model_validate({"processes": [{"type": ptype, "command": ["x"]}]})
    with pytest.raises(ValueError, match="invalid process type"):
        render_table(meta)


def test_malformed_metadata_rejected() -> None:
    for data in ({"processes": [{"type": "web", "command": []}]},
                 {"buildpacks": [{"id": "a", "api": "zero"}]},
                 {"processes": [{"type": "web", "command": ["x\x00y"]}]}):
        with pytest.raises(ValueError):
            render_table(metadata_file.BuildMetadata.model_validate(data))


# ---- upstream's launcher as the oracle ----------------------------------------------------------


def _oracle_env(image: Image, *args: str, ptype: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
    quiet = {"CNB_NO_COLOR": "true", "CNB_DEPRECATION_MODE": "quiet"}
    ours = image.run_env(*args, ptype=ptype, env=quiet)
    up = image.run(*args, ptype=ptype, env=quiet, launcher=go_tool("launcher"))
    assert up.returncode == 0, up.stderr
    theirs = dict(item.split("=", 1) for item in up.stdout.split("\0") if item)
    return ours, theirs


def test_env_like_upstream(image: Image) -> None:
    image.file("layers/acme_new/a-layer/exec.d/one", "#!/bin/sh\necho \"X = '$FOO'\" >&3\n", 0o755)
    ours, theirs = _oracle_env(image, ptype="env")
    assert ours["X"] == "bar"
    assert ours == theirs
    ours, theirs = _oracle_env(image, "--", "env", "-0")
    assert ours == theirs


@pytest.mark.parametrize("first", ["override", "default", "append", "prepend", "none"])
@pytest.mark.parametrize("second", ["override", "default", "append", "prepend", "none"])
def test_env_file_actions_in_every_combination_like_upstream(tmp_path: Path, launcher_bin: Path, first: str,
                                                             second: str) -> None:
    img = Image(tmp_path / "img", launcher_bin)
    img.metadata({"buildpacks": [{"id": "bp/one", "api": "0.10"}, {"id": "bp/two", "api": "0.12"}],
                  "processes": [{"type": "env", "command": ["env", "-0"], "buildpack-id": "bp/one"}]})
    for bp, action, value in (("bp_one", first, "one"), ("bp_two", second, "two")):
        for var in ("SET", "UNSET"):
            suffix = "" if action == "none" else f".{action}"
            img.file(f"layers/{bp}/layer/env.launch/{var}{suffix}", value)
            img.file(f"layers/{bp}/layer/env.launch/{var}.delim", "+")
            img.file(f"layers/{bp}/layer/env/{var}_NODELIM{suffix}", value)
    env = {"SET": "orig", "SET_NODELIM": "orig"}
    ours = img.run_env(ptype="env", env=env)
    up = img.run(ptype="env", env=env, launcher=go_tool("launcher"))
    theirs = dict(item.split("=", 1) for item in up.stdout.split("\0") if item)
    assert ours == theirs
    assert set(ours) == {"SET", "UNSET", "SET_NODELIM", "UNSET_NODELIM", "PATH"}
