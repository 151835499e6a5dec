"""The package's imports point one way, down the layers, and never run in a circle.

    interface   cli, gui, bench              (what people run)
    take        take                          (a preset made into a running take)
    parts       engine, sensors, vision, commentary, control, train, presets, sessions
    foundation  models, midi, music
    basics      errors, checks, faults, paths, messages, extras, priority

A module may import its own layer and the ones below. Imports inside functions count too: they
hide a dependency, they do not remove it.

An import inside a function is only for a heavy backend loaded lazily (a library in HEAVY, or a
livegen module that loads one at import) that its own module does not load anyway, and it says
why on its line: the command line starts without torch or Qt, the clock process without numpy, a
missing optional library fails only the feature that needs it. Everything else is imported at
the top of its module.
"""
from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize
from collections import defaultdict
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "livegen"
LAYERS = (  # top to bottom
    ("interface", ("livegen.cli", "livegen.gui", "livegen.bench", "livegen.__main__")),
    ("take", ("livegen.take",)),
    ("parts", ("livegen.engine", "livegen.sensors", "livegen.vision", "livegen.commentary", "livegen.control",
               "livegen.train", "livegen.presets", "livegen.sessions")),
    ("foundation", ("livegen.models", "livegen.midi", "livegen.music")),
    ("basics", ("livegen.errors", "livegen.checks", "livegen.faults", "livegen.paths", "livegen.messages",
                "livegen.extras", "livegen.priority", "livegen")),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}

# The third-party modules a function may import lazily: each takes more than ~20 ms to import
# (python -X importtime, cumulative, on a 2-core machine) or may be missing where livegen runs.
HEAVY = {
    "torch": "3.1-3.7 s",
    "safetensors.torch": "loads torch",
    "scipy": "250 ms; scipy.signal and scipy.stats 2 s",
    "music21": "500-700 ms",
    "cv2": "200-420 ms",
    "numpy": "130-250 ms",
    "bleak": "110-155 ms",
    "tqdm": "80-140 ms",
    "pythonosc": "its client and server 80-150 ms",
    "PyQt6": "QtWidgets 85-100 ms",
    "mido": "75-85 ms",
    "fluidsynth": "45-65 ms, and needs the system's libfluidsynth",
    "rtmidi": "5 ms, but needs the system's ALSA library (libasound)",
    "link": "4 ms, but LinkPython-extern has wheels for few Pythons: livegen runs without it",
    "serial": "6-10 ms, but the EMG sources keep pyserial optional: a replay or a Myo over BLE needs none",
    "mediapipe": "an optional extra (livegen[mediapipe]), for Python <= 3.12",
    "importlib.metadata": "35-40 ms: only `livegen --version` and a --log-file read the installed version",
    "tomlkit": "30-35 ms",
}


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


def heavy_library(name: str) -> str | None:
    return next((h for h in HEAVY if name == h or name.startswith(h + ".")), None)


def _runs_at_import(node: ast.AST):
    """The statements under ``node`` that run when its module is imported (not in functions, not
    under ``if TYPE_CHECKING``)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            yield from (n for s in child.orelse for n in [s, *_runs_at_import(s)])
            continue
        yield child
        yield from _runs_at_import(child)


def imported_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement loads: its livegen submodules when it names some."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    submodules = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES]
    return submodules or [node.module or ""]


@cache
def loaded_at_import(module: str) -> tuple[list[str], list[str]]:
    """(livegen modules, other modules) that ``module``'s own code imports when it runs, with the
    packages above it, which Python imports first."""
    ours = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
    others = []
    for node in _runs_at_import(ast.parse(MODULES[module].read_text())):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and getattr(node, "level", 0) == 0:
            for name in imported_names(node):
                (ours if name in MODULES else others).append(name)
    return [m for m in ours if m in MODULES and m != module], others


@cache
def heavy_at_import(module: str) -> dict[str, str]:
    """HEAVY library -> the chain that loads it (``livegen.presets -> livegen.music.conditioning ->
    numpy``), for each one importing ``module`` loads, through livegen modules too."""
    chains, todo, loaded = {module: module}, [module], {}
    while todo:  # breadth first: the shortest chains
        current = todo.pop(0)
        ours, others = loaded_at_import(current)
        for name in others:
            library = heavy_library(name)
            if library:
                loaded.setdefault(library, f"{chains[current]} -> {name}")
        for name in ours:
            if name not in chains:
                chains[name] = f"{chains[current]} -> {name}"
                todo.append(name)
    return loaded


def lazily_loaded(module: str, node: ast.Import | ast.ImportFrom) -> dict[str, str]:
    """The HEAVY libraries an import inside a function of ``module`` loads that ``module`` itself
    does not load at import: what importing there, not at the top, spares."""
    spared = {}
    for name in imported_names(node):
        library = heavy_library(name)
        found = {library: name} if library else heavy_at_import(name) if name in MODULES else {}
        spared |= {lib: chain for lib, chain in found.items() if lib not in heavy_at_import(module)}
    return spared


def function_imports(module: str) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """(import statement inside a function, whether a comment is on one of its lines)."""
    source = MODULES[module].read_text()
    commented = {t.start[0] for t in tokenize.generate_tokens(io.StringIO(source).readline)
                 if t.type == tokenize.COMMENT}
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if in_function and isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, bool(commented & set(range(child.lineno, child.end_lineno + 1)))))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(ast.parse(source), False)
    return found


def test_imports_inside_functions_load_a_heavy_backend_and_say_why():
    light, silent = [], []
    for module in sorted(MODULES):
        for node, commented in function_imports(module):
            line = f"{module}:{node.lineno} {ast.unparse(node)}"
            if not lazily_loaded(module, node):
                light.append(line)
            elif not commented:
                silent.append(f"{line}  ({'; '.join(lazily_loaded(module, node).values())})")
    assert not light, ("imports inside functions that load nothing heavy the module does not load anyway: "
                       "import them at the top of the module\n" + "\n".join(light))
    assert not silent, "lazy imports that do not say why on their line (# ...):\n" + "\n".join(silent)


def test_the_function_import_test_sees_light_pointless_and_unexplained_imports(tmp_path, monkeypatch):
    fake = tmp_path / "livegen" / "music" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("import numpy\n\ndef f():\n    import json\n    from livegen.errors import UserError\n"
                    "    from livegen.music import roll\n    import torch\n"
                    "    import mido  # the MIDI file reader: only for files\n")
    monkeypatch.setitem(MODULES, "livegen.music.bad", fake)
    found = [(imported_names(node), commented, sorted(lazily_loaded("livegen.music.bad", node)))
             for node, commented in function_imports("livegen.music.bad")]
    assert found == [(["json"], False, []), (["livegen.errors"], False, []),
                     (["livegen.music.roll"], False, []),  # numpy, which the module loads anyway
                     (["torch"], False, ["torch"]), (["mido"], True, ["mido"])]
    assert heavy_at_import("livegen.models.nets.lcgan") == {
        "torch": "livegen.models.nets.lcgan -> torch", "numpy": "livegen.models.nets.lcgan -> livegen.models.lcgan -> numpy"}


def _loaded_after(code: str, libraries: tuple[str, ...]) -> list[str]:
    """Which of ``libraries`` a fresh interpreter has loaded after running ``code``."""
    probe = f"import sys\n{code}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & {set(libraries)!r})))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         cwd=PACKAGE.parent)
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


def test_the_command_line_starts_without_the_heavy_libraries():
    """``livegen --help`` builds the parser: the commands load what they need when they run."""
    assert _loaded_after("import livegen.cli; livegen.cli.build_parser()",
                         ("torch", "cv2", "PyQt6", "scipy", "music21", "numpy", "mido", "pythonosc")) == []


def test_the_clock_process_loads_neither_torch_nor_numpy():
    """The clock process is spawned: it imports the program's main module again (``livegen.cli``
    for the livegen command), then the player, which opens its ports, recorder and MIDI clock."""
    code = ("import livegen.cli\nfrom livegen.engine import player\nplayer.open_port(None, None, False)\n"
            "from livegen.midi import clock, recorder")
    assert _loaded_after(code, ("torch", "numpy")) == []


def test_the_live_path_imports_no_torch():
    """What a performance runs (the take, its engine and generators, the models' numpy runtimes, the
    commentary and the panel) is importable without torch: only training and evaluation load it."""
    modules = ("livegen.take.runner", "livegen.engine.engine", "livegen.models.checkpoint",
               "livegen.commentary.worker", "livegen.cli.perform", "livegen.cli.comment", "livegen.gui.window")
    chains = {m: heavy_at_import(m).get("torch") for m in modules}
    assert not {m: chain for m, chain in chains.items() if chain}, chains
    assert _loaded_after("\n".join(f"import {m}" for m in modules[:-1]), ("torch",)) == []
