"""Tests of minivae.cli.gradcheck_table: the `minivae gradcheck` table covers every component and passes."""
from minivae.cli import gradcheck_table
from minivae.cli.main import main


def test_gradcheck_table_covers_every_component_within_its_bound():
    rows = gradcheck_table.gradcheck_rows(seed=0)
    names = " ".join(r["component"] for r in rows)
    for part in ["relu", "tanh", "softplus", "sigmoid", "identity", "affine", "MLP", "KL",
                 "Bernoulli likelihood", "Gaussian likelihood", "estimator A", "estimator B",
                 "L = 5", "beta = 0.5", "score d log q", "reparameterised gradient, per draw"]:
        assert part in names, f"no gradcheck row for {part}"
    bad = [r for r in rows if not r["ok"]]
    assert not bad, gradcheck_table.format_rows(bad)


def test_gradcheck_command_prints_the_table_and_exits_zero(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "analytic KL" in out and "FAIL" not in out
    assert out.count(" ok") >= 19
