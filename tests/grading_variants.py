"""Submissions for tests/test_assignment.py: region bodies that are valid variants, wrong answers
or forgery attempts.  Each variant is (file, exercise, index of its region in that file, body,
top-level import lines); :func:`with_region` writes one into a file's text."""
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
        (NN, "activation_backward", 2, """
            s = cache
            da = dh * (s - s ** 2)
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
