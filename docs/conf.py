"""Sphinx configuration of the minivae site: docs/ and tutorials/ as one static HTML site.

Build it from the repository root (the README's command):

    python -m sphinx -W --keep-going -j auto -c docs -b html . build/site

The source folder is the repository root, so that a link written for a Markdown viewer
(``../tutorials/05_vae.py`` in ``docs/index.md``) is also the right link on the site;
``include_patterns`` keeps everything but docs/ and tutorials/ out. Every tutorial
(``tutorials/NN_name.py``, jupytext percent format) is read as a notebook and executed while
the site is built (myst-nb), so its figures and printed checks are the ones of this run.
The tutorials run with their fast settings (``MINIVAE_FAST=1``, as in the tests); prefix
the command with ``MINIVAE_FAST=0`` for the full ones.
"""
import importlib.util
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))          # autodoc imports minivae from this checkout

project = "minivae"
author = "minivae contributors"
copyright = "minivae contributors, MIT licence"

root_doc = "docs/index"
include_patterns = [
    "docs/*.md",
    "docs/_api/*.rst",
    "tutorials/README.md",
    "tutorials/[0-9][0-9]_*.py",
]
exclude_patterns = [".*", "build", "runs"]     # not even walked: .git, .ci-venv, the output

extensions = [
    "myst_nb",                  # Markdown (MyST) pages and the tutorials as executed notebooks
    "sphinx.ext.autodoc",       # the API reference from the docstrings
    "sphinx.ext.napoleon",      # ... which are numpydoc
    "sphinx.ext.mathjax",
]

# --- Markdown and math: MathJax 3 from the site itself, not from a CDN ----------------------
# sphinx-mathjax-offline ships MathJax 3.2.2 (scripts, TeX extensions, fonts) in its static/
# folder; copied into _static/, the site typesets its math with no network.
MATHJAX_FILES = Path(importlib.util.find_spec("sphinx-mathjax-offline").origin).parent / "static"
html_static_path = [str(MATHJAX_FILES)]
mathjax_path = "mathjax/tex-chtml.js"

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_dmath_double_inline = True       # $$ ... $$ inside a paragraph is display math too
myst_heading_anchors = 3              # GitHub-style #anchors, as the pages link them

# --- tutorials: jupytext percent scripts, executed as notebooks -----------------------------
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = "force"           # always run: the site shows this run's figures
nb_execution_timeout = 1200
nb_execution_raise_on_error = True    # a tutorial whose assert fails fails the build
nb_execution_show_tb = True
nb_kernel_rgx_aliases = {".*": "python3"}
nb_merge_streams = True
# The tutorials' environment (their kernels inherit it): the fast settings unless
# MINIVAE_FAST=0 asks for the full ones (minutes more), one BLAS thread per kernel since
# -j auto runs several at once, and their PNG files written under build/, not into tutorials/.
os.environ.setdefault("MINIVAE_FAST", "1")
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")
os.environ.setdefault("MINIVAE_FIGURES", str(ROOT / "build" / "tutorial-figures"))
os.environ.pop("MPLBACKEND", None)    # the kernel's inline backend, as in Jupyter

# --- API reference: one page per module of the package, generated from the modules found ----
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False


def write_api_pages():
    """docs/_api/minivae.NAME.rst for each module and folder of the package.

    NAME is dotted (``topics.linear_gaussian``; a folder's page is its ``__init__``
    docstring); private modules (``_worker``) and ``__main__`` have none.
    """
    out = DOCS / "_api"
    out.mkdir(exist_ok=True)
    package = ROOT / "minivae"
    modules = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and not any(part.startswith("_") for part in parts):
            modules.append(".".join(parts))
    wanted = {f"minivae.{name}.rst" for name in modules}
    for stale in out.glob("*.rst"):
        if stale.name not in wanted:
            stale.unlink()
    for name in modules:
        title = f"``minivae.{name}``"
        text = f"{title}\n{'=' * len(title)}\n\n.. automodule:: minivae.{name}\n"
        page = out / f"minivae.{name}.rst"
        if not page.exists() or page.read_text() != text:    # unchanged: no rebuild
            page.write_text(text)


write_api_pages()

# --- HTML -------------------------------------------------------------------------------------
html_theme = "furo"
html_title = "minivae"
templates_path = ["_templates"]
html_additional_pages = {"index": "redirect.html"}    # build/site/index.html -> docs/index.html


def setup(app):
    # MathJax on every page, not only on pages with math of their own: the navigation holds
    # the tutorials' titles, and some of them have math
    app.set_html_assets_policy("always")
    return {"parallel_read_safe": True}
