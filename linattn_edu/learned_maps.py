"""Learned feature maps φ_θ and what makes training them unstable: a small, seeded distillation lab.

A learned map puts trainable weights W (d × d) and b (d) in front of a fixed nonlinearity, and is trained
so that linear attention's weights imitate softmax attention's (Hedgehog's "softmax mimicry",
Zhang, Bhatia, Kumbong & Ré, ICLR 2024). The kinds compared here, y = W x + b:

| kind | φ_θ(x) | d_φ | what can go wrong |
|---|---|---|---|
| ``elu+1`` | elu(x) + 1 (fixed, no weights: the baseline) | d | nothing trains: a fixed, flat kernel |
| ``learned elu+1`` | elu(y) + 1 | d | features → 0 as weights grow: small denominators |
| ``relu`` | max(y, 0) (T2R-style, Kasai et al., 2021) | d | a kernel value of exactly 0: a row's denominator is 0 |
| ``hedgehog`` | [exp(y), exp(−y)] | 2d | exp overflows: float16 above y ≈ 11.1, float32 above 88.7 |
| ``hedgehog softmax`` | softmax([y, −y]) over the 2d features | 2d | no overflow, but denominators shrink toward eps |

The distillation loss is the row-wise KL divergence KL(P_i ‖ Â_i) between the causal softmax weights
P (the teacher, scale 1/√d) and linear attention's weights Â_ij = A_ij / Σ_{l<=i} A_il,
A_ij = φ(q_i)ᵀφ(k_j) (j <= i). A step whose loss or gradient is not finite is skipped, as a guarded
training loop would, and counted.
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from ._checks import check_number, check_positive_int, check_tensor
from .feature_maps import FeatureMap

__all__ = ["LEARNED_KINDS", "LearnedFeatureMap", "causal_denominators", "distillation_kl", "distill_run",
           "FP16_EXP_LIMIT", "FP32_EXP_LIMIT"]

LEARNED_KINDS = ("elu+1", "learned elu+1", "relu", "hedgehog", "hedgehog softmax")
FP16_EXP_LIMIT = math.log(torch.finfo(torch.float16).max)  # ≈ 11.09: exp(y) is inf in float16 above it
FP32_EXP_LIMIT = math.log(torch.finfo(torch.float32).max)  # ≈ 88.72


def _check_kind(kind) -> str:
    if kind not in LEARNED_KINDS:
        raise ValueError(f"kind must be one of {LEARNED_KINDS}; got {kind!r}")
    return kind


class LearnedFeatureMap(torch.nn.Module):
    """φ_θ: (..., d) -> (..., d_φ), a trainable linear layer y = W x + b before a fixed nonlinearity.

    W starts at the identity plus N(0, init_noise²) entries and b at 0 (as Hedgehog's implementation in
    flash-linear-attention starts from the identity). ``kind`` is one of :data:`LEARNED_KINDS`; "elu+1"
    has no weights (the fixed map of notebook 03).
    """

    def __init__(self, d: int, kind: str, *, generator: torch.Generator | None = None, init_noise: float = 0.1):
        super().__init__()
        check_positive_int(d, "d")
        check_number(init_noise, "init_noise", minimum=0.0)
        self.d, self.kind = d, _check_kind(kind)
        if kind != "elu+1":
            w = torch.eye(d) + init_noise * torch.randn(d, d, generator=generator)  # (d, d)
            self.weight = torch.nn.Parameter(w)
            self.bias = torch.nn.Parameter(torch.zeros(d))  # (d,)

    @property
    def d_out(self) -> int:
        """d_φ: d for elu+1 and relu, 2d for the Hedgehog kinds."""
        return 2 * self.d if self.kind.startswith("hedgehog") else self.d

    def exponent(self, x: torch.Tensor) -> torch.Tensor:
        """y = W x + b (..., d): the pre-activation (the argument of exp for the Hedgehog kinds)."""
        check_tensor(x, "x", min_rank=1)
        if x.shape[-1] != self.d:
            raise ValueError(f"x must be (..., {self.d}); got {tuple(x.shape)}")
        if self.kind == "elu+1":
            return x
        return x @ self.weight.T + self.bias  # (..., d) @ (d, d) -> (..., d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.exponent(x)  # (..., d)
        if self.kind in ("elu+1", "learned elu+1"):
            return F.elu(y) + 1  # (..., d)
        if self.kind == "relu":
            return torch.relu(y)  # (..., d)
        both = torch.cat([y, -y], dim=-1)  # (..., 2d)
        return both.exp() if self.kind == "hedgehog" else both.softmax(-1)  # (..., 2d)

    def as_feature_map(self) -> FeatureMap:
        """This map as a library FeatureMap (for linear_attention and friends): every feature is >= 0."""
        return FeatureMap(f"learned {self.kind}" if self.kind == "elu+1" else self.kind, self.forward,
                          lambda d: self.d_out, nonnegative=True, positive_kernel=True, d=self.d)


def causal_denominators(fq: torch.Tensor, fk: torch.Tensor) -> torch.Tensor:
    """den_i = φ(q_i)ᵀ Σ_{j<=i} φ(k_j), without an N × N matrix: (..., N, d_φ) twice -> (..., N).

    The number causal linear attention divides by; when it nears 0 (or eps) the output and its gradient
    (which carries 1/den²) blow up.
    """
    check_tensor(fq, "fq")
    check_tensor(fk, "fk")
    if fq.shape != fk.shape:
        raise ValueError(f"fk must have fq's shape {tuple(fq.shape)}; got {tuple(fk.shape)}")
    z = fk.cumsum(-2)  # (..., N, d_φ): z_i = Σ_{j<=i} φ(k_j)
    return (fq * z).sum(-1)  # (..., N)


def distillation_kl(p: torch.Tensor, a_hat: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over rows of KL(P_i ‖ Â_i) = Σ_j P_ij (log P_ij − log Â_ij), with 0 · log 0 = 0 (..., N, N) -> ().

    ``mask`` (N, N), True where j may be attended (causal: j <= i), keeps the masked entries out of the
    loss and its gradient. A key the teacher weights (P_ij > 0) that the student gives weight exactly 0
    makes the KL infinite.
    """
    if mask is not None:
        p, a_hat = torch.where(mask, p, 0.0), torch.where(mask, a_hat, 1.0)  # (..., N, N)
    return (torch.special.xlogy(p, p) - torch.special.xlogy(p, a_hat)).sum(-1).mean()


def distill_run(kind: str, *, seed: int = 0, steps: int = 150, lr: float = 0.03, n: int = 64, d: int = 16,
                batch: int = 8, input_scale: float = 2.0, eps: float = 1e-6) -> dict:
    """Train one learned map to mimic causal softmax weights on random q, k; return what happened.

    Every step draws a fresh batch q, k ~ N(0, input_scale²) of shape (batch, n, d) from a generator seeded
    with ``seed`` (the weights' initial noise comes from it too), so a run is reproducible on one machine.
    Adam with learning rate ``lr``; a step with a non-finite loss or gradient is skipped.

    Returns a dict: kind, seed, kl_start and kl_end (the KL on one held-out batch before and after
    training), nonfinite_steps, zero_den_rows_start (fraction of rows of the first batch whose causal
    denominator is exactly 0), zero_kernel_start (fraction of its allowed pairs j <= i whose kernel value
    φ(q_i)ᵀφ(k_j) is exactly 0), min_den (smallest denominator seen in training), max_grad_norm (largest
    finite gradient norm), max_exponent (largest |y| fed to exp, Hedgehog kinds; else None) and cpu_s
    (process CPU seconds). Runs single-threaded and restores the caller's torch thread count.
    """
    _check_kind(kind)
    for name, value in (("steps", steps), ("n", n), ("d", d), ("batch", batch)):
        check_positive_int(value, name)
    check_number(lr, "lr", minimum=0.0)
    check_number(input_scale, "input_scale", minimum=0.0)
    check_number(eps, "eps", minimum=0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors of a few thousand numbers: extra threads cost more CPU than they save
    try:
        return _distill(kind, seed, steps, lr, n, d, batch, input_scale, eps)
    finally:
        torch.set_num_threads(threads)


def _distill(kind, seed, steps, lr, n, d, batch, input_scale, eps) -> dict:
    """The body of :func:`distill_run` (single-threaded by its caller)."""
    t0 = time.process_time()
    g = torch.Generator().manual_seed(seed)
    phi = LearnedFeatureMap(d, kind, generator=g)
    params = list(phi.parameters())
    opt = torch.optim.Adam(params, lr=lr) if params else None
    mask = torch.ones(n, n, dtype=torch.bool).tril()  # (n, n) causal

    def weights(q, k):
        s = q @ k.transpose(-2, -1) / math.sqrt(d)  # (B, n, n) teacher scores
        p = s.masked_fill(~mask, float("-inf")).softmax(-1)  # (B, n, n)
        fq, fk = phi(q), phi(k)  # (B, n, d_φ)
        a = (fq @ fk.transpose(-2, -1)).masked_fill(~mask, 0.0)  # (B, n, n) kernel values, j <= i
        den = causal_denominators(fq, fk)  # (B, n) == a.sum(-1)
        return p, a / (den.unsqueeze(-1) + eps), den  # (B, n, n), (B, n, n), (B, n)

    def held_out_kl():
        with torch.no_grad():
            p, a_hat, _ = weights(*held_out)
            return distillation_kl(p, a_hat, mask).item()

    held_out = [torch.randn(batch, n, d, generator=g) * input_scale for _ in range(2)]  # q, k (B, n, d)
    kl_start = held_out_kl()
    nonfinite, min_den, max_grad, max_exp, zero_start, zero_kernel = 0, math.inf, 0.0, 0.0, None, None
    for step in range(steps if opt is not None else 1):
        q = torch.randn(batch, n, d, generator=g) * input_scale  # (B, n, d)
        k = torch.randn(batch, n, d, generator=g) * input_scale  # (B, n, d)
        p, a_hat, den = weights(q, k)
        if zero_start is None:
            zero_start = (den == 0).double().mean().item()
            zero_kernel = ((a_hat == 0) & mask).double().sum().item() / (mask.sum().item() * batch)
        min_den = min(min_den, den.min().item())
        if kind.startswith("hedgehog"):
            with torch.no_grad():
                max_exp = max(max_exp, phi.exponent(torch.cat([q, k])).abs().max().item())
        if opt is None:
            break
        loss = distillation_kl(p, a_hat, mask)
        opt.zero_grad()
        loss.backward()
        grad = math.sqrt(sum(float(t.grad.double().pow(2).sum()) for t in params))
        if not (math.isfinite(loss.item()) and math.isfinite(grad)):
            nonfinite += 1
            continue
        max_grad = max(max_grad, grad)
        opt.step()
    return {"kind": kind, "seed": seed, "kl_start": kl_start, "kl_end": held_out_kl(), "nonfinite_steps": nonfinite,
            "steps": steps if opt is not None else 0, "zero_den_rows_start": zero_start,
            "zero_kernel_start": zero_kernel, "min_den": min_den,
            "max_grad_norm": max_grad, "max_exponent": max_exp if kind.startswith("hedgehog") else None,
            "cpu_s": time.process_time() - t0}
