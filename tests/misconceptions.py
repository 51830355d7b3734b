"""The misconception bank: known-wrong solutions a class of students writes, one per misconception.

BANK: name -> exercise, the misconception (what the student believed), see (the docs section
that derives the right formula), points (what the grader gives it, out of the exercise's), and
regions: [(file, index of the exercise's region in that file, body)].  Planted into the
reference (minivae.assignment.selftest) each must earn exactly ``points`` from the grader and
from the student's local check alike, and fewer than full marks; tests/test_misconceptions.py
checks this, and the messages.  The bodies repeat solution lines, so the leak scan keeps this
file out of every student edition."""

DIST, NN, ELBO = "minivae/distributions.py", "minivae/nn.py", "minivae/elbo.py"
VAE, EVALUATE, OPTIM = "minivae/vae.py", "minivae/evaluate.py", "minivae/optim.py"
D = "docs/derivations.md"


def entry(exercise, misconception, see, points, *regions):
    return {"exercise": exercise, "misconception": misconception, "see": see, "points": points,
            "regions": list(regions)}


_ADAM = """
b1, b2, t = self.beta1, self.beta2, self.t
m *= b1
m += (1.0 - b1) * {m_term}
v *= b2
v += (1.0 - b2) * {v_term}
c1, c2 = 1.0 - b1 ** {t}, 1.0 - b2 ** {t}
p -= self.lr * (m / c1) / ({root} + {eps})
"""


def adam(**parts):
    fill = {"m_term": "g", "v_term": "g * g", "t": "t", "root": "np.sqrt(v / c2)", "eps": "self.eps", **parts}
    return (OPTIM, 0, _ADAM.format(**fill))


BANK = {
    # ---- affine_backward
    "affine_dW_transposed": entry("affine_backward", "dW = dy^T x: the product taken in the order of y = x W, "
                                  "so dW has the shape of W^T", f"{D}#affine-layer", 0, (NN, 0, """
        x, W = cache
        dx = dy @ W.T if input_grad else None
        dW = dy.T @ x
        db = dy.sum(axis=0)
        """)),
    "affine_db_mean_over_batch": entry("affine_backward", "db as the mean of dy over the batch: the bias is "
                                       "added to every row, so its gradient is their sum", f"{D}#affine-layer", 0, (NN, 0, """
        x, W = cache
        dx = dy @ W.T if input_grad else None
        dW = x.T @ dy
        db = dy.mean(axis=0)
        """)),
    "affine_db_not_summed": entry("affine_backward", "db = dy: the sum over the batch forgotten",
                                  f"{D}#affine-layer", 0, (NN, 0, """
        x, W = cache
        dx = dy @ W.T if input_grad else None
        dW = x.T @ dy
        db = dy
        """)),
    "affine_dW_averaged_over_batch": entry("affine_backward", "dW divided by the batch size: the loss's mean is "
                                           "the caller's business, not the layer's", f"{D}#affine-layer", 0, (NN, 0, """
        x, W = cache
        dx = dy @ W.T if input_grad else None
        dW = x.T @ dy / len(x)
        db = dy.sum(axis=0)
        """)),
    # ---- activation_backward
    "relu_derivative_at_the_wrong_side": entry("activation_backward", "relu'(a) = 1 where a >= 0 taken from h >= 0: "
                                               "h = 0 for every negative a, so every off unit passes its gradient",
                                               f"{D}#activations", 0, (NN, 0, """
        h = cache
        da = dh * (h >= 0)
        """)),
    "sigmoid_prime_as_s": entry("activation_backward", "sigmoid'(a) written as sigmoid(a): the factor 1 - s missing",
                                f"{D}#activations", 0, (NN, 2, """
        h = cache
        da = dh * h
        """)),
    "tanh_prime_without_square": entry("activation_backward", "tanh'(a) = 1 - tanh(a): the square missing",
                                       f"{D}#activations", 0, (NN, 1, """
        h = cache
        da = dh * (1 - h)
        """)),
    "tanh_prime_sign_flipped": entry("activation_backward", "tanh'(a) = tanh(a)^2 - 1: the sign of the derivative "
                                     "flipped", f"{D}#activations", 0, (NN, 1, """
        h = cache
        da = dh * (h * h - 1)
        """)),
    "softplus_prime_as_softplus": entry("activation_backward", "softplus'(a) written as softplus(a) (it is sigmoid(a))",
                                        f"{D}#activations", 0, (NN, 3, """
        a, h = cache
        da = dh * h
        """)),
    # ---- bernoulli_likelihood
    "bce_gradient_sign": entry("bernoulli_likelihood", "the gradient of the cross-entropy loss (sigmoid(l) - x) used "
                               "for the log-likelihood's: its sign flipped", f"{D}#bernoulli-likelihood", 3, (DIST, 1, """
        x, softplus_cache = cache
        dlogits = nn.softplus_sum_backward(dlog_p, softplus_cache) - x * dlog_p[..., None]
        """)),
    "bernoulli_naive_log_sigmoid": entry("bernoulli_likelihood", "x log sigmoid(l) + (1 - x) log(1 - sigmoid(l)) "
                                         "written out: exact at moderate logits, -inf or NaN at large ones",
                                         f"{D}#bernoulli-likelihood", 6, (DIST, 0, """
        p = 1 / (1 + np.exp(-logits))
        log_p = (x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=-1)
        softplus_sum, softplus_cache = nn.softplus_sum_forward(logits)
        cache = (x, softplus_cache)
        """)),
    "bce_on_grey_pixels_as_binary": entry("bernoulli_likelihood", "the likelihood of binary pixels applied to grey "
                                          "ones by rounding them: x l - softplus(l) holds for any x in [0, 1]",
                                          f"{D}#bernoulli-likelihood", 2, (DIST, 0, """
        xb = np.round(x)
        log_p = (xb * logits).sum(axis=-1)
        softplus_sum, softplus_cache = nn.softplus_sum_forward(logits)
        log_p -= softplus_sum
        cache = (xb, softplus_cache)
        """)),
    # ---- gaussian_log_density
    "gaussian_std_for_variance": entry("gaussian_log_density", "the squared distance divided by the standard deviation "
                                       "exp(logvar / 2) instead of the variance", f"{D}#gaussian-log-density", 0, (DIST, 0, """
        inv_var = np.exp(-0.5 * logvar)
        diff = value - mean
        log_N = -0.5 * (LOG_2PI + logvar + diff * diff * inv_var).sum(axis=-1)
        cache = (inv_var, diff, np.shape(value), np.shape(mean), np.shape(logvar))
        """)),
    "gaussian_dmean_not_summed_over_samples": entry("gaussian_log_density", "dmean left with the shape of the "
                                                    "broadcast: the sum over the axes mean was broadcast along missing",
                                                    f"{D}#gaussian-log-density", 3, (DIST, 1, """
        inv_var, diff, value_shape, mean_shape, logvar_shape = cache
        dlog_N = dlog_N[..., None]
        ddiff = dlog_N * (-diff * inv_var)
        dvalue = sum_to_shape(ddiff, value_shape)
        dmean = -ddiff
        dlogvar = sum_to_shape(dlog_N * (-0.5 + 0.5 * diff * diff * inv_var), logvar_shape)
        """)),
    "gaussian_dlogvar_half_dropped": entry("gaussian_log_density", "d/dlogvar of -logvar/2 - diff^2 e^-logvar / 2 "
                                           "taken without its 1/2", f"{D}#gaussian-log-density", 3, (DIST, 1, """
        inv_var, diff, value_shape, mean_shape, logvar_shape = cache
        dlog_N = dlog_N[..., None]
        ddiff = dlog_N * (-diff * inv_var)
        dvalue = sum_to_shape(ddiff, value_shape)
        dmean = sum_to_shape(-ddiff, mean_shape)
        dlogvar = sum_to_shape(dlog_N * (-1 + diff * diff * inv_var), logvar_shape)
        """)),
    "standard_normal_dz_sign": entry("gaussian_log_density", "d/dz of -z^2/2 taken as +z", f"{D}#gaussian-log-density", 3,
                                     (DIST, 3, """
        z = cache
        dz = dlog_p[..., None] * z
        """)),
    "gaussian_log_2pi_dropped": entry("gaussian_log_density", "the normalising constant log(2 pi) / 2 per dimension "
                                      "left out of the log-density", f"{D}#gaussian-log-density", 4, (DIST, 0, """
        inv_var = np.exp(-logvar)
        diff = value - mean
        log_N = -0.5 * (logvar + diff * diff * inv_var).sum(axis=-1)
        cache = (inv_var, diff, np.shape(value), np.shape(mean), np.shape(logvar))
        """)),
    # ---- analytic_kl
    "kl_half_dropped": entry("analytic_kl", "the KL without its factor 1/2, in the value and the gradient",
                             f"{D}#analytic-kl", 0, (DIST, 0, """
        var_minus_1 = np.expm1(logvar)
        kl = (mu * mu + (var_minus_1 - logvar)).sum(axis=-1)
        cache = (mu, var_minus_1)
        """), (DIST, 1, """
        mu, var_minus_1 = cache
        dkl = dkl[:, None]
        dmu = 2 * dkl * mu
        dlogvar = dkl * var_minus_1
        """)),
    "kl_sign_flipped": entry("analytic_kl", "the KL's sign flipped (it is -KL that appears in the ELBO, not the KL)",
                             f"{D}#analytic-kl", 0, (DIST, 0, """
        var_minus_1 = np.expm1(logvar)
        kl = -0.5 * (mu * mu + (var_minus_1 - logvar)).sum(axis=-1)
        cache = (mu, var_minus_1)
        """), (DIST, 1, """
        mu, var_minus_1 = cache
        dkl = -dkl[:, None]
        dmu = dkl * mu
        dlogvar = dkl * 0.5 * var_minus_1
        """)),
    "kl_averaged_over_D": entry("analytic_kl", "the KL averaged over the D latent dimensions instead of summed",
                                f"{D}#analytic-kl", 0, (DIST, 0, """
        var_minus_1 = np.expm1(logvar)
        kl = 0.5 * (mu * mu + (var_minus_1 - logvar)).mean(axis=-1)
        cache = (mu, var_minus_1)
        """), (DIST, 1, """
        mu, var_minus_1 = cache
        dkl = dkl[:, None] / mu.shape[-1]
        dmu = dkl * mu
        dlogvar = dkl * 0.5 * var_minus_1
        """)),
    "kl_dlogvar_half_dropped": entry("analytic_kl", "d/dlogvar of (e^logvar - 1 - logvar) / 2 taken without its 1/2",
                                     f"{D}#analytic-kl", 3, (DIST, 1, """
        mu, var_minus_1 = cache
        dkl = dkl[:, None]
        dmu = dkl * mu
        dlogvar = dkl * var_minus_1
        """)),
    # ---- reparameterised_sample
    "sample_variance_as_std": entry("reparameterised_sample", "sigma = exp(logvar): the variance used as the standard "
                                    "deviation", f"{D}#reparameterised-sample", 0, (DIST, 0, """
        sigma = np.exp(logvar)
        z = mu + sigma * eps
        cache = (sigma, eps)
        """), (DIST, 1, """
        sigma, eps = cache
        dmu = dz.sum(axis=0)
        dlogvar = (dz * eps).sum(axis=0) * sigma
        """)),
    "sample_logvar_as_std": entry("reparameterised_sample", "sigma = logvar: the log-variance used as the standard "
                                  "deviation", f"{D}#reparameterised-sample", 0, (DIST, 0, """
        sigma = logvar
        z = mu + sigma * eps
        cache = (sigma, eps)
        """), (DIST, 1, """
        sigma, eps = cache
        dmu = dz.sum(axis=0)
        dlogvar = (dz * eps).sum(axis=0)
        """)),
    "sample_dmu_mean_over_samples": entry("reparameterised_sample", "dmu as the mean of dz over the L samples: each "
                                          "sample adds its own path to mu, so the gradients add up",
                                          f"{D}#reparameterised-sample", 3, (DIST, 1, """
        sigma, eps = cache
        dmu = dz.mean(axis=0)
        dlogvar = (dz * eps).sum(axis=0) * 0.5 * sigma
        """)),
    "sample_dlogvar_half_dropped": entry("reparameterised_sample", "dsigma/dlogvar = sigma: the 1/2 of "
                                         "sigma = exp(logvar / 2) dropped", f"{D}#reparameterised-sample", 3, (DIST, 1, """
        sigma, eps = cache
        dmu = dz.sum(axis=0)
        dlogvar = (dz * eps).sum(axis=0) * sigma
        """)),
    # ---- estimator_b
    "estimator_b_kl_added": entry("estimator_b", "the KL added to the ELBO instead of subtracted",
                                  f"{D}#the-two-estimators-kingma--welling-2013-eq-6-7", 0, (ELBO, 0, """
        kl_qp, kl_cache = dist.kl_standard_normal(mu, logvar)
        elbo = log_px_z.mean(axis=0) + beta * kl_qp
        return elbo, {"kl_qp": kl_qp, "kl_cache": kl_cache}
        """), (ELBO, 1, """
        L, B, _ = cache["eps"].shape
        dlog_px_z = np.broadcast_to(delbo / L, (L, B))
        dmu, dlogvar = dist.kl_standard_normal_backward(cache["settings"]["beta"] * delbo, cache["kl_cache"])
        return dlog_px_z, 0, dmu, dlogvar
        """)),
    "estimator_b_sum_over_samples": entry("estimator_b", "log p(x|z) summed over the L samples instead of averaged",
                                          f"{D}#the-two-estimators-kingma--welling-2013-eq-6-7", 0, (ELBO, 0, """
        kl_qp, kl_cache = dist.kl_standard_normal(mu, logvar)
        elbo = log_px_z.sum(axis=0) - beta * kl_qp
        return elbo, {"kl_qp": kl_qp, "kl_cache": kl_cache}
        """), (ELBO, 1, """
        L, B, _ = cache["eps"].shape
        dlog_px_z = np.broadcast_to(delbo, (L, B))
        dmu, dlogvar = dist.kl_standard_normal_backward(-cache["settings"]["beta"] * delbo, cache["kl_cache"])
        return dlog_px_z, 0, dmu, dlogvar
        """)),
    "estimator_b_beta_ignored": entry("estimator_b", "beta left out of the backward: the KL's gradient unweighted",
                                      f"{D}#the-two-estimators-kingma--welling-2013-eq-6-7", 6, (ELBO, 1, """
        L, B, _ = cache["eps"].shape
        dlog_px_z = np.broadcast_to(delbo / L, (L, B))
        dmu, dlogvar = dist.kl_standard_normal_backward(-delbo, cache["kl_cache"])
        return dlog_px_z, 0, dmu, dlogvar
        """)),
    # ---- estimator_a
    "estimator_a_log_ratio_flipped": entry("estimator_a", "log q(z|x) - log p(z) added where log p(z) - log q(z|x) "
                                           "belongs", f"{D}#the-two-estimators-kingma--welling-2013-eq-6-7", 0, (ELBO, 0, """
        log_pz, prior_cache = dist.standard_normal_log_density(z)
        log_qz, posterior_cache = dist.gaussian_log_density(z, mu, logvar)
        elbo = (log_px_z + beta * (log_qz - log_pz)).mean(axis=0)
        return elbo, {"log_pz": log_pz, "log_qz": log_qz, "prior_cache": prior_cache,
                      "posterior_cache": posterior_cache}
        """), (ELBO, 1, """
        L, B, _ = cache["eps"].shape
        beta = cache["settings"]["beta"]
        dlog_px_z = np.broadcast_to(delbo / L, (L, B))
        dz = dist.standard_normal_log_density_backward(-beta * dlog_px_z, cache["prior_cache"])
        dz_q, dmu, dlogvar = dist.gaussian_log_density_backward(beta * dlog_px_z, cache["posterior_cache"])
        return dlog_px_z, dz + dz_q, dmu, dlogvar
        """)),
    "estimator_a_prior_path_missing": entry("estimator_a", "dz from log q(z|x) only: z also reaches the ELBO through "
                                            "log p(z)", f"{D}#the-two-estimators-kingma--welling-2013-eq-6-7", 4, (ELBO, 1, """
        L, B, _ = cache["eps"].shape
        beta = cache["settings"]["beta"]
        dlog_px_z = np.broadcast_to(delbo / L, (L, B))
        dz_q, dmu, dlogvar = dist.gaussian_log_density_backward(-beta * dlog_px_z, cache["posterior_cache"])
        return dlog_px_z, dz_q, dmu, dlogvar
        """)),
    "estimator_a_dz_sign": entry("estimator_a", "the prior's and the posterior's gradients in z subtracted: the sign "
                                 "of log q is already in dlog_qz", f"{D}#the-two-estimators-kingma--welling-2013-eq-6-7", 4,
                                 (ELBO, 1, """
        L, B, _ = cache["eps"].shape
        beta = cache["settings"]["beta"]
        dlog_px_z = np.broadcast_to(delbo / L, (L, B))
        dz = dist.standard_normal_log_density_backward(beta * dlog_px_z, cache["prior_cache"])
        dz_q, dmu, dlogvar = dist.gaussian_log_density_backward(-beta * dlog_px_z, cache["posterior_cache"])
        return dlog_px_z, dz - dz_q, dmu, dlogvar
        """)),
    # ---- vae_backward
    "vae_direct_kl_path_dropped": entry("vae_backward", "mu and logvar get their gradient only through the sample z: "
                                        "the estimator's own gradient in them (the KL's) is dropped",
                                        f"{D}#gradient-of-the-elbo-estimators", 0, (VAE, 1, """
        grads = {}
        if self.likelihood == "bernoulli":
            dout = dist.bernoulli_log_likelihood_backward(dlog_px_z, cache["likelihood_cache"])
        else:
            _, dout, dobs_logvar = dist.gaussian_log_density_backward(dlog_px_z, cache["likelihood_cache"])
            if self.obs_logvar == "learned":
                grads["decoder.logvar"] = dobs_logvar
        dz_flat, decoder_grads = nn.mlp_backward(dout.reshape(L * B, self.x_dim), cache["decoder_cache"],
                                                 "decoder", self.activation)
        grads.update(decoder_grads)
        dz = dz + dz_flat.reshape(L, B, D)
        dmu, dlogvar = dist.gaussian_sample_backward(dz, cache["sample_cache"])
        """)),
    "vae_estimator_dz_dropped": entry("vae_backward", "dz from the decoder only: estimator A's log p(z) - log q(z|x) "
                                      "depends on z too", f"{D}#gradient-of-the-elbo-estimators", 0, (VAE, 1, """
        grads = {}
        if self.likelihood == "bernoulli":
            dout = dist.bernoulli_log_likelihood_backward(dlog_px_z, cache["likelihood_cache"])
        else:
            _, dout, dobs_logvar = dist.gaussian_log_density_backward(dlog_px_z, cache["likelihood_cache"])
            if self.obs_logvar == "learned":
                grads["decoder.logvar"] = dobs_logvar
        dz_flat, decoder_grads = nn.mlp_backward(dout.reshape(L * B, self.x_dim), cache["decoder_cache"],
                                                 "decoder", self.activation)
        grads.update(decoder_grads)
        dz = dz_flat.reshape(L, B, D)
        dmu_z, dlogvar_z = dist.gaussian_sample_backward(dz, cache["sample_cache"])
        dmu = dmu + dmu_z
        dlogvar = dlogvar + dlogvar_z
        """)),
    # ---- importance_sampled_log_likelihood
    "iwae_without_log_k": entry("importance_sampled_log_likelihood", "log sum_i w_i taken for the bound: the mean "
                                "over the k samples needs - log k", "docs/evaluation.md#importance-sampled-log-likelihood",
                                3, (EVALUATE, 2, """
        estimate[start:start + len(xb)] = log_sum_w
        """)),
    "iwae_weights_without_q": entry("importance_sampled_log_likelihood", "log w = log p(x|z) + log p(z): the "
                                    "proposal's log q(z|x) left out of the importance weight",
                                    "docs/evaluation.md#importance-sampled-log-likelihood", 0, (EVALUATE, 0, """
        log_w = cache["log_px_z"].astype(np.float64) + cache["log_pz"]
        """)),
    # ---- adam_update
    "adam_eps_inside_sqrt": entry("adam_update", "eps added under the square root: sqrt(v_hat + eps)",
                                  f"{D}#optimisers", 0, adam(root="np.sqrt(v / c2 + self.eps)", eps="0.0")),
    "adam_bias_correction_one_step_off": entry("adam_update", "the bias corrections 1 - beta^t taken with t + 1 "
                                               "(t counts the steps already taken)", f"{D}#optimisers", 0,
                                               adam(t="(t + 1)")),
    "adam_moments_swapped": entry("adam_update", "the moments swapped: m averages g^2 and v averages g",
                                  f"{D}#optimisers", 0, adam(m_term="g * g", v_term="np.abs(g)")),
    "adam_no_bias_correction": entry("adam_update", "no bias correction: m and v used as they are, small in the "
                                     "first steps", f"{D}#optimisers", 0, adam(t="1e9")),
}
