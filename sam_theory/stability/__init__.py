"""Linear stability of stochastic SAM and the flatness of the minima it selects: Theorem A (THEORY.md §5)."""
