"""Batched L2-logistic regression in torch, for many problems that share one design matrix.

A per-layer probe sweep fits `layer x fold` logistic regressions (twice, with the shuffled-label
control). Fitting them one by one with scikit-learn re-reads each layer's activations once per
fold, per iteration. Here every problem of a layer is a column: one matrix product
`X @ W` serves all folds (held-out rows get weight 0), and layers are stacked on a batch axis.

The objective is scikit-learn's `LogisticRegression(C=C)` (lbfgs), normalised the same way:

    f(w, b) = sum_i s_i log(1 + exp(-y±_i (x_i.w + b))) / S + ||w||^2 / (2 C S),  S = sum_i s_i

with the intercept unpenalised. It is minimised with L-BFGS whose initial inverse Hessian is
Bohning's bound `H0 = X~^T diag(s/4) X~ / S + I/(C S)` (X~: centred features plus a ones column),
inverted once per layer (from the problems' mean row weights). `H0` bounds the logistic Hessian
from above, so its steps are well scaled whatever the activations' anisotropy, and L-BFGS corrects
the rest. Convergence is scikit-learn's test: max |gradient| of f at most `tol`.

When features outnumber samples (`d > n`), the problem is first rotated into the row space of the
centred data (thin QR): the L2-optimal weights lie in that span, so the solution is unchanged and
`H0` is `n x n` instead of `d x d`.

Stopping at `tol` leaves the weights up to about `C * S * tol` away from the optimum, in a direction
that depends on the path L-BFGS took: weighting a row by 2 and repeating it twice are the same
objective but start different paths, and at scikit-learn's default `tol` the two fits' logits
differed by 5e-5 (scikit-learn's sample-weight check allows 1e-7 relative). The path also depends on
the CPU's rounding, so whether such a check passed varied between machines. `polish` adds exact
Newton steps after L-BFGS (with the Hessian at the L-BFGS solution, factored once): from `tol` the
first step lands within about `tol**2` of the optimum and a second reaches float64 rounding, where
every path ends at the same point (measured: the two fits then agree to 2e-15). The Hessian costs
one weighted Gram matrix per problem, as much as `H0`, so the estimator polishes its single problem
while the sweep, with dozens of problems per layer and only AUROCs to report, does not. A step is
kept only where it lowers max |gradient|, so rounding at the optimum (or a singular Hessian) can
never make a fit worse.
"""

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor

_C1 = 1e-4  # Armijo sufficient-decrease constant
_MAX_HALVINGS = 30
_MEMORY = 10  # L-BFGS history length


@dataclass(frozen=True, kw_only=True)
class BatchFit:
    """Solutions of a batch of logistic problems (internal).

    Attributes:
      coef: weights on the original features, `(layer, d, problem)`.
      intercept: intercepts on the original features, `(layer, problem)`.
      logits: decision function of every row under every problem, `(layer, n, problem)`.
      converged: whether max |gradient| reached `tol`, `(layer, problem)`.
      n_iter: L-BFGS iterations run.
    """

    coef: Float[Tensor, "layer d problem"]
    intercept: Float[Tensor, "layer problem"]
    logits: Float[Tensor, "layer n problem"]
    converged: Bool[Tensor, "layer problem"]
    n_iter: int


class _Problem:
    """Objective, gradient and Bohning preconditioner of a batch of weighted logistic fits."""

    def __init__(self, feats: Tensor, y: Tensor, weights: Tensor, C: float) -> None:
        self.x = feats  # (layer, n, k), centred
        self.y = y  # (n, problem)
        self.s = weights  # (n, problem)
        self.C = C
        self.total = weights.sum(0)  # (problem,)
        self.reg = 1.0 / (C * self.total)
        # One bound per layer from the mean weights serves every problem of the layer: problems
        # differ only in which ~1/k of the rows they leave out, and L-BFGS's scaling absorbs that.
        # (Exact per-problem bounds cost a Gram and an inverse each, for no fewer iterations.)
        self.inverse = self._inverse_bound(weights.mean(1))

    def _inverse_bound(self, s: Tensor) -> Tensor:
        """Inverse of Bohning's bound for row weights `s` `(n,)`, `(layer, k+1, k+1)`."""
        x = self.x
        gram = x.transpose(1, 2) @ (x * s[:, None])
        k, total = x.shape[2], s.sum()
        h = torch.empty(x.shape[0], k + 1, k + 1, dtype=x.dtype)
        h[:, :k, :k] = gram * 0.25
        h[:, :k, k] = h[:, k, :k] = 0.25 * (s @ x)
        h[:, k, k] = 0.25 * total
        h[:, :k, :k] += torch.eye(k, dtype=x.dtype) / self.C
        factor, info = torch.linalg.cholesky_ex(h / total)
        if bool((info != 0).any()):  # rounding on a near-singular block: add a little jitter
            jitter = 1e-10 * torch.diagonal(h, dim1=1, dim2=2).mean(1)[:, None, None]
            factor = torch.linalg.cholesky(h / total + jitter * torch.eye(k + 1, dtype=x.dtype))
        return torch.cholesky_inverse(factor)  # applied by matmul: faster than solves per step

    def loss(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """Objective per problem `(layer, problem)` and logits `(layer, n, problem)`."""
        w, b = theta[:, :-1], theta[:, -1]
        z = self.x @ w + b[:, None, :]
        data = (self.s * (torch.nn.functional.softplus(z) - self.y * z)).sum(1) / self.total
        return data + 0.5 * self.reg * (w * w).sum(1), z

    def grad(self, theta: Tensor, z: Tensor) -> Tensor:
        """Gradient `(layer, k+1, problem)` at `theta`, whose logits are `z`."""
        r = self.s * (torch.sigmoid(z) - self.y) / self.total
        gw = self.x.transpose(1, 2) @ r + self.reg * theta[:, :-1]
        return torch.cat([gw, r.sum(1, keepdim=True)], dim=1)

    def precondition(self, q: Tensor) -> Tensor:
        """Applies the inverse Bohning bound to `q` `(layer, k+1, problem)`."""
        return self.inverse @ q

    def hessian(self, z: Tensor) -> Tensor:
        """Exact Hessian of every problem at logits `z`, `(layer, problem, k+1, k+1)`."""
        p = torch.sigmoid(z)
        curvature = (self.s * p * (1 - p) / self.total).transpose(1, 2)  # (layer, problem, n)
        ones = torch.ones(*self.x.shape[:2], 1, dtype=self.x.dtype, device=self.x.device)
        xa = torch.cat([self.x, ones], dim=2)[:, None]  # (layer, 1, n, k+1)
        h = xa.transpose(2, 3) @ (xa * curvature[..., None])
        k = self.x.shape[2]
        diagonal = torch.diagonal(h, dim1=2, dim2=3)[..., :k]
        diagonal += self.reg[None, :, None]  # the intercept is not penalised
        return h


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(1)


History = list[tuple[Tensor, Tensor, Tensor]]  # (s, y, rho) pairs, oldest first


def _direction(problem: _Problem, g: Tensor, history: History) -> Tensor:
    """L-BFGS two-loop recursion, batched over problems, with H0^-1 as the base matrix."""
    q, alphas = g.clone(), []
    for s, yk, rho in reversed(history):
        a = rho * _dot(s, q)
        q -= a[:, None] * yk
        alphas.append(a)
    r = problem.precondition(q)
    if history:
        s, yk, _ = history[-1]
        ratio = _dot(s, yk) / _dot(yk, problem.precondition(yk)).clamp_min(1e-300)
        r *= torch.where(ratio > 0, ratio, torch.ones_like(ratio))[:, None]
    for (s, yk, rho), a in zip(history, reversed(alphas), strict=True):
        r += s * (a - rho * _dot(yk, r))[:, None]
    return -r


def _line_search(
    problem: _Problem, theta: Tensor, f: Tensor, z: Tensor, g: Tensor, p: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Backtracking (Armijo) from step 1, per problem; returns step, new objective, logits."""
    slope = _dot(g, p)  # (layer, problem), negative for a descent direction
    step = torch.ones_like(f)
    slack = 8 * torch.finfo(f.dtype).eps * f.abs()  # rounding in f must not block tiny steps
    accepted = torch.zeros_like(f, dtype=torch.bool)
    f_new = f
    for _ in range(_MAX_HALVINGS):
        f_try, z_try = problem.loss(theta + step[:, None] * p)
        ok = f_try <= f + _C1 * step * slope + slack
        newly = ok & ~accepted
        f_new = torch.where(newly, f_try, f_new)
        z = torch.where(newly[:, None], z_try, z)
        accepted |= ok
        if bool(accepted.all()):
            break
        step = torch.where(accepted, step, step / 2)
    step = torch.where(accepted, step, torch.zeros_like(step))  # give up: stay put
    return step, f_new, z


def fit_logistic(
    x: Float[Tensor, "layer n d"],
    y: Float[Tensor, "n problem"],
    weights: Float[Tensor, "n problem"],
    *,
    C: float,
    tol: float = 1e-6,
    max_iter: int = 500,
    polish: int = 0,
) -> BatchFit:
    """Fits `layer x problem` L2-logistic regressions sharing each layer's design matrix.

    Args:
      x: features per layer; every problem of a layer uses the same rows.
      y: 0/1 label of every row for each problem (e.g. true labels, shuffled labels).
      weights: sample weight of every row for each problem (0 keeps a row out of the fit).
      C: inverse L2 strength, as in scikit-learn's `LogisticRegression`.
      tol: stop a problem when max |gradient| of its normalised objective is at most `tol`.
      max_iter: L-BFGS iteration limit.
      polish: Newton steps after L-BFGS, to reach the optimum to float64 rounding (see the module
        docstring); they cost one `(k+1, k+1)` Hessian per problem.

    Returns:
      A `BatchFit` in the dtype of `x`.
    """
    mean = x.mean(1, keepdim=True)
    centred = x - mean
    basis = None
    if x.shape[2] > x.shape[1]:  # more features than rows: solve in the row space
        basis, r = torch.linalg.qr(centred.transpose(1, 2))
        centred = r.transpose(1, 2)
    problem = _Problem(centred, y.to(x.dtype), weights.to(x.dtype), C)
    theta, n_iter, converged = _minimise(problem, tol=tol, max_iter=max_iter, memory=_MEMORY)
    if polish:
        theta = _polish(problem, theta, polish)
        converged |= problem.grad(theta, problem.loss(theta)[1]).abs().amax(1) <= tol
    w, b_centred = theta[:, :-1], theta[:, -1]
    coef = w if basis is None else basis @ w
    intercept = b_centred - (mean @ coef).squeeze(1)
    logits = centred @ w + b_centred[:, None, :]
    return BatchFit(
        coef=coef, intercept=intercept, logits=logits, converged=converged, n_iter=n_iter
    )


def _initial(problem: _Problem, layers: int) -> Tensor:
    """Zero weights and the log-odds of each problem's weighted class prior as intercept."""
    k, n_problems = problem.x.shape[2], problem.y.shape[1]
    prior = ((problem.s * problem.y).sum(0) / problem.total).clamp(1e-6, 1 - 1e-6)
    theta = torch.zeros(layers, k + 1, n_problems, dtype=problem.x.dtype)
    theta[:, -1] = torch.log(prior / (1 - prior))
    return theta


def _minimise(
    problem: _Problem, *, tol: float, max_iter: int, memory: int
) -> tuple[Tensor, int, Tensor]:
    """Batched L-BFGS; returns the parameters, iterations run and which problems converged."""
    theta = _initial(problem, problem.x.shape[0])
    f, z = problem.loss(theta)
    g = problem.grad(theta, z)
    history: History = []
    stalled = torch.zeros_like(f, dtype=torch.bool)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (n_iter is reported)
        active = (g.abs().amax(1) > tol) & ~stalled
        if not bool(active.any()):
            n_iter -= 1
            break
        p = _direction(problem, g, history)
        uphill = _dot(g, p) >= 0  # rounding broke the quasi-Newton direction: use H0^-1 g
        if bool(uphill.any()):
            p = torch.where(uphill[:, None], -problem.precondition(g), p)
        p = p * active[:, None]
        step, f_new, z = _line_search(problem, theta, f, z, g, p)
        stalled |= active & (step == 0)
        s = step[:, None] * p
        theta = theta + s
        g_new = problem.grad(theta, z)
        yk = g_new - g
        sy = _dot(s, yk)
        rho = torch.where(sy > 1e-300, 1.0 / sy.clamp_min(1e-300), torch.zeros_like(sy))
        history = [*history[-(memory - 1) :], (s, yk, rho)] if memory > 1 else [(s, yk, rho)]
        f, g = f_new, g_new
    return theta, n_iter, g.abs().amax(1) <= tol


def _polish(problem: _Problem, theta: Tensor, steps: int) -> Tensor:
    """Newton steps per problem with the Hessian at the L-BFGS solution (factored once: it barely
    changes over steps this small), each kept only where it lowers max |gradient|."""
    _, z = problem.loss(theta)
    g = problem.grad(theta, z)
    factor, info = torch.linalg.cholesky_ex(problem.hessian(z))
    for _ in range(steps):
        rhs = g.permute(0, 2, 1)[..., None]  # (layer, problem, k+1, 1)
        step = torch.cholesky_solve(rhs, factor)[..., 0].permute(0, 2, 1)
        candidate = theta - step
        g_new = problem.grad(candidate, problem.loss(candidate)[1])
        better = (g_new.abs().amax(1) < g.abs().amax(1)) & (info == 0)
        better &= torch.isfinite(step).all(1)
        theta = torch.where(better[:, None], candidate, theta)
        g = torch.where(better[:, None], g_new, g)
    return theta
