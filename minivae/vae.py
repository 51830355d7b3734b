"""The Variational Autoencoder (Kingma & Welling 2013): parameters, ELBO estimators, gradients.

The model, in the seed's notation (docs/seed.md; the formulas: docs/derivations.md)::

    encoder  x -> (mu, logvar) = MLP_phi(x)          q_phi(z|x) = N(mu, diag(exp(logvar)))
    sample   z = mu + exp(logvar / 2) * eps,  eps ~ N(0, I)        (reparameterisation)
    decoder  z -> MLP_theta(z)  = Bernoulli logits, or a Gaussian mean  -> p_theta(x|z)
    prior    p(z) = N(0, I)

The ELBO L(theta, phi; x) = E_q[log p_theta(x|z) + log p(z) - log q_phi(z|x)] is
estimated from L samples z(l) in two ways (Kingma & Welling 2013, Eq. 6 and 7)::

    estimator="A":  1/L sum_l [log p(x|z(l)) + log p(z(l)) - log q(z(l)|x)]
    estimator="B":  -KL(q(z|x) || p(z)) + 1/L sum_l log p(x|z(l))

and, with estimator="iwae", the L samples give the importance-weighted bound of Burda, Grosse &
Salakhutdinov (2016), log 1/L sum_l w_l with w_l = p(x|z(l)) p(z(l)) / q(z(l)|x): L_k for
k = L, a training objective that is L = 1's estimator A and tightens towards log p(x) as L grows.

``beta`` multiplies the KL part in both (1: the ELBO; < 1: the KL warm-up of early training).

Reading order: ``VAE.__init__`` (the parameters), ``forward`` (every intermediate, named),
``backward`` and ``backward_to_encoder_output`` (the same names in reverse), then the rest.

The paper's symbols and the code's shapes (Kingma & Welling 2013, Sec. 2-3 and App. C)::

    paper              code                    meaning
    x^(i), N           x[b], len(data)         a data point, the number of them
    M                  B                       minibatch size (rows of x)
    L                  L = n_samples           Monte Carlo samples per data point
    J                  D = z_dim               latent dimension
    D (App. C)         P = x_dim               data dimension (784 for MNIST)
    phi, theta         params["encoder.*"],    the encoder's and the decoder's parameters
                       params["decoder.*"]
    mu^(i), sigma^(i)  mu, exp(logvar / 2)     q_phi(z|x^(i)), each (B, D)
    eps^(l)            eps[l]                  noise, (L, B, D)
    z^(i,l)            z[l, b]                 z = mu + sigma * eps, (L, B, D)
    L~(theta, phi; x)  elbo[b]                 the per-example ELBO estimate
"""
import warnings

import numpy as np

from minivae import distributions as dist
from minivae import nn
from minivae.elbo import (estimator_a_backward, estimator_a_forward, estimator_b_backward,
                         estimator_b_forward, iwae_backward, iwae_forward)
from minivae.utils.memory import activation_count, check_fits, parameter_count
from minivae.utils.validation import (check_choice, check_count, check_counts, check_finite,
                                      check_float_dtype, check_number, check_numeric_array, check_rng,
                                      check_shape, check_unit_interval)

LIKELIHOODS = ("bernoulli", "gaussian")
ESTIMATORS = ("B", "A", "iwae")     # analytic KL (Eq. 7), full Monte Carlo (Eq. 6), IWAE bound


class VAE:
    """A VAE with MLP encoder and decoder; parameters in ``self.params`` (a dict of arrays).

    Parameter names: ``encoder.{k}.W``, ``encoder.{k}.b``, ``decoder.{k}.W``,
    ``decoder.{k}.b`` for layer k, and ``decoder.logvar`` when learned.  The
    encoder's last layer outputs 2 D numbers: mu is the first D, logvar the last D.

    Parameters
    ----------
    x_dim : int
        Data dimension P (784 for MNIST).
    z_dim : int
        Latent dimension D.
    hidden : sequence of int
        Hidden widths of the encoder; the decoder mirrors them (reversed).
        ``hidden=()`` makes both networks single affine maps.
    likelihood : {"bernoulli", "gaussian"}
        p_theta(x|z): Bernoulli with logits (binary or [0, 1] data) or a
        diagonal Gaussian.
    activation : {"relu", "tanh", "softplus", "sigmoid", "identity"}
        Activation after every hidden layer.
    dtype : numpy float dtype
        Every parameter and every intermediate uses it (float64 for gradient
        checks, float32 for speed).
    seed : int
        Seeds the initialisation and the model's own Generator ``self.rng``,
        used when a method is called without ``rng``.
    obs_logvar : "learned" or float
        Gaussian likelihood only: a learned per-dimension log-variance
        ``params["decoder.logvar"]`` of shape (P,), or a fixed value.
    init_std : float, optional
        Draw every initial weight and bias from N(0, init_std^2) (Kingma & Welling
        2013: 0.01) instead of the default He/Glorot scheme (:func:`minivae.nn.init_mlp`).
        Only the initial values depend on it, so it is not part of :meth:`config`.
    """

    def __init__(self, x_dim, z_dim, hidden=(400,), likelihood="bernoulli",
                 activation="relu", dtype=np.float64, seed=0, obs_logvar="learned", init_std=None):
        x_dim, z_dim = check_count(x_dim, "x_dim"), check_count(z_dim, "z_dim")
        hidden = check_counts(hidden, "hidden")
        if seed is not None:
            check_count(seed, "seed", low=0)
        check_choice(likelihood, "likelihood", LIKELIHOODS)
        check_choice(activation, "activation", nn.ACTIVATIONS)
        dtype = check_float_dtype(dtype)
        if likelihood == "gaussian" and obs_logvar != "learned":
            obs_logvar = check_number(obs_logvar, "obs_logvar ('learned' or a number)")
        if init_std is not None:      # a weight times a weight must fit in dtype
            init_std = check_number(init_std, "init_std", low=0, low_inclusive=False,
                                    high=float(np.sqrt(np.finfo(dtype).max)))
        n = parameter_count(x_dim, z_dim, hidden)      # float64 draws, cast: 8 + itemsize bytes each
        check_fits(f"a VAE with x_dim={x_dim}, z_dim={z_dim}, hidden={hidden}", n * (8 + dtype.itemsize))

        self.x_dim, self.z_dim, self.hidden = int(x_dim), int(z_dim), hidden
        self.likelihood, self.activation, self.dtype = likelihood, activation, dtype
        self.seed, self.obs_logvar, self.n_layers = seed, obs_logvar, len(hidden) + 1  # layers per network

        rng = np.random.default_rng(seed)
        self.params = {}
        self.params.update(nn.init_mlp([self.x_dim, *hidden, 2 * self.z_dim], rng,
                                       "encoder", dtype, activation, init_std))
        self.params.update(nn.init_mlp([self.z_dim, *reversed(hidden), self.x_dim], rng,
                                       "decoder", dtype, activation, init_std))
        if likelihood == "gaussian" and obs_logvar == "learned":
            self.params["decoder.logvar"] = np.zeros(self.x_dim, dtype=dtype)
        self.rng = np.random.default_rng(rng.integers(2**63))

    def config(self):
        """The constructor arguments, as a plain dict (what a checkpoint stores)."""
        return {"x_dim": self.x_dim, "z_dim": self.z_dim, "hidden": list(self.hidden),
                "likelihood": self.likelihood, "activation": self.activation,
                "dtype": self.dtype.name, "seed": self.seed, "obs_logvar": self.obs_logvar}

    def __repr__(self):
        return "VAE(" + ", ".join(f"{k}={v!r}" for k, v in self.config().items()) + ")"

    # ---- Forward and backward ----

    def forward(self, x, eps, estimator="B", beta=1.0, encoded=None):
        """Per-example ELBO estimates and every named intermediate.

        x: (B, P) data, eps: (L, B, D), their types and shapes checked here (O(1)), their
        values not (loss_and_grads and elbo scan them once per call); ``encoded``, an
        (h, encoder_cache) pair, replaces the encoder's pass (evaluation reuses one per batch;
        minivae.topics.diagnostics gives a q of its own, with encoder_cache None).
        Returns elbo: (B,) and ``cache``, a dict holding x, h (the encoder
        output), mu, logvar, eps, z, out (the decoder output: logits or mean),
        log_px_z, the KL terms (kl_qp for estimator B; log_pz and log_qz for A),
        the sub-caches the backward needs, and ``settings`` = {"estimator", "beta"}.
        """
        params, D = self.params, self.z_dim
        x, eps = self.check_data(x, values=False), self.check_noise(eps, len(x), values=False)
        check_choice(estimator, "estimator", ESTIMATORS)
        L, B = eps.shape[0], x.shape[0]

        # encoder: q_phi(z|x) = N(mu, diag(exp(logvar)))
        h, encoder_cache = encoded or nn.mlp_forward(params, "encoder", self.n_layers, x, self.activation)
        mu, logvar = h[:, :D], h[:, D:]

        # reparameterisation: z = mu + sigma * eps, all L samples at once
        z, sample_cache = dist.gaussian_sample(mu, logvar, eps)

        # decoder on the (L * B, D) stack of samples, folded back to (L, B, P)
        out_flat, decoder_cache = nn.mlp_forward(params, "decoder", self.n_layers,
                                                 z.reshape(L * B, D), self.activation)
        out = out_flat.reshape(L, B, self.x_dim)

        # reconstruction term log p_theta(x|z(l)): (L, B)
        if self.likelihood == "bernoulli":
            log_px_z, likelihood_cache = dist.bernoulli_log_likelihood(x, out)
        else:
            log_px_z, likelihood_cache = dist.gaussian_log_density(x, out, self._obs_logvar())

        # values under their names; the two settings of this pass apart, under "settings"
        cache = {"x": x, "h": h, "mu": mu, "logvar": logvar, "eps": eps, "z": z, "out": out,
                 "log_px_z": log_px_z, "settings": {"estimator": estimator, "beta": beta},
                 "encoder_cache": encoder_cache, "sample_cache": sample_cache,
                 "decoder_cache": decoder_cache, "likelihood_cache": likelihood_cache}

        # the estimator's own terms: -beta KL (B) or beta (log p(z) - log q(z|x)) (A)
        if estimator == "B":
            elbo, terms = estimator_b_forward(log_px_z, mu, logvar, beta)
        elif estimator == "A":
            elbo, terms = estimator_a_forward(log_px_z, z, mu, logvar, beta)
        else:       # "iwae": log 1/L sum_l w_l, no KL weight (_prepare refuses beta != 1)
            elbo, terms = iwae_forward(log_px_z, z, mu, logvar)
        cache.update(terms)
        cache["elbo"] = elbo
        return elbo, cache

    def backward(self, cache):
        """Gradients of loss = -mean_b elbo_b with respect to every parameter.

        Walks :meth:`forward` in reverse with the same names, in two parts:
        :meth:`backward_to_encoder_output` (estimator terms, likelihood,
        decoder, reparameterisation: up to dloss/dh at the encoder's output),
        then the encoder.  Returns a dict with the keys of ``self.params``.
        Derivation: docs/derivations.md, "Gradient of the ELBO estimators".
        """
        B = cache["x"].shape[0]
        # delbo[b] = dloss/delbo_b: loss = -(1/B) sum_b elbo_b, so every example gets -1/B
        delbo = np.full(B, -1.0 / B, dtype=self.dtype)
        dh, grads = self.backward_to_encoder_output(cache, delbo)

        # receives dh (B, 2D) and grads; must add the encoder's gradients to grads
        # BEGIN SOLUTION vae_backward
        # encoder: h = [mu, logvar]; dJ/dx is not needed (x is data), which skips a matrix product
        _, encoder_grads = nn.mlp_backward(dh, cache["encoder_cache"], "encoder", self.activation,
                                           input_grad=False)
        grads.update(encoder_grads)
        # END SOLUTION
        return grads

    def backward_to_encoder_output(self, cache, delbo, record=None):
        """Given delbo (B,) = d(objective)/d elbo_b, return dh (B, 2D) and the decoder's gradients.

        dh = d(objective)/dh at the encoder's output h = [mu, logvar]; the
        decoder's parameter gradients (and ``decoder.logvar``'s, if learned)
        come in a dict.  :meth:`backward` passes delbo = -1/B (the loss);
        ``minivae.topics.gradient_estimators`` passes +1/B per row to get the
        reparameterised gradient of the ELBO itself, one draw per row.
        ``record``, a dict, receives the gradients of the named intermediates
        (dlog_px_z (L, B), dz (L, B, D), dmu and dlogvar (B, D), dh), for a
        learner to inspect or check against finite differences (tutorial 08).
        """
        L, B, D = cache["eps"].shape

        # the estimator's terms in reverse: dlog_px_z (L, B), dz (0 or (L, B, D)), dmu, dlogvar (B, D)
        estimator = cache["settings"]["estimator"]
        if estimator == "B":
            dlog_px_z, dz, dmu, dlogvar = estimator_b_backward(delbo, cache)
        elif estimator == "A":
            dlog_px_z, dz, dmu, dlogvar = estimator_a_backward(delbo, cache)
        else:       # "iwae"
            dlog_px_z, dz, dmu, dlogvar = iwae_backward(delbo, cache)

        # receives dlog_px_z, dz, dmu, dlogvar (above), cache, L, B, D; must leave grads (the
        # decoder's gradients, and decoder.logvar's if learned) and dz (L, B, D), dmu and
        # dlogvar (B, D) as the totals of the gradients of the objective
        # BEGIN SOLUTION vae_backward
        # reconstruction term
        grads = {}
        if self.likelihood == "bernoulli":
            dout = dist.bernoulli_log_likelihood_backward(dlog_px_z, cache["likelihood_cache"])
        else:
            _, dout, dobs_logvar = dist.gaussian_log_density_backward(
                dlog_px_z, cache["likelihood_cache"])
            if self.obs_logvar == "learned":
                grads["decoder.logvar"] = dobs_logvar

        # decoder, on the folded (L * B, P) stack
        dz_flat, decoder_grads = nn.mlp_backward(dout.reshape(L * B, self.x_dim),
                                                 cache["decoder_cache"], "decoder", self.activation)
        grads.update(decoder_grads)
        dz = dz + dz_flat.reshape(L, B, D)

        # reparameterisation: z = mu + sigma * eps
        dmu_z, dlogvar_z = dist.gaussian_sample_backward(dz, cache["sample_cache"])
        dmu = dmu + dmu_z
        dlogvar = dlogvar + dlogvar_z
        # END SOLUTION

        # h = [mu, logvar]: the encoder's output gradient, its two halves side by side
        dh = np.concatenate([dmu, dlogvar], axis=1)
        if record is not None:
            record.update(dlog_px_z=dlog_px_z, dz=dz, dmu=dmu, dlogvar=dlogvar, dh=dh)
        return dh, grads

    # ---- Public API ----

    def loss_and_grads(self, x, *, n_samples=None, estimator="B", beta=1.0, rng=None,
                       eps=None, return_cache=False, check=True):
        """Negative ELBO estimate (nats per example, batch mean) and its gradients.

        Parameters
        ----------
        x : array (B, P)
            A batch of data; Bernoulli models need values in [0, 1].
        n_samples : int, optional
            L, Monte Carlo samples per example (default 1, or ``len(eps)``).
        estimator : {"B", "A", "iwae"}
            Estimator B (analytic KL), estimator A (all Monte Carlo), or the
            IWAE bound L_k with k = n_samples (Burda et al. 2016; beta must be 1).
        beta : float
            Weight of the KL part (1 = the ELBO).
        rng : numpy.random.Generator, optional
            Draws eps; default ``self.rng``.
        eps : array (L, B, D), optional
            Fixed noise: the result is then a deterministic function of the
            parameters (what a finite-difference check needs).
        return_cache : bool
            Also return the dict of named intermediates (see :meth:`forward`).
        check : bool
            Scan x's values (finite; in [0, 1] for a Bernoulli model).  A
            training loop that validated its whole data set once with
            :meth:`check_data` passes False to skip the scan on every batch;
            x's shape is checked and it is cast to the model dtype either way.
            With True, a NaN loss also gives a RuntimeWarning naming its cause.

        Returns
        -------
        loss : float
            -1/B sum_b ELBO_b.
        grads : dict
            dloss/dparam for every key of ``self.params``.
        cache : dict
            Only with ``return_cache=True``.
        """
        x, eps, beta = self._prepare(x, n_samples, estimator, beta, rng, eps, check)
        elbo, cache = self.forward(x, eps, estimator, beta)
        loss = -float(elbo.mean())
        if check and np.isnan(loss):     # warned, not raised: a grader compares NaN results too
            warnings.warn(self._why_nan(elbo, cache), RuntimeWarning, stacklevel=2)
        grads = self.backward(cache)
        if return_cache:
            return loss, grads, cache
        return loss, grads

    def elbo(self, x, *, n_samples=None, estimator="B", beta=1.0, rng=None, eps=None):
        """Per-example ELBO estimates, shape (B,), in nats (arguments as in loss_and_grads)."""
        x, eps, beta = self._prepare(x, n_samples, estimator, beta, rng, eps)
        elbo, cache = self.forward(x, eps, estimator, beta)
        if np.isnan(elbo).any():        # NaN is no value (0 inf, inf - inf); inf is an overflow
            raise ValueError(self._why_nan(elbo, cache))
        return elbo

    def encode(self, x):
        """q_phi(z|x): returns mu and logvar, each (B, D)."""
        x = self.check_data(x)
        self._check_memory(len(x), f"encoding {len(x)} examples")
        h, _ = nn.mlp_forward(self.params, "encoder", self.n_layers, x, self.activation)
        return h[:, :self.z_dim], h[:, self.z_dim:]

    def decode(self, z):
        """The mean of p_theta(x|z): sigmoid(logits) (Bernoulli) or the Gaussian mean; (N, D) -> (N, P)."""
        z = check_shape(check_numeric_array(z, "z"), "z", (None, self.z_dim))
        z = check_finite(z.astype(self.dtype, copy=False), "z")
        self._check_memory(len(z), f"decoding {len(z)} latent codes")
        out, _ = nn.mlp_forward(self.params, "decoder", self.n_layers, z, self.activation)
        if self.likelihood == "bernoulli":
            return dist.bernoulli_mean(out)
        return out

    def sample(self, n, rng=None):
        """n draws z ~ p(z) = N(0, I), decoded to the mean of p_theta(x|z): (n, P)."""
        n, rng = check_count(n, "n", low=0), check_rng(self.rng if rng is None else rng)
        self._check_memory(n, f"sample({n})")
        return self.decode(rng.standard_normal((n, self.z_dim), dtype=self.dtype))

    def reconstruct(self, x):
        """Decode the posterior mean: decode(mu(x)), shape (B, P)."""
        mu, _ = self.encode(x)
        return self.decode(mu)

    # ---- Helpers: input checks ----

    def _obs_logvar(self):
        if self.obs_logvar == "learned":
            return self.params["decoder.logvar"]
        return np.full(self.x_dim, self.obs_logvar, dtype=self.dtype)

    def check_data(self, x, name="x", values=True):
        """Return x as a (B, P) array of the model dtype, or raise a ValueError saying why not.

        Used on every batch here and, once, on whole data sets by the training loop; ``name`` is
        the argument the messages speak of.  ``values=False``: type and shape only (O(1)).
        """
        x = check_shape(check_numeric_array(x, name), name, ("B", self.x_dim))   # a row per example
        x = x.astype(self.dtype, copy=False)
        if values:
            check_finite(x, name)
            if self.likelihood == "bernoulli":
                check_unit_interval(x, name, " (a Bernoulli likelihood; pixels 0-255? divide by 255)")
        return x

    def _prepare(self, x, n_samples, estimator, beta, rng, eps, check=True):
        """Check loss_and_grads'/elbo's arguments, draw eps if not given: x, eps (model dtype), beta."""
        x = self.check_data(x, values=check)
        check_choice(estimator, "estimator", ESTIMATORS)
        beta = check_number(beta, "beta", low=0)          # a Python float: keeps float32 float32
        if estimator == "iwae" and beta != 1:
            raise ValueError(f"beta must be 1 for the IWAE bound (estimator='iwae', no KL weight), "
                             f"got {beta!r}")
        B = x.shape[0]
        if eps is None:
            n_samples = check_count(1 if n_samples is None else n_samples, "n_samples")
            rng = check_rng(self.rng if rng is None else rng)
            self._check_memory(n_samples * B, f"n_samples={n_samples} draws for {B} examples")
            eps = rng.standard_normal((n_samples, B, self.z_dim), dtype=self.dtype)
        else:
            eps = self.check_noise(eps, B, n_samples=n_samples)
        return x, eps, beta

    def check_noise(self, eps, B, name="eps", n_samples=None, values=True):
        """Return eps as an (L, B, D) array of the model dtype, or raise a ValueError saying why not.

        ``n_samples``: the L asked for, if any; ``values=False``: no scan for NaN and inf."""
        eps = check_numeric_array(eps, name)
        L = "n_samples" if n_samples is None else check_count(n_samples, "n_samples")
        check_shape(eps, name, (L, B, self.z_dim))
        return (check_finite(eps, name) if values else eps).astype(self.dtype, copy=False)

    def _check_memory(self, rows, what):      # a pass over `rows` codes that cannot fit: a ValueError
        check_fits(what, activation_count(self.x_dim, self.z_dim, self.hidden, rows) * self.dtype.itemsize)

    def _why_nan(self, elbo, cache):
        """The message naming why an ELBO computed from finite x and eps is NaN."""
        bad = [k for k, p in self.params.items() if not np.isfinite(p).all()]
        logvar = cache["logvar"][np.isfinite(cache["logvar"])]
        limit = np.log(np.finfo(self.dtype).max)      # exp(+-logvar) overflows beyond it
        reason = f"params[{bad[0]!r}] holds NaN or inf (a diverged training step?)" if bad else ""
        if logvar.size and np.abs(logvar).max() > limit:
            reason = (f"the encoder's log-variance reaches {logvar[np.argmax(np.abs(logvar))]:g}, "
                      f"beyond +-{limit:.1f} where exp(logvar) or exp(-logvar) overflows "
                      f"{self.dtype.name}; use float64, or estimator='B' (no exp(-logvar))")
        elif not bad:
            k = max(self.params, key=lambda k: np.abs(self.params[k]).max(initial=0))
            reason = (f"the network's arithmetic overflowed; the largest parameter is params[{k!r}], "
                      f"up to {np.abs(self.params[k]).max():.3g} in size (init_std too large?)")
        b = int(np.argmax(np.isnan(elbo)))
        return f"the ELBO estimate must be a number, got nan for example {b} (x and eps are finite): {reason}"

