"""Layering rules a reader should not have to check by hand (issue 15): no module outside
``lifecycle/image/`` asks which kind of image store it holds; the stores differ by their methods."""

from __future__ import annotations

import ast
from pathlib import Path

import lifecycle

PACKAGE = Path(lifecycle.__file__).resolve().parent
STORE_CLASSES = {"LayoutStore", "RegistryStore", "DaemonStore"}


def _names(node: ast.AST) -> set[str]:
    return {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(node)
            if isinstance(n, ast.Name | ast.Attribute)}


def _is_store(node: ast.AST) -> bool:
    """An expression naming a store: ``store``, ``self.store``, ``image_store``..."""
    last = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return last.lower().endswith("store")


def store_kind_checks(source: str) -> list[str]:
    """Each ``isinstance(..., <a store class>)``, ``<store>.kind`` and ``getattr(<store>, "kind")``
    in ``source``, as ``<line>: <code>``."""
    hits: list[tuple[int, int, str]] = []
    for node in ast.walk(ast.parse(source)):
        text = ""
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) >= 2:
            if node.func.id == "isinstance" and _names(node.args[1]) & STORE_CLASSES:
                text = ast.unparse(node)
            if node.func.id in ("getattr", "hasattr") and isinstance(node.args[1], ast.Constant) \
                    and node.args[1].value == "kind" and _is_store(node.args[0]):
                text = ast.unparse(node)
        if isinstance(node, ast.Attribute) and node.attr == "kind" and _is_store(node.value):
            text = ast.unparse(node)
        if text:
            hits.append((node.lineno, node.col_offset, text))
    return [f"{line}: {text}" for line, _col, text in sorted(hits)]


def test_no_store_kind_checks_outside_image() -> None:
    """Phases, the CLI, caches and the platform layer use the store's methods; only
    ``lifecycle/image/`` knows which store is which."""
    found = [f"{path.relative_to(PACKAGE.parent)}:{hit}"
             for path in sorted(PACKAGE.rglob("*.py")) if path.relative_to(PACKAGE).parts[0] != "image"
             for hit in store_kind_checks(path.read_text())]
    assert found == []


def test_the_check_finds_each_form() -> None:
    """Not vacuous: every forbidden form is found, and other ``kind`` attributes are not."""
    source = ("def f(store, self, flag):\n"
              "    isinstance(store, (LayoutStore, int))\n"
              "    isinstance(store, image.DaemonStore)\n"
              "    getattr(store, 'kind', '')\n"
              "    self.store.kind == 'daemon'\n"
              "    flag.kind == 'bool'\n")
    assert store_kind_checks(source) == ["2: isinstance(store, (LayoutStore, int))",
                                         "3: isinstance(store, image.DaemonStore)",
                                         "4: getattr(store, 'kind', '')", "5: self.store.kind"]


PHASES = {"analyzer", "detector", "restorer", "builder", "exporter", "rebaser"}
# Parts of one phase that others must not borrow: cache export is the exporter's second job.
PHASE_PARTS = PHASES | {"cache_export", "export_phase"}


def _imported_modules(path: Path) -> set[str]:
    """Every ``lifecycle.*`` module ``path`` imports (at module level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("lifecycle.")}


def test_phases_do_not_import_each_other() -> None:
    """A phase shares code with another through a lower module (``lifecycle.buildpack``,
    ``phases/save.py``...), never by importing that phase."""
    found = [f"phases/{name}.py imports {module}"
             for name in sorted(PHASES)
             for module in sorted(_imported_modules(PACKAGE / "phases" / f"{name}.py"))
             if module.startswith("lifecycle.phases.") and module.split(".")[2] in PHASE_PARTS - {name}]
    assert found == []


def test_commands_do_not_call_other_commands() -> None:
    """The creator composes platform inputs and phases, as every command does; no command module
    imports another (``cli/main.py`` lists them, ``cli/_*.py`` are the template)."""
    commands = {p.stem for p in (PACKAGE / "cli").glob("*.py") if not p.stem.startswith("_")} - {"main"}
    found = [f"cli/{name}.py imports {module}"
             for name in sorted(commands)
             for module in sorted(_imported_modules(PACKAGE / "cli" / f"{name}.py"))
             if module.startswith("lifecycle.cli.") and module.split(".")[2] in commands - {name}]
    found += [f"cli/{name}.py imports lifecycle.cli.{{...}}" for name in sorted(commands)
              for node in ast.walk(ast.parse((PACKAGE / "cli" / f"{name}.py").read_text()))
              if isinstance(node, ast.ImportFrom) and node.module == "lifecycle.cli"
              and {a.name for a in node.names} & commands]
    assert found == []


def test_long_classes_say_why() -> None:
    """A class over 200 lines says why it is not split ("Over 200 lines ..." in its docstring or a
    comment at its top); the others are split by what each part knows."""
    found: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and node.end_lineno and node.end_lineno - node.lineno + 1 > 200:
                head = "\n".join(lines[node.lineno - 1:node.lineno + 15])
                if "Over 200 lines" not in head:
                    found.append(f"{path.relative_to(PACKAGE.parent)}: {node.name}")
    assert found == []
