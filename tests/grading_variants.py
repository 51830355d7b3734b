"""Submissions for tests/test_assignment.py: region bodies that are valid variants, wrong answers
or forgery attempts.  Each variant is (file, exercise, index of its region in that file, body,
top-level import lines); :func:`with_region` writes one into a file's text.

VALID: correct, written differently (one or more per exercise): full marks in both modes.
WRONG: a factor of 2 or a sign in one exercise: at most half, nothing for the gradient.
FORGERIES and RETURNED: stubs that try to earn points without computing the answer (forged
files, patched tools, early exits, endless loops, arrays that are not answers): nothing.
The functions at the end build the attempts that need a path (the results file, the
solution, a classmate's folder) or a process of their own; test_assignment.py runs those
where they cannot harm the machine."""
import re
import textwrap


def with_region(text, name, index, body, imports=()):
    """``text`` with the ``index``-th region of ``name`` holding ``body`` and ``imports`` added on top."""
    lines = text.splitlines(keepends=True)
    begins = [i for i, line in enumerate(lines) if re.match(rf"\s*# BEGIN SOLUTION {name}\s*$", line)]
    begin = begins[index]
    end = next(i for i in range(begin + 1, len(lines)) if re.match(r"\s*# END SOLUTION\s*$", lines[i]))
    indent = lines[begin][:len(lines[begin]) - len(lines[begin].lstrip())]
    new = textwrap.indent(textwrap.dedent(body).strip("\n") + "\n", indent)
    lines[begin + 1:end] = [new]
    out = "".join(lines)
    if imports:
        at = out.index("import numpy as np\n") + len("import numpy as np\n")
        out = out[:at] + "".join(line + "\n" for line in imports) + out[at:]
    return out


DIST, NN, ELBO = "minivae/distributions.py", "minivae/nn.py", "minivae/elbo.py"
VAE, EVALUATE, OPTIM = "minivae/vae.py", "minivae/evaluate.py", "minivae/optim.py"

# correct, written differently: other local names, a helper and an import inside the region,
# an import at the top of the file, a dict as the cache
VALID = {
    "analytic_kl": [
        (DIST, "analytic_kl", 0, """
            def half_sum(t):
                return 0.5 * t.sum(axis=-1)
            vm1 = em1(logvar)
            kl = half_sum(mu ** 2 + vm1 - logvar)
            cache = {"m": mu, "e": vm1}
            """, ["from numpy import expm1 as em1"]),
        (DIST, "analytic_kl", 1, """
            g = dkl.reshape(-1, 1)
            dmu, dlogvar = g * cache["m"], 0.5 * g * cache["e"]
            """, ()),
    ],
    "estimator_b": [
        (ELBO, "estimator_b", 0, """
            from minivae.distributions import kl_standard_normal as klf
            divergence, c = klf(mu, logvar)
            return np.mean(log_px_z, axis=0) - beta * divergence, {"kl_qp": divergence, "mine": c}
            """, ()),
        (ELBO, "estimator_b", 1, """
            n_samples = cache["eps"].shape[0]
            g = np.broadcast_to(delbo / n_samples, cache["log_px_z"].shape)
            gm, gl = dist.kl_standard_normal_backward(-cache["settings"]["beta"] * delbo, cache["mine"])
            return g, 0, gm, gl
            """, ()),
    ],
    "activation_backward": [
        (NN, "activation_backward", 0, """
            da = np.where(cache > 0, dh, 0)
            """, ()),
        (NN, "activation_backward", 1, """
            t = cache
            da = dh * (1 - t) * (1 + t)
            """, ()),
        (NN, "activation_backward", 2, """
            s = cache
            da = dh * (s - s ** 2)
            """, ()),
        (NN, "activation_backward", 3, """
            from scipy.special import expit
            a, _ = cache
            da = dh * expit(a)
            """, ()),
    ],
    "affine_backward": [
        (NN, "affine_backward", 0, """
            inputs, weights = cache
            dW = np.einsum("bi,bj->ij", inputs, dy)
            db = np.add.reduce(dy, axis=0)
            dx = np.einsum("bj,ij->bi", dy, weights) if input_grad else None
            """, ()),
        (NN, "affine_backward", 1, """
            x, W = cache
            dx = dy @ W.T if input_grad else None
            rows = len(x) // n_groups
            dW = np.stack([x[g * rows:(g + 1) * rows].T @ dy[g * rows:(g + 1) * rows] for g in range(n_groups)])
            db = np.stack([dy[g * rows:(g + 1) * rows].sum(0) for g in range(n_groups)])
            """, ()),
    ],
    "bernoulli_likelihood": [
        (DIST, "bernoulli_likelihood", 0, """
            # the textbook stable form: x l - log(1 + e^l) = x l - logaddexp(0, l)
            log_p = np.sum(x * logits - np.logaddexp(0, logits), axis=-1)
            cache = {"x": x, "logits": logits}
            """, ()),
        (DIST, "bernoulli_likelihood", 1, """
            p = 0.5 * (1 + np.tanh(0.5 * cache["logits"]))          # sigmoid, without overflow
            dlogits = dlog_p[..., None] * (cache["x"] - p)
            """, ()),
    ],
    "gaussian_log_density": [
        (DIST, "gaussian_log_density", 0, """
            sd = np.exp(logvar / 2)
            standard = (value - mean) / sd
            import math
            log_N = np.sum(-0.5 * standard ** 2 - np.log(sd) - 0.5 * math.log(2 * math.pi), axis=-1)
            cache = (standard, sd, value, mean, logvar)
            """, ()),
        (DIST, "gaussian_log_density", 1, """
            standard, sd, value, mean, logvar = cache
            g = dlog_N[..., None]
            dvalue = sum_to_shape(-g * standard / sd, np.shape(value))
            dmean = sum_to_shape(g * standard / sd, np.shape(mean))
            dlogvar = sum_to_shape(g * 0.5 * (standard ** 2 - 1), np.shape(logvar))
            """, ()),
        (DIST, "gaussian_log_density", 2, """
            import math
            log_p = np.sum(-0.5 * np.square(z), axis=-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)
            cache = z
            """, ()),
    ],
    "reparameterised_sample": [
        (DIST, "reparameterised_sample", 0, """
            std = np.sqrt(np.exp(logvar))
            z = np.add(mu, std * eps)
            cache = {"std": std, "eps": eps}
            """, ()),
        (DIST, "reparameterised_sample", 1, """
            dmu = np.sum(dz, axis=0)
            dlogvar = 0.5 * np.sum(dz * cache["eps"], axis=0) * cache["std"]
            """, ()),
    ],
    "estimator_a": [
        (ELBO, "estimator_a", 1, """
            n, b = cache["log_px_z"].shape
            w = cache["settings"]["beta"]
            per_sample = np.broadcast_to(delbo / n, (n, b))
            dz_prior = dist.standard_normal_log_density_backward(w * per_sample, cache["prior_cache"])
            dz_post, dmu, dlogvar = dist.gaussian_log_density_backward(-w * per_sample, cache["posterior_cache"])
            return per_sample, dz_prior + dz_post, dmu, dlogvar
            """, ()),
    ],
    "vae_backward": [
        (VAE, "vae_backward", 0, """
            grads = {**grads, **nn.mlp_backward(dh, cache["encoder_cache"], "encoder", self.activation)[1]}
            """, ()),
    ],
    "importance_sampled_log_likelihood": [
        (EVALUATE, "importance_sampled_log_likelihood", 0, """
            terms = [cache[name].astype(np.float64) for name in ("log_px_z", "log_pz")]
            log_w = terms[0] + terms[1] - cache["log_qz"].astype(np.float64)
            """, ()),
        (EVALUATE, "importance_sampled_log_likelihood", 1, """
            from scipy.special import logsumexp
            log_sum_w = np.logaddexp(log_sum_w, logsumexp(log_w, axis=0))
            log_sum_w2 = np.logaddexp(log_sum_w2, logsumexp(2 * log_w, axis=0))
            """, ()),
        (EVALUATE, "importance_sampled_log_likelihood", 2, """
            estimate[start:start + len(xb)] = log_sum_w - np.log(k)
            """, ()),
    ],
    "adam_update": [
        (OPTIM, "adam_update", 0, """
            # Kingma & Ba (2015), Algorithm 1, written out with the bias-corrected moments
            m[...] = self.beta1 * m + (1 - self.beta1) * g
            v[...] = self.beta2 * v + (1 - self.beta2) * g * g
            m_hat = m / (1 - self.beta1 ** self.t)
            v_hat = v / (1 - self.beta2 ** self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
            """, ()),
    ],
}

# more correct forms of the same regions (graded in a tree of their own): the stable log1p form
# of the Bernoulli likelihood, the textbook KL without expm1, sigmoid as 1 / (1 + exp(-a)),
# estimator B with its KL inline and dz as an array of zeros; and, for every other exercise, the
# same math summed or multiplied in another order (so rounded differently, which float32 shows):
# diff^2 / var, D log 2 pi outside the sum, beta applied after the backward (it is linear), the
# reparameterisation's backward of the decoder's and the estimator's dz apart, a max-shifted
# log-sum-exp, Adam's moments as m += (1 - beta1) (g - m), the affine gradients by np.dot and einsum
VALID_OTHER = {
    "bernoulli_likelihood": [
        (DIST, "bernoulli_likelihood", 0, """
            softplus = np.maximum(logits, 0) + np.log1p(np.exp(-np.abs(logits)))
            log_p = np.sum(x * logits - softplus, axis=-1)
            cache = (x, logits)
            """, ()),
        (DIST, "bernoulli_likelihood", 1, """
            x, logits = cache
            with np.errstate(over="ignore"):
                dlogits = dlog_p[..., None] * (x - 1 / (1 + np.exp(-logits)))
            """, ()),
    ],
    "activation_backward": [
        (NN, "activation_backward", 1, "da = dh * (1 - np.square(cache))\n", ()),
        (NN, "activation_backward", 2, "da = dh * cache - dh * cache ** 2\n", ()),
        (NN, "activation_backward", 3, """
            a, _ = cache
            with np.errstate(over="ignore"):
                da = dh / (1 + np.exp(-a))
            """, ()),
    ],
    "analytic_kl": [
        (DIST, "analytic_kl", 0, """
            kl = 0.5 * np.sum(mu ** 2 + np.exp(logvar) - 1 - logvar, axis=-1)
            cache = (mu, logvar)
            """, ()),
        (DIST, "analytic_kl", 1, """
            mu, logvar = cache
            g = np.expand_dims(dkl, -1)
            dmu, dlogvar = g * mu, g * 0.5 * (np.exp(logvar) - 1)
            """, ()),
    ],
    "gaussian_log_density": [
        (DIST, "gaussian_log_density", 0, """
            diff = value - mean
            var = np.exp(logvar)
            log_N = -0.5 * np.sum(diff ** 2 / var + logvar, axis=-1) - 0.5 * np.shape(diff)[-1] * LOG_2PI
            cache = {"diff": diff, "var": var, "shapes": (np.shape(value), np.shape(mean), np.shape(logvar))}
            """, ()),
        (DIST, "gaussian_log_density", 1, """
            g = dlog_N[..., None]
            score = cache["diff"] / cache["var"]
            value_shape, mean_shape, logvar_shape = cache["shapes"]
            dvalue = sum_to_shape(-g * score, value_shape)
            dmean = sum_to_shape(g * score, mean_shape)
            dlogvar = sum_to_shape(0.5 * g * (cache["diff"] * score - 1), logvar_shape)
            """, ()),
        (DIST, "gaussian_log_density", 2, """
            log_p = -0.5 * np.einsum("...d,...d->...", z, z) - 0.5 * z.shape[-1] * LOG_2PI
            cache = z
            """, ()),
    ],
    "reparameterised_sample": [
        (DIST, "reparameterised_sample", 0, """
            sd = np.exp(logvar / 2)
            z = mu + eps * sd
            cache = (eps, sd)
            """, ()),
        (DIST, "reparameterised_sample", 1, """
            eps, sd = cache
            dmu = np.add.reduce(dz, axis=0)
            dlogvar = np.sum(0.5 * dz * eps * sd, axis=0)
            """, ()),
    ],
    "estimator_a": [
        (ELBO, "estimator_a", 0, """
            log_pz, prior_cache = dist.standard_normal_log_density(z)
            log_qz, posterior_cache = dist.gaussian_log_density(z, mu, logvar)
            elbo = log_px_z.mean(axis=0) + beta * log_pz.mean(axis=0) - beta * log_qz.mean(axis=0)
            return elbo, {"log_pz": log_pz, "log_qz": log_qz, "prior_cache": prior_cache,
                          "posterior_cache": posterior_cache}
            """, ()),
        (ELBO, "estimator_a", 1, """
            # both log-densities' backwards are linear in their upstream: beta and the sign after
            L = cache["eps"].shape[0]
            d = np.broadcast_to(delbo / L, cache["log_px_z"].shape)
            dz_p = dist.standard_normal_log_density_backward(d, cache["prior_cache"])
            dz_q, dmu_q, dlogvar_q = dist.gaussian_log_density_backward(d, cache["posterior_cache"])
            beta = cache["settings"]["beta"]
            return d, beta * (dz_p - dz_q), -beta * dmu_q, -beta * dlogvar_q
            """, ()),
    ],
    "vae_backward": [
        (VAE, "vae_backward", 0, """
            _, encoder_grads = nn.mlp_backward(dh, cache["encoder_cache"], "encoder", self.activation)
            for key, value in encoder_grads.items():
                grads[key] = value
            """, ()),
        (VAE, "vae_backward", 1, """
            grads = {}
            if self.likelihood == "bernoulli":
                dout = dist.bernoulli_log_likelihood_backward(dlog_px_z, cache["likelihood_cache"])
            else:
                _, dout, dobs = dist.gaussian_log_density_backward(dlog_px_z, cache["likelihood_cache"])
                if self.obs_logvar == "learned":
                    grads["decoder.logvar"] = dobs
            dz_flat, decoder_grads = nn.mlp_backward(dout.reshape(L * B, self.x_dim), cache["decoder_cache"],
                                                     "decoder", self.activation)
            grads.update(decoder_grads)
            dz_decoder = dz_flat.reshape(L, B, D)
            # the reparameterisation's backward is linear in dz: the decoder's and the estimator's apart
            for part in [dz_decoder] + ([] if np.isscalar(dz) else [np.broadcast_to(dz, (L, B, D))]):
                dmu_part, dlogvar_part = dist.gaussian_sample_backward(part, cache["sample_cache"])
                dmu, dlogvar = dmu + dmu_part, dlogvar + dlogvar_part
            dz = dz + dz_decoder
            """, ()),
    ],
    "importance_sampled_log_likelihood": [
        (EVALUATE, "importance_sampled_log_likelihood", 0, """
            log_w = (cache["log_px_z"].astype(np.float64) - cache["log_qz"]) + cache["log_pz"]
            """, ()),
        (EVALUATE, "importance_sampled_log_likelihood", 1, """
            top = log_w.max(axis=0)                      # log-sum-exp shifted by the chunk's largest
            log_sum_w = np.logaddexp(log_sum_w, top + np.log(np.exp(log_w - top).sum(axis=0)))
            log_sum_w2 = np.logaddexp(log_sum_w2, 2 * top + np.log(np.exp(2 * (log_w - top)).sum(axis=0)))
            """, ()),
        (EVALUATE, "importance_sampled_log_likelihood", 2, """
            estimate[start:start + len(xb)] = log_sum_w + np.log(1 / k)
            """, ()),
    ],
    "adam_update": [
        (OPTIM, "adam_update", 0, """
            m += (1 - b1) * (g - m)                      # = b1 m + (1 - b1) g
            v += (1 - b2) * (g * g - v)
            p -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
            """, ()),
    ],
    "affine_backward": [
        (NN, "affine_backward", 0, """
            x, W = cache
            dW = np.dot(x.T, dy)
            db = np.ones(len(dy), dtype=dy.dtype) @ dy
            dx = np.dot(dy, W.T) if input_grad else None
            """, ()),
        (NN, "affine_backward", 1, """
            x, W = cache
            dx = np.dot(dy, W.T) if input_grad else None
            x_g, dy_g = np.stack(np.split(x, n_groups)), np.stack(np.split(dy, n_groups))
            dW = np.einsum("gbi,gbj->gij", x_g, dy_g)
            db = dy_g.sum(axis=1)
            """, ()),
    ],
    "estimator_b": [
        (ELBO, "estimator_b", 0, """
            kl = 0.5 * np.sum(mu ** 2 + np.expm1(logvar) - logvar, axis=-1)
            return log_px_z.mean(axis=0) - beta * kl, {"kl_qp": kl, "m": mu, "lv": logvar}
            """, ()),
        (ELBO, "estimator_b", 1, """
            n = cache["eps"].shape[0]
            g = (-cache["settings"]["beta"] * delbo)[:, None]
            dlog_px_z = np.ones_like(cache["log_px_z"]) * (delbo / n)
            return dlog_px_z, np.zeros_like(cache["eps"]), g * cache["m"], g * 0.5 * np.expm1(cache["lv"])
            """, ()),
    ],
}

# alternative stable formulas whose rounding differs from the reference's (float32 at saturation):
# full marks in both modes, every exercise (in whole mode the VAE's checks run them too)
VALID_FORMULAS = {
    "activation_backward": [
        (NN, "activation_backward", 1, """
            t = cache
            da = dh - dh * t**2
            """, ()),
        (NN, "activation_backward", 2, "da = dh * (cache - cache * cache)\n", ()),
    ],
    "bernoulli_likelihood": [
        (DIST, "bernoulli_likelihood", 0, """
            # x l and softplus(l) summed apart, each by a matrix product (its own order of addition)
            ones = np.ones(logits.shape[-1], logits.dtype)
            _, softplus_cache = nn.softplus_sum_forward(logits)
            log_p = (x * logits) @ ones - np.logaddexp(0, logits) @ ones
            cache = (x, softplus_cache)
            """, ()),
    ],
}

# wrong by a factor of 2 or a sign, in one exercise
WRONG = {
    "kl_dlogvar_doubled": ("analytic_kl", [(DIST, "analytic_kl", 1, """
        mu, var_minus_1 = cache
        dkl = dkl[:, None]
        dmu = dkl * mu
        dlogvar = dkl * var_minus_1
        """, ())]),
    "sigmoid_doubled": ("activation_backward", [(NN, "activation_backward", 2, """
        h = cache
        da = 2 * dh * h * (1 - h)
        """, ())]),
    "affine_db_sign": ("affine_backward", [(NN, "affine_backward", 0, """
        x, W = cache
        dx = dy @ W.T if input_grad else None
        dW = x.T @ dy
        db = -dy.sum(axis=0)
        """, ())]),
    "sample_dlogvar_doubled": ("reparameterised_sample", [(DIST, "reparameterised_sample", 1, """
        sigma, eps = cache
        dmu = dz.sum(axis=0)
        dlogvar = (dz * eps).sum(axis=0) * sigma
        """, ())]),
    "estimator_a_dz_sign": ("estimator_a", [(ELBO, "estimator_a", 1, """
        L, B, _ = cache["eps"].shape
        beta = cache["settings"]["beta"]
        dlog_px_z = np.broadcast_to(delbo / L, (L, B))
        dz = dist.standard_normal_log_density_backward(beta * dlog_px_z, cache["prior_cache"])
        dz_q, dmu, dlogvar = dist.gaussian_log_density_backward(-beta * dlog_px_z, cache["posterior_cache"])
        return dlog_px_z, dz - dz_q, dmu, dlogvar
        """, ())]),
}

_ZEROS = """
x, W = cache
dx, dW, db = np.zeros_like(x), np.zeros_like(W), np.zeros(dy.shape[1], dy.dtype)
"""

# stubs that try to forge their result instead of computing it
FORGERIES = {
    "atexit_writes_a_fake_result": ("affine_backward", [(NN, "affine_backward", 0, """
        import atexit, io, os
        def forge():
            buffer = io.BytesIO()
            np.savez(buffer, **{"gradient.0.0/dW": np.zeros((4, 3))})
            for fd in range(1, 20):
                try:
                    os.write(fd, buffer.getvalue())
                except OSError:
                    pass
            for path in ("results.json", "../results.json", os.path.expanduser("~/results.json")):
                with open(path, "w") as f:
                    f.write('{"score": 100}')
        atexit.register(forge)
        raise NotImplementedError
        """, ())]),
    "patches_numpy_and_pytest": ("affine_backward", [(NN, "affine_backward", 0, """
        import sys, types
        np.allclose = lambda *args, **kwargs: True
        np.testing.assert_allclose = lambda *args, **kwargs: None
        sys.modules["pytest"] = types.ModuleType("pytest")
        """ + _ZEROS, ())]),
    "exits_early": ("affine_backward", [(NN, "affine_backward", 0, """
        import os
        os._exit(0)
        """, ())]),
    "raises_system_exit": ("affine_backward", [(NN, "affine_backward", 0, """
        raise SystemExit(0)
        """, ())]),
    "loops_forever": ("affine_backward", [(NN, "affine_backward", 0, """
        while True:
            pass
        """, ())]),
}


def _returns(dx, dW, db, setup=""):
    """An affine_backward region leaving dx, dW, db as given (x, W = cache first)."""
    return ("affine_backward", [(NN, "affine_backward", 0, "x, W = cache\n" + textwrap.dedent(setup)
                                 + f"dx, dW, db = {dx}, {dW}, {db}\n", ())])


# arrays that are not the answer, however they compare: each earns nothing
RETURNED = {
    "nan": _returns("np.full_like(x, np.nan)", "np.full_like(W, np.nan)", "np.full_like(W[0], np.nan)"),
    "inf": _returns("np.full_like(x, np.inf)", "np.full_like(W, -np.inf)", "np.full_like(W[0], np.inf)"),
    "huge": _returns("np.full_like(x, 1e308)", "np.full_like(W, 1e308)", "np.full_like(W[0], -1e308)"),
    "float16": _returns("(dy @ W.T).astype(np.float16)", "(x.T @ dy).astype(np.float16)",
                        "dy.sum(0).astype(np.float16)"),
    "int": _returns("np.zeros(x.shape, int)", "np.zeros(W.shape, int)", "np.zeros(W.shape[1], int)"),
    "complex": _returns("(dy @ W.T) + 0j", "(x.T @ dy) + 0j", "dy.sum(0) + 0j"),
    "bool": _returns("np.ones(x.shape, bool)", "np.ones(W.shape, bool)", "np.ones(W.shape[1], bool)"),
    "strings": _returns("np.full(x.shape, 'x')", "np.full(W.shape, 'W')", "np.full(W.shape[1], 'b')"),
    "objects": _returns("np.empty(x.shape, object)", "np.empty(W.shape, object)", "np.empty(W.shape[1], object)"),
    "datetimes": _returns("np.zeros(x.shape, 'M8[s]')", "np.zeros(W.shape, 'M8[s]')",
                          "np.zeros(W.shape[1], 'M8[s]')"),
    "transposed": _returns("(dy @ W.T).T", "(x.T @ dy).T", "dy.sum(0)[None]"),
    "none": _returns("None", "None", "None"),
    "nested_lists": _returns("[[0.0]]", "[[0.0, 0.0]]", "[0.0]"),
    "equal_to_everything": _returns("Always(x.shape)", "Always(W.shape)", "Always(W.shape[1:])", """
        class Always(np.ndarray):
            # compares equal to anything and claims to be close to anything, holding zeros
            def __new__(cls, shape):
                return np.zeros(shape).view(cls)
            def __eq__(self, other):
                return np.ones(self.shape, bool)
            def __array_ufunc__(self, ufunc, method, *args, **kwargs):
                return np.ones(np.shape(args[0]), bool)
            __ne__ = __lt__ = __gt__ = __le__ = __ge__ = __eq__
        """),
    "array_like": _returns("Fake(x)", "Fake(W)", "Fake(W[0])", """
        class Fake:
            # an array-like whose __array__ gives zeros, __eq__ True and float() 0
            def __init__(self, like):
                self.shape, self.dtype = like.shape, like.dtype
            def __array__(self, dtype=None, copy=None):
                return np.zeros(self.shape, dtype or self.dtype)
            def __eq__(self, other):
                return True
            def __float__(self):
                return 0.0
        """),
    "changing_array": _returns("Shifty(x)", "Shifty(W)", "Shifty(W[0])", """
        class Shifty:
            # a different array each time it is asked for one
            calls = [0]
            def __init__(self, like):
                self.like = like
            def __array__(self, dtype=None, copy=None):
                self.calls[0] += 1
                return np.full_like(self.like, self.calls[0], dtype=dtype)
        """),
    "array_raises": _returns("Broken()", "Broken()", "Broken()", """
        class Broken:
            def __array__(self, dtype=None, copy=None):
                raise RuntimeError("no array here")
        """),
    "masked": _returns("np.ma.masked_all(x.shape)", "np.ma.masked_all(W.shape)", "np.ma.masked_all(W.shape[1:])"),
    "matrix": _returns("np.asmatrix(np.zeros(x.shape))", "np.asmatrix(np.zeros(W.shape))", "np.zeros(W.shape[1])"),
    "recursion": _returns("deep(0)", "None", "None", """
        def deep(n):
            return deep(n + 1)
        """),
    # 72 MB once (beyond the grader's 64 MiB for all outputs), then raises
    "big_output": _returns("np.zeros(9_000_000)", "None", "None", """
        if getattr(np, "_sent", False):
            raise NotImplementedError
        np._sent = True
        """),
}


def forks_daemons():
    """Ten children that leave the worker's session and sleep, named mvdaemon (to be found after)."""
    return ("affine_backward", [(NN, "affine_backward", 0, """
        import ctypes, os, time
        for _ in range(10):
            try:
                if os.fork() == 0:
                    os.setsid()
                    ctypes.CDLL(None).prctl(15, b"mvdaemon", 0, 0, 0)     # PR_SET_NAME
                    time.sleep(30)
                    os._exit(0)
            except OSError:
                pass
        raise NotImplementedError
        """, ())])


def fork_bomb():
    """Forks until refused, in every child too, and never returns: only limits stop it."""
    return ("affine_backward", [(NN, "affine_backward", 0, """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
        """, ())])


def floods_output(megabytes=200):
    """Writes ``megabytes`` MB to every open descriptor (stdout, stderr, the worker's own output)."""
    return ("affine_backward", [(NN, "affine_backward", 0, f"""
        import os
        block = b"x" * (1 << 20)
        for fd in range(1, 20):
            try:
                for _ in range({megabytes}):
                    os.write(fd, block)
            except OSError:
                pass
        raise NotImplementedError
        """, ())])


def kills_the_grader():
    """Kills the process that started it (the grader, unless something stands in between)."""
    return ("affine_backward", [(NN, "affine_backward", 0, """
        import os, signal, time
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(0.5)                         # long enough for the kill to have landed
        raise NotImplementedError
        """, ())])


def writes_into_the_grader(results):
    """Writes a full score into ``results`` (where the grader writes its results) now, and from a
    child once the grader has written it, and tries to change its own tree and scratch folder."""
    forged = '{"score": 100, "tests": []}'
    return ("affine_backward", [(NN, "affine_backward", 0, f"""
        import os, sys, time
        def forge(paths):
            for path in paths:
                try:
                    with open(path, "w") as f:
                        f.write({forged!r})
                except OSError:
                    pass
        forge([os.path.join(sys.argv[1], "minivae", "nn.py"), "forged.json", {str(results)!r}])
        try:
            if os.fork() == 0:
                os.setsid()
                os.closerange(0, 1024)                  # let the grader stop waiting for its pipes
                for _ in range(150):                    # until the grader has written its results
                    time.sleep(0.1)
                    try:
                        if '"score": 0' in open({str(results)!r}).read():
                            forge([{str(results)!r}])
                            break
                    except OSError:
                        pass
                os._exit(0)
        except OSError:
            pass
        raise NotImplementedError
        """, ())])


def reads_the_solution(*roots):
    """Finds the reference nn.py (the installed package, its editable-install map, the given
    folders, other grading trees) and returns what its affine_backward returns."""
    return ("affine_backward", [(NN, "affine_backward", 0, f"""
        import glob, importlib.util, os, re, sys
        found = []
        for entry in list(sys.path):                       # the installed package and its map
            found += glob.glob(os.path.join(entry, "minivae", "nn.py"))
            for finder in glob.glob(os.path.join(entry, "__editable__*finder.py")):
                try:
                    found += [os.path.join(p, "nn.py") for p in re.findall(r"'([^']+/minivae)'", open(finder).read())]
                except OSError:
                    pass
        found += [os.path.join(r, "minivae", "nn.py") for r in {[str(r) for r in roots]!r}]
        found += glob.glob("/tmp/minivae-grade-*/minivae/nn.py")
        for path in found:
            if os.path.abspath(path).startswith(os.path.abspath(sys.argv[1])):
                continue
            try:
                spec = importlib.util.spec_from_file_location("stolen_nn", path)
                stolen = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(stolen)
                dx, dW, db = stolen.affine_backward(dy, cache, input_grad)
                break
            except Exception:
                continue
        else:
            raise NotImplementedError("no solution found")
        """, ())])


def copies_a_classmate(classmate):
    """Runs the affine_backward of ``classmate``'s submitted nn.py."""
    return ("affine_backward", [(NN, "affine_backward", 0, f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("classmate", {str(classmate)!r})
        theirs = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(theirs)
        dx, dW, db = theirs.affine_backward(dy, cache, input_grad)
        """, ())])


def waits_for_a_later_tree(folder):
    """activation_backward's tanh region: waits up to 8 s for another grading tree in ``folder``
    whose nn.py holds the reference tanh_backward, and uses it."""
    return ("activation_backward", [(NN, "activation_backward", 1, f"""
        import glob, importlib.util, time
        import sys
        for _ in range(80):
            trees = [p for p in glob.glob({str(folder)!r} + "/minivae-grade-*/minivae/nn.py")
                     if not p.startswith(sys.argv[1]) and "d tanh" + "(a)/da" in open(p).read()]
            if trees:
                break
            time.sleep(0.1)
        spec = importlib.util.spec_from_file_location("later", trees[0])
        later = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(later)
        da = later.tanh_backward(dh, cache)
        """, ())])


# ---------------------------------------------------------------- the attack matrix (issue 26)
# Written to run to their end in every mode: without the sandbox the worker drops to a uid of its
# own, which may not read a Python installed under /root, so these import only what the worker
# has loaded by then (os, sys, time, ctypes, re, fnmatch, importlib.util).  Each ends by raising
# RAN_TO_ITS_END and what it found, so a test can tell an attack the grader stopped from one
# that only failed to import something.
RAN_TO_ITS_END = "attack ran to its end"


def reads_every_copy(roots, scan_path=True):
    """Looks for a reference nn.py in ``roots`` (checkouts, installs), on Python's path and in its
    editable-install maps (``scan_path``) and in other grading trees under /tmp, and returns the
    first one's affine_backward."""
    return ("affine_backward", [(NN, "affine_backward", 0, f"""
        import fnmatch, importlib.util, os, re, sys
        found = [os.path.join(r, "minivae", "nn.py") for r in {[str(r) for r in roots]!r}]
        for entry in list(sys.path) if {scan_path!r} else []:
            found.append(os.path.join(entry or ".", "minivae", "nn.py"))
            try:
                names = os.listdir(entry or ".")
            except OSError:
                continue
            for name in fnmatch.filter(names, "__editable__*"):
                try:
                    text = open(os.path.join(entry, name)).read()
                except OSError:
                    continue
                found += [os.path.join(p, "nn.py") for p in re.findall(r"'([^']+/minivae)'", text)]
        try:
            found += [os.path.join("/tmp", d, "minivae", "nn.py") for d in os.listdir("/tmp")
                      if d.startswith("minivae-grade-")]
        except OSError:
            pass
        why = []
        for path in found:
            if os.path.realpath(path).startswith(os.path.realpath(sys.argv[1]) + os.sep):
                continue
            try:
                spec = importlib.util.spec_from_file_location("stolen_nn", path)
                stolen = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(stolen)
                dx, dW, db = stolen.affine_backward(dy, cache, input_grad)
                break
            except Exception as error:
                why.append(type(error).__name__)
        else:
            raise NotImplementedError("{RAN_TO_ITS_END}: read none of " + str(len(found)) + " " + " ".join(sorted(set(why))))
        """, ())])


def kills_everything(grader_uid, seconds=1.5):
    """SIGKILLs its parent, then every process it may signal (kill(-1)), for ``seconds``: with the
    grader's uid (no own uid, no PID namespace) it would kill the grader, so it stops and says so."""
    return ("affine_backward", [(NN, "affine_backward", 0, f"""
        import os, time
        if getattr(np, "_done", None):                       # the first case did it all
            raise NotImplementedError(np._done)
        if os.getpid() != 1 and os.getuid() in (0, {int(grader_uid)}):
            raise NotImplementedError("not isolated: the worker runs as uid " + str(os.getuid()))
        sent = []
        if os.getppid() > 1:
            try:
                os.kill(os.getppid(), 9)
                sent.append("parent killed")
            except OSError as error:
                sent.append("parent: " + type(error).__name__)
        end = time.monotonic() + {float(seconds)!r}
        while time.monotonic() < end:
            try:
                os.kill(-1, 9)
            except OSError:
                pass
            time.sleep(0.005)
        np._done = "{RAN_TO_ITS_END}: " + " ".join(sent)
        raise NotImplementedError(np._done)
        """, ())])


def forges_the_results(results):
    """Truncates and forges ``results`` (the file the grader writes) now, and from a setsid child
    named mvdaemon once the grader has written it."""
    forged = '{"score": 100, "tests": []}'
    return ("affine_backward", [(NN, "affine_backward", 0, f"""
        import ctypes, os, time
        if getattr(np, "_done", None):
            raise NotImplementedError(np._done)
        def forge():
            try:
                with open({str(results)!r}, "w") as f:
                    f.write({forged!r})
                return "forged"
            except OSError as error:
                return type(error).__name__
        first = forge()
        try:
            if os.fork() == 0:
                os.setsid()
                ctypes.CDLL(None).prctl(15, b"mvdaemon", 0, 0, 0)
                os.closerange(0, 1024)
                for _ in range(300):
                    time.sleep(0.05)
                    if os.path.exists({str(results)!r}):
                        forge()
                os._exit(0)
        except OSError:
            pass
        np._done = "{RAN_TO_ITS_END}: " + first
        raise NotImplementedError(np._done)
        """, ())])


def runs_a_classmate(classmate):
    """Runs the affine_backward of ``classmate``'s submitted nn.py (a path in the same class)."""
    return ("affine_backward", [(NN, "affine_backward", 0, f"""
        import importlib.util
        try:
            spec = importlib.util.spec_from_file_location("classmate", {str(classmate)!r})
            theirs = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(theirs)
        except OSError as error:
            raise NotImplementedError("{RAN_TO_ITS_END}: " + type(error).__name__)
        dx, dW, db = theirs.affine_backward(dy, cache, input_grad)
        """, ())])


def kl_from_diagnostics():
    """The KL exercise's value from topics.diagnostics.kl_per_dimension (the edition ships it)."""
    return ("analytic_kl", [(DIST, "analytic_kl", 0, """
        from minivae.topics import diagnostics
        kl = diagnostics.kl_per_dimension(mu, logvar).sum(axis=-1)
        cache = (mu, np.expm1(logvar))
        """, ())])


def waits_for_a_classmates_tree(seconds=4.0):
    """Waits up to ``seconds`` for another grading tree of affine_backward under /tmp holding a
    classmate's correct answer (graded at the same time), and returns what that returns."""
    return ("affine_backward", [(NN, "affine_backward", 0, f"""
        import importlib.util, os, sys, time
        if getattr(np, "_no_tree", None):                 # gave up at the first case: not again
            raise NotImplementedError(np._no_tree)
        end, seen = time.monotonic() + {float(seconds)!r}, {{}}
        while time.monotonic() < end:
            try:
                trees = [os.path.join("/tmp", d) for d in os.listdir("/tmp") if d.startswith("minivae-grade-affine")]
            except OSError:
                trees = []
            for tree in trees:
                if os.path.realpath(tree) == os.path.realpath(sys.argv[1]):
                    continue
                try:
                    if "dW = x.T @ dy" not in open(os.path.join(tree, "minivae", "nn.py")).read():
                        continue                          # not an honest classmate's answer
                    spec = importlib.util.spec_from_file_location("theirs", os.path.join(tree, "minivae", "nn.py"))
                    theirs = importlib.util.module_from_spec(spec)
                    spec.loader.exec_module(theirs)
                    dx, dW, db = theirs.affine_backward(dy, cache, input_grad)
                    break
                except Exception as error:
                    seen[type(error).__name__] = seen.get(type(error).__name__, 0) + 1
            else:
                time.sleep(0.05)
                continue
            break
        else:
            np._no_tree = "{RAN_TO_ITS_END}: used none " + repr(sorted(seen.items()))
            raise NotImplementedError(np._no_tree)
        """, ())])
