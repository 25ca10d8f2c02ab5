"""sweep(sharded=True) on 4 simulated CPU devices (a subprocess: XLA reads the device count at start-up)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import jax
    import numpy as np
    import sam_theory
    from sam_theory.problems import linear_regression

    assert jax.device_count() == 4, jax.devices()
    with sam_theory.float64():
        prob = linear_regression(n=12, p=30, seed=0)
        grid = {"lr": [0.1, 0.3, 50.0], "seed": [0, 1]}  # 6 configs: padded to 8 over 4 devices; lr=50 diverges
        kw = dict(rho=0.05, steps=15, batch_size=3, log_every=5, progress=False)
        sharded = sam_theory.sweep(prob, "sam", grid, sharded=True, **kw)
        chunked = sam_theory.sweep(prob, "sam", grid, sharded=True, chunk_size=3, **kw)  # 3 -> 4 per chunk
        plain = sam_theory.sweep(prob, "sam", grid, **kw)
    assert sharded.info["num_devices"] == 4 and sharded.info["output_devices"] == 4, sharded.info
    assert chunked.info["chunk_size"] == 4 and chunked.info["chunks"] == 2 and chunked.info["compiles"] == 1
    assert plain.info["num_devices"] == 1 and plain.info["output_devices"] == 1
    assert sharded.losses.shape == plain.losses.shape == (3, 2, 4)
    for res in (sharded, chunked):
        np.testing.assert_array_equal(res.diverged, plain.diverged)
        np.testing.assert_allclose(res.losses, plain.losses, rtol=1e-12, atol=0, equal_nan=True)
        np.testing.assert_allclose(res.grad_norms, plain.grad_norms, rtol=1e-12, atol=0, equal_nan=True)
    assert plain.diverged[2].all() and not plain.diverged[:2].any()
    print("SHARDED_OK")
""")


def test_sharded_sweep_on_four_host_devices():
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "SHARDED_OK" in proc.stdout, proc.stdout + proc.stderr
