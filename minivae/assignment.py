"""Course assignments: a student edition with stubs, and an autograder built from the tests.

An instructor marks, in the solution source itself, the lines a student should
write.  Two comment lines per region, around lines of a function body below
its docstring::

    def kl_standard_normal(mu, logvar):
        '''KL(N(mu, diag(exp(logvar))) || N(0, I)) ...'''
        # BEGIN SOLUTION analytic_kl
        var_minus_1 = np.expm1(logvar)                # exp(logvar) - 1
        kl = 0.5 * (mu * mu + (var_minus_1 - logvar)).sum(axis=-1)
        cache = (mu, var_minus_1)
        # END SOLUTION
        return kl, cache

The name after ``BEGIN SOLUTION`` is an exercise of :data:`EXERCISES`, the one
table that says, per exercise, which functions it covers, the hint a student
sees, the tests that grade it and its points.  An exercise may have several
regions (a forward and its backward).

``make_assignment`` copies the source tree and replaces each region of the
chosen exercises by a stub, keeping the signature, the docstring and the two
markers (they show the student where to write, and let the grader find the
student's lines again); the regions of the other exercises keep their solution
and lose their markers::

        # BEGIN SOLUTION analytic_kl
        raise NotImplementedError("Exercise analytic_kl: ... (see docs/derivations.md#analytic-kl)")
        # END SOLUTION

``grade`` runs the tests of each exercise with pytest in a subprocess, with the
graded tree first on PYTHONPATH, and scores them.  Two modes:

* isolated (given the solution tree as ``reference``): each exercise is tested
  on a copy of the reference in which only that exercise's regions hold the
  student's lines, so a row measures that exercise alone, even when its tests
  also run code of other exercises (estimator B calls the analytic KL);
* whole tree (no reference): the submission is tested as it is, as a student
  would on their own machine.

``minivae assignment make|grade`` (minivae.cli) are the commands;
docs/assignments.md is the instructors' guide.
"""
import ast
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import tokenize
import xml.etree.ElementTree as ET
from pathlib import Path

# ---------------------------------------------------------------------------
# The exercises
# ---------------------------------------------------------------------------
# name -> title, functions ("file::qualified.name", each must hold a region of the
# exercise), hint (one line, shown in the stub), see (where the math is), points, and
# tests (pytest node ids; an id without [...] stands for all its parametrisations).
# Grading isolates each exercise (see the module docstring), so a test may grade an
# exercise although it also runs other exercises' code.

EXERCISES = {
    "affine_backward": {
        "title": "Backward pass of the affine layer y = x W + b",
        "functions": ["minivae/nn.py::affine_backward"],
        "hint": "apply the chain rule to y = x W + b; each gradient has the shape of its input, "
                "and db sums over the batch",
        "see": "docs/derivations.md#affine-layer",
        "points": 8,
        "tests": [
            "tests/test_nn.py::test_affine_backward_matches_finite_differences",
            "tests/test_nn.py::test_mlp_backward_matches_finite_differences",
        ],
    },
    "activation_backward": {
        "title": "Backward passes of relu, tanh, sigmoid and softplus",
        "functions": ["minivae/nn.py::relu_backward", "minivae/nn.py::tanh_backward",
                      "minivae/nn.py::sigmoid_backward", "minivae/nn.py::softplus_backward"],
        "hint": "da = dh * f'(a), with f'(a) written in terms of what the forward put in the cache",
        "see": "docs/derivations.md#activations",
        "points": 8,
        "tests": [
            "tests/test_nn.py::test_activation_backward_matches_finite_differences[relu]",
            "tests/test_nn.py::test_activation_backward_matches_finite_differences[sigmoid]",
            "tests/test_nn.py::test_activation_backward_matches_finite_differences[softplus]",
            "tests/test_nn.py::test_activation_backward_matches_finite_differences[tanh]",
            "tests/test_nn.py::test_activations_keep_float32_and_stay_finite_at_extremes[relu]",
            "tests/test_nn.py::test_activations_keep_float32_and_stay_finite_at_extremes[sigmoid]",
            "tests/test_nn.py::test_activations_keep_float32_and_stay_finite_at_extremes[softplus]",
            "tests/test_nn.py::test_activations_keep_float32_and_stay_finite_at_extremes[tanh]",
            "tests/test_nn.py::test_mlp_backward_matches_finite_differences",
        ],
    },
    "bernoulli_likelihood": {
        "title": "Bernoulli log-likelihood from logits, and its gradient",
        "functions": ["minivae/distributions.py::bernoulli_log_likelihood",
                      "minivae/distributions.py::bernoulli_log_likelihood_backward"],
        "hint": "sum x l - softplus(l) over the pixels without overflow for large |l|; "
                "the gradient uses softplus'(l) = sigmoid(l)",
        "see": "docs/derivations.md#bernoulli-likelihood",
        "points": 8,
        "tests": [
            "tests/test_distributions.py::test_bernoulli_backward_matches_finite_differences",
            "tests/test_distributions.py::test_bernoulli_log_likelihood_matches_the_direct_formula",
            "tests/test_distributions.py::test_bernoulli_is_finite_for_logits_up_to_1e4",
        ],
    },
    "gaussian_log_density": {
        "title": "Diagonal Gaussian and standard normal log-densities, and their gradients",
        "functions": ["minivae/distributions.py::gaussian_log_density",
                      "minivae/distributions.py::gaussian_log_density_backward",
                      "minivae/distributions.py::standard_normal_log_density",
                      "minivae/distributions.py::standard_normal_log_density_backward"],
        "hint": "sum the per-dimension log-density over the last axis; in the backward, sum each "
                "gradient over the axes its input was broadcast along (sum_to_shape)",
        "see": "docs/derivations.md#gaussian-log-density",
        "points": 9,
        "tests": [
            "tests/test_distributions.py::test_gaussian_log_density_backward_matches_finite_differences",
            "tests/test_distributions.py::test_gaussian_log_density_matches_scipy",
            "tests/test_distributions.py::test_standard_normal_log_density_backward_matches_finite_differences",
            "tests/test_distributions.py::test_standard_normal_log_density_matches_scipy",
            "tests/test_distributions.py::test_kl_matches_monte_carlo_estimate",
            "tests/test_distributions.py::test_gaussian_functions_keep_dtype_and_are_finite_for_extreme_logvar",
        ],
    },
    "analytic_kl": {
        "title": "KL(q(z|x) || N(0, I)) in closed form, and its gradient",
        "functions": ["minivae/distributions.py::kl_standard_normal",
                      "minivae/distributions.py::kl_standard_normal_backward"],
        "hint": "one KL per example: sum the D terms of the closed form over the last axis, "
                "with exp(logvar) - 1 as np.expm1(logvar) (exact near logvar = 0); "
                "differentiate it term by term for the backward",
        "see": "docs/derivations.md#analytic-kl",
        "points": 8,
        "tests": [
            "tests/test_distributions.py::test_kl_backward_matches_finite_differences",
            "tests/test_distributions.py::test_kl_by_hand",
            "tests/test_distributions.py::test_kl_is_nonnegative_and_zero_only_at_the_prior",
            "tests/test_distributions.py::test_kl_matches_monte_carlo_estimate",
            "tests/test_distributions.py::test_kl_is_accurate_and_never_negative_where_q_is_near_the_prior",
            "tests/test_distributions.py::test_gaussian_functions_keep_dtype_and_are_finite_for_extreme_logvar",
        ],
    },
    "reparameterised_sample": {
        "title": "The reparameterised sample z = mu + sigma * eps, and its gradient",
        "functions": ["minivae/distributions.py::gaussian_sample",
                      "minivae/distributions.py::gaussian_sample_backward"],
        "hint": "broadcast mu and sigma = exp(logvar / 2) over the L samples of eps; the backward "
                "sums over the samples and uses dsigma/dlogvar = sigma / 2",
        "see": "docs/derivations.md#reparameterised-sample",
        "points": 9,
        "tests": [
            "tests/test_distributions.py::test_gaussian_sample_backward_matches_finite_differences",
            "tests/test_distributions.py::test_reparameterised_samples_have_mean_mu_and_variance_exp_logvar",
            "tests/test_distributions.py::test_gaussian_functions_keep_dtype_and_are_finite_for_extreme_logvar",
            "tests/test_vae.py::test_return_cache_exposes_the_named_intermediates",
        ],
    },
    "estimator_b": {
        "title": "Estimator B of the ELBO (analytic KL) and its gradient",
        "functions": ["minivae/vae.py::VAE.forward", "minivae/vae.py::VAE.backward_to_encoder_output"],
        "hint": "elbo = mean over samples of log p(x|z) - beta KL(q || p); in the backward, "
                "the KL's gradient goes through kl_standard_normal_backward",
        "see": "docs/derivations.md#the-two-estimators-kingma--welling-2013-eq-6-7",
        "points": 11,
        "tests": [
            "tests/test_vae.py::test_loss_and_grads_match_finite_differences[1-analytic-bernoulli]",
            "tests/test_vae.py::test_loss_and_grads_match_finite_differences[1-analytic-gaussian]",
            "tests/test_vae.py::test_loss_and_grads_match_finite_differences[5-analytic-bernoulli]",
            "tests/test_vae.py::test_loss_and_grads_match_finite_differences[5-analytic-gaussian]",
            "tests/test_vae.py::test_beta_scales_only_the_kl_term",
            "tests/test_vae.py::test_kl_is_nonnegative_and_estimator_b_is_nonpositive_for_binary_data",
            "tests/test_vae.py::test_estimators_a_and_b_agree_in_expectation",
            "tests/test_vae.py::test_l_samples_at_once_equal_the_mean_of_one_sample_runs",
            "tests/test_vae.py::test_every_intermediate_and_gradient_keeps_the_model_dtype[analytic-bernoulli-float32]",
            "tests/test_vae.py::test_every_intermediate_and_gradient_keeps_the_model_dtype[analytic-gaussian-float32]",
            "tests/test_vae.py::test_extreme_logits_and_logvar_give_finite_loss_and_gradients[analytic-float32]",
            "tests/test_vae.py::test_extreme_logits_and_logvar_give_finite_loss_and_gradients[analytic-float64]",
        ],
    },
    "estimator_a": {
        "title": "Estimator A of the ELBO (all Monte Carlo) and its gradient",
        "functions": ["minivae/vae.py::VAE.forward", "minivae/vae.py::VAE.backward_to_encoder_output"],
        "hint": "elbo = mean over samples of log p(x|z) + beta (log p(z) - log q(z|x)); in the "
                "backward, z gets gradient from both log-densities as well as from the decoder",
        "see": "docs/derivations.md#the-two-estimators-kingma--welling-2013-eq-6-7",
        "points": 11,
        "tests": [
            "tests/test_vae.py::test_loss_and_grads_match_finite_differences[1-mc-bernoulli]",
            "tests/test_vae.py::test_loss_and_grads_match_finite_differences[1-mc-gaussian]",
            "tests/test_vae.py::test_loss_and_grads_match_finite_differences[5-mc-bernoulli]",
            "tests/test_vae.py::test_loss_and_grads_match_finite_differences[5-mc-gaussian]",
            "tests/test_vae.py::test_gradcheck_helper_agrees_with_the_test_above_on_the_standard_shapes",
            "tests/test_vae.py::test_estimators_a_and_b_agree_in_expectation",
            "tests/test_vae.py::test_l_samples_at_once_equal_the_mean_of_one_sample_runs",
            "tests/test_vae.py::test_every_intermediate_and_gradient_keeps_the_model_dtype[mc-bernoulli-float32]",
            "tests/test_vae.py::test_every_intermediate_and_gradient_keeps_the_model_dtype[mc-gaussian-float32]",
            "tests/test_vae.py::test_extreme_logits_and_logvar_give_finite_loss_and_gradients[mc-float32]",
            "tests/test_vae.py::test_extreme_logits_and_logvar_give_finite_loss_and_gradients[mc-float64]",
        ],
    },
    "vae_backward": {
        "title": "Backpropagation through the likelihood, the decoder, the reparameterisation and the encoder",
        "functions": ["minivae/vae.py::VAE.backward_to_encoder_output", "minivae/vae.py::VAE.backward"],
        "hint": "walk VAE.forward in reverse: likelihood backward, decoder mlp_backward on the "
                "(L B) stack, reparameterisation backward, then the encoder with dh = [dmu, dlogvar]",
        "see": "docs/derivations.md#gradient-of-the-elbo-estimators",
        "points": 12,
        "tests": [
            "tests/test_vae.py::test_loss_and_grads_match_finite_differences",
            "tests/test_vae.py::test_gradcheck_helper_agrees_with_the_test_above_on_the_standard_shapes",
            "tests/test_vae.py::test_every_intermediate_and_gradient_keeps_the_model_dtype",
            "tests/test_vae.py::test_extreme_logits_and_logvar_give_finite_loss_and_gradients",
        ],
    },
    "importance_sampled_log_likelihood": {
        "title": "The importance-sampled log-likelihood (IWAE bound), streamed over chunks of samples",
        "functions": ["minivae/evaluate.py::log_weights_and_cache", "minivae/evaluate.py::iwae_bound"],
        "hint": "log w = log p(x|z) + log p(z) - log q(z|x) from the forward's cache; accumulate "
                "log sum_i w_i over the chunks with logsumexp and logaddexp, never exp(log w)",
        "see": "docs/evaluation.md#importance-sampled-log-likelihood",
        "points": 8,
        "tests": [
            "tests/test_evaluate.py::test_k_equal_1_is_the_vae_estimator_a_of_the_elbo",
            "tests/test_evaluate.py::test_chunked_streaming_equals_one_logsumexp_over_all_samples",
            "tests/test_evaluate.py::test_bounds_increase_with_k_in_expectation",
            "tests/test_evaluate.py::test_log_likelihood_converges_to_the_exact_log_evidence_of_the_linear_model",
            "tests/test_evaluate.py::test_with_the_exact_posterior_as_q_any_k_gives_the_exact_log_evidence",
        ],
    },
    "adam_update": {
        "title": "One Adam step, in place",
        "functions": ["minivae/optim.py::Adam._update"],
        "hint": "update m and v in place, fold both bias corrections into lr_t and eps_t, and "
                "write every intermediate into tmp with out= (a step allocates no new array)",
        "see": "docs/derivations.md#optimisers",
        "points": 8,
        "tests": [
            "tests/test_optim.py::test_adam_two_steps_match_hand_computation",
            "tests/test_optim.py::test_adam_matches_algorithm_1_written_out_literally_with_eps",
            "tests/test_optim.py::test_each_optimizer_minimises_a_convex_quadratic[adam]",
            "tests/test_optim.py::test_float32_params_and_state_stay_float32[adam]",
            "tests/test_optim.py::test_step_updates_the_callers_arrays_in_place[adam]",
            "tests/test_optim.py::test_step_allocates_no_parameter_sized_arrays[adam]",
            "tests/test_optim.py::test_state_dict_round_trip_through_npz_resumes_bit_for_bit[float32-adam]",
            "tests/test_optim.py::test_state_dict_round_trip_through_npz_resumes_bit_for_bit[float64-adam]",
        ],
    },
}

PACKAGE = "minivae"
MANIFEST = "assignment.json"      # written by make_assignment at the top of a student edition

# what make_assignment does not copy: version control, builds, environments, caches, runs
SKIP_NAMES = {".git", ".hg", ".svn", "build", "dist", "runs", "venv", ".venv", "env", ".tox",
              ".nox", "__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache",
              ".ruff_cache", ".ipynb_checkpoints", MANIFEST}
SKIP_SUFFIXES = (".egg-info", ".pyc", ".pyo")

_MARKER = re.compile(r"#\s*(BEGIN|END)\s+SOLUTION\b(.*)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class AssignmentError(ValueError):
    """A problem with the markers, the exercise table, a tree or a request; the message says which."""


# ---------------------------------------------------------------------------
# Finding the marked regions
# ---------------------------------------------------------------------------

def find_regions(text, path, table=None):
    """The marked regions of one source file, in order, after checking every marker.

    Parameters
    ----------
    text : str
        The file's source.
    path : str
        Its path relative to the tree ("minivae/nn.py"), for messages and for
        the ``functions`` of the table.
    table : dict, optional
        The exercise table (default :data:`EXERCISES`).

    Returns
    -------
    regions : list of dict
        ``exercise``; ``begin`` and ``end``, the 0-based indices of the marker
        lines; ``indent``, the BEGIN marker's indentation; ``function``, the
        qualified name of the enclosing function ("VAE.forward").

    Raises AssignmentError, naming file and line, for: a marker that is not alone
    on its line, BEGIN without a known exercise name, nested regions, END without
    BEGIN or BEGIN without END, an END indented unlike its BEGIN, an empty region,
    a region not inside a function body below its docstring, or in a function the
    table does not list for that exercise.
    """
    table = EXERCISES if table is None else table
    lines = text.splitlines(keepends=True)
    regions, current = [], None
    for row, column, comment in _comments(text, path):
        match = _MARKER.match(comment)
        if not match:
            continue
        where = f"{path}:{row}"
        kind, rest = match.group(1), match.group(2).strip()
        line = lines[row - 1]
        if line[:column].strip():
            raise AssignmentError(f"{where}: a solution marker must be on a line of its own, "
                                  f"got {line.strip()!r}")
        indent = line[:column]
        if kind == "BEGIN":
            if current is not None:
                raise AssignmentError(
                    f"{where}: BEGIN SOLUTION inside the region of {current['exercise']!r} opened "
                    f"at line {current['begin'] + 1}; regions cannot nest (close it with END SOLUTION)")
            if not _NAME.fullmatch(rest):
                raise AssignmentError(f"{where}: expected '# BEGIN SOLUTION <exercise-name>', "
                                      f"got {comment!r}")
            if rest not in table:
                raise AssignmentError(f"{where}: unknown exercise {rest!r}; the exercise table has "
                                      f"{', '.join(sorted(table))}")
            current = {"exercise": rest, "begin": row - 1, "indent": indent}
        else:
            if rest:
                raise AssignmentError(f"{where}: expected '# END SOLUTION' alone, got {comment!r}")
            if current is None:
                raise AssignmentError(f"{where}: END SOLUTION without a BEGIN SOLUTION before it")
            if indent != current["indent"]:
                raise AssignmentError(f"{where}: END SOLUTION must be indented like its BEGIN "
                                      f"SOLUTION at line {current['begin'] + 1}")
            current["end"] = row - 1
            regions.append(current)
            current = None
    if current is not None:
        raise AssignmentError(f"{path}:{current['begin'] + 1}: BEGIN SOLUTION "
                              f"{current['exercise']} has no END SOLUTION")
    if regions:
        _check_placement(text, lines, path, regions, table)
    return regions


def _comments(text, path):
    """(row, column, text) of every comment token: markers inside strings do not count."""
    try:
        return [(tok.start[0], tok.start[1], tok.string)
                for tok in tokenize.generate_tokens(io.StringIO(text).readline)
                if tok.type == tokenize.COMMENT]
    except (tokenize.TokenError, SyntaxError) as error:
        raise AssignmentError(f"{path}: cannot read its comments ({error})") from None


def _functions(tree):
    """(qualified name, node) of every function and method, outermost first."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                if not isinstance(child, ast.ClassDef):
                    found.append((name, child))
                visit(child, name + ".")

    visit(tree, "")
    return found


def _check_placement(text, lines, path, regions, table):
    """Every region must lie in one function body, below its docstring, in a function it names."""
    try:
        functions = _functions(ast.parse(text, filename=path))
    except SyntaxError as error:
        raise AssignmentError(f"{path}:{error.lineno}: not valid Python ({error.msg})") from None
    for region in regions:
        where = f"{path}:{region['begin'] + 1}"
        code_rows = [i + 1 for i in range(region["begin"] + 1, region["end"])
                     if lines[i].strip() and not lines[i].lstrip().startswith("#")]
        if not code_rows:
            raise AssignmentError(f"{where}: the region of {region['exercise']!r} is empty")
        first, last = code_rows[0], code_rows[-1]
        first_indent = lines[first - 1][:len(lines[first - 1]) - len(lines[first - 1].lstrip())]
        if first_indent != region["indent"]:
            raise AssignmentError(f"{where}: BEGIN SOLUTION must be indented like the first line it "
                                  f"encloses (line {first})")
        enclosing = [(name, node) for name, node in functions
                     if node.body[0].lineno <= first and last <= node.end_lineno]
        if not enclosing:
            raise AssignmentError(
                f"{where}: the region of {region['exercise']!r} is not inside a function body; "
                "a stub there would raise when the module is imported")
        name, node = enclosing[-1]                       # the innermost function
        body = node.body[0]
        if (isinstance(body, ast.Expr) and isinstance(body.value, ast.Constant)
                and isinstance(body.value.value, str) and first <= body.end_lineno):
            raise AssignmentError(f"{where}: the region of {region['exercise']!r} must start after "
                                  f"the docstring of {name} (the stub keeps the docstring)")
        listed = table[region["exercise"]].get("functions", [])
        if f"{path}::{name}" not in listed:
            raise AssignmentError(
                f"{where}: the region of {region['exercise']!r} lies in {path}::{name}, which the "
                f"exercise table does not list for it (it lists {', '.join(listed) or 'nothing'})")
        region["function"] = name


def scan(root, package=PACKAGE, table=None):
    """Every marked region of the package under ``root``: {relative path: (text, regions)}.

    Only files with at least one region are returned; all are checked.
    """
    root = Path(root)
    found = {}
    for file in sorted((root / package).rglob("*.py")):
        if "__pycache__" in file.parts:
            continue
        rel = file.relative_to(root).as_posix()
        text = file.read_text(encoding="utf-8")
        regions = find_regions(text, rel, table)
        if regions:
            found[rel] = (text, regions)
    return found


def check_coverage(scanned, names, table=None):
    """Raise AssignmentError unless every function listed for each exercise in ``names`` has a region."""
    table = EXERCISES if table is None else table
    present = {(rel, region["function"], region["exercise"])
               for rel, (_, regions) in scanned.items() for region in regions}
    missing = []
    for name in names:
        without = [f for f in table[name]["functions"] if (*f.split("::"), name) not in present]
        if without:
            missing.append(f"{name} (in {', '.join(without)})")
    if missing:
        raise AssignmentError("no marked region (# BEGIN SOLUTION <name> ... # END SOLUTION) for "
                              "exercise " + "; ".join(missing))


def select(names, table=None):
    """The exercises ``names`` (all if None), checked against the table, in the table's order."""
    table = EXERCISES if table is None else table
    if names is None:
        return list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise AssignmentError(f"unknown exercise {', '.join(map(repr, unknown))}; "
                              f"expected some of {', '.join(table)}")
    if not names:
        raise AssignmentError("no exercise selected")
    return [n for n in table if n in names]


def stub_message(name, table=None):
    """The message a stub raises: 'Exercise <name>: <hint> (see <where>)'."""
    entry = (EXERCISES if table is None else table)[name]
    return f"Exercise {name}: {entry['hint']} (see {entry['see']})"


def render(text, regions, replace):
    """``text`` with every region's lines, markers included, swapped for ``replace(region, body)``.

    ``body`` is the list of the region's lines between its markers (with line
    endings); ``replace`` returns the lines to put in place of the whole region.
    """
    lines = text.splitlines(keepends=True)
    out, pos = [], 0
    for region in regions:
        out += lines[pos:region["begin"]]
        out += replace(region, lines[region["begin"] + 1:region["end"]])
        pos = region["end"] + 1
    out += lines[pos:]
    return "".join(out)


# ---------------------------------------------------------------------------
# The student edition
# ---------------------------------------------------------------------------

def find_source_root(package=PACKAGE):
    """The source checkout the package is imported from (an editable install), or AssignmentError."""
    import importlib
    module = importlib.import_module(package)
    package_dir = Path(module.__file__).resolve().parent
    root = package_dir.parent
    if ("site-packages" in package_dir.parts or not (root / "tests").is_dir()
            or not any((root / name).is_file() for name in ("setup.cfg", "pyproject.toml", "setup.py"))):
        raise AssignmentError(
            f"this needs the source checkout of {package} (installed with `pip install -e .`), "
            f"but {package} is imported from {package_dir}, which has no setup.cfg or "
            "pyproject.toml and tests/ beside it")
    return root


def _is_student_edition(root):
    return (Path(root) / MANIFEST).is_file()


def _skip(name):
    return name in SKIP_NAMES or name.endswith(SKIP_SUFFIXES)


def copy_tree(root, dest):
    """Copy the source tree ``root`` to ``dest`` (created), without what SKIP_NAMES/SKIP_SUFFIXES name.

    Top-level entries starting with "." are not copied either, except .gitignore.
    """
    root, dest = Path(root), Path(dest)

    def ignore(folder, names):
        return [n for n in names if _skip(n)]

    dest.mkdir(parents=True)
    for entry in sorted(root.iterdir()):
        if _skip(entry.name) or (entry.name.startswith(".") and entry.name != ".gitignore"):
            continue
        if entry.is_dir():
            shutil.copytree(entry, dest / entry.name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(entry, dest / entry.name)


def make_assignment(root, out, exercises=None, table=None, package=PACKAGE):
    """Write a student edition of the source tree ``root`` into ``out``.

    Each region of the selected exercises becomes its markers around a stub
    ``raise NotImplementedError("Exercise <name>: <hint> (see <where>)")`` at the
    region's indentation; regions of the other exercises keep their lines and lose
    their markers.  Files without regions are copied unchanged.  A manifest
    (``assignment.json``) records the exercises, so ``grade`` knows what to grade.

    ``out`` must not exist or be empty.  Everything is checked (markers, table,
    that every changed module still imports) before ``out`` appears.

    Returns a summary dict: out, exercises, files (the relative paths with stubs), regions
    (how many were stubbed).
    """
    table = EXERCISES if table is None else table
    root, out = Path(root).resolve(), Path(out).resolve()
    names = select(exercises, table)
    if _is_student_edition(root):
        raise AssignmentError(f"{root} is a student edition (it has {MANIFEST}); make the student "
                              "edition from the solution checkout")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AssignmentError(f"--out {out} exists and is not an empty folder; choose a new one")
    if out == root or root in out.parents:
        raise AssignmentError(f"--out {out} lies inside the source tree {root}; choose a folder "
                              "outside it (an edition inside would be copied into the next one)")
    scanned = scan(root, package, table)
    check_coverage(scanned, names, table)

    def replace(region, body):
        if region["exercise"] not in names:
            return body                                          # the solution, without markers
        indent, name = region["indent"], region["exercise"]
        return [f"{indent}# BEGIN SOLUTION {name}\n",
                f"{indent}raise NotImplementedError({_quote(stub_message(name, table))})\n",
                f"{indent}# END SOLUTION\n"]

    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    if partial.exists():
        shutil.rmtree(partial)
    try:
        copy_tree(root, partial)
        stubbed = []
        for rel, (text, regions) in scanned.items():
            new = render(text, regions, replace)
            try:
                compile(new, rel, "exec")
            except SyntaxError as error:
                raise AssignmentError(f"{rel}: the student edition would not be valid Python "
                                      f"(line {error.lineno}: {error.msg}); check the regions' "
                                      "markers in the source") from None
            (partial / rel).write_text(new, encoding="utf-8")
            if any(r["exercise"] in names for r in regions):
                stubbed.append(rel)
        manifest = {"exercises": names, "points": {n: table[n]["points"] for n in names},
                    "hints": {n: stub_message(n, table) for n in names}}
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        modules = [package] + [rel[:-3].replace("/", ".").removesuffix(".__init__") for rel in scanned]
        _check_imports(partial, modules)
        if out.exists():
            out.rmdir()
        partial.rename(out)
    finally:
        if partial.exists():
            shutil.rmtree(partial)
    n_regions = sum(1 for _, regions in scanned.values() for r in regions if r["exercise"] in names)
    return {"out": str(out), "exercises": names, "files": stubbed, "regions": n_regions}


def _quote(message):
    """A double-quoted Python string literal of ``message``."""
    return '"' + message.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _environment(tree):
    """os.environ with ``tree`` first on PYTHONPATH, and no .pyc files written into it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _check_imports(tree, modules):
    """Import ``modules`` from ``tree`` in a fresh interpreter; AssignmentError if that fails."""
    code = "import importlib\nfor m in %r:\n    importlib.import_module(m)\n" % (sorted(set(modules)),)
    result = subprocess.run([sys.executable, "-c", code], cwd=tree, env=_environment(tree),
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise AssignmentError(f"the student edition does not import: {last}")


# ---------------------------------------------------------------------------
# Grading
# ---------------------------------------------------------------------------

# a line of `pytest -v`: "tests/test_nn.py::test_affine_backward[...] PASSED   [ 12%]"
_VERDICT = re.compile(r"^(?P<id>\S.*?::.+?) (?P<verdict>PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
_OUTCOME_OF_VERDICT = {"PASSED": "passed", "FAILED": "failed", "ERROR": "error", "SKIPPED": "skipped",
                       "XFAIL": "skipped", "XPASS": "passed"}


def check_tree(directory, package=PACKAGE):
    """Raise AssignmentError unless ``directory`` holds ``package/__init__.py`` and ``tests/``."""
    directory = Path(directory)
    if not (directory / package / "__init__.py").is_file() or not (directory / "tests").is_dir():
        raise AssignmentError(f"{directory} is not a {package} tree: expected {package}/__init__.py "
                              "and tests/ in it")


def read_manifest(directory):
    """The exercise names listed in a student edition's assignment.json, or None without one."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    try:
        names = json.loads(path.read_text(encoding="utf-8"))["exercises"]
    except (ValueError, KeyError, TypeError) as error:
        raise AssignmentError(f"{path} is not a manifest written by make ({error!r}); "
                              "pass the exercises with --exercises") from None
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise AssignmentError(f"{path}: 'exercises' must be a list of names, got {names!r}")
    return names


def reference_solution(package=PACKAGE):
    """(root, None) if the package runs from a solution checkout, else (None, the reason)."""
    try:
        root = find_source_root(package)
    except AssignmentError as error:
        return None, str(error)
    if _is_student_edition(root):
        return None, f"{package} runs from a student edition ({root})"
    return root, None


def grade(directory, exercises=None, *, reference=None, table=None, package=PACKAGE, timeout=600,
          stream=None):
    """Run each exercise's tests on the tree ``directory`` and score them.

    Parameters
    ----------
    directory : path
        The submission: a tree made by :func:`make_assignment` (or the original).
    exercises : list of str, optional
        What to grade; default: the manifest's exercises, or every exercise.
    reference : path, optional
        The solution tree.  Given: isolated grading, one pytest run per exercise
        on a copy of the reference whose regions of that exercise hold the
        submission's lines (the submission must keep the markers) and whose tests
        are the reference's.  None: one pytest run on the submission as it is.
    table : dict, optional
        The exercise table (default :data:`EXERCISES`).
    timeout : float
        Seconds one pytest run may take before it is stopped.
    stream : text stream, optional
        Progress lines (default stderr).

    Returns
    -------
    report : dict
        ``mode``, ``directory``, ``reference``, ``exercises`` (one row per exercise:
        exercise, title, passed, total, points, max_points, first_failure, error,
        tests), the totals ``passed``, ``total``, ``points``, ``max_points``, and
        ``all_passed`` (every test of every exercise passed).
    """
    table = EXERCISES if table is None else table
    stream = sys.stderr if stream is None else stream
    directory = Path(directory).resolve()
    check_tree(directory, package)
    names = select(read_manifest(directory) if exercises is None else exercises, table)
    rows = []
    if reference is None:
        entries = list(dict.fromkeys(e for name in names for e in table[name]["tests"]))
        _say(stream, f"grading {directory} as it is: {len(names)} exercise(s), {len(entries)} test id(s)")
        results = run_tests(directory, entries, stream, timeout)
        rows = [_score(name, table, results) for name in names]
    else:
        reference = Path(reference).resolve()
        check_tree(reference, package)
        if _is_student_edition(reference):
            raise AssignmentError(f"the reference {reference} is a student edition, not the solution")
        scanned = scan(reference, package, table)
        for name in names:
            _say(stream, f"grading {name}: the submission's lines in {reference.name}'s solution")
            with tempfile.TemporaryDirectory(prefix=f"minivae-grade-{name}-") as tmp:
                tree = Path(tmp) / "tree"
                try:
                    compose(reference, scanned, directory, name, tree, table)
                except AssignmentError as error:
                    _say(stream, f"  error: {error}")
                    rows.append(_score(name, table, None, error=str(error)))
                    continue
                rows.append(_score(name, table, run_tests(tree, table[name]["tests"], stream, timeout)))
    return {
        "mode": "whole tree" if reference is None else "isolated",
        "directory": str(directory),
        "reference": None if reference is None else str(reference),
        "exercises": rows,
        "passed": sum(r["passed"] for r in rows),
        "total": sum(r["total"] for r in rows),
        "points": round(sum(r["points"] for r in rows), 2),
        "max_points": sum(r["max_points"] for r in rows),
        "all_passed": all(r["error"] is None and 0 < r["total"] == r["passed"] for r in rows),
    }


def compose(reference, scanned, submission, name, tree, table=None):
    """Write into ``tree`` the reference solution with the submission's lines in ``name``'s regions.

    ``scanned`` is ``scan(reference)``.  Raises AssignmentError if the reference
    has no region of ``name`` or the submission's markers of ``name`` are missing,
    malformed or fewer or more than the reference's.
    """
    sources = composed_sources(scanned, submission, name, table)
    copy_tree(reference, tree)
    for rel, text in sources.items():
        (Path(tree) / rel).write_text(text, encoding="utf-8")


def composed_sources(scanned, submission, name, table=None):
    """The files :func:`compose` writes over its copy of the reference: {relative path: text}.

    Every file of the reference with a region (``scanned``, from :func:`scan`),
    with the regions of ``name`` holding the submission's lines and the other
    regions the reference's.  Nothing else of the submission is read, so a row
    of isolated grading depends on the submission's lines of its exercise only.
    """
    table = EXERCISES if table is None else table
    check_coverage(scanned, [name], table)
    sources = {}
    for rel, (text, regions) in scanned.items():
        bodies = []
        if any(r["exercise"] == name for r in regions):
            path = Path(submission) / rel
            if not path.is_file():
                raise AssignmentError(f"the submission has no {rel}")
            theirs = path.read_text(encoding="utf-8")
            found = [r for r in find_regions(theirs, rel, table) if r["exercise"] == name]
            expected = sum(r["exercise"] == name for r in regions)
            if len(found) != expected:
                raise AssignmentError(
                    f"{rel}: the submission has {len(found)} region(s) of {name}, the solution "
                    f"{expected}; keep the lines '# BEGIN SOLUTION {name}' and '# END SOLUTION' "
                    "around your code")
            lines = theirs.splitlines(keepends=True)
            bodies = [lines[r["begin"] + 1:r["end"]] for r in found]
        sources[rel] = render(text, regions, _take_bodies(name, bodies))
    return sources


def _take_bodies(name, bodies):
    """A ``replace`` for :func:`render`: ``name``'s regions get ``bodies`` in order, others keep theirs."""
    remaining = iter(bodies)

    def replace(region, body):
        return next(remaining) if region["exercise"] == name else body

    return replace


def run_tests(tree, entries, stream, timeout):
    """Run the tests ``entries`` (node ids) in ``tree`` with pytest; collect every outcome.

    Ids whose file or function does not exist are not passed to pytest but
    reported as missing.  pytest gets the test files, not node ids (one that does
    not exist, e.g. a renamed parametrisation, would stop the whole run), and the
    grading plugin deselects every collected test no entry names, so only the
    listed parametrisations run; a test module that fails to import does not stop
    the others.  Returns {"outcomes": {node id: (outcome, message)}, "missing":
    {entry: why}, "collect_errors": {file: message}, "note": why nothing ran, or None}.
    """
    tree = Path(tree)
    files, selected, missing = [], [], {}
    for entry in entries:
        base = entry.split("[", 1)[0]
        why = _missing_test(tree, base)
        if why:
            missing[entry] = why
            continue
        files.append(base.partition("::")[0])
        selected.append(entry)
    results = {"outcomes": {}, "missing": missing, "collect_errors": {}, "note": None}
    if files:
        results.update(_run_pytest(tree, list(dict.fromkeys(files)), selected, stream, timeout))
    return results


def _missing_test(tree, base):
    """Why the test ``file::name`` does not exist in ``tree``, or None if it does (or cannot tell)."""
    file, _, rest = base.partition("::")
    path = tree / file
    if not path.is_file():
        return f"test file {file} not found"
    try:
        scope = ast.parse(path.read_text(encoding="utf-8")).body
    except (SyntaxError, ValueError):
        return None                       # pytest will report why it cannot collect the file
    for name in rest.split("::") if rest else []:
        node = next((s for s in scope if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                         ast.ClassDef)) and s.name == name), None)
        if node is None:
            return f"test {base} not found (renamed or deleted?)"
        scope = node.body
    return None


# A pytest plugin for the grader's runs, written next to the JUnit file.  It runs only the
# tests the grader asked for (the node ids in tests.txt in its scratch folder; an id
# without [...] keeps all its parametrisations).  A failing property test (a stub fails on
# every example) is reported at its first failing example instead of after Hypothesis
# shrinks and explains it (about 10 s per test), Hypothesis writes no patch file for it
# (the patch writer parses the test file, about 1 s per run), and nothing is stored in the
# graded tree (Hypothesis's and pytest-benchmark's folders go to the scratch folder).
# Passing tests run exactly as under the suite's own profile.
GRADING_PLUGIN = '''"""pytest plugin of `minivae assignment grade` (written by minivae.assignment)."""
import os
import sys

SCRATCH = os.environ["MINIVAE_GRADING_SCRATCH"]     # the grader's folder for this run

# Hypothesis's pytest plugin skips its "add @example" patch when this import fails
sys.modules["hypothesis.extra._patching"] = None

try:    # Hypothesis's files go to the grader's scratch folder, not into the graded tree
    from hypothesis.configuration import set_hypothesis_home_dir
    set_hypothesis_home_dir(os.path.join(SCRATCH, "hypothesis"))
except ImportError:
    pass


def pytest_configure(config):
    if hasattr(config.option, "benchmark_storage"):      # pytest-benchmark's default is ./.benchmarks
        config.option.benchmark_storage = "file://" + os.path.join(SCRATCH, "benchmarks")


def pytest_sessionstart(session):
    try:
        from hypothesis import Phase, settings
    except ImportError:
        return
    # after the conftests loaded their profile, before any test module is imported
    settings.register_profile("minivae-grading", parent=settings.default, database=None,
                              phases=[Phase.explicit, Phase.reuse, Phase.generate])
    settings.load_profile("minivae-grading")


def _named(nodeid, entry):
    # minivae.assignment._matches; not imported: the graded tree's minivae may have no assignment
    return nodeid == entry or nodeid.startswith(entry + "[") or nodeid.startswith(entry + "::")


def pytest_collection_modifyitems(config, items):
    with open(os.path.join(SCRATCH, "tests.txt"), encoding="utf-8") as f:
        entries = [line for line in f.read().splitlines() if line]
    named = [any(_named(item.nodeid, e) for e in entries) for item in items]
    if not all(named):
        config.hook.pytest_deselected(items=[i for i, n in zip(items, named) if not n])
        items[:] = [i for i, n in zip(items, named) if n]
'''


def _run_pytest(tree, files, entries, stream, timeout):
    """One ``pytest -v`` of the tests ``entries`` in ``files`` of ``tree``; outcomes from its JUnit XML.

    Its verdicts are echoed to ``stream`` as they come.
    """
    with tempfile.TemporaryDirectory(prefix="minivae-grade-") as scratch:
        junit = os.path.join(scratch, "junit.xml")
        with open(os.path.join(scratch, "_minivae_grading.py"), "w", encoding="utf-8") as f:
            f.write(GRADING_PLUGIN)
        with open(os.path.join(scratch, "tests.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(entries) + "\n")
        env = _environment(tree)
        env["PYTHONPATH"] += os.pathsep + scratch
        env["MINIVAE_GRADING_SCRATCH"] = scratch
        command = [sys.executable, "-m", "pytest", "-v", "--color=no", "-p", "no:cacheprovider",
                   "-p", "_minivae_grading", "--continue-on-collection-errors", "--rootdir", str(tree),
                   "-o", "junit_family=xunit1", f"--junitxml={junit}", *files]
        verdicts, tail, stopped = {}, [], []
        process = subprocess.Popen(command, cwd=tree, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def stop():
            stopped.append(True)
            process.kill()

        timer = threading.Timer(timeout, stop)
        timer.start()
        try:
            for line in process.stdout:          # one line per finished test, as pytest -v goes
                line = line.rstrip()
                tail = (tail + [line])[-20:]
                match = _VERDICT.match(line)
                if match:
                    verdicts[match["id"]] = match["verdict"]
                    _say(stream, f"  {match['verdict']:<7} {match['id']}")
            process.wait()
        finally:
            timer.cancel()
        outcomes, collect_errors = {}, {}
        if not stopped and os.path.isfile(junit) and os.path.getsize(junit) > 0:
            outcomes, collect_errors = _read_junit(junit)
    note = None
    if stopped:
        note = f"not finished: the test run was stopped after {timeout:g} s (an endless loop?)"
        outcomes = {i: (_OUTCOME_OF_VERDICT[v], f"{v} (details lost: the run was stopped)")
                    for i, v in verdicts.items()}
    elif not outcomes and process.returncode not in (0, 1):
        last = next((line for line in reversed(tail) if line.strip() and not line.startswith("=")),
                    "no output")
        note = f"pytest stopped before running the tests (exit status {process.returncode}): {last}"
    return {"outcomes": outcomes, "collect_errors": collect_errors, "note": note}


def _read_junit(path):
    """{node id: (outcome, message)} and {test file: collection error} from pytest's xunit1 XML."""
    outcomes, collect_errors = {}, {}
    for case in ET.parse(path).getroot().iter("testcase"):
        file, classname, name = case.get("file", ""), case.get("classname", ""), case.get("name", "")
        failure, error, skipped = case.find("failure"), case.find("error"), case.find("skipped")
        if not classname and error is not None:          # the file could not be collected
            errors = [ln[1:].strip() for ln in (error.text or "").splitlines() if ln.startswith("E ")]
            collect_errors[file] = f"error collecting {file}: " + (errors[-1] if errors else
                                                                   error.get("message", ""))
            continue
        module = file[:-3].replace("/", ".")
        classes = classname[len(module) + 1:].split(".") if classname.startswith(module + ".") else []
        nodeid = "::".join([file, *classes, name])
        if failure is not None:
            outcomes[nodeid] = ("failed", failure.get("message", ""))
        elif error is not None:
            outcomes[nodeid] = ("error", error.get("message", ""))
        elif skipped is not None:
            outcomes[nodeid] = ("skipped", "skipped: " + skipped.get("message", ""))
        else:
            outcomes[nodeid] = ("passed", "")
    return outcomes, collect_errors


def _matches(nodeid, entry):
    return nodeid == entry or nodeid.startswith(entry + "[") or nodeid.startswith(entry + "::")


def _score(name, table, results, error=None):
    """One row of the report: the outcomes of the exercise's tests, its points, its first failure."""
    entry = table[name]
    tests = []
    if results is not None:
        for test in entry["tests"]:
            if test in results["missing"]:
                tests.append({"id": test, "outcome": "not run", "message": results["missing"][test]})
                continue
            matched = [(i, o) for i, o in results["outcomes"].items() if _matches(i, test)]
            if not matched:
                why = (results["collect_errors"].get(test.split("::")[0]) or results["note"]
                       or f"no test matched {test}")
                tests.append({"id": test, "outcome": "not run", "message": why})
            known = {t["id"] for t in tests}
            tests += [{"id": i, "outcome": outcome, "message": message}
                      for i, (outcome, message) in matched if i not in known]
    passed = sum(t["outcome"] == "passed" for t in tests)
    failures = [t["message"] for t in tests if t["outcome"] != "passed"]
    first = error
    if first is None and failures:
        first = (failures[0].strip().splitlines() or ["(no message)"])[0]
    return {"exercise": name, "title": entry["title"], "passed": passed, "total": len(tests),
            "points": round(entry["points"] * passed / len(tests), 2) if tests else 0.0,
            "max_points": entry["points"], "first_failure": first, "error": error, "tests": tests}


def _say(stream, line):
    stream.write(line + "\n")
    stream.flush()


def format_report(report):
    """The report of :func:`grade` as a text table, one row per exercise, then the totals."""
    rows = report["exercises"]
    width = max([len("exercise")] + [len(r["exercise"]) for r in rows])
    lines = [f"{report['directory']} ({report['mode']}"
             + (f", reference {report['reference']})" if report["reference"] else ")"),
             f"{'exercise':<{width}}  {'tests':>7}  {'points':>11}  first failure",
             "-" * (width + 50)]
    for r in rows:
        failure = ("error: " + r["error"]) if r["error"] else (r["first_failure"] or "")
        lines.append(f"{r['exercise']:<{width}}  {r['passed']:>3}/{r['total']:<3}  "
                     f"{r['points']:>5g}/{r['max_points']:<5g}  {failure}")
    lines.append("-" * (width + 50))
    lines.append(f"{'total':<{width}}  {report['passed']:>3}/{report['total']:<3}  "
                 f"{report['points']:>5g}/{report['max_points']:<5g}")
    done = sum(r["error"] is None and 0 < r["total"] == r["passed"] for r in rows)
    lines.append(f"\n{done} of {len(rows)} exercise(s) complete"
                 + ("" if report["all_passed"] else "; the first failure of each row says why"))
    return "\n".join(lines)
