"""Cost of the curvature engine (THEORY.md §4), as ratios measured in one run.

Run: `python benchmarks/curvature.py [--width 512] [--skip-torch]`. Prints, for `benchmarks/RESULTS.md`:
1. HVP time / gradient time on an MLP (p ≈ 4·10⁵, float32): ours (linearize once, then the linear map),
   jvp(grad) recomputed each call, and a PyTorch double-backward HVP (PyHessian style) if torch is importable.
2. 20 Lanczos iterations (full reortho) / one HVP, ours and matfree's `tridiag_sym`.
3. Dense Hessian time and compiled memory against p (unchunked `jacfwd(grad)` vs column chunks of 64).
4. Per-example moments against n: one S_2 product (2 per-example HVP sweeps) and one dense per-example-Hessian
   build, per example.
5. matfree vs ours for SLQ (tr H², same probes): time and agreement, in float64.
torch is NOT a dependency of the package; this script only imports it when present.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_time, machine  # noqa: E402

from sam_theory.curvature import hessian, hvp, lanczos, per_example_hessians, slq  # noqa: E402
from sam_theory.curvature.dense import _chunked_columns  # noqa: E402
from sam_theory.curvature.lanczos import lanczos_tridiag  # noqa: E402
from sam_theory.curvature import BatchCurvature, stochastic_moment  # noqa: E402
from sam_theory.problems.tanh_net import TanhNet  # noqa: E402
from sam_theory.precision import float64  # noqa: E402


def mlp_init(key, sizes):
    params = []
    for k, (a, b) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        params.append({"w": jax.random.normal(k, (a, b)) / np.sqrt(a), "b": jnp.zeros(b)})
    return params


def mlp_loss(params, x, y):
    h = x
    for layer in params[:-1]:
        h = jnp.tanh(h @ layer["w"] + layer["b"])
    out = h @ params[-1]["w"] + params[-1]["b"]
    return 0.5 * jnp.mean(jnp.sum((out - y) ** 2, axis=1))


def paired_ratio(fn_a, args_a, fn_b, args_b, rounds=15, number=10):
    """Median over rounds of time(a)/time(b), a and b timed back to back in each round (robust to load drift on a
    shared machine), and the ratio of the best times."""
    jax.block_until_ready(fn_a(*args_a))
    jax.block_until_ready(fn_b(*args_b))
    ratios, best_a, best_b = [], float("inf"), float("inf")
    for _ in range(rounds):
        ta = best_time(fn_a, *args_a, repeats=1, number=number)
        tb = best_time(fn_b, *args_b, repeats=1, number=number)
        ratios.append(ta / tb)
        best_a, best_b = min(best_a, ta), min(best_b, tb)
    return float(np.median(ratios)), best_a / best_b, best_a, best_b


def bench_hvp(args):
    sizes = [args.input, args.width, args.width, args.out]
    key = jax.random.key(0)
    params = mlp_init(key, sizes)
    x = jax.random.normal(jax.random.key(1), (args.batch, args.input))
    y = jax.random.normal(jax.random.key(2), (args.batch, args.out))
    loss = lambda p: mlp_loss(p, x, y)
    p = sum(l.size for l in jax.tree.leaves(params))
    grad = jax.jit(jax.grad(loss))
    op = hvp(loss, params)
    v = jax.random.normal(jax.random.key(3), (op.size,))
    med, best, t_hvp, t_grad = paired_ratio(op.matvec, (v,), grad, (params,))
    t_lin = best_time(lambda: hvp(loss, params).apply.args, repeats=3)  # one linearization (after compile)
    from jax.flatten_util import ravel_pytree
    flat, unravel = ravel_pytree(params)
    jvp_grad = jax.jit(lambda w, t: jax.jvp(jax.grad(lambda u: loss(unravel(u))), (w,), (t,))[1])
    t_jvp = best_time(jvp_grad, flat, v, number=10)
    lz = jax.jit(lambda o, k: lanczos(o, 20, k).ritz_values)
    t_lz = best_time(lz, op, jax.random.key(4), repeats=3)
    from matfree import decomp
    tri = decomp.tridiag_sym(20, reortho="full")
    mf = jax.jit(lambda o, v0: jnp.linalg.eigvalsh(tri(o.matvec, v0).J_small))
    t_mf = best_time(mf, op, v, repeats=3)
    print(f"MLP {sizes}, batch {args.batch}, p = {p}, float32")
    print(f"  HVP (linearized) / gradient          : {med:6.2f}  median of 15 paired rounds; ratio of best times "
          f"{best:.2f} (grad {t_grad * 1e3:.2f} ms, HVP {t_hvp * 1e3:.2f} ms)")
    print(f"  jvp(grad) recomputed / gradient      : {t_jvp / t_grad:6.2f}")
    print(f"  one linearization / gradient         : {t_lin / t_grad:6.2f}")
    print(f"  20 Lanczos steps (ours) / one HVP    : {t_lz / t_hvp:6.2f}  ({t_lz * 1e3:.1f} ms)")
    print(f"  20 Lanczos steps (matfree) / one HVP : {t_mf / t_hvp:6.2f}  ({t_mf * 1e3:.1f} ms)")
    return sizes, np.asarray(x), np.asarray(y), params, t_grad, t_hvp


def bench_torch(sizes, x, y, params, t_grad_jax, t_hvp_jax):
    try:
        import torch
    except ImportError:
        print("  torch not importable: PyTorch double-backward HVP skipped")
        return
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    ws = [torch.tensor(np.asarray(l["w"]), requires_grad=True) for l in params]
    bs = [torch.tensor(np.asarray(l["b"]), requires_grad=True) for l in params]
    tx, ty = torch.tensor(x), torch.tensor(y)
    flat = [t for pair in zip(ws, bs) for t in pair]

    def loss():
        h = tx
        for w, b in zip(ws[:-1], bs[:-1]):
            h = torch.tanh(h @ w + b)
        out = h @ ws[-1] + bs[-1]
        return 0.5 * ((out - ty) ** 2).sum(1).mean()

    vs = [torch.randn_like(t) for t in flat]

    def grad():
        return torch.autograd.grad(loss(), flat)

    def hvp_torch():  # PyHessian: g = grad(create_graph=True); Hv = grad(g·v)
        g = torch.autograd.grad(loss(), flat, create_graph=True)
        return torch.autograd.grad(g, flat, grad_outputs=vs)

    def best(fn, number=10, repeats=5):
        fn()
        out = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            out = min(out, (time.perf_counter() - t0) / number)
        return out

    t_g, t_h = best(grad), best(hvp_torch)
    print(f"  torch {torch.__version__} double-backward HVP / torch gradient : {t_h / t_g:6.2f}  "
          f"(grad {t_g * 1e3:.2f} ms, HVP {t_h * 1e3:.2f} ms, {torch.get_num_threads()} threads)")
    print(f"  torch HVP / our HVP (same MLP, float32)  : {t_h / t_hvp_jax:6.2f}")
    print(f"  torch gradient / JAX gradient            : {t_g / t_grad_jax:6.2f}")


def bench_dense(args):
    print("dense Hessian vs p (tanh net, float32): time, compiled temp memory")
    for width in (8, 24, 48, 96):
        prob = TanhNet(n=64, d=16, width=width, seed=0)
        params = prob.init(jax.random.key(0))
        p = prob.num_params
        from jax.flatten_util import ravel_pytree
        flat, unravel = ravel_pytree(params)
        f = lambda v: prob.loss(unravel(v))
        full = jax.jit(jax.jacfwd(jax.grad(f)))
        mem_full = full.lower(flat).compile().memory_analysis().temp_size_in_bytes
        t_full = best_time(full, flat, repeats=3)
        t_chunk = best_time(lambda: hessian(prob.loss, params, chunk_size=64), repeats=3)
        op = hvp(prob.loss, params)
        mem_chunk = _chunked_columns.lower(op, chunk_size=64).compile().memory_analysis().temp_size_in_bytes
        out_mb = p * p * 4 / 2**20
        print(f"  p={p:6d}: jacfwd {t_full * 1e3:8.1f} ms (temp {mem_full / 2**20:7.1f} MiB), "
              f"chunked(64) {t_chunk * 1e3:8.1f} ms incl. one linearization (temp {mem_chunk / 2**20:7.1f} MiB); "
              f"output {out_mb:6.1f} MiB")


def bench_moments(args):
    print("per-example moments vs n (tanh net d=16, width=24, p=408, float32)")
    for n in (16, 64, 256):
        prob = TanhNet(n=n, d=16, width=24, seed=0)
        params = prob.init(jax.random.key(0))
        curv = BatchCurvature.from_problem(prob, params, method="matrix_free")
        v = jax.random.normal(jax.random.key(1), (curv.size, 1))
        t_s2 = best_time(lambda u: stochastic_moment(curv, 2, u), v, number=5)
        hess = jax.jit(lambda w: per_example_hessians(prob, w))
        t_dense = best_time(hess, params, repeats=2)
        print(f"  n={n:4d}: one S_2 product {t_s2 * 1e3:7.2f} ms ({t_s2 / n * 1e6:6.1f} µs/example); "
              f"dense per-example Hessians {t_dense * 1e3:8.1f} ms ({t_dense / n * 1e3:6.2f} ms/example)")


def bench_slq(args):
    from matfree import funm, stochtrace
    with float64():
        prob = TanhNet(n=128, d=16, width=48, seed=0)
        params = prob.init(jax.random.key(0))
        op = hvp(prob.loss, params)
        H = np.asarray(op.as_dense())
        exact = float(np.sum(H * H))
        order, probes = 20, 50
        square = lambda t: t**2
        ours = jax.jit(lambda o, k: slq(o, square, probes, order, k).estimate)
        ours_se = float(slq(op, square, probes, order, jax.random.key(0)).standard_error)
        integrand = funm.monte_carlo_funm_sym(funm.dense_funm_sym_eigh(square),
                                              __import__("matfree").decomp.tridiag_sym(order, reortho="full"))
        sampler = stochtrace.sampler_signs(jnp.zeros(op.size), num=probes)
        est = stochtrace.estimator_monte_carlo_mean_and_sem(integrand, sampler)
        theirs = jax.jit(lambda o, k: est(o.matvec, k)[0])
        key = jax.random.key(0)
        t_ours, t_theirs = best_time(ours, op, key, repeats=3), best_time(theirs, op, key, repeats=3)
        # accuracy of the top Ritz value after 20 steps (same start vector) against eigvalsh
        v0 = jax.random.normal(jax.random.key(5), (op.size,))
        a, b, _ = lanczos_tridiag(op.matvec, v0, 20, "full")
        from sam_theory.curvature.lanczos import tridiagonal
        from matfree import decomp
        top_ours = float(np.linalg.eigvalsh(np.asarray(tridiagonal(a, b)))[-1])
        top_mf = float(np.linalg.eigvalsh(np.asarray(decomp.tridiag_sym(20, reortho="full")(op.matvec, v0).J_small))[-1])
        lam = float(np.linalg.eigvalsh(H)[-1])
        e_ours, e_theirs = float(ours(op, key)), float(theirs(op, key))
    print(f"SLQ tr(H²) (p={op.size}, order {order}, {probes} probes, float64): ours/matfree time "
          f"{t_ours / t_theirs:5.2f}; estimates ours {e_ours:.6g} ± {ours_se:.2g}, matfree {e_theirs:.6g}, "
          f"exact {exact:.6g}")
    print(f"  top Ritz value after 20 steps, same v0: rel. err ours {abs(top_ours - lam) / lam:.1e}, "
          f"matfree {abs(top_mf - lam) / lam:.1e}")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", type=int, default=256)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--out", type=int, default=10)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--skip-torch", action="store_true")
    args = ap.parse_args(argv)
    print(f"machine: {machine()}, JAX {jax.__version__}")
    sizes, x, y, params, t_grad, t_hvp = bench_hvp(args)
    if not args.skip_torch:
        bench_torch(sizes, x, y, params, t_grad, t_hvp)
    bench_dense(args)
    bench_moments(args)
    bench_slq(args)


if __name__ == "__main__":
    main()
