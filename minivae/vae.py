"""The Variational Autoencoder (Kingma & Welling 2013): parameters, ELBO estimators, gradients.

The model, in the seed's notation (docs/seed.md; the formulas: docs/derivations.md):

    encoder  x -> (mu, logvar) = MLP_phi(x)          q_phi(z|x) = N(mu, diag(exp(logvar)))
    sample   z = mu + exp(logvar / 2) * eps,  eps ~ N(0, I)        (reparameterisation)
    decoder  z -> MLP_theta(z)  = Bernoulli logits, or a Gaussian mean  -> p_theta(x|z)
    prior    p(z) = N(0, I)

The ELBO L(theta, phi; x) = E_q[log p_theta(x|z) + log p(z) - log q_phi(z|x)] is
estimated from L samples z(l) in two ways (Kingma & Welling 2013, Eq. 6 and 7):

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
import numpy as np

from minivae import distributions as dist
from minivae import nn
from minivae.elbo import (estimator_a_backward, estimator_a_forward, estimator_b_backward,
                         estimator_b_forward, iwae_backward, iwae_forward)
from minivae.utils.validation import (check_choice, check_count, check_finite, check_float_dtype,
                            check_number, check_numeric_array, check_rng)

LIKELIHOODS = ("bernoulli", "gaussian")
ESTIMATORS = ("B", "A", "iwae")     # analytic KL (Eq. 7), full Monte Carlo (Eq. 6), IWAE bound


class VAE:
    """A VAE with MLP encoder and decoder; parameters in ``self.params`` (a dict of arrays).

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

    Parameter names: ``encoder.{k}.W``, ``encoder.{k}.b``, ``decoder.{k}.W``,
    ``decoder.{k}.b`` for layer k, and ``decoder.logvar`` when learned.  The
    encoder's last layer outputs 2 D numbers: mu is the first D, logvar the last D.
    """

    def __init__(self, x_dim, z_dim, hidden=(400,), likelihood="bernoulli",
                 activation="relu", dtype=np.float64, seed=0, obs_logvar="learned", init_std=None):
        if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
            raise TypeError(f"hidden must be a sequence of layer widths such as (400,), got {hidden!r}")
        hidden = tuple(hidden)
        for name, value in (("x_dim", x_dim), ("z_dim", z_dim)) + tuple(
                (f"hidden[{i}]", h) for i, h in enumerate(hidden)):
            check_count(value, name, low=1)
        hidden = tuple(int(h) for h in hidden)
        if seed is not None:
            check_count(seed, "seed", low=0)
        check_choice(likelihood, "likelihood", LIKELIHOODS)
        check_choice(activation, "activation", nn.ACTIVATIONS)
        dtype = check_float_dtype(dtype)
        if likelihood == "gaussian" and obs_logvar != "learned":
            obs_logvar = check_number(obs_logvar, "obs_logvar ('learned' or a number)")
        if init_std is not None:
            init_std = check_number(init_std, "init_std", low=0, low_inclusive=False)

        self.x_dim, self.z_dim, self.hidden = int(x_dim), int(z_dim), hidden
        self.likelihood, self.activation, self.dtype = likelihood, activation, dtype
        self.seed, self.obs_logvar = seed, obs_logvar
        self.n_layers = len(hidden) + 1          # affine layers in each network

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
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"VAE({args})"

    # ------------------------------------------------------------------
    # Forward and backward
    # ------------------------------------------------------------------

    def forward(self, x, eps, estimator="B", beta=1.0, encoded=None):
        """Per-example ELBO estimates and every named intermediate.

        x: (B, P) data (already validated, model dtype); eps: (L, B, D); ``encoded``, an
        (h, encoder_cache) pair, replaces the encoder's pass (evaluation reuses one per batch;
        minivae.topics.diagnostics gives a q of its own, with encoder_cache None).
        Returns elbo: (B,) and ``cache``, a dict holding x, h (the encoder
        output), mu, logvar, eps, z, out (the decoder output: logits or mean),
        log_px_z, the KL terms (kl_qp for estimator B; log_pz and log_qz for A),
        the sub-caches the backward needs, and ``settings`` = {"estimator", "beta"}.
        """
        params, D = self.params, self.z_dim
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
        # encoder: h = [mu, logvar]; dL/dx is not needed (x is data), which skips a matrix product
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

    # ------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------

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
        grads = self.backward(cache)
        if return_cache:
            return loss, grads, cache
        return loss, grads

    def elbo(self, x, *, n_samples=None, estimator="B", beta=1.0, rng=None, eps=None):
        """Per-example ELBO estimates, shape (B,), in nats (arguments as in loss_and_grads)."""
        x, eps, beta = self._prepare(x, n_samples, estimator, beta, rng, eps)
        elbo, _ = self.forward(x, eps, estimator, beta)
        return elbo

    def encode(self, x):
        """q_phi(z|x): returns mu and logvar, each (B, D)."""
        x = self.check_data(x)
        h, _ = nn.mlp_forward(self.params, "encoder", self.n_layers, x, self.activation)
        return h[:, :self.z_dim], h[:, self.z_dim:]

    def decode(self, z):
        """The mean of p_theta(x|z): sigmoid(logits) (Bernoulli) or the Gaussian mean.

        z: (N, D) -> (N, P).
        """
        z = check_numeric_array(z, "z").astype(self.dtype, copy=False)
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (N, {self.z_dim}), got {z.shape}")
        check_finite(z, "z")
        out, _ = nn.mlp_forward(self.params, "decoder", self.n_layers, z, self.activation)
        if self.likelihood == "bernoulli":
            return dist.bernoulli_mean(out)
        return out

    def sample(self, n, rng=None):
        """n draws z ~ p(z) = N(0, I), decoded to the mean of p_theta(x|z): (n, P)."""
        check_count(n, "n", low=0)
        rng = check_rng(self.rng if rng is None else rng)
        z = rng.standard_normal((int(n), self.z_dim), dtype=self.dtype)
        return self.decode(z)

    def reconstruct(self, x):
        """Decode the posterior mean: decode(mu(x)), shape (B, P)."""
        mu, _ = self.encode(x)
        return self.decode(mu)

    # ------------------------------------------------------------------
    # Helpers: input checks
    # ------------------------------------------------------------------

    def _obs_logvar(self):
        if self.obs_logvar == "learned":
            return self.params["decoder.logvar"]
        return np.full(self.x_dim, self.obs_logvar, dtype=self.dtype)

    def check_data(self, x, name="x", values=True):
        """Return x as a (B, P) array of the model dtype, or raise a ValueError saying why not.

        Used on every batch here and, once, on whole data sets by the training loop;
        ``name`` is the argument the messages speak of.  ``values=False`` checks
        only the type and shape (O(1)) and skips the scans over every value.
        """
        x = check_numeric_array(x, name)
        if x.ndim != 2 or x.shape[1] != self.x_dim:
            raise ValueError(f"{name} must have shape (B, {self.x_dim}) (one example per row), "
                             f"got shape {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"{name} is empty: it has no rows")
        x = x.astype(self.dtype, copy=False)
        if not values:
            return x
        check_finite(x, name)
        if self.likelihood == "bernoulli":
            lo, hi = x.min(), x.max()
            if lo < 0 or hi > 1:
                hint = " (pixels 0-255? divide by 255)" if hi > 1 else ""
                raise ValueError(f"a Bernoulli likelihood needs {name} in [0, 1], got values in "
                                 f"[{lo:g}, {hi:g}]{hint}")
        return x

    def _prepare(self, x, n_samples, estimator, beta, rng, eps, check=True):
        """Validate the arguments of loss_and_grads/elbo and draw eps if not given.

        Returns x and eps in the model dtype, and beta as a Python float.
        """
        x = self.check_data(x, values=check)
        check_choice(estimator, "estimator", ESTIMATORS)
        beta = check_number(beta, "beta", low=0)          # a Python float: keeps float32 float32
        if estimator == "iwae" and beta != 1:
            raise ValueError(f"the IWAE bound (estimator='iwae') has no KL weight: beta must be 1, got {beta!r}")
        B = x.shape[0]
        if eps is None:
            n_samples = 1 if n_samples is None else n_samples
            check_count(n_samples, "n_samples", low=1)
            rng = check_rng(self.rng if rng is None else rng)
            eps = rng.standard_normal((int(n_samples), B, self.z_dim), dtype=self.dtype)
        else:
            eps = self.check_noise(eps, B, n_samples=n_samples)
        return x, eps, beta

    def check_noise(self, eps, B, name="eps", n_samples=None):
        """Return eps as an (L, B, D) array of the model dtype, or raise a ValueError saying why not.

        ``n_samples``, if given, is the L the caller asked for; ``name`` is the
        argument the messages speak of.
        """
        eps = check_numeric_array(eps, name)
        L = eps.shape[0] if eps.ndim == 3 else n_samples or 1
        if L < 1 or eps.shape != (L, B, self.z_dim) or (n_samples is not None and n_samples != L):
            raise ValueError(f"{name} must have shape (n_samples, B, z_dim) = ({n_samples or L}, "
                             f"{B}, {self.z_dim}) with n_samples >= 1, got {eps.shape}")
        check_finite(eps, name)
        return eps.astype(self.dtype, copy=False)

