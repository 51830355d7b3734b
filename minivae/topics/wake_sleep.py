"""Wake-sleep (Hinton, Dayan, Frey & Neal 1995) for the VAE's own encoder and decoder.

The baseline of Kingma & Welling (2013, Sec. 5 and Fig. 2): the same networks, trained
by two separate objectives instead of one ELBO. ::

    wake   z = mu + sigma * eps ~ q_phi(z|x), with NO gradient into phi (z is a sample);
           ascend log p_theta(x, z) = log p_theta(x|z) + log p(z) in theta (the decoder)
    sleep  z ~ p(z) = N(0, I), x ~ p_theta(x|z) (Bernoulli draws, no gradient into theta);
           ascend log q_phi(z|x) in phi (the encoder): q learns to invert the generative model

log p(z) does not depend on theta, so the wake gradient is the reconstruction term's alone;
the sleep phase's x is discrete, so nothing flows back through it.  The two losses are
-mean log p(x, z) (wake, per example, mean over the L samples) and -mean log q(z|x) (sleep).
Bernoulli likelihood only (the paper's MNIST setting: the sleep phase samples binary images).

Every gradient comes from the model's and the distributions' own backward functions (the wake
phase's decoder gradient is ``VAE.backward_to_encoder_output``, not a second copy); with the noise
fixed (eps for wake; z and u for sleep) each loss is a deterministic function of the
parameters, which tests/test_wake_sleep.py checks against central differences.
Derivation: docs/derivations.md, "Wake-sleep".
"""
import numpy as np

from minivae import distributions as dist
from minivae import nn
from minivae.data.preprocessing import bernoulli_binarize
from minivae.utils.validation import (check_count, check_finite, check_numeric_array, check_rng,
                                      check_shape, check_type)
from minivae.vae import VAE


def _check_bernoulli(model):
    if check_type(model, "model", VAE, "a minivae.VAE").likelihood != "bernoulli":
        raise ValueError(f"model.likelihood must be 'bernoulli' for wake-sleep here (the sleep phase "
                         f"draws binary images), got {model.likelihood!r}")


def _check_noise(a, name, columns, dtype, rows=None):
    """``a`` as a (rows, columns) array of ``dtype`` (any number of rows if rows is None), or raise."""
    a = check_shape(check_numeric_array(a, name), name, ("B" if rows is None else rows, columns))
    return check_finite(a, name).astype(dtype, copy=False)


def wake_loss_and_grads(model, x, eps):
    """Wake phase: loss = -1/(L B) sum_{l,b} log p_theta(x_b, z_lb), gradients in theta only.

    z = mu(x) + exp(logvar(x) / 2) eps is a sample of q_phi(z|x) treated as data (no
    gradient into the encoder).

    Parameters
    ----------
    model : VAE (Bernoulli likelihood)
    x : array (B, P), values in [0, 1]
    eps : array (L, B, D), standard normal noise

    Returns
    -------
    loss : float
    grads : dict
        d loss / d param for every ``decoder.*`` parameter.
    """
    _check_bernoulli(model)
    x = model.check_data(x)
    eps = model.check_noise(eps, x.shape[0])
    L, B, _ = eps.shape
    # the model's own forward: z = mu + sigma eps ~ q_phi(z|x), the decoder, log p_theta(x|z);
    # beta = 0 leaves elbo_b = mean_l log p_theta(x_b|z_lb), the wake objective's theta part
    _, cache = model.forward(x, eps, estimator="B", beta=0.0)
    log_pz, _ = dist.standard_normal_log_density(cache["z"])               # (L, B), no theta
    loss = -float((cache["log_px_z"] + log_pz).mean())

    # backward: only the reconstruction term depends on theta; the VAE's own backward gives
    # the decoder's gradients (the encoder's output gradient it also returns is not used: z is data)
    delbo = np.full(B, -1.0 / B, dtype=model.dtype)                        # d loss / d elbo_b
    _, grads = model.backward_to_encoder_output(cache, delbo)
    return loss, grads


def sleep_loss_and_grads(model, z, u):
    """Sleep phase: loss = -1/B sum_b log q_phi(z_b | x_b) for a dream (z_b, x_b), gradients in phi.

    z_b ~ p(z) is given; x_b = [u_b < sigmoid(decoder(z_b))] is a Bernoulli draw from
    p_theta(x|z_b), made from the uniform noise u (no gradient into the decoder).

    Parameters
    ----------
    model : VAE (Bernoulli likelihood)
    z : array (B, D), draws of N(0, I)
    u : array (B, P), draws of U(0, 1)

    Returns
    -------
    loss : float
    grads : dict
        d loss / d param for every ``encoder.*`` parameter.
    """
    _check_bernoulli(model)
    z = _check_noise(z, "z", model.z_dim, model.dtype)
    B, D = z.shape
    u = _check_noise(u, "u", model.x_dim, model.dtype, rows=B)
    # the dream: x ~ p_theta(x|z), binary, in the model dtype
    logits, _ = nn.mlp_forward(model.params, "decoder", model.n_layers, z, model.activation)
    x = (u < dist.bernoulli_mean(logits)).astype(model.dtype)
    # the recognition model on the dream
    h, encoder_cache = nn.mlp_forward(model.params, "encoder", model.n_layers, x, model.activation)
    mu, logvar = h[:, :D], h[:, D:]
    log_q_dream, q_cache = dist.gaussian_log_density(z, mu, logvar)      # (B,), one z per x
    loss = -float(log_q_dream.mean())

    # backward: loss -> log_qz -> (mu, logvar) = h -> encoder parameters
    dlog_q_dream = np.full(B, -1.0 / B, dtype=model.dtype)
    _, dmu, dlogvar = dist.gaussian_log_density_backward(dlog_q_dream, q_cache)
    dh = np.concatenate([dmu, dlogvar], axis=1)
    _, grads = nn.mlp_backward(dh, encoder_cache, "encoder", model.activation, input_grad=False)
    return loss, grads


def wake_sleep_step(model, opt, xb, rng, *, n_samples=1, n_dreams=None):
    """One wake-sleep update on a binary minibatch xb (B, P) with one optimiser over all parameters.

    The wake gradients (decoder) and the sleep gradients (encoder) have disjoint keys,
    so one ``opt.step`` applies both.  ``n_dreams`` (default B) is the sleep batch size.
    Draws eps (n_samples, B, D), then z (n_dreams, D) and u (n_dreams, P) from ``rng``.
    Returns (wake_loss, sleep_loss).
    """
    rng = check_rng(rng)
    _check_bernoulli(model)
    B = len(model.check_data(xb, "xb", values=False))     # O(1); the wake phase scans the values
    n_samples = check_count(n_samples, "n_samples")
    n_dreams = B if n_dreams is None else check_count(n_dreams, "n_dreams")
    eps = rng.standard_normal((n_samples, B, model.z_dim), dtype=model.dtype)
    wake_loss, grads = wake_loss_and_grads(model, xb, eps)
    z = rng.standard_normal((n_dreams, model.z_dim), dtype=model.dtype)
    u = rng.uniform(size=(n_dreams, model.x_dim)).astype(model.dtype)
    sleep_loss, sleep_grads = sleep_loss_and_grads(model, z, u)
    grads.update(sleep_grads)
    opt.step(grads)
    return wake_loss, sleep_loss


def train_step(model, opt, xb, rng, beta=1.0):
    """:func:`wake_sleep_step` as the ``step`` of :func:`minivae.train`: binarise xb, update.

    ``xb`` (B, P) holds grey levels in [0, 1] (already validated by train); fresh Bernoulli
    draws make it binary, as AEVB's :func:`minivae.training.train_step` does, from the same
    Generator.  Wake-sleep has no KL weight, so ``beta`` is ignored.  Returns the wake loss.
    """
    wake_loss, _ = wake_sleep_step(model, opt, bernoulli_binarize(xb, rng, check=False), rng)
    return wake_loss
