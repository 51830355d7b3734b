"""The exercise table of the course assignments, and the helpers that read it.

:data:`EXERCISES` is plain data: per exercise, the functions whose marked regions
it covers, the hint its stubs raise, where the math is, its points and the tests
that grade it.  Everything else of minivae.assignment reads this table (or a
table of the same shape, for a toy package).
"""

PACKAGE = "minivae"               # the package whose source the table describes


class AssignmentError(ValueError):
    """A problem with the markers, the exercise table, a tree or a request; the message says which."""


# name -> title, functions ("file::qualified.name", each must hold a region of the
# exercise), hint (one line, shown in the stub), see (where the math is), points, and
# tests (pytest node ids; an id without [...] stands for all its parametrisations).
# Grading isolates each exercise (see the docstring of minivae.assignment), so a test may
# grade an exercise although it also runs other exercises' code.

EXERCISES = {
    "affine_backward": {
        "title": "Backward pass of the affine layer y = x W + b",
        "functions": ["minivae/nn.py::affine_backward", "minivae/nn.py::affine_backward_per_group"],
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
        "functions": ["minivae/elbo.py::estimator_b_forward", "minivae/elbo.py::estimator_b_backward"],
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
        "functions": ["minivae/elbo.py::estimator_a_forward", "minivae/elbo.py::estimator_a_backward"],
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
        "functions": ["minivae/evaluate.py::log_weights_from_cache", "minivae/evaluate.py::iwae_bound"],
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
        "hint": "Kingma & Ba's Algorithm 1: m = b1 m + (1 - b1) g and v = b2 v + (1 - b2) g^2 "
                "(update m, v and p in place), the bias corrections 1 - b1^t and 1 - b2^t, then "
                "p -= lr m_hat / (sqrt(v_hat) + eps)",
        "see": "docs/derivations.md#optimisers",
        "points": 8,
        "tests": [
            "tests/test_optim.py::test_adam_two_steps_match_hand_computation",
            "tests/test_optim.py::test_adam_three_steps_with_a_large_eps_match_hand_computation",
            "tests/test_optim.py::test_adam_is_invariant_to_rescaling_the_gradients_and_eps_together",
            "tests/test_optim.py::test_each_optimizer_minimises_a_convex_quadratic[adam]",
            "tests/test_optim.py::test_float32_params_and_state_stay_float32[adam]",
            "tests/test_optim.py::test_step_updates_the_callers_arrays_in_place[adam]",
            "tests/test_optim.py::test_step_in_blocks_allocates_no_parameter_sized_arrays[adam]",
            "tests/test_optim.py::test_state_dict_round_trip_through_npz_resumes_bit_for_bit[float32-adam]",
            "tests/test_optim.py::test_state_dict_round_trip_through_npz_resumes_bit_for_bit[float64-adam]",
        ],
    },
}


# The named checks of each exercise: what the trusted grader scores (minivae.assignment.grader).
# name -> {points, probe (a function of minivae/assignment/probes.py), cases (keyword arguments
# of the probe; each case runs on every seed)}.  A check earns its points only if every output
# of every case, on every seed (fixed ones and ones drawn at grading time), has the reference's
# shape and dtype and is close to it.  Value checks hold at most half of an exercise's points,
# so a wrong gradient, which fails every gradient and dtype/extremes check, keeps at most half.

ACTIVATIONS = ("relu", "tanh", "sigmoid", "softplus")
DTYPES = ("float64", "float32")
_VAE_SHAPES = [{"likelihood": lik, "L": L, "hidden": hidden, "activation": act}
               for lik in ("bernoulli", "gaussian") for L in (1, 3)
               for hidden, act in (((5,), "tanh"), ((), "relu"))]


# The parameter scale of vae_backward's extreme cases, per estimator and dtype: as large as keeps a
# correct gradient well conditioned, so that rounding, which correct code written differently does
# differently, cannot decide the grade.  At scale s the encoder's logvar reaches about -4 s.
# Estimator A's gradient adds terms of size |eps| / sigma that cancel (log q(z|x) through z and through
# mu), so its rounding grows as exp(-logvar / 2): float64 at 10 and float32 at 5 (at 30 and 10, a
# correct log-density written differently lost the check on 7 and 1 of 600 draws; at 10 and 5:
# 0 of 6000, at most 1e-4 and 3e-2 of the tolerance).  B has no such terms: float64 keeps 30
# (0 of 600, 1e-5 of the tolerance); float32 at 10 (at 30, 3 of 25 hidden seeds failed).
_EXTREME_SCALE = {("B", "float64"): 30.0, ("B", "float32"): 10.0, ("A", "float64"): 10.0, ("A", "float32"): 5.0}


def _vae(part, kl, extra=None, **common):
    """The VAE probe's cases of one part and estimator over the standard shapes."""
    cases = [{"part": part, "kl": kl, **shape, **common} for shape in _VAE_SHAPES] + (extra or [])
    return cases


def _estimator_checks(kl):
    """The checks of one estimator, called as the VAE calls it: its ELBO and terms, the gradients of
    its terms, float32 and extremes."""
    return {
        "value": {"points": 4, "probe": "estimator",
                  "cases": [{"kl": kl, "L": L} for L in (1, 3)] + [{"kl": kl, "beta": 0.3, "L": 2}]},
        "gradient": {"points": 5, "probe": "estimator",
                     "cases": [{"part": "gradient", "kl": kl, "L": L} for L in (1, 3)]
                     + [{"part": "gradient", "kl": kl, "beta": 0.3, "L": 2}]},
        "float32_and_extremes": {"points": 2, "probe": "estimator",
                                 "cases": [{"part": p, "kl": kl, "dtype": d, "extreme": True, "L": 2}
                                           for p in ("value", "gradient") for d in DTYPES]},
    }


CHECKS = {
    "affine_backward": {
        "gradient": {"points": 4, "probe": "affine", "cases": [{}, {"input_grad": False}, {"groups": 2}]},
        # identity activations: the affine layers' chain rule alone (activations are the next exercise)
        "in_an_mlp": {"points": 2, "probe": "mlp",
                      "cases": [{"hidden": h, "activation": "identity"} for h in ((4, 3), (), (5,))]},
        "float32": {"points": 2, "probe": "affine", "cases": [{"dtype": "float32"}]},
    },
    "activation_backward": {
        "gradient": {"points": 4, "probe": "activation", "cases": [{"name": a} for a in ACTIVATIONS]},
        "in_an_mlp": {"points": 2, "probe": "mlp",
                      "cases": [{"activation": a, "hidden": h} for a in ACTIVATIONS for h in ((4, 3), (5,))]},
        "float32_and_extremes": {"points": 2, "probe": "activation",
                                 "cases": [{"name": a, "dtype": d, "extreme": True}
                                           for a in ACTIVATIONS for d in DTYPES]},
    },
    "bernoulli_likelihood": {
        "value": {"points": 3, "probe": "bernoulli", "cases": [{}, {"grey": True}]},
        "gradient": {"points": 3, "probe": "bernoulli", "cases": [{"part": "gradient"},
                                                                  {"part": "gradient", "grey": True}]},
        "float32_and_extremes": {"points": 2, "probe": "bernoulli",
                                 "cases": [{"part": p, "dtype": d, "extreme": True}
                                           for p in ("value", "gradient") for d in DTYPES]},
    },
    "gaussian_log_density": {
        "value": {"points": 3, "probe": "gaussian", "cases": [{"layout": lay} for lay in ("q", "p", "std")]},
        "gradient": {"points": 4, "probe": "gaussian",
                     "cases": [{"part": "gradient", "layout": lay} for lay in ("q", "p", "std")]},
        "float32_and_extremes": {"points": 2, "probe": "gaussian",
                                 "cases": [{"part": p, "layout": lay, "dtype": d, "extreme": True}
                                           for p in ("value", "gradient") for lay in ("q", "p", "std")
                                           for d in DTYPES]},
    },
    "analytic_kl": {
        "value": {"points": 3, "probe": "kl", "cases": [{}, {"near_prior": True}]},
        "gradient": {"points": 3, "probe": "kl", "cases": [{"part": "gradient"},
                                                           {"part": "gradient", "near_prior": True}]},
        "float32_and_extremes": {"points": 2, "probe": "kl",
                                 "cases": [{"part": p, "dtype": d, "extreme": True}
                                           for p in ("value", "gradient") for d in DTYPES]},
    },
    "reparameterised_sample": {
        "value": {"points": 3, "probe": "sample", "cases": [{"L": 1}, {"L": 3}]},
        "gradient": {"points": 4, "probe": "sample", "cases": [{"part": "gradient", "L": 1},
                                                               {"part": "gradient", "L": 3}]},
        "float32_and_extremes": {"points": 2, "probe": "sample",
                                 "cases": [{"part": p, "dtype": d, "extreme": True}
                                           for p in ("value", "gradient") for d in DTYPES]},
    },
    "estimator_b": _estimator_checks("B"),
    "estimator_a": _estimator_checks("A"),
    "vae_backward": {
        "gradient": {"points": 6, "probe": "vae",
                     "cases": _vae("gradient", "B") + _vae("gradient", "A") + [
                         {"part": "gradient", "likelihood": "gaussian", "obs_logvar": -1.0, "L": 2}]},
        "encoder_output": {"points": 4, "probe": "vae",
                           "cases": _vae("encoder_output", "B") + _vae("encoder_output", "A")},
        "float32_and_extremes": {"points": 2, "probe": "vae",
                                 # no hidden layer: a saturated tanh's 1 - t^2 is all rounding (two correct
                                 # formulas, 1 - t^2 and dh - dh t^2, disagree there), a relu's overflows
                                 "cases": [{"part": "gradient", "kl": k, "dtype": d, "scale": _EXTREME_SCALE[k, d],
                                            "L": 2, "likelihood": lik, "hidden": ()} for k in ("B", "A")
                                           for d in DTYPES for lik in ("bernoulli", "gaussian")]},
    },
    "importance_sampled_log_likelihood": {
        "log_weights": {"points": 3, "probe": "log_weights",
                        "cases": [{"L": 1}, {"L": 4}, {"likelihood": "gaussian"}]},
        "streamed_bound": {"points": 3, "probe": "iwae",
                           "cases": [{"k": 20, "chunk": 3}, {"k": 1, "chunk": 1}, {"k": 7, "chunk": 7}]},
        "float32": {"points": 2, "probe": "iwae", "cases": [{"dtype": "float32", "k": 10, "chunk": 4}]},
    },
    "adam_update": {
        # every check has a case with a large eps, where eps's place in the formula shows on any
        # draw: a verdict on eps alone (e.g. under the square root) must not hang on the hidden seed
        "first_step": {"points": 3, "probe": "adam", "cases": [{"steps": 1}, {"steps": 1, "eps": 1e-3}]},
        "later_steps": {"points": 3, "probe": "adam",
                        "cases": [{"steps": 4}, {"steps": 3, "beta1": 0.5, "beta2": 0.9, "eps": 1e-3}]},
        "float32": {"points": 2, "probe": "adam", "cases": [{"steps": 3, "dtype": "float32"},
                                                            {"steps": 3, "dtype": "float32", "eps": 1e-3}]},
    },
}
# The exercises whose reference code each exercise's checks run besides its own ("uses"): in an
# isolated grading, its worker's tree holds the reference of these and a stub for every other
# region, and an exercise is graded only after those it uses (minivae.assignment.grader).  So
# no worker can see, or keep for a later one, the answer of an exercise still to be graded.
_DISTRIBUTIONS = ["bernoulli_likelihood", "gaussian_log_density", "reparameterised_sample"]
USES = {
    "affine_backward": [], "bernoulli_likelihood": [], "gaussian_log_density": [], "analytic_kl": [],
    "reparameterised_sample": [], "adam_update": [],
    "activation_backward": ["affine_backward"],
    "estimator_b": ["analytic_kl"],
    "estimator_a": ["gaussian_log_density"],
    "vae_backward": ["affine_backward", "activation_backward", *_DISTRIBUTIONS, "analytic_kl",
                     "estimator_b", "estimator_a"],
    "importance_sampled_log_likelihood": [*_DISTRIBUTIONS, "estimator_a"],
}
for _name, _checks in CHECKS.items():
    EXERCISES[_name]["checks"] = _checks
    EXERCISES[_name]["uses"] = USES[_name]
    assert sum(c["points"] for c in _checks.values()) == EXERCISES[_name]["points"], _name


def levels(names, table=None):
    """``names`` in grading rounds: each round's exercises use (see USES) only earlier rounds' ones.

    Raises AssignmentError if the table's ``uses`` go round in a circle.
    """
    table = exercise_table(table)
    left, rounds = list(names), []
    while left:
        ready = [n for n in left if not set(table[n].get("uses", ())) & set(left)]
        if not ready:
            raise AssignmentError(f"the exercises {', '.join(left)} use each other in a circle")
        rounds.append(ready)
        left = [n for n in left if n not in ready]
    return rounds


def exercise_table(table=None):
    """``table``, or :data:`EXERCISES` if None: the one place every default table comes from.

    EXERCISES is looked up when called, so a test that swaps this module's
    EXERCISES swaps the default of every function of minivae.assignment.
    """
    return EXERCISES if table is None else table


def select(names, table=None):
    """The exercises ``names`` (all if None), checked against the table, in the table's order."""
    table = exercise_table(table)
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
    entry = exercise_table(table)[name]
    return f"Exercise {name}: {entry['hint']} (see {entry['see']})"

