import numpy as np
import pytest

from sam_theory.convergence import admissible_hyperparameters, fit_linear_rate, theorem_b


def test_admissible_region_gives_c_at_least_half():
    const = {"beta": 1.3, "lam": 0.1, "mu": 0.02}
    for b in (1, 4, 16):
        thm = admissible_hyperparameters(const, b)
        assert thm.c == pytest.approx(0.5, abs=1e-12) or thm.c > 0.5
        assert thm.rate <= 1 - const["mu"] * thm.eta + 1e-15
        smaller = theorem_b(const, thm.eta / 2, thm.rho / 2, b)
        assert smaller.c > thm.c


def test_rho_zero_recovers_bassily_belkin_ma():
    beta, lam, mu, b = 1.7, 0.3, 0.05, 8
    thm = theorem_b({"beta": beta, "lam": lam, "mu": mu}, 1.0, 0.0, b)
    eta_bbm = mu * b / (lam * (beta + mu * (b - 1)))
    assert 1.0 / (lam * thm.K_b) == pytest.approx(eta_bbm, rel=1e-14)
    at = theorem_b({"beta": beta, "lam": lam, "mu": mu}, eta_bbm, 0.0, b)
    assert at.c == pytest.approx(0.5, rel=1e-14)


def test_bad_constants():
    with pytest.raises(ValueError, match="mu"):
        theorem_b({"beta": 1.0, "lam": 1.0, "mu": 0.0}, 0.1, 0.1, 2)
    with pytest.raises(ValueError, match="rho"):
        theorem_b({"beta": 1.0, "lam": 1.0, "mu": 0.1}, 0.1, -0.1, 2)


def test_fit_linear_rate_exact_geometric():
    t = np.arange(50)
    fit = fit_linear_rate(3.0 * 0.9**t, t)
    assert fit.rate == pytest.approx(0.9, rel=1e-12) and fit.r2 == pytest.approx(1.0)
    assert fit.ci[0] <= fit.slope <= fit.ci[1]
    with pytest.raises(ValueError, match="losses"):
        fit_linear_rate([1.0, np.nan])
