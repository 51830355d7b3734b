"""Tests of minivae.bench.step and `minivae bench`: FLOP counts, the fields of the report, errors.

No timing is asserted (the machine is shared); only relations that hold at any speed.
"""
import json
import math

import numpy as np
import pytest

from minivae import nn
from minivae.bench import step as bench
from minivae.cli import main as cli
from minivae.utils import blocks
from minivae.vae import VAE

TINY = dict(hidden=(8,), z_dim=2, batch_size=16, n_samples=2, steps=3, repeats=2, warmup=1)


def test_matmul_flops_match_a_hand_count_for_a_tiny_model():
    # x_dim 3, hidden (2,), z_dim 1, M = 4 examples, L = 2 samples.  Each product costs
    # 2 m n_in n_out FLOPs:
    #   encoder 3->2, m = 4: forward + weight gradient (no input gradient): 2 * 48 =  96
    #   encoder 2->2, m = 4: forward, weight and input gradient:             3 * 32 =  96
    #   decoder 1->2, m = 8 (L M rows):                                      3 * 32 =  96
    #   decoder 2->3, m = 8:                                                 3 * 96 = 288
    #                                                                          total 576
    products = bench.matmul_products(3, (2,), 1, 4, 2)
    assert len(products) == 11
    assert sum(p["flops"] for p in products) == 576
    assert [p["flops"] for p in products if p["name"].startswith("decoder.1")] == [96, 96, 96]


def test_standard_model_does_420_mflop_of_matrix_products_per_step():
    # 2 * 128 * 784 * 400 = 80,281,600 for each of the five big products, plus the small ones
    big = 2 * 128 * 784 * 400
    small = 3 * 2 * 128 * 400 * 40 + 3 * 2 * 128 * 20 * 400
    products = bench.matmul_products(784, (400,), 20, 128, 1)
    assert sum(p["flops"] for p in products) == 5 * big + small == 419_840_000


@pytest.mark.parametrize("hidden, n_samples", [((5,), 1), ((6, 4), 3), ((), 2)])
def test_matmul_products_are_the_products_a_training_step_computes(monkeypatch, hidden, n_samples):
    # record the shapes of every matrix product that loss_and_grads actually runs
    # (all of them are in nn.affine_forward / nn.affine_backward) and compare with the list
    seen = []
    forward, backward = nn.affine_forward, nn.affine_backward

    def recording_forward(x, W, b):
        seen.append(("forward", x.shape[0], *W.shape))
        return forward(x, W, b)

    def recording_backward(dy, cache, input_grad=True):
        x, W = cache
        seen.append(("weight", x.shape[0], *W.shape))
        if input_grad:
            seen.append(("input", x.shape[0], *W.shape))
        return backward(dy, cache, input_grad)

    monkeypatch.setattr(nn, "affine_forward", recording_forward)
    monkeypatch.setattr(nn, "affine_backward", recording_backward)
    model = VAE(7, 3, hidden=hidden)
    x = np.random.default_rng(0).uniform(size=(5, 7))
    model.loss_and_grads(x, n_samples=n_samples)
    listed = [(p["kind"], p["rows"], p["n_in"], p["n_out"])
              for p in bench.matmul_products(7, hidden, 3, 5, n_samples)]
    assert sorted(seen) == sorted(listed)


@pytest.fixture(scope="module")
def result():
    x = np.random.default_rng(0).uniform(size=(64, 12))
    # warm-up long enough for the optimiser to finish measuring its block size
    measuring = blocks.SKIPPED_STEPS + blocks.ROUNDS * len(blocks.CANDIDATES)
    return bench.run(x, data="random", **{**TINY, "warmup": measuring})


def test_run_reports_throughput_as_the_median_of_its_blocks(result):
    runs = result["examples_per_second_runs"]
    assert len(runs) == TINY["repeats"] and all(r > 0 for r in runs)
    assert result["examples_per_second"] == pytest.approx(np.median(runs))
    assert result["examples_per_second"] * result["step_seconds"] == pytest.approx(TINY["batch_size"])
    assert result["epoch_seconds"] == pytest.approx(60_000 / result["examples_per_second"])
    # the three phases are parts of the step
    assert all(v > 0 for v in result["phases"].values())
    assert sum(result["phases"].values()) <= 1.05 * max(
        TINY["batch_size"] / r for r in runs)


def test_run_reports_matmul_numbers_with_consistent_relations(result):
    m = result["matmul"]
    expected = bench.matmul_products(12, TINY["hidden"], TINY["z_dim"], TINY["batch_size"],
                                     TINY["n_samples"])
    assert m["flops_per_step"] == sum(p["flops"] for p in expected)
    assert [p["name"] for p in m["products"]] == [p["name"] for p in expected]
    assert all(p["peak_flops"] > 0 for p in m["products"])
    # achieved / peak = examples/s / bound: one fraction.  It is <= 1 on a quiet machine (a step
    # does more than its products), but the products and the steps are timed at different
    # moments, so under load from other programs it can exceed 1: only the identities are asserted
    fraction = result["fraction_of_gemm_bound"]
    assert fraction > 0
    assert m["achieved_flops"] / m["peak_flops"] == pytest.approx(fraction)
    assert m["achieved_flops"] == pytest.approx(m["flops_per_step"] / result["step_seconds"])
    assert m["share_of_step"] > 0
    assert result["elementwise_share"] == pytest.approx(1 - m["share_of_step"])


def test_run_reports_memory_config_machine_and_a_finite_loss(result):
    mem = result["memory"]
    model = VAE(12, TINY["z_dim"], hidden=TINY["hidden"], dtype=np.float32)
    n_params = sum(p.size for p in model.params.values())
    assert mem["params_bytes"] == 4 * n_params                  # float32
    assert mem["optimizer_bytes"] == 2 * mem["params_bytes"]     # Adam's m and v
    # one step allocates at least its gradients, and far less than a megabyte at this size
    assert mem["params_bytes"] <= mem["step_peak_bytes"] < 2**20
    assert mem["max_rss_bytes"] > 2**20
    c = result["config"]
    assert (c["x_dim"], c["hidden"], c["z_dim"], c["dtype"]) == (12, [8], 2, "float32")
    assert result["machine"]["cpu_count"] >= 1
    threads = result["machine"]["blas_threads"]
    assert threads is None or threads >= 1
    assert math.isfinite(result["loss_first"]) and math.isfinite(result["loss_last"])


def test_result_is_plain_json_and_the_report_shows_its_numbers(result):
    assert json.loads(json.dumps(result)) == result      # plain numbers, lists, dicts: no tuples
    text = bench.format_report(result)
    assert "12-8-2-8-12" in text
    assert f"{result['examples_per_second']:.0f}" in text
    assert f"{result['matmul']['flops_per_step'] / 1e6:.1f} MFLOP" in text


def test_the_report_says_which_block_size_the_optimizer_measured_and_chose(result):
    # TINY's warm-up and blocks cover the optimiser's measuring steps, so it has chosen
    blocks_ = result["optimizer_blocks"]
    assert blocks_["chosen"] in blocks.CANDIDATES
    assert set(blocks_["median_seconds"]) == {str(c) for c in blocks.CANDIDATES}
    assert all(t > 0 for t in blocks_["median_seconds"].values())
    line = next(l for l in bench.format_report(result).splitlines() if l.startswith("optimizer walk"))
    chosen = blocks_["chosen"]
    assert ("whole arrays (" if chosen is None else f"blocks of {chosen} (") in line
    assert f"{1e3 * blocks_['median_seconds']['None']:.3f} ms" in line


def test_a_timed_block_covers_all_of_its_steps(monkeypatch):
    # a clock that moves 1 s per training step and 1 us per reading: every step takes 1 s, so a
    # block's time per step is 1 s (a block that timed only its last step would give 1 / steps)
    clock = [0.0]

    def perf_counter():
        clock[0] += 1e-6
        return clock[0]

    def one_second_step(*args, **kwargs):
        clock[0] += 1.0
        return real_step(*args, **kwargs)

    real_step = bench.train_step
    monkeypatch.setattr(bench, "train_step", one_second_step)
    monkeypatch.setattr(bench.time, "perf_counter", perf_counter)
    timed = bench.run(np.random.default_rng(0).uniform(size=(64, 12)), **{**TINY, "steps": 4})
    assert timed["step_seconds"] == pytest.approx(1.0, rel=1e-3)


def test_the_time_budget_adds_up_to_the_step_and_starts_at_the_gemm_bound(result):
    budget = bench.time_budget(result)
    step = result["step_seconds"]
    assert sum(seconds for _, seconds in budget) == pytest.approx(step)
    label, at_peak = budget[0]
    assert label == "matrix products at peak speed"
    assert at_peak / step == pytest.approx(result["fraction_of_gemm_bound"])
    assert dict(budget)["optimizer (Adam)"] == result["phases"]["optimizer"]
    text = bench.format_report(result)
    assert f"{100 * result['fraction_of_gemm_bound']:.0f}% of the GEMM-only bound" in text
    assert all(label in text for label, _ in budget)


def test_cli_bench_prints_json_and_progress_goes_to_stderr(capsys):
    status = cli.main(["bench", "--json", "--hidden", "8", "--z-dim", "2", "--batch-size", "16",
                       "--steps", "2", "--repeats", "1", "--warmup", "0", "--dtype", "float64"])
    out, err = capsys.readouterr()
    assert status == 0
    result = json.loads(out)
    assert result["config"]["x_dim"] == 784 and result["config"]["dtype"] == "float64"
    assert result["config"]["n_train"] == 9000            # the embedded subset's training split
    assert "block 1/1" in err


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=0), "steps must be a positive integer"),
    (dict(batch_size=100), "larger than the data"),
    (dict(dtype="float16"), "dtype must be float32 or float64"),
    (dict(warmup=-1), "warmup must be an integer >= 0"),
])
def test_bad_arguments_are_clear_value_errors(kwargs, match):
    x = np.random.default_rng(0).uniform(size=(64, 12))
    with pytest.raises(ValueError, match=match):
        bench.run(x, **{**TINY, **kwargs})


def test_cli_bench_bad_option_is_one_line_and_status_2(capsys):
    status = cli.main(["bench", "--steps", "0"])
    _, err = capsys.readouterr()
    assert status == 2
    assert err.strip().splitlines() == ["minivae bench: error: --steps must be a positive integer, got 0"]


def test_set_blas_threads_changes_what_blas_threads_reports():
    before = bench.blas_threads()
    if before is None:
        pytest.skip("this NumPy's BLAS thread count cannot be read (not OpenBLAS on Linux)")
    try:
        bench.set_blas_threads(1)
        assert bench.blas_threads() == 1
    finally:
        bench.set_blas_threads(before)
    assert bench.blas_threads() == before
    with pytest.raises(ValueError, match="positive integer"):
        bench.set_blas_threads(0)


def test_eval_products_count_every_product_of_a_log_likelihood_call():
    # x_dim 3, hidden (2,), z_dim 1; 5 examples in batches of 2 (2, 2, 1), k = 5 in chunks of 2
    # (2, 2, 1 samples).  Per batch of b: the encoder once (3->2, 2->2 on b rows) and the
    # decoder per chunk (1->2, 2->3 on c b rows).  FLOPs 2 rows n_in n_out:
    #   encoder  b = 2, 2, 1:  (12 + 8) * (2 + 2 + 1)            = 100
    #   decoder  rows c b summed = (2 + 2 + 1) * (2 + 2 + 1) = 25:  (4 + 12) * 25 = 400
    from minivae.bench.evaluation import eval_products
    products = eval_products(3, (2,), 1, 5, 5, 2, 2)
    assert sum(p["flops"] * p["count"] for p in products) == 500
    assert sum(p["count"] for p in products if p["name"] == "decoder.1") == 9    # 3 batches x 3 chunks


def test_bench_eval_reports_consistent_fields_on_a_tiny_model():
    from minivae.bench import evaluation as bench_eval
    x = np.random.default_rng(0).uniform(size=(12, 10))
    result = bench_eval.run(x, hidden=(6,), z_dim=2, k=7, n_examples=12, batch_size=5, chunk=3,
                            repeats=2)
    assert result["config"]["chunk"] == 3 and len(result["seconds_runs"]) == 2
    assert math.isclose(result["examples_per_second"] * result["seconds"], 12)
    assert math.isclose(result["passes_per_second"], 7 * result["examples_per_second"])
    assert 0 < result["matmul"]["seconds"] and math.isclose(
        result["matmul"]["share"] + result["elementwise_share"], 1)
    assert result["memory"]["peak_bytes"] > 0 and np.isfinite(result["mean_log_likelihood"])
    assert result["machine"]["simd"] is None or result["machine"]["simd"]["level"]
    json.dumps(result)
    text = bench_eval.format_report(result)
    assert "examples/s" in text and "SIMD" in text and "kernel" in text


def test_bench_eval_command_prints_json_with_the_machine_s_simd_level(capsys):
    status = cli.main(["bench", "--eval", "--json", "--hidden", "8", "--z-dim", "2", "--k", "4",
                       "--n-examples", "6", "--batch-size", "3", "--repeats", "1"])
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"]["k"] == 4 and result["config"]["n_examples"] == 6
    assert "simd" in result["machine"] and "blas_kernel" in result["machine"]


@pytest.mark.parametrize("argv, message", [
    (["--repeats", "0"], "--repeats must be a positive integer, got 0"),
    (["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
    (["--eval", "--repeats", "0"], "--repeats must be a positive integer, got 0"),
    (["--eval", "--n-examples", "0"], "--n-examples must be a positive integer, got 0"),
    (["--warmup", "-1"], "--warmup must be an integer >= 0, got -1"),
])
def test_cli_bench_refuses_zero_repeats_and_batches_before_running(capsys, argv, message):
    # a 0 was taken as "the default" (the `or` of an unset option) and the bench ran
    assert cli.main(["bench", *argv]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"minivae bench: error: {message}"]
