"""Tests of the tutorials as notebooks: each converts with jupytext and runs in a real Jupyter kernel.

This is how a student who reads along in Jupyter meets a tutorial: ``tutorials/NN_name.py`` is
converted to a notebook by jupytext and every cell is executed in an IPython kernel (nbclient),
in fast mode (``MINIVAE_FAST=1``), from a temporary folder, with the figures written to it. A
tutorial's own ``assert``s then fail the cell they are in, so this checks everything the
script run of tests/test_tutorials.py checks (which stands aside when this runs), and what only
a notebook shows:

- every figure a cell leaves as its value is displayed as an image (``image/png``), not as the
  text ``<Figure size 550x380 with 1 Axes>``; one displayed image per PNG file written;
- what a kernel changes (IPython's coloured pdb in tutorial 08, no ``__file__``) breaks nothing.

The notebooks run two at a time, each in its own kernel, so that the 2-core CI spends about
half the time of running them one after another. The tests need the ``notebooks`` extra
(``pip install -e ".[test,notebooks]"``) and are skipped, with that reason, without it.
"""
import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext", reason="the notebooks extra is not installed "
                               '(pip install -e ".[test,notebooks]")')
nbclient = pytest.importorskip("nbclient", reason="the notebooks extra is not installed")
pytest.importorskip("ipykernel", reason="the notebooks extra is not installed")

from test_tutorials import FIGURES, PNG_SIGNATURE, TUTORIALS, tutorial_files  # noqa: E402

PARALLEL_KERNELS = 2
FIGURE_REPR = "<Figure size"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def kernel_env(figures):
    env = dict(os.environ)
    for variable in ("PYTHONOPTIMIZE", "MINIVAE_DEBUG"):   # -O would strip the tutorials' asserts
        env.pop(variable, None)
    env.update({
        "MINIVAE_FAST": "1",
        "MINIVAE_FIGURES": str(figures),
        # one BLAS thread per kernel: two kernels share the two cores
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    })
    env.pop("MPLBACKEND", None)     # the kernel's own (inline) backend, as in Jupyter
    return env


async def run_notebook(name, folder, slots):
    """Convert tutorials/NAME to a notebook and execute it in a fresh python3 kernel in FOLDER.

    Returns (notebook, error): the executed notebook and the CellExecutionError (or None).
    """
    notebook = jupytext.read(TUTORIALS / name)
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(folder)}})
    async with slots:
        try:
            await client.async_execute(env=kernel_env(folder))
        except nbclient.exceptions.CellExecutionError as error:
            return notebook, error
    return notebook, None


@pytest.fixture(scope="module")
def executed(request, tmp_path_factory):
    """{tutorial name: (executed notebook, error or None, its folder)}, all run concurrently.

    Only the tutorials whose tests were selected run (``-k 05`` runs one notebook).
    """
    names = sorted({item.callspec.params["name"] for item in request.session.items
                    if item.module is request.module and hasattr(item, "callspec")})
    folders = {name: tmp_path_factory.mktemp(name.split("_")[0]) for name in names}

    async def run_all():
        slots = asyncio.Semaphore(PARALLEL_KERNELS)
        results = await asyncio.gather(*(run_notebook(n, folders[n], slots) for n in names))
        return dict(zip(names, results))

    results = asyncio.run(run_all())
    return {name: (*results[name], folders[name]) for name in names}


def test_the_python3_kernel_runs_this_python():
    # a python3 kernelspec of another interpreter would test some other installation
    notebook = jupytext.reads("import sys\nprint(sys.executable)", fmt="py:percent")
    nbclient.NotebookClient(notebook, kernel_name="python3", timeout=60).execute()
    printed = notebook.cells[0].outputs[0]["text"].strip()
    assert Path(printed).resolve() == Path(sys.executable).resolve(), (
        f"the python3 kernel runs {printed}, the tests run {sys.executable}")


@pytest.mark.parametrize("name", tutorial_files())
def test_tutorial_runs_as_a_notebook_in_a_jupyter_kernel(executed, name):
    notebook, error, folder = executed[name]
    message = ANSI_ESCAPE.sub("", str(error))[-5000:]     # the kernel's traceback is in colour
    assert error is None, f"{name}, run as a notebook, stopped in a cell:\n{message}"
    if name in FIGURES:       # a tutorial new to FIGURES fails test_tutorials' listing test
        written = sorted(p.name for p in folder.glob("*.png"))
        assert written == sorted(FIGURES[name]), f"{name} wrote {written}, promised {FIGURES[name]}"
    for figure in folder.glob("*.png"):
        content = figure.read_bytes()
        assert content[:8] == PNG_SIGNATURE and len(content) > 5000, f"{figure.name} is not a real PNG"


@pytest.mark.parametrize("name", tutorial_files())
def test_every_figure_cell_of_the_notebook_shows_an_image(executed, name):
    notebook, error, folder = executed[name]
    if error is not None:
        pytest.skip("the notebook did not run to the end (see the test above)")
    images, text_figures = 0, []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                images += 1
            elif str(data.get("text/plain", "")).startswith(FIGURE_REPR):
                text_figures.append((index, data["text/plain"]))
    assert not text_figures, (
        f"{name}: figure cells show a text repr instead of the image: {text_figures}. "
        "The tutorial's first code cell needs `# %matplotlib inline` (jupytext makes it the "
        "magic that registers the PNG display of matplotlib Figures)")
    written = len(list(folder.glob("*.png")))
    assert images == written, (
        f"{name} wrote {written} figures but its notebook shows {images} images: "
        "end each figure cell with the figure")
