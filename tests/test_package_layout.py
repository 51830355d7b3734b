"""Tests of the package's layout: imports flow downward only, and the student's path stays light.

The layers, bottom to top: ``utils`` imports nothing of the package; the core a
student reads first (nn, distributions, elbo, vae, gradcheck) only ``utils``;
every folder only the layers :data:`MAY_IMPORT` names.  Every ``import`` statement counts, at module level or
inside a function, so a lazy import cannot hide a circle.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "minivae"

# The layers, bottom to top.  A study module at the top of the package is its own
# layer (the five of the core share one); a folder is one layer.  A layer may import
# only the layers named here (and, inside a folder, its own modules: no cycle).
CORE = ("nn", "distributions", "elbo", "vae", "gradcheck")     # in reading order
BELOW_TRAINING = {"utils", "core", "optim", "evaluate", "data", "runs"}
MAY_IMPORT = {
    "utils": set(),                                   # imports nothing of the package
    "core": {"utils"},                                # NumPy and the validation rule only
    "optim": {"utils"},
    "evaluate": {"utils", "core"},
    "data": {"utils"},
    "runs": {"utils", "core", "optim"},
    "topics": {"utils", "core", "evaluate", "data"},     # data: wake-sleep's step binarises
    "presets": set(),                                 # plain data: imports nothing
    "training": BELOW_TRAINING,
    "experiments": BELOW_TRAINING | {"topics", "training", "presets"},
    "bench": BELOW_TRAINING | {"topics", "training", "presets"},
    "assignment": {"utils", "core", "optim", "evaluate"},
    "cli": BELOW_TRAINING | {"topics", "training", "experiments", "bench", "assignment", "presets"},
    "__main__": {"cli"},
}
MAX_TOP_LEVEL_ENTRIES = 20


def layer(name):
    """The layer of a module name relative to the package ('vae' -> 'core', 'data.idx' -> 'data')."""
    if name in CORE:
        return "core"
    return name.split(".")[0]


# the student's path is NumPy only: no SciPy, no networking, plotting, data or training code
STUDENT_PATH = tuple(f"minivae.{name}" for name in CORE)
HEAVY = ("urllib.request", "http.client", "matplotlib", "minivae.training", "minivae.runs",
         "minivae.optim", "minivae.data", "minivae.evaluate", "minivae.experiments", "scipy")
MAX_LINES = 420


def package_modules():
    """Module names relative to the package ('vae', 'assignment.grader'), __init__ as the package."""
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imported_package_modules(path, name, modules):
    """Every module of the package that the file imports, anywhere in it."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - node.level + 1]
                module = ".".join(["minivae", *base, *(node.module.split(".") if node.module else [])])
            else:
                module = node.module
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target and target.startswith("minivae.") and target[len("minivae."):] in modules:
                found.add(target[len("minivae."):])
    return found - {name}


def test_every_module_belongs_to_a_layer():
    missing = sorted(name for name in set(package_modules()) - {""} if layer(name) not in MAY_IMPORT)
    assert not missing, f"new modules {missing}: put each in a folder of MAY_IMPORT (or add its layer)"


@pytest.mark.parametrize("name", sorted(set(package_modules()) - {""}))
def test_imports_flow_downward_only(name):
    modules = package_modules()
    upward = sorted(m for m in imported_package_modules(modules[name], name, modules)
                    if layer(m) != layer(name) and layer(m) not in MAY_IMPORT[layer(name)])
    assert not upward, (f"minivae.{name} (layer {layer(name)!r}) imports {upward}, which are not "
                        f"below it (it may import {sorted(MAY_IMPORT[layer(name)])}): move the "
                        "shared code down a layer instead")


def test_the_core_imports_only_what_comes_before_it_in_reading_order():
    modules = package_modules()
    for i, name in enumerate(CORE):
        later = sorted(set(imported_package_modules(modules[name], name, modules)) & set(CORE[i:]))
        assert not later, f"minivae.{name} imports {later}, which a reader meets only after it"


def test_the_top_level_shows_the_study_modules_and_one_folder_per_tool():
    entries = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")
    assert len(entries) <= MAX_TOP_LEVEL_ENTRIES, entries
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert modules <= set(CORE) | {"optim", "training", "evaluate", "presets"}, (
        f"{sorted(modules - set(CORE))}: a tool goes into a folder named for what it does")
    assert folders <= set(MAY_IMPORT), f"folders without a layer: {sorted(folders - set(MAY_IMPORT))}"


@pytest.mark.parametrize("folder", sorted(p.name for p in PACKAGE.iterdir()
                                          if (p / "__init__.py").is_file()))
def test_every_folder_says_what_is_inside_and_who_reads_it(folder):
    init = PACKAGE / folder / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text())) or ""
    unnamed = sorted(p.name for p in (PACKAGE / folder).glob("*.py")
                     if p.name != "__init__.py" and not p.name.startswith("_") and p.name not in doc)
    assert not unnamed, f"minivae/{folder}/__init__.py's docstring does not name {unnamed}"
    assert "student" in doc.lower() and "tutorial" in doc.lower(), (
        f"minivae/{folder}/__init__.py: say whether a student needs to read it and which tutorial uses it")


def test_the_import_graph_has_no_cycle():
    modules = package_modules()
    graph = {name: imported_package_modules(path, name, modules) for name, path in modules.items()
             if name}
    state = {}

    def visit(name, trail):
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", "import cycle: " + " -> ".join(trail + [name])
        state[name] = "open"
        for other in sorted(graph.get(name, ())):
            visit(other, trail + [name])
        state[name] = "done"

    for name in sorted(graph):
        visit(name, [])


def loaded_after(statement):
    """The modules in sys.modules after running ``statement`` in a fresh interpreter."""
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    return set(result.stdout.split())


@pytest.mark.parametrize("module", STUDENT_PATH)
def test_the_students_path_loads_no_networking_plotting_or_training(module):
    loaded = loaded_after(f"import {module}")
    heavy = sorted(m for m in HEAVY if m in loaded)
    assert not heavy, f"import {module} also loads {heavy}"


def test_import_minivae_is_light_and_its_names_load_on_first_use():
    assert "numpy" not in loaded_after("import minivae")
    loaded = loaded_after("import minivae; minivae.VAE(4, 2)")
    assert "minivae.vae" in loaded and "minivae.training" not in loaded
    import minivae
    assert minivae.train is __import__("minivae.training", fromlist=["train"]).train
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        minivae.nonsense


@pytest.mark.parametrize("name", sorted(set(package_modules()) - {""}))
def test_every_module_is_readable_in_one_sitting(name):
    lines = len(package_modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"minivae/{name}.py has {lines} lines; split it by idea"
