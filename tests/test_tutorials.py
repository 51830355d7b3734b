"""Tests of the tutorials: each runs end to end in fast mode and writes the figures it promises.

Every tutorial is run as a reader runs it, ``python tutorials/NN_name.py``, in a subprocess
with ``MINIVAE_FAST=1`` (fewer epochs and samples), the non-interactive matplotlib backend,
and ``MINIVAE_FIGURES`` pointing at a temporary folder. The tutorials ``assert`` the facts
they teach (a finite-difference error below 1e-6, a Monte Carlo mean within four standard
errors of its closed form, ...), so a tutorial whose claim stops being true exits non-zero
and fails here, with its output in the message.

The examples of docs/api.md are run too, so that the reference cannot drift from the code.
"""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
API_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# with the notebooks extra, tests/test_notebooks.py runs every tutorial in a Jupyter kernel,
# where its asserts and figures are checked as here: the script runs would only repeat them
AS_NOTEBOOKS = all(importlib.util.find_spec(m) for m in ("jupytext", "nbclient", "ipykernel"))

# the figures each tutorial promises (and describes) in its text
FIGURES = {
    "01_latent_variable_models.py": ["01_latent_variable_model.png", "01_posterior.png",
                                     "01_naive_monte_carlo.png"],
    "02_variational_inference.py": ["02_elbo_gap.png", "02_optimisation.png", "02_mean_field.png"],
    "03_reparameterisation.py": ["03_toy_gradients.png", "03_vae_gradient_variance.png"],
    "04_mlp_backprop.py": ["04_step_size.png", "04_mlp_fit.png"],
    "05_vae.py": ["05_estimators.png", "05_kl_monte_carlo.png", "05_std_vs_L.png",
                  "05_gradient_variance.png"],
    "06_training_mnist.py": ["06_elbo.png", "06_reconstructions.png", "06_samples.png",
                             "06_manifold.png", "06_latent_scatter.png"],
    "07_evaluation.py": ["07_exact_iwae.png", "07_mnist_iwae.png"],
    "08_debugging_a_gradient.py": [],
    "09_posterior_collapse.py": ["09_kl_per_dimension.png", "09_rate_distortion.png", "09_warmup.png",
                                 "09_sum_vs_mean.png"],
    "10_gaussian_decoder.py": ["10_reconstructions.png", "10_variance_runaway.png"],
    "11_amortisation_gap.py": ["11_local_optimisation.png", "11_gaps.png"],
    "12_wake_sleep.py": ["12_kl_directions.png", "12_bound_vs_examples.png", "12_dreams.png"],
    "13_iwae.py": ["13_iwae_vs_vae.png"],
}


def tutorial_files():
    return sorted(p.name for p in TUTORIALS.glob("[0-9][0-9]_*.py"))


def cells(path):
    """The jupytext "percent" cells of a script: a list of (kind, lines), kind "code" or "markdown"."""
    result = []
    for line in path.read_text().splitlines():
        if line.startswith("# %%"):
            result.append(("markdown" if line.strip() == "# %% [markdown]" else "code", []))
        elif result:
            result[-1][1].append(line)
    return result


def test_every_tutorial_is_listed_with_its_figures():
    assert tutorial_files() == sorted(FIGURES), (
        "a tutorial was added or removed: list it in FIGURES with the figures it writes")


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_tutorial_is_a_jupytext_percent_script_that_describes_each_figure(name):
    path = TUTORIALS / name
    first_line = path.read_text().splitlines()[0]
    assert first_line == "# %% [markdown]", f"{name} should open with a markdown cell (its title)"
    kinds = [kind for kind, _ in cells(path)]
    assert "code" in kinds and "markdown" in kinds
    markdown = {}
    for i, (kind, lines) in enumerate(cells(path)):
        if kind == "markdown":
            body = [line for line in lines if line.strip()]
            assert all(line.startswith("#") for line in body), (
                f"{name}, markdown cell {i}: every line must be a comment")
            markdown[i] = "\n".join(line.lstrip("# ") for line in body)
    text = "\n".join(markdown.values())
    assert "Kingma & Welling 2013" in text, f"{name} should cite the paper"
    assert "$" in text, f"{name} should state its math in LaTeX"
    for figure in FIGURES[name]:
        described = [m for m in markdown.values() if re.search(rf"Figure `{re.escape(figure)}`", m)]
        assert described, f"{name} never introduces **Figure `{figure}`**"
        assert any("What to see" in m for m in described), (
            f"{name}: the text introducing {figure} should say what the reader should see")


@pytest.mark.skipif(AS_NOTEBOOKS, reason="run as notebooks by tests/test_notebooks.py instead")
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_tutorial_runs_in_fast_mode_and_writes_the_figures_it_promises(name, tmp_path):
    env = dict(os.environ)
    for variable in ("PYTHONOPTIMIZE", "MINIVAE_DEBUG"):   # -O would strip the tutorials' asserts
        env.pop(variable, None)
    env.update({
        "MINIVAE_FAST": "1",
        "MPLBACKEND": "Agg",
        "MINIVAE_FIGURES": str(tmp_path),
        # one BLAS thread: the suite runs on shared cores, and the numbers the tutorials
        # assert on do not depend on the machine's thread count
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    })
    # run from the temporary folder: a tutorial must not depend on the working directory
    result = subprocess.run([sys.executable, str(TUTORIALS / name)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"{name} exited with {result.returncode}\n--- stdout (end)\n{result.stdout[-3000:]}"
        f"\n--- stderr (end)\n{result.stderr[-5000:]}")
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(FIGURES[name]), f"{name} wrote {written}, promised {FIGURES[name]}"
    for figure in FIGURES[name]:
        content = (tmp_path / figure).read_bytes()
        assert content[:8] == PNG_SIGNATURE and len(content) > 5000, f"{figure} is not a real PNG"


def test_api_examples_run(tmp_path, monkeypatch):
    # the ```python blocks of docs/api.md, in order, in one namespace, as a reader would paste them
    blocks = re.findall(r"```python\n(.*?)```", API_DOC.read_text(), re.S)
    assert len(blocks) >= 10, "docs/api.md should have an example per module"
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/api.md, python block {i + 1}", "exec"), namespace)
