"""Experiments: the papers' figures and tables reproduced, and the plots of a run.

What is inside::

    reproduce.py       Kingma & Welling (2013) Fig. 2 (AEVB vs wake-sleep) and Burda et al. (2016) Table 1
    reproduce_fig3.py  Kingma & Welling (2013) Fig. 3: the marginal likelihood on small latent spaces
    plots.py           reconstructions, samples, ELBO curves, latent manifold and scatter
    ladder.py          what runs of a recipe reach after 1, 4, 13, 40, ... epochs, over seeds

``minivae reproduce`` runs the experiments (docs/reproduction.md and docs/ladder.md have
the results);
the plots appear in tutorials 06, 09, 10 and 12.  A student reads these for the
experimental protocol, not for the VAE's math.
"""
