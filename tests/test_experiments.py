"""The experiment runner (experiments/): registry, verdict rule, resumable runs, reports; and the two problems the
experiments add (MLPClassifier, Linearized)."""
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the top-level experiments/ package, under any runner
import experiments  # noqa: E402
from experiments import runner  # noqa: E402
from experiments.relu_1d import tv_closed_form, tv_pieces  # noqa: E402
from sam_theory.cli import main  # noqa: E402
from sam_theory.problems import Linearized, MLPClassifier, mlp_num_params, two_layer_net  # noqa: E402


def test_list_shows_the_eight_experiments(capsys):
    assert main(["experiment", "list"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.strip().splitlines()] == list(experiments.NAMES)
    assert len(experiments.NAMES) == 8


@pytest.mark.parametrize("name", experiments.NAMES)
def test_every_module_declares_its_contract(name):
    mod = runner.load(name)
    assert mod.NAME == name and mod.SECTION and mod.CLAIM and mod.SETUP and callable(mod.run)
    for size in ("full", "quick"):
        assert mod.SETTINGS[size]["seeds"] >= 2
    assert mod.SETTINGS["full"]["seeds"] >= mod.SETTINGS["quick"]["seeds"]


def test_unknown_experiment_is_a_clear_error(tmp_path, capsys):
    assert main(["experiment", "run", "widht", "--quick", "--out", str(tmp_path)]) == 2
    assert "unknown experiment 'widht'" in capsys.readouterr().err


def test_positive_rule_and_slopes():
    assert runner.positive("c", "q", [1.0, 1.1, 0.9]).status == runner.HOLDS
    assert runner.positive("c", "q", [-1.0, -1.1, -0.9]).status == runner.FAILS
    assert runner.positive("c", "q", [1.0, -1.0, 0.5]).status == runner.INCONCLUSIVE
    assert runner.positive("c", "q", [1.0, np.nan]).status == runner.INCONCLUSIVE  # one finite seed
    x = np.array([0.0, 1.0, 2.0])
    y = np.stack([2.0 * x + 1.0, -x], axis=1)  # two seeds with slopes 2 and -1
    np.testing.assert_allclose(runner.slopes(x, y), [2.0, -1.0])
    m = runner.ms([[1.0, 3.0], [2.0, np.nan]])  # a diverged (NaN) seed is not counted; one finite seed has no SE
    assert m["mean"] == [2.0, 2.0] and m["n"] == [2, 1] and m["se"][0] == pytest.approx(1.0) and np.isnan(m["se"][1])
    assert runner.ms(np.ones((2, 3)))["se"] == [0.0, 0.0]


def test_quick_run_resumes_without_recomputing(tmp_path):
    """A run stopped after two sweeps (chunks written atomically) resumes: the two finished sweeps are loaded, the
    rest computed; a third run computes nothing and reproduces the same numbers."""
    with pytest.raises(runner.Interrupted):
        runner.run_experiment("width", tmp_path, quick=True, max_sweeps=2)
    assert not (tmp_path / "width" / "results.json").exists()
    first = runner.run_experiment("width", tmp_path, quick=True)
    total = first["counts"]["sweeps"]
    assert total == 4
    assert first["counts"]["chunks_loaded"] == 2 and first["counts"]["chunks_computed"] == total - 2
    again = runner.run_experiment("width", tmp_path, quick=True)
    assert again["counts"]["chunks_computed"] == 0 and again["counts"]["chunks_loaded"] == total
    assert again["counts"]["compiles"] == 0
    assert again["results"] == first["results"]
    saved = json.loads((tmp_path / "width" / "results.json").read_text())
    gap = saved["results"]["gap"]
    assert set(gap) == {"mean", "se", "n"} and len(gap["mean"]) == 2 and gap["n"] == [2, 2]
    assert (tmp_path / "width" / "width_gap.png").stat().st_size > 0
    section = (tmp_path / "width" / "report.md").read_text()
    assert "**Claim (THEORY.md §10.1, quoted):**" in section and "**Verdict:**" in section
    report = runner.assemble_report(tmp_path).read_text()
    assert report.count("\n## ") == 1 and "Total wall time" in report and "| width |" in report
    html = (tmp_path / "report.html").read_text()  # beside REPORT.md, figures embedded
    assert "<table" in html and "data:image/png;base64," in html and 'src="width' not in html


def test_relu_1d_quick_run_and_simplicity_measure(tmp_path):
    rec = runner.run_experiment("relu_1d", tmp_path, quick=True)
    assert rec["results"]["tv_closed_vs_pieces_max_rel_diff"] < 1e-6
    assert (tmp_path / "relu_1d" / "relu_1d_functions.png").exists()
    # TV of f' on a known function: kinks at 0 (|v w| = 3) and 0.25 (|v w| = 1) inside [x1, x12], one at 5 outside;
    # two coinciding kinks with opposite slope changes cancel in the true TV (pieces) but not in the closed form
    params = {"w": np.array([[1.0, -2.0, 1.0, 1.0, -1.0]]), "b": np.array([[0.0, 0.5, -5.0, -0.5, 0.5]]),
              "v": np.array([[3.0, 0.5, 7.0, 2.0, -2.0]]), "c": np.array([0.0])}
    assert tv_closed_form(params)[0] == pytest.approx(3.0 + 1.0 + 2.0 + 2.0)
    assert tv_pieces(params)[0] == pytest.approx(3.0 + 1.0, rel=1e-12)


def test_mlp_classifier(x64):
    rng = np.random.default_rng(0)
    X, Xt = rng.standard_normal((12, 5)), rng.standard_normal((7, 5))
    y, yt = rng.integers(0, 3, 12), rng.integers(0, 3, 7)
    prob = MLPClassifier(X, y, Xt, yt, (4, 6), num_classes=3)
    assert prob.num_params == mlp_num_params(5, (4, 6), 3) == 6 * 4 + 5 * 6 + 7 * 3
    params = prob.init(jax.random.key(0))
    logits = prob._logits(params, jnp.asarray(X[0]))
    assert float(prob.per_example_loss(params, (jnp.asarray(X[0]), y[0]))) == pytest.approx(
        float(jax.nn.logsumexp(logits) - logits[y[0]]), rel=1e-12)
    assert 0.0 <= float(prob.test_accuracy(params)) <= 1.0
    with pytest.raises(ValueError, match="labels"):
        MLPClassifier(X, y + 5, Xt, yt, (4,), num_classes=3)
    with pytest.raises(ValueError, match="hidden"):
        MLPClassifier(X, y, Xt, yt, ())


def test_linearized_is_the_first_order_model(x64):
    net = two_layer_net(n=8, d=3, width=5, n_test=4, seed=0)
    lin = Linearized(net)
    params = lin.init(jax.random.key(1))
    theta0 = net.init(jax.random.key(1))
    ex = (jnp.asarray(net.data[0][0]), net.data[1][0])
    assert float(lin.prediction(params, ex)) == pytest.approx(float(net.prediction(theta0, ex)), rel=1e-14)
    # exactly affine in delta, with slope the network's JVP at theta0
    rng = np.random.default_rng(0)
    d1 = jax.tree.map(lambda x: jnp.asarray(rng.standard_normal(x.shape)), theta0)
    at = lambda delta: float(lin.prediction({"anchor": theta0, "delta": delta}, ex))
    zero = jax.tree.map(jnp.zeros_like, theta0)
    jvp = float(jax.jvp(lambda p: net.prediction(p, ex), (theta0,), (d1,))[1])
    assert at(d1) - at(zero) == pytest.approx(jvp, rel=1e-12)
    assert at(jax.tree.map(lambda x: 2 * x, d1)) - at(zero) == pytest.approx(2 * jvp, rel=1e-12)
    g = jax.grad(lambda p: lin.batch_loss(p, jax.tree.map(jnp.asarray, net.data)))(params)
    assert all(float(jnp.abs(x).max()) == 0.0 for x in jax.tree.leaves(g["anchor"]))
    assert lin.num_params == net.num_params
    with pytest.raises(ValueError, match="weight_decay"):
        Linearized(two_layer_net(n=8, d=3, width=5, weight_decay=0.1))


@pytest.mark.slow
def test_run_all_quick_writes_eight_sections(tmp_path):
    assert main(["experiment", "run", "all", "--quick", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert report.count("\n## ") == 8
