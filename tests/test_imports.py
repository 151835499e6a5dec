"""The package's imports point one way, down the layers, and never run in a circle.

    interface   cli, gui, bench              (what people run)
    take        take                          (a preset made into a running take)
    parts       engine, sensors, vision, commentary, control, train, presets, sessions
    foundation  models, midi, music
    basics      errors, checks, faults, paths

A module may import its own layer and the ones below. Imports inside functions count too: they
hide a dependency, they do not remove it.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "livegen"
LAYERS = (  # top to bottom
    ("interface", ("livegen.cli", "livegen.gui", "livegen.bench", "livegen.__main__")),
    ("take", ("livegen.take",)),
    ("parts", ("livegen.engine", "livegen.sensors", "livegen.vision", "livegen.commentary", "livegen.control",
               "livegen.train", "livegen.presets", "livegen.sessions")),
    ("foundation", ("livegen.models", "livegen.midi", "livegen.music")),
    ("basics", ("livegen.errors", "livegen.checks", "livegen.faults", "livegen.paths", "livegen")),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or (module.startswith(p + ".") and p != "livegen") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


def imports(module: str) -> list[tuple[str, int]]:
    """(imported livegen module, line) for every import in ``module``, in functions too."""
    found = []
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "livegen"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "livegen":
            found.append((node.module, node.lineno))
            found += [(f"{node.module}.{a.name}", node.lineno) for a in node.names
                      if f"{node.module}.{a.name}" in MODULES]  # from livegen.x import module
    return found


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_imports_point_down_the_layers():
    upward = [f"{module}:{line} imports {target} ({LAYERS[layer_of(module)][0]} -> {LAYERS[layer_of(target)][0]})"
              for module in sorted(MODULES) for target, line in imports(module)
              if target in MODULES and layer_of(target) < layer_of(module)]
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


def test_no_module_imports_itself_back():
    graph = defaultdict(set)
    for module in MODULES:
        graph[module] = {t for t, _ in imports(module) if t in MODULES and t != module
                         and not module.startswith(t + ".")}  # a package's __init__ runs first anyway
    cycles, done = [], set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append(path[path.index(module):] + [module])
            return
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, path + [module])
        done.add(module)

    for module in sorted(MODULES):
        visit(module, [])
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_layer_test_sees_an_upward_import(tmp_path, monkeypatch):
    """The check itself: a model importing the take layer is caught."""
    fake = tmp_path / "livegen" / "models" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from livegen.take.runner import TakeRunner\n")
    monkeypatch.setitem(MODULES, "livegen.models.bad", fake)
    monkeypatch.setitem(MODULES, "livegen.take.runner", MODULES["livegen.take.runner"])
    assert [t for t, _ in imports("livegen.models.bad")] == ["livegen.take.runner"]
    assert layer_of("livegen.take.runner") < layer_of("livegen.models.bad")
