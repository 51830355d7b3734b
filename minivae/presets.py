"""Every named setting of minivae in one place: plain data, no code, no imports.

The command line, the benchmarks and the experiments read their settings from here,
under the names of the functions they are passed to (``n_samples`` is ``--n-samples``
on the command line), so a setting is changed in one place and no name map is needed.
Each paper's experiment has its settings ("full") and a smoke-test version ("quick",
on the embedded 10k subset in under a minute: what the tests and CI run; it shows that
the code runs end to end, not the papers' numbers).  docs/reproduction.md compares the
full runs with the papers.  The settings::

    STANDARD      the model and training of `minivae train` (and the defaults of
                  minivae.train, which a test keeps equal to these)
    HOUR          the one-hour model: `minivae train --preset hour` on full MNIST
    LADDER        what runs of STANDARD and HOUR reach after given epochs (mean, spread
                  over seeds), which `minivae train` compares a run with
    FIG2, FIG3    Kingma & Welling (2013), Fig. 2 (AEVB vs wake-sleep lower bounds) and
                  Fig. 3 (their marginal likelihood, N_z = 3)
    HMC           the HMC sampler of Fig. 3's marginal likelihood estimate (App. D)
    IWAE          Burda et al. (2016), Table 1 (VAE vs IWAE, with their lr schedule)
    BENCH         the training step `minivae bench` times
    EVAL_BENCH    the log-likelihood `minivae bench --eval` times
"""

# the standard architecture of Kingma & Welling's MNIST experiments (one hidden layer; 400
# units here, as in the benchmark), trained to finish in under a minute on 2 CPU cores on
# the embedded subset; "quick" is the one- or two-epoch smoke test of the tests and CI
STANDARD = {
    "full": {"z_dim": 20, "hidden": (400,), "activation": "relu", "likelihood": "bernoulli",
             "dtype": "float32", "init_std": None,
             "epochs": 30, "batch_size": 100, "optimizer": "adam", "lr": 1e-3, "lr_final": None,
             "n_samples": 1, "estimator": "B", "warmup_epochs": 0, "weight_decay": 0.0, "seed": 0},
    "quick": {"epochs": 2},
}

# the one-hour model (docs/one-hour-model.md): on full MNIST (60,000 training images,
# dynamic binarisation), the best test NLL found for at most an hour of training on 2 CPU
# cores: 784-500-500-50, estimator B, 400 epochs with the rate falling from 1e-3 to 1e-4
# (49 minutes on the machine of docs/performance.md); on a slower machine the run ends after
# the last epoch that fits in 60 minutes (`minivae train --time-limit`, in minutes); every
# setting not named here is STANDARD's
HOUR = {
    "full": {"z_dim": 50, "hidden": (500, 500), "estimator": "B", "n_samples": 1,
             "epochs": 400, "batch_size": 100, "lr": 1e-3, "lr_final": 1e-4, "time_limit": 60},
}

# the ladders (docs/ladder.md): per recipe, the fingerprint of its training data
# (minivae.runs.run_control.data_fingerprint) and the test ELBO after each rung's epochs as
# (mean, sd, lowest, highest, number of seeds); measured with
# `minivae reproduce ladder` (results in docs/figures/ladder-<recipe>.json, which a test
# keeps equal to these numbers)
LADDER = {
    # minivae train (the embedded subset: 9,000 training, 1,000 test images), seeds 0-4
    "standard": {"data": "945e3e6c7e324a20",
                 "test_elbo": {1: (-161.04, 0.95, -162.22, -159.70, 5), 4: (-124.04, 0.61, -124.78, -123.13, 5),
                               13: (-111.80, 0.10, -111.90, -111.64, 5), 30: (-107.24, 0.23, -107.48, -106.88, 5),
                               40: (-105.98, 0.20, -106.28, -105.73, 5)}},
    # minivae train --preset hour (the official 60,000 training, 10,000 test images): seeds 1
    # and 2 every epoch, seed 0 at the rungs (its saved models evaluated afterwards; at 30, a replay)
    "hour": {"data": "55485b10a537b2b6",
             "test_elbo": {1: (-125.76, 1.06, -126.39, -124.54, 3), 4: (-105.78, 0.24, -106.03, -105.55, 3),
                           13: (-99.03, 0.32, -99.40, -98.84, 3), 30: (-96.21, 0.27, -96.40, -95.90, 3),
                           40: (-95.60, 0.08, -95.69, -95.53, 3), 100: (-93.34, 0.22, -93.49, -93.08, 3),
                           200: (-91.68, 0.12, -91.80, -91.57, 3), 400: (-90.39, 0.05, -90.42, -90.33, 3)}},
}

# `minivae reproduce ladder`: runs of a recipe ("standard" or "hour") from several seeds; the
# standard model runs 40 epochs (its rate is constant, so epoch e of a 40-epoch run is epoch
# e of any run of at least e epochs); the hour model runs its own epochs (its rate decays)
LADDER_RUNS = {
    "full": {"recipe": "standard", "seeds": 5, "epochs": 40, "eval_k": None, "n_eval": None},
    "quick": {"recipe": "standard", "seeds": 2, "epochs": 2, "eval_k": 50, "n_eval": 100},
}

# Kingma & Welling (2013), Sec. 5: one tanh hidden layer (500 units for Fig. 2, 100 for
# Fig. 3), N(0, 0.01^2) initialisation, Adagrad with the step size chosen per method from
# (0.01, 0.02, 0.1) after ``trial`` examples, minibatches of 100, L = 1
FIG2 = {
    "full": {"z_dims": (3, 5, 10, 20, 200), "budget": 10**7, "hidden": 500, "n_points": 12,
             "first": 1000, "n_eval": 1000, "trial": 10**4},
    "quick": {"z_dims": (3, 20), "budget": 6000, "hidden": 100, "n_points": 4, "n_eval": 300,
              "trial": 1000},
}
FIG3_NETWORK = {"z_dim": 3, "hidden": 100}   # Sec. 5, "Marginal likelihood"
HMC = {"n_chains": 10, "n_burn": 50, "n_draws": 50, "n_leapfrog": 10, "target_accept": 0.9}
FIG3 = {
    "full": {"n_trains": (1000, 50000), "budget": 10**7, "n_points": 8, "first": 1000,
             "n_eval": 100, "is_k": 5000, "trial": 10**4},
    "quick": {"n_trains": (1000, 9000), "budget": 1000, "n_points": 2, "first": 100,
              "n_eval": 4, "is_k": 100, "trial": 300,
              "hmc": {"n_chains": 6, "n_burn": 15, "n_draws": 10, "n_leapfrog": 5}},
}

# Burda et al. (2016), Sec. 5: 784-200-200-50 tanh, Adam (eps 1e-4) with their schedule
# (3^i epochs at 1e-3 * 10^(-i/7)), minibatches of 100, k = 5, NLL with 5,000 samples
IWAE = {
    "full": {"ks": (5,), "epochs": 100, "eval_k": 5000, "n_eval": None, "hidden": (200, 200),
             "z_dim": 50, "lr": 1e-3, "schedule": "burda", "batch_size": 100},
    "quick": {"ks": (5,), "epochs": 2, "eval_k": 50, "n_eval": 200, "hidden": (100, 100),
              "z_dim": 20, "lr": 1e-3, "schedule": "burda", "batch_size": 100, "n_train": 2000},
}

# the standard model's training step (batch 128, as the PyTorch comparison) and its
# log-likelihood (k = 5,000 samples on 200 test images, as ``minivae evaluate``)
BENCH = {"hidden": (400,), "z_dim": 20, "batch_size": 128, "n_samples": 1, "dtype": "float32",
         "steps": 50, "repeats": 5, "warmup": 30, "seed": 0}
EVAL_BENCH = {"hidden": (400,), "z_dim": 20, "k": 5000, "n_examples": 200, "batch_size": 100,
              "dtype": "float32", "repeats": 3, "seed": 0}
