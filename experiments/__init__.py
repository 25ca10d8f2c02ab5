"""The experiments of THEORY.md §10: one module each, run by `sam-theory experiment run NAME… | all`.

See `experiments.runner` for the contract (pre-registered settings, resumable sweeps, verdict rule, reports).
"""
NAMES = ("width", "width_real", "label_noise", "sparsity", "rho_star", "ntk", "relu_1d", "msharpness")
