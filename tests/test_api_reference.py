"""The API reference renders every docstring as written, and what stays hand-written cannot drift.

The site's API pages (docs/_api/, written by docs/conf.py) are autodoc + napoleon renderings of
the docstrings. Each docstring is put through the same napoleon conversion and parsed with
docutils here, so a docstring that would render wrongly fails a test, not a reader:

- reST warnings (an unclosed ``*``, a stray ``|name|``) fail;
- an indented block that is not a literal block fails: reST reads it as a block quote (or a
  definition list) and joins a multi-line formula into one line; a formula or table block
  needs ``::`` at the end of the paragraph before it;
- every parameter a "Parameters" section lists is a parameter of the function (a paragraph
  after the section would otherwise be read as more parameters).

The README's "What is where" map and docs/api.md are written by hand: the map names every
module and folder of the package in reading order and nothing else, and every signature in an
api.md heading equals ``inspect.signature`` of the function it names.
"""
import ast
import importlib
import inspect
import io
import re
from pathlib import Path

import numpy as np
import pytest

docutils_core = pytest.importorskip("docutils.core")
napoleon = pytest.importorskip("sphinx.ext.napoleon")
from docutils import nodes  # noqa: E402
from docutils.parsers.rst import Directive, directives, roles  # noqa: E402
from sphinx.ext.napoleon.docstring import NumpyDocstring  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "minivae"
README = (ROOT / "README.md").read_text()
API = (ROOT / "docs" / "api.md").read_text()
STUDY_MODULES = ("nn", "distributions", "elbo", "vae", "gradcheck", "optim", "training", "evaluate")


def public_modules():
    """Dotted names of every module and folder the site has an API page for (docs/conf.py)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(part.startswith("_") for part in parts):
            names.append(".".join(("minivae",) + parts))
    return names


def documented_objects(module):
    """(dotted name, object, napoleon's `what`) of the module and what autodoc shows of it."""
    yield module.__name__, module, "module"
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(obj):
            yield f"{module.__name__}.{name}", obj, "class"
            for attr, member in vars(obj).items():
                if inspect.isfunction(member) and (not attr.startswith("_") or attr == "__init__"):
                    yield f"{module.__name__}.{name}.{attr}", member, "method"
        elif inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj, "function"


class _SphinxOnlyDirective(Directive):
    """Sphinx's ``.. attribute::`` (napoleon writes it for an Attributes section): content kept."""
    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True
    option_spec = {"type": directives.unchanged, "value": directives.unchanged}

    def run(self):
        node = nodes.container()
        self.state.nested_parse(self.content, self.content_offset, node)
        return [node]


for _role in ("func", "meth", "class", "mod", "attr", "data", "exc", "obj"):
    roles.register_generic_role(_role, nodes.literal)
directives.register_directive("attribute", _SphinxOnlyDirective)
CONFIG = napoleon.Config(napoleon_numpy_docstring=True, napoleon_google_docstring=False,
                         napoleon_use_rtype=False)     # as docs/conf.py sets them


def render(obj, what, name):
    """The docstring as the site renders it: napoleon's reST, parsed by docutils."""
    rst = str(NumpyDocstring(inspect.getdoc(obj), CONFIG, what=what, name=name, obj=obj))
    warnings = io.StringIO()
    tree = docutils_core.publish_doctree(
        rst, settings_overrides={"warning_stream": warnings, "report_level": 2, "halt_level": 5})
    return rst, tree, warnings.getvalue()


def docstring_cases():
    cases = []
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        for name, obj, what in documented_objects(module):
            if inspect.getdoc(obj):
                cases.append(pytest.param(obj, what, name, id=name))
    return cases


DOCSTRINGS = docstring_cases()


@pytest.mark.parametrize("obj, what, name", DOCSTRINGS)
def test_docstring_renders_without_a_warning(obj, what, name):
    _, _, warnings = render(obj, what, name)
    assert not warnings, f"{name}'s docstring is not valid reST for the API page:\n{warnings}"


@pytest.mark.parametrize("obj, what, name", DOCSTRINGS)
def test_every_indented_block_of_a_docstring_is_kept_line_by_line(obj, what, name):
    _, tree, _ = render(obj, what, name)
    joined = [node.astext() for kind in (nodes.block_quote, nodes.definition_list)
              for node in tree.findall(kind)]
    assert not joined, (
        f"{name}: an indented block renders as running text, its lines joined; end the "
        f"paragraph before it with '::' to keep it as written:\n{joined[0][:300]}")


@pytest.mark.parametrize("obj, what, name",
                         [case for case in DOCSTRINGS if case.values[1] != "module"])
def test_a_parameters_section_lists_only_real_parameters(obj, what, name):
    rst, _, _ = render(obj, what, name)
    listed = re.findall(r"^:param (?:[^:]* )?(\*{0,2}\w+):", rst, flags=re.M)
    target = obj.__init__ if inspect.isclass(obj) else obj
    real = {p.name for p in inspect.signature(target).parameters.values()}
    invented = [p for p in listed if p.lstrip("*") not in real]
    assert not invented, f"{name}'s Parameters section lists {invented}, not parameters of it"


def test_the_checks_fail_on_the_faults_they_exist_for():
    def formula_run_together():
        """Sum.

        The sum is

            s = a
                + b
        """

    def paragraph_read_as_parameters(x):
        """Identity.

        Parameters
        ----------
        x : int
            A number.

        Names: ``a.{k}`` for layer k.  The numbers are many.
        """

    _, tree, _ = render(formula_run_together, "function", "f")
    assert list(tree.findall(nodes.block_quote))
    rst, _, _ = render(paragraph_read_as_parameters, "function", "g")
    assert len(re.findall(r"^:param ", rst, flags=re.M)) > 1


# --- the README's map -----------------------------------------------------------------------

def readme_map_entries():
    """The first column of the table under '## What is where', in order."""
    section = README.split("## What is where", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [re.findall(r"`([^`]+)`", row.split("|")[1]) for row in rows]


def package_entries():
    """What `ls minivae/` shows a reader: study modules (.py) and folders (/), none private."""
    entries = set()
    for path in PACKAGE.iterdir():
        if path.name.startswith(("_", ".")):
            continue
        if path.is_dir() and any(path.glob("*.py")) or path.suffix == ".py":
            entries.add(f"minivae/{path.name}" + ("/" if path.is_dir() else ""))
    return entries


def test_the_readme_map_names_every_module_and_folder_once_and_nothing_else():
    named = [entry for row in readme_map_entries() for entry in row]
    assert len(named) == len(set(named)), f"named twice: {sorted(n for n in named if named.count(n) > 1)}"
    assert set(named) == package_entries(), (
        f"README map: missing {sorted(package_entries() - set(named))}, "
        f"not in the package {sorted(set(named) - package_entries())}")


def test_the_readme_map_lists_the_study_modules_first_in_reading_order():
    named = [entry for row in readme_map_entries() for entry in row]
    assert named[:len(STUDY_MODULES)] == [f"minivae/{m}.py" for m in STUDY_MODULES]


def test_the_readme_map_of_each_folder_names_every_module_it_holds_and_no_other():
    section = README.split("## What is where", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `minivae/(\w+)/` \| ([^\n]*)$", section, flags=re.M)
    assert rows
    for folder, text in rows:
        modules = {path.name for path in (PACKAGE / folder).glob("*.py") if not path.stem.startswith("_")}
        named = set(re.findall(r"`(\w+\.py)`", text))
        assert named == modules, (f"README map, minivae/{folder}/: not named {sorted(modules - named)}, "
                                  f"not there {sorted(named - modules)}")


# --- docs/api.md ----------------------------------------------------------------------------

SECTION = re.compile(r"^## `(minivae(?:\.\w+)*)`", re.M)
HEADING = re.compile(r"`(?:class )?(\w+(?:\.\w+)?)\(([^`]*)\)`")


def api_headings():
    """(module, function or Class.method name, argument text) of every signature in a heading."""
    found, module = [], None
    for line in API.splitlines():
        section = SECTION.match(line)
        if section:
            module = section.group(1)
        elif line.startswith("### ") and module:
            for name, args in HEADING.findall(line):
                found.append((module, name, args))
    return found


def written_parameters(args):
    """The parameters a heading writes, parsed as a Python def: [(name, kind, default or _NONE)]."""
    tree = ast.parse(f"def f({args}): pass").body[0].args
    written = []
    positional = tree.posonlyargs + tree.args
    defaults = [None] * (len(positional) - len(tree.defaults)) + list(tree.defaults)
    for arg, default in zip(positional, defaults):
        written.append((arg.arg, default))
    if tree.vararg:
        written.append(("*" + tree.vararg.arg, None))
    for arg, default in zip(tree.kwonlyargs, tree.kw_defaults):
        written.append(("*, " + arg.arg, default))
    if tree.kwarg:
        written.append(("**" + tree.kwarg.arg, None))
    return [(name, None if d is None else eval(compile(ast.Expression(d), "<api.md>", "eval"),
                                               {"np": np})) for name, d in written]


def real_parameters(function):
    params = []
    for p in inspect.signature(function).parameters.values():
        if p.name == "self":
            continue
        name = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**", p.KEYWORD_ONLY: "*, "}.get(p.kind, "") + p.name
        params.append((name, None if p.default is p.empty else p.default))
    return params


def test_docs_api_md_names_every_module_of_the_package():
    named = set(re.findall(r"`(minivae(?:\.\w+)+)`", API)) | set(
        f"minivae.{m}" for m in re.findall(r"`minivae/([\w/]+)\.py`", API))
    missing = [m for m in public_modules() if m != "minivae" and m not in named
               and m.replace(".", "/") not in named]
    assert not missing, f"docs/api.md does not mention {missing}"


def test_every_section_of_docs_api_md_is_a_module():
    for module in SECTION.findall(API):
        importlib.import_module(module)


@pytest.mark.parametrize("module, name, args", api_headings(),
                         ids=lambda value: value if isinstance(value, str) and len(value) < 40 else "")
def test_every_signature_in_docs_api_md_equals_the_real_one(module, name, args):
    target = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    if inspect.isclass(target):
        target = target.__init__
    real = real_parameters(target)
    written = written_parameters(args)
    assert written == real, (f"docs/api.md writes {module}.{name}({args}); "
                             f"the code has {inspect.signature(target)}")


def test_docs_api_md_headings_are_checked():
    names = {(module, name) for module, name, _ in api_headings()}
    assert {("minivae.training", "train"), ("minivae.vae", "VAE"), ("minivae.nn", "mlp_backward")} <= names
