"""Upstream's exporter and ours on the same inputs: the app image (config, labels, history, layers
and their diffIDs), report.toml and the per-layer log lines, field by field."""

from __future__ import annotations

from pathlib import Path

from tests.differential import compare
from tests.differential.known_differences import KNOWN
from tests.differential.workspace import Pair, Side, make_pair


def _assert_same_export(pair: Pair) -> compare.Flat:
    up, ours = ({**compare.image(side), **compare.toml_file(side, "report.toml"),
                 **compare.layer_lines(side.outputs[-1])} for side in pair.sides)
    diffs = compare.differences(up, ours)
    assert not diffs, "\n".join(diffs)
    return ours


def test_fresh_build(tmp_path: Path) -> None:
    pair = make_pair(tmp_path)
    pair.analyze()
    pair.export()
    ours = _assert_same_export(pair)
    assert ours["config/labels/org.example.team"] == "platform"
    # Every kept difference is still a difference (spec/upstream-differences.md lists none that is not).
    up = {**compare.image(pair.upstream), **compare.toml_file(pair.upstream, "report.toml")}
    mine = {**compare.image(pair.ours), **compare.toml_file(pair.ours, "report.toml")}
    assert compare.kept_in_use(up, mine) == set(KNOWN)


def test_rebuild_with_changed_app(tmp_path: Path) -> None:
    pair = make_pair(tmp_path)
    pair.analyze()
    pair.export()

    def change(side: Side) -> None:
        (side.app / "hello.txt").write_text("hello again\n")
        (side.layers / "acme_two" / "z-last" / "z.txt").write_text("z changed\n")

    pair.each(change)
    pair.analyze()
    pair.export()
    ours = _assert_same_export(pair)
    assert "Reusing layer 'acme/one:run'" in ours["log/layers"]
    assert "Adding layer 'acme/two:z-last'" in ours["log/layers"]


def test_processes_and_default_process(tmp_path: Path) -> None:
    processes = "".join(
        f'[[processes]]\ntype = "{t}"\ncommand = ["echo", "{t}"]\nargs = ["a b"]\ndirect = {d}\n'
        f'buildpack-id = "acme/one"\n' for t, d in (("web", "true"), ("worker", "false"), ("cron", "true")))
    pair = make_pair(tmp_path, processes=processes, default="worker")
    pair.analyze()
    pair.export()
    ours = _assert_same_export(pair)
    assert ours["config/config/Entrypoint"] == ["/cnb/process/worker"]
    pair.export("-process-type", "cron")
    ours = _assert_same_export(pair)
    assert ours["config/config/Entrypoint"] == ["/cnb/process/cron"]


def test_no_default_process(tmp_path: Path) -> None:
    pair = make_pair(tmp_path, default="")
    pair.analyze()
    pair.export()
    ours = _assert_same_export(pair)
    assert ours["config/config/Entrypoint"] == ["/cnb/lifecycle/launcher"]


def test_app_slices(tmp_path: Path) -> None:
    slices = ('[[slices]]\npaths = ["static/*"]\n[[slices]]\npaths = ["sub", "nothing-*"]\n'
              '[[slices]]\npaths = ["none"]\n')
    pair = make_pair(tmp_path, slices=slices)
    pair.analyze()
    pair.export()
    ours = _assert_same_export(pair)
    made_by = [ours[f"config/history/{i}/created_by"] for i in range(ours["config/history"])]
    assert [m for m in made_by if m.startswith("Application")] == [
        "Application Slice: 1", "Application Slice: 2", "Application Slice: 3", "Application Slice: 4"]


def test_source_date_epoch(tmp_path: Path) -> None:
    pair = make_pair(tmp_path)
    pair.analyze()
    pair.export(env={"SOURCE_DATE_EPOCH": "1700000000"})
    ours = _assert_same_export(pair)
    assert ours["config/created"] == "2023-11-14T22:13:20Z"
