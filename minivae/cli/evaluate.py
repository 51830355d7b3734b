"""`minivae evaluate`: test ELBO and importance-sampled log-likelihood of a saved model."""
import sys
import time

from minivae.cli.common import check_counts


def run(args):
    """Print the test ELBO and the importance-sampled log-likelihood of a saved model."""
    import numpy as np

    from minivae.runs import checkpoint
    from minivae.data import datasets
    from minivae.data.preprocessing import fixed_binarization
    from minivae.evaluate import evaluate_elbo, log_likelihood

    check_counts(args, {"k": 1, "batch_size": 1, "seed": 0})
    loaded = checkpoint.load(args.checkpoint)
    model = loaded["model"]
    # by default the seed the run was trained with: the same test binarisation and noise as
    # `minivae train` used for the test ELBO in its metrics.json, so the numbers compare
    seed = args.seed
    if seed is None:
        seed = ((loaded["train_state"] or {}).get("settings") or {}).get("seed", model.seed)
    data = datasets.load_mnist(args.data)
    x_test = model.check_data(data.test.x, "x_test")
    binarised = ""
    if model.likelihood == "bernoulli":
        x_test = fixed_binarization(x_test, seed)
        binarised = f", binarised once with seed {seed}"
    print(f"model: {model}")
    print(f"data: {data.source}: {len(x_test)} test images{binarised}")
    test_elbo = evaluate_elbo(model, x_test, n_samples=10, rng=np.random.default_rng(seed))
    print(f"test ELBO {test_elbo:.2f} nats per image (L = 10 samples)")
    tic = time.perf_counter()
    log_px, se = log_likelihood(model, x_test, args.k, rng=np.random.default_rng(seed),
                                batch_size=args.batch_size, progress=sys.stderr, return_se=True)
    seconds = time.perf_counter() - tic
    mean_se = float(np.sqrt((se ** 2).sum())) / len(se)     # Monte Carlo error of the mean
    print(f"test log-likelihood {log_px.mean():.2f} nats per image (importance sampling, "
          f"k = {args.k}; Monte Carlo standard error {mean_se:.2f}), {seconds:.1f} s")
    return 0


def add_parser(commands):
    """Add the command's options to the ``minivae`` parser's subcommands."""
    p = commands.add_parser("evaluate", help="test ELBO and log-likelihood (importance sampling) of a model",
                            epilog="Progress goes to stderr. See docs/evaluation.md.")
    p.add_argument("checkpoint", help="a model.npz written by `minivae train`")
    p.add_argument("--k", type=int, default=5000, help="importance samples per test image (default: 5000)")
    p.add_argument("--data", default=None,
                   help="folder with MNIST IDX files (default: the embedded subset's test split)")
    p.add_argument("--batch-size", type=int, default=100, help="test images per pass (default: 100)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the test binarisation and the noise (default: the training seed)")
    p.set_defaults(run=run)
