"""Tests of the package's layout: imports flow downward only, and the student's path stays light.

The layers, bottom to top (docs/api.md, "Layout"): a module may import only
modules of a lower rank.  Every ``import`` statement counts, at module level or
inside a function, so a lazy import cannot hide a circle.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "minivae"

# module -> rank; imports go from a higher rank to a strictly lower one
RANK = {
    "checks": 0, "progress": 0, "gradcheck": 0, "blas": 0,   # import nothing of the package
    "memory": 0.5,
    "nn": 1,
    "distributions": 2,
    "elbo": 2.5, "vae": 3, "wake_sleep": 3.5,
    # above the model: each uses the ones below it
    "evaluate": 4, "marginal_likelihood": 4, "checkpoint_checks": 4.5, "checkpoint": 4.6, "optim": 4, "linear_gaussian": 4, "idx": 4, "download": 4,
    "preprocessing": 4, "run_control": 4,
    "gradient_estimators": 5, "datasets": 5, "diagnostics": 5,
    "training": 6, "plots": 6,
    # tools built on everything
    "gradcheck_table": 7, "bench": 7, "reproduce": 7, "reproduce_fig3": 7.05, "bench_eval": 7.1,
    "assignment.exercises": 7.0, "assignment.regions": 7.1, "assignment.edition": 7.2,
    "assignment.grader": 7.3, "assignment._grading_plugin": 7.0, "assignment.probes": 7.0,
    "assignment._worker": 7.0, "assignment.localcheck": 7.25, "assignment.leaks": 7.15,
    "assignment.launch": 7.22, "assignment.selfchecks": 7.0,
    "assignment.platform": 7.35, "assignment": 7.4,
    "commands": 8.0, "commands.common": 8.0, "commands.train": 8.1, "commands.sample": 8.1,
    "commands.evaluate": 8.1, "commands.gradcheck": 8.1, "commands.bench": 8.1,
    "commands.assignment": 8.1, "commands.reproduce": 8.1,
    "cli": 9,
    "__main__": 10,
}
# the student's path is NumPy only: no SciPy, no networking, plotting, data or training code
STUDENT_PATH = ("minivae.nn", "minivae.distributions", "minivae.elbo", "minivae.vae", "minivae.gradcheck")
HEAVY = ("urllib.request", "http.client", "matplotlib", "minivae.training", "minivae.checkpoint",
         "minivae.optim", "minivae.datasets", "minivae.download", "minivae.evaluate",
         "minivae.plots", "scipy")
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


def test_every_module_has_a_rank():
    missing = sorted(set(package_modules()) - set(RANK) - {""})
    assert not missing, f"new modules {missing}: give each a layer in RANK (and in docs/api.md)"


@pytest.mark.parametrize("name", sorted(set(package_modules()) - {""}))
def test_imports_flow_downward_only(name):
    modules = package_modules()
    upward = sorted(m for m in imported_package_modules(modules[name], name, modules)
                    if RANK.get(m, -1) >= RANK.get(name, -1))
    assert not upward, (f"minivae.{name} (rank {RANK.get(name)}) imports {upward}, which are not "
                        "below it: move the shared code down a layer instead")


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
