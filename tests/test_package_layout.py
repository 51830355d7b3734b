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


# One training loop (issue 23): the epoch loop is written once, in minivae.training.train;
# the experiments, the benchmark, wake-sleep and the tutorials pass train a step or a hook.
TUTORIALS = PACKAGE.parent / "tutorials"
SHUFFLES = {"permutation", "shuffle", "array_split"}
TRAINING_CALLS = {"step", "train_step", "loss_and_grads", "wake_sleep_step"}


def _called_names(node):
    """The names of every function or method called anywhere inside ``node``."""
    return {call.func.id if isinstance(call.func, ast.Name) else call.func.attr
            for call in ast.walk(node) if isinstance(call, ast.Call)
            and isinstance(call.func, (ast.Name, ast.Attribute))}


def _is_epoch_loop(loop):
    """A loop that trains (its body takes a step) over epochs or over a data set's minibatches.

    Its header names an epoch (``for epoch in range(epochs)``, ``while epoch < n_epochs``),
    or it shuffles the data, in its header or its body (``for idx in
    np.array_split(rng.permutation(N), ...)``, ``while seen < budget:`` reshuffling when the
    order runs out), or it strides through the data (``for start in range(0, N, batch_size)``).
    An optimisation that is not over a data set's minibatches (tutorial 04's full-batch fit,
    tutorial 11's per-image q, HMC) is none of these.
    """
    if isinstance(loop, ast.While):
        header = ast.unparse(loop.test)
        strides = False
    else:
        header = ast.unparse(loop.target) + " " + ast.unparse(loop.iter)
        strides = (isinstance(loop.iter, ast.Call) and ast.unparse(loop.iter.func) == "range"
                   and len(loop.iter.args) == 3)
    names_epoch = "epoch" in header.lower()
    shuffles = bool(_called_names(loop) & SHUFFLES)
    trains = any(bool(_called_names(statement) & TRAINING_CALLS) or any(
        name.endswith("_step") for name in _called_names(statement)) for statement in loop.body)
    return trains and (names_epoch or shuffles or strides)


def epoch_loops(source, filename="<source>"):
    """(line, header) of every outermost epoch loop in ``source`` (one nested in another counts once)."""
    found = []

    def visit(node, inside_loop):
        for child in ast.iter_child_nodes(node):
            is_loop = isinstance(child, (ast.For, ast.While)) and _is_epoch_loop(child)
            if is_loop and not inside_loop:
                found.append((child.lineno, ast.unparse(child).splitlines()[0]))
            visit(child, inside_loop or is_loop)

    visit(ast.parse(source, filename), False)
    return found


@pytest.mark.parametrize("loop", [
    # tutorial 09 and 10 before they called train (issue 23)
    "for epoch in range(epochs):\n"
    "    for idx in np.array_split(rng.permutation(N_TRAIN), N_TRAIN // BATCH_SIZE):\n"
    "        _, grads = model.loss_and_grads(x[idx], rng=rng)\n"
    "        optimiser.step(grads)\n",
    "for idx in np.array_split(rng.permutation(N), N // B):\n    train_step(model, opt, x[idx], rng)\n",
    "for _ in range(n_epochs):\n    for b in batches(x):\n        loss = wake_sleep_step(model, opt, b, rng)\n",
    "epoch = 0\nwhile epoch < EPOCHS:\n    opt.step(model.loss_and_grads(x)[1])\n    epoch += 1\n",
    "def fit():\n    for start in range(0, len(x), batch_size):\n        my_step(model, x[start:start + batch_size])\n",
    # Fig. 2's runs and tutorial 12 before they called train: a budget of examples, reshuffled
    "while seen < BUDGET:\n"
    "    if len(order) < B:\n"
    "        order = np.concatenate([order, rng.permutation(N)])\n"
    "    xb, order = x[order[:B]], order[B:]\n"
    "    train_step(model, opt, xb, rng)\n"
    "    seen += B\n",
])
def test_the_epoch_loop_finder_finds_a_hand_written_epoch_loop(loop):
    assert len(epoch_loops(loop)) == 1


@pytest.mark.parametrize("loop", [
    "for step in range(n_steps):\n    adam.step(fit_grads)\n",                 # tutorial 04: full batch
    "for t in range(STEPS):\n    adam.step({'mu': -dmu})\n",                   # tutorial 11: q per image
    "for start in range(0, N, batch_size):\n    total += model.elbo(x[start:start + batch_size]).sum()\n",
    "while epoch >= end and i < 7:\n    i += 1\n",                             # burda_lr's schedule
    "for epoch, value in enumerate(history['test_elbo']):\n    ax.plot(epoch, value)\n",
])
def test_the_epoch_loop_finder_ignores_loops_that_are_not_training_epochs(loop):
    assert epoch_loops(loop) == []


def test_the_package_has_exactly_one_epoch_loop_in_train():
    found = {path.relative_to(PACKAGE).as_posix(): loops for path in sorted(PACKAGE.rglob("*.py"))
             if (loops := epoch_loops(path.read_text(), str(path)))}
    assert list(found) == ["training.py"] and len(found["training.py"]) == 1, (
        f"epoch loops in minivae/: {found}; there is one, in training.train: pass it a step, "
        "lr_schedule, on_epoch or on_step instead of writing the loop again")
    train = next(node for node in ast.parse((PACKAGE / "training.py").read_text()).body
                 if isinstance(node, ast.FunctionDef) and node.name == "train")
    assert train.lineno <= found["training.py"][0][0] <= train.end_lineno, "the loop is not in train"


@pytest.mark.parametrize("path", sorted(TUTORIALS.glob("*.py")), ids=lambda p: p.name)
def test_no_tutorial_writes_an_epoch_loop_of_its_own(path):
    loops = epoch_loops(path.read_text(), str(path))
    assert not loops, (f"tutorials/{path.name} writes its own epoch loop {loops}: train it with "
                       "minivae.train and a step or hook (tutorials 09, 10 and 12 show how)")


def test_every_folder_with_modules_is_a_regular_package():
    # a folder without __init__.py imports as a namespace package in the checkout, but
    # setuptools' find: leaves it out of the wheel (a .gitignore once hid minivae/runs/'s)
    folders = {p.parent for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    missing = sorted(str(f.relative_to(PACKAGE)) for f in folders if not (f / "__init__.py").is_file())
    assert not missing, f"folders without __init__.py (not in a wheel): {missing}"
