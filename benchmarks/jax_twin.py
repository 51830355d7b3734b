"""The JAX twin of minivae's training step, written by hand in jax.numpy (no optax, no flax).

Used by ``compare_jax.py`` (the step, timed) and ``train_twins.py`` (whole trainings).  The
model is minivae's VAE with estimator B, the same formulas as :meth:`minivae.vae.VAE.forward`
(and as ``compare_torch.torch_loss``)::

    h = encoder(x);  mu, logvar = h[:, :D], h[:, D:]
    z = mu + exp(logvar / 2) eps                                  eps (L, B, D)
    log p(x|z) = sum_i [x_i l_i - log(1 + exp(l_i))],  l = decoder(z)   (Bernoulli, from logits)
    KL = 1/2 sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j)
    loss = -1/B sum_b (1/L sum_l log p(x_b|z_bl) - KL_b)

Parameters are a dict with minivae's names and layout (``encoder.0.W`` is (n_in, n_out), a
layer is x W + b), so minivae's initial parameters are used as they are.  Adam is PyTorch's
(and minivae's) update, defaults beta1 0.9, beta2 0.999, eps 1e-8::

    m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2
    p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)

One step (gather a minibatch, binarise it with fresh Bernoulli draws, draw eps, the loss, its
gradient by ``jax.value_and_grad``, Adam) is ONE ``jax.jit`` call: :func:`make_step`.

Threads: XLA reads ``XLA_FLAGS`` when its CPU backend starts, so :func:`xla_flags` must be in
the environment before the first JAX computation (the scripts re-execute themselves with it);
the CPUs a process may use (:func:`cpu_affinity`) are what really bounds XLA's threads.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np

ADAM = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}    # PyTorch's and minivae's defaults
ONE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def xla_flags(threads, current=None):
    """The XLA_FLAGS value for ``threads`` CPU threads: one thread has flags of its own.

    XLA has no flag for "n threads" on the CPU: with threads = 1 it is told not to run
    Eigen's matrix products multithreaded and to use one intra-op thread; with more, XLA
    uses every CPU the process may run on.  With jax 0.10.2 the one-thread flags alone were
    not enough (two of XLA's Eigen threads still ran the step at once, as without them), so
    the scripts also restrict the process to ``threads`` CPUs (:func:`cpu_affinity`).
    """
    current = (os.environ.get("XLA_FLAGS", "") if current is None else current).strip()
    if threads == 1 and ONE_THREAD_FLAGS not in current:
        return f"{current} {ONE_THREAD_FLAGS}".strip()
    return current


def cpu_affinity(threads):
    """The first ``threads`` CPUs this process may use (all of them if there are no more)."""
    allowed = sorted(os.sched_getaffinity(0))
    return set(allowed[:threads]) if threads < len(allowed) else set(allowed)


def params_from_minivae(model):
    """minivae's parameters (a dict of NumPy arrays) as JAX arrays, same names and shapes."""
    return {name: jnp.asarray(value) for name, value in model.params.items()}


def mlp(params, prefix, n_layers, x):
    """ReLU MLP with minivae's names: x W + b for each layer, ReLU between layers."""
    for k in range(n_layers):
        x = x @ params[f"{prefix}.{k}.W"] + params[f"{prefix}.{k}.b"]
        if k < n_layers - 1:
            x = jnp.maximum(x, 0.0)
    return x


def loss_fn(params, x, eps, n_layers):
    """-mean ELBO, estimator B (module docstring).  x (B, P) binary, eps (L, B, D) -> scalar."""
    L, B, D = eps.shape
    h = mlp(params, "encoder", n_layers, x)
    mu, logvar = h[:, :D], h[:, D:]
    z = mu + jnp.exp(0.5 * logvar) * eps
    logits = mlp(params, "decoder", n_layers, z.reshape(L * B, D)).reshape(L, B, -1)
    log_px_z = (x * logits - jnp.logaddexp(0.0, logits)).sum(-1)        # (L, B)
    kl = 0.5 * (mu * mu + jnp.exp(logvar) - 1.0 - logvar).sum(-1)         # (B,)
    return -(log_px_z.mean(0) - kl).mean()


def adam_init(params):
    """Adam's state: first and second moments (zeros like params) and the step count t = 0."""
    m = {name: jnp.zeros_like(p) for name, p in params.items()}
    v = {name: jnp.zeros_like(p) for name, p in params.items()}     # separate buffers (donated)
    return m, v, jnp.zeros((), jnp.int32)


def adam_update(params, grads, m, v, t, lr=ADAM["lr"], b1=ADAM["beta1"], b2=ADAM["beta2"],
                eps=ADAM["eps"]):
    """One Adam step (module docstring); returns new params, m, v, t."""
    t = t + 1
    c1 = 1.0 - b1 ** t.astype(jnp.float32)                 # bias corrections
    c2 = 1.0 - b2 ** t.astype(jnp.float32)
    m = {k: b1 * m[k] + (1.0 - b1) * g for k, g in grads.items()}
    v = {k: b2 * v[k] + (1.0 - b2) * g * g for k, g in grads.items()}
    params = {k: p - (lr / c1) * m[k] / (jnp.sqrt(v[k]) / jnp.sqrt(c2) + eps)
              for k, p in params.items()}
    return params, m, v, t


def init_state(model, seed):
    """The training state of the jitted step: (params, m, v, t, key, summed loss)."""
    params = params_from_minivae(model)
    m, v, t = adam_init(params)
    return params, m, v, t, jax.random.PRNGKey(seed), jnp.zeros((), jnp.float32)


def make_step(n_layers, z_dim, n_samples=1):
    """The whole training step as one jitted function.

    ``step(state, x_all, order, batch, batch_size)``: minibatch = the rows
    ``order[batch * batch_size:][:batch_size]`` of x_all (N, P), grey levels in [0, 1];
    binarised with fresh Bernoulli draws, eps ~ N(0, I) (L, B, D), loss and gradient,
    Adam.  Returns the new state (its summed loss grows by loss * batch_size) and the
    loss.  ``batch_size`` is static (a short last batch compiles once more); ``state``
    is donated, so its arrays are updated in place.
    """
    def step(state, x_all, order, batch, batch_size):
        params, m, v, t, key, total = state
        key, key_binary, key_eps = jax.random.split(key, 3)
        rows = jax.lax.dynamic_slice(order, (batch * batch_size,), (batch_size,))
        xb = jax.random.bernoulli(key_binary, x_all[rows]).astype(x_all.dtype)
        eps = jax.random.normal(key_eps, (n_samples, batch_size, z_dim), x_all.dtype)
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, eps, n_layers)
        params, m, v, t = adam_update(params, grads, m, v, t)
        return (params, m, v, t, key, total + loss * batch_size), loss

    return jax.jit(step, static_argnames="batch_size", donate_argnums=0)


def shuffle(key, n):
    """A fresh key and a permutation of range(n) (the next epoch's order)."""
    key, key_order = jax.random.split(key)
    return key, jax.random.permutation(key_order, n)


def to_numpy(params):
    """JAX parameters back to a dict of NumPy arrays (to evaluate them with minivae)."""
    return {name: np.asarray(value) for name, value in params.items()}


def versions():
    """JAX's version and the backend's devices, for the report."""
    return f"jax {jax.__version__}, {jax.devices()[0].platform} x{len(jax.devices())}"
