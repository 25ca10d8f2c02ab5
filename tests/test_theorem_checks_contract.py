"""The Theorem A/B checks (THEORY.md §5, §6): contract, mutants, and the exact references they rely on."""
import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from sam_theory.checks import Context, run_mutant, select
from sam_theory.checks.theorem_b_linear import expected_loss
from sam_theory.convergence import admissible_hyperparameters
from sam_theory.optim import Batch, usam
from sam_theory.problems import as_jax, linear_regression, take

MODULES = ("theorem_a", "theorem_b")


def test_every_theorem_check_declares_a_mutant():
    checks = [c for c in select(r"^theorem_[ab]\.")]
    assert len(checks) == 16  # 13 + the three theorem_a_scale checks
    for c in checks:
        assert c.mutants, c.name


def test_every_trend_and_bound_check_names_its_settings_rule():
    """Issue 12: every [trend]/[bound] docstring states the rule its settings come from ("Settings …")."""
    import re
    checks = [c for c in select(".") if c.tag in ("trend", "bound")]
    assert len(checks) >= 20
    for c in checks:
        assert re.search(r"\bSettings\b", c.fn.__doc__ or ""), c.name


def test_expected_loss_equals_enumeration_of_usam_steps(x64):
    """E f(x_t) by Σ_{t+1} = T(Σ_t) in the row space vs the mean over every batch sequence of the real `usam`
    step (b = 2 with replacement: n² ordered pairs per step, 2 steps), on interpolating linear regression."""
    prob = linear_regression(3, 5, seed=4)
    thm = admissible_hyperparameters(prob.constants(), 2, rho_fraction=3.0)  # a ρ whose term in c is ¾
    x0 = prob.init(None)
    data = as_jax(prob.data)
    opt = usam(thm.eta, thm.rho)
    pairs = list(itertools.product(range(3), repeat=2))
    values = []
    for seq in itertools.product(pairs, repeat=2):
        x = x0
        for rows in seq:
            x, _ = opt.step(x, (), Batch(take(data, jnp.asarray(rows)), prob.batch_loss))
        values.append(float(prob.loss(x)))
    exact = expected_loss(prob, x0, thm, np.array([0, 2]))
    assert exact[0] == pytest.approx(float(prob.loss(x0)), rel=1e-12)
    assert exact[1] == pytest.approx(np.mean(values), rel=1e-10)


@pytest.mark.parametrize("name, mutant", [("theorem_a.moment_identity", "drop_s3"),
                                          ("theorem_a.critical_lr_decreases_with_rho", "rho_ignored"),
                                          ("theorem_b.rho0_recovers_sgd", "batch_off_by_one")])
def test_cheap_mutants_are_killed(name, mutant):
    (check,) = select("^" + name.replace(".", r"\.") + "$")
    res = run_mutant(check, mutant, Context(quick=True, seed=0))
    assert res["killed"], res["detail"]
