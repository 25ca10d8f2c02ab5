"""sweep(sharded=True) across 2 processes on 127.0.0.1 (`jax.distributed.initialize`, gloo CPU collectives), each with
2 simulated CPU devices: a global mesh of 4 devices, each process writing its own chunk files, compared bit for bit
with one process holding 4 devices (the same per-device shapes) and to 1e-12 with a plain single-device sweep."""
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

COMMON = textwrap.dedent("""
    import sys
    import jax
    import numpy as np
    import sam_theory
    from sam_theory.problems import linear_regression

    GRID = {"lr": [0.1, 0.3, 50.0], "seed": [0, 1, 2]}  # 9 configs, chunks of 4 over 4 devices; lr=50 diverges
    KW = dict(rho=0.05, steps=15, batch_size=3, log_every=5, progress=False, keep_params=True)
    FIELDS = ("losses", "test_losses", "grad_norms", "diverged", "diverged_at")

    def save(res, path):
        np.savez(path, params=res.params, **{k: getattr(res, k) for k in FIELDS})
""")

WORKER = COMMON + textwrap.dedent("""
    pid, port, out_dir, result = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid, initialization_timeout=120)
    assert jax.process_count() == 2 and jax.device_count() == 4 and jax.local_device_count() == 2
    with sam_theory.float64():
        prob = linear_regression(n=12, p=30, seed=0)
        res = sam_theory.sweep(prob, "sam", GRID, sharded=True, chunk_size=4, out_dir=out_dir, **KW)
        again = sam_theory.sweep(prob, "sam", GRID, sharded=True, chunk_size=4, out_dir=out_dir, **KW)
    assert res.info["num_processes"] == 2 and res.info["num_devices"] == 4 and res.info["chunks"] == 3
    assert res.info["chunks_computed"] == 3 and res.info["output_devices"] == 4, res.info
    assert again.info["chunks_loaded"] == 3 and again.info["chunks_computed"] == 0, again.info
    for k in FIELDS:
        np.testing.assert_array_equal(getattr(again, k), getattr(res, k))
    save(res, result)
    print("WORKER_OK", pid)
""")

REFERENCE = COMMON + textwrap.dedent("""
    assert jax.device_count() == 4 and jax.process_count() == 1
    with sam_theory.float64():
        prob = linear_regression(n=12, p=30, seed=0)
        save(sam_theory.sweep(prob, "sam", GRID, sharded=True, chunk_size=4, **KW), sys.argv[1])
        save(sam_theory.sweep(prob, "sam", GRID, **KW), sys.argv[2])
    print("REFERENCE_OK")
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_sharded_sweep_equals_one_process(tmp_path):
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    port, out_dir = str(_free_port()), tmp_path / "sweep"
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(i), port, str(out_dir), str(tmp_path / f"p{i}.npz")],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
    logs = []
    try:
        for w in workers:
            logs.append(w.communicate(timeout=400)[0])
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    assert all(w.returncode == 0 for w in workers) and all("WORKER_OK" in log for log in logs), "\n".join(logs)
    ref = subprocess.run([sys.executable, "-c", REFERENCE, str(tmp_path / "ref.npz"), str(tmp_path / "plain.npz")],
                         env={**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}, capture_output=True,
                         text=True, timeout=400)
    assert ref.returncode == 0 and "REFERENCE_OK" in ref.stdout, ref.stdout + ref.stderr
    names = sorted(p.name for p in out_dir.glob("chunk_*"))
    assert names == [f"chunk_{c:05d}.proc{i}of2.npz" for c in range(3) for i in range(2)], names
    p0, p1, one, plain = (np.load(tmp_path / f, allow_pickle=True) for f in ("p0.npz", "p1.npz", "ref.npz", "plain.npz"))
    for key in ("losses", "test_losses", "grad_norms", "diverged", "diverged_at", "params"):
        np.testing.assert_array_equal(p0[key], p1[key])  # every process returns the whole result
        np.testing.assert_array_equal(p0[key], one[key])  # bit for bit: two processes = one process, 4 devices
        np.testing.assert_allclose(p0[key], plain[key], rtol=1e-12, atol=0, equal_nan=True)  # = one device
    assert p0["diverged"][2].all() and not p0["diverged"][:2].any()
