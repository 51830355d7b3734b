"""Topics beyond the core VAE, each a module a student reads with its tutorial.

What is inside::

    gradient_estimators.py  score function (REINFORCE) vs reparameterisation, and their variances (tutorial 03)
    linear_gaussian.py      the linear-Gaussian model (probabilistic PCA): every quantity exact (tutorials 02, 07, 09-11)
    diagnostics.py          KL per latent dimension, active units, the amortisation gap (tutorials 09, 11)
    wake_sleep.py           wake-sleep (Hinton et al. 1995) on the same networks (tutorial 12)
    marginal_likelihood.py  log p(x) without the encoder: HMC and Kingma & Welling's App. D estimator

Each builds on the study modules (nn, distributions, elbo, vae, evaluate) and on
nothing above them: no training loop, data loading or plotting.
"""
