"""Feature maps φ: the kernel κ(q, k) = φ(q)ᵀφ(k) that linear attention factorises.

Each map is a :class:`FeatureMap`: call it on (..., d) to get (..., d_φ), ask
``.d_out(d)`` for d_φ, ``.nonnegative`` (every feature >= 0) and
``.positive_kernel`` (φ(q)ᵀφ(k) >= 0 for all inputs, which the normalised form
needs: its denominator is a sum of kernel values).

| map | φ(x) | κ(q, k) | d_φ |
|---|---|---|---|
| elu+1 | elu(x) + 1 | positive, not softmax | d |
| relu | max(x, 0) | >= 0 (can be 0) | d |
| identity | x | qᵀk (can be negative) | d |
| taylor | [1, x', x'⊗x'/√2], x' = x/d^¼ | 1 + s + s²/2, s = qᵀk/√d | 1 + d + d² |
| favor+ | exp(ωᵀx' − ‖x'‖²/2)/√m | unbiased for exp(qᵀk/√d) | m |
| trig | exp(‖x'‖²/2)/√m [sin ωᵀx', cos ωᵀx'] | unbiased for exp(qᵀk/√d), can be < 0 | 2m |

``query(x)`` and ``key(x)`` are the forms used inside attention: for FAVOR+
they subtract stabilisers that cancel in the normalised ratio (a per-query
constant, and one constant for all keys that depends only on ω) and so never
look at other tokens — in particular never at future ones.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from ._checks import (check_bool, check_dense_budget, check_number, check_positive_int, check_tensor,
                      compute_dtype)

__all__ = [
    "FeatureMap", "elu_plus_one", "relu", "identity", "taylor", "favor_plus",
    "trig_random_features", "random_projection", "get_feature_map", "FEATURE_MAPS", "register_feature_map",
    "resolve_feature_map", "featurize", "feature_map_names",
]

Fn = Callable[[torch.Tensor], torch.Tensor]


class FeatureMap:
    """A named feature map φ: (..., d) -> (..., d_φ).

    Attributes:
        name: short name used in figures and widgets ("elu+1", "favor+", …).
        nonnegative: every feature value is >= 0.
        positive_kernel: φ(q)ᵀφ(k) >= 0 for all q, k (needed by the normalised forms).
        d: the input dim a random map was drawn for (None for dim-free maps).
    """

    def __init__(self, name: str, fn: Fn, d_out: Callable[[int], int], *, nonnegative: bool,
                 positive_kernel: bool, d: int | None = None, query_fn: Fn | None = None,
                 key_fn: Fn | None = None):
        self.name, self._fn, self._d_out, self.d = name, fn, d_out, d
        self.nonnegative, self.positive_kernel = nonnegative, positive_kernel
        self._query_fn, self._key_fn = query_fn or fn, key_fn or fn

    def __repr__(self) -> str:
        dim = f", d={self.d}" if self.d is not None else ""
        return f"FeatureMap({self.name!r}{dim})"

    def d_out(self, d: int) -> int:
        """Output dim d_φ for input dim d."""
        check_positive_int(d, "d")
        return self._d_out(d)

    def _checked(self, x) -> torch.Tensor:
        check_tensor(x, f"input of feature map {self.name!r}", min_rank=1)
        if self.d is not None and x.shape[-1] != self.d:
            raise ValueError(
                f"feature map {self.name!r} was built for d = {self.d}: input must be (..., {self.d}); "
                f"got {tuple(x.shape)}"
            )
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The plain feature map φ(x): (..., d) -> (..., d_φ)."""
        return self._fn(self._checked(x))

    def query(self, x: torch.Tensor) -> torch.Tensor:
        """φ for queries inside attention (may carry a per-query constant that cancels)."""
        return self._query_fn(self._checked(x))

    def key(self, x: torch.Tensor) -> torch.Tensor:
        """φ for keys inside attention (may carry one global constant that cancels)."""
        return self._key_fn(self._checked(x))


def _softmax_scaled(x: torch.Tensor) -> torch.Tensor:
    """x' = x / d^¼ in at least float32, so that x'ᵀy' = xᵀy/√d (the softmax scale)."""
    return x.to(compute_dtype(x.dtype)) * x.shape[-1] ** -0.25  # (..., d)


def _elu_plus_one(x: torch.Tensor) -> torch.Tensor:
    """φ(x) = elu(x) + 1 > 0 (Katharopoulos et al., 2020): (..., d) -> (..., d).

    The +1 is added in place (one pass fewer); elu keeps its input, not its output, for backward.
    """
    return F.elu(x).add_(1)  # (..., d)


elu_plus_one = FeatureMap("elu+1", _elu_plus_one, lambda d: d, nonnegative=True, positive_kernel=True)
relu = FeatureMap("relu", F.relu, lambda d: d, nonnegative=True, positive_kernel=True)
identity = FeatureMap("identity", lambda x: x, lambda d: d, nonnegative=False, positive_kernel=False)


def _taylor(x: torch.Tensor) -> torch.Tensor:
    """φ(x) = [1, x', vec(x' x'ᵀ)/√2]: φ(q)ᵀφ(k) = 1 + s + s²/2 with s = q'ᵀk' (Based)."""
    d = x.shape[-1]
    check_dense_budget((*x.shape[:-1], 1 + d + d * d), compute_dtype(x.dtype), "taylor's (..., 1 + d + d²) features",
                       "use a smaller head dim d (d_φ grows like d²) or another feature map")
    xs = _softmax_scaled(x)  # (..., d)
    ones = torch.ones_like(xs[..., :1])  # (..., 1)
    outer = (xs.unsqueeze(-1) * xs.unsqueeze(-2)).flatten(-2) / math.sqrt(2)  # (..., d, d) -> (..., d²)
    return torch.cat([ones, xs, outer], dim=-1)  # (..., 1 + d + d²)


taylor = FeatureMap(
    "taylor", _taylor, lambda d: 1 + d + d * d, nonnegative=False, positive_kernel=True
)


def _check_random_args(d, m, orthogonal, seed) -> None:
    """d, m ints >= 1, orthogonal a bool, seed an int >= 0; ω (m, d) and a (d, d) QR block fit the budget."""
    check_positive_int(d, "d")
    check_positive_int(m, "m")
    check_bool(orthogonal, "orthogonal")
    check_number(seed, "seed", integer=True, minimum=0)
    hint = "use fewer random features m (error falls like 1/√m: m of a few hundred is typical) or a smaller d"
    check_dense_budget((m, d), torch.float64, "the random projection ω (m, d)", hint)
    if orthogonal:
        check_dense_budget((d, d), torch.float64, "an orthogonal (d, d) block of ω", hint)


def random_projection(d: int, m: int, *, orthogonal: bool = True, seed: int = 0) -> torch.Tensor:
    """Gaussian projection ω (m, d), float64, rows ~ N(0, I_d) in distribution.

    orthogonal=True draws blocks of d mutually orthogonal rows (QR of a Gaussian
    matrix), each row rescaled to the norm of an independent Gaussian vector, so
    each row is still N(0, I) but rows within a block are orthogonal: lower
    variance for the same m (Performer, Choromanski et al. 2021).
    """
    _check_random_args(d, m, orthogonal, seed)
    gen = torch.Generator().manual_seed(seed)
    if not orthogonal:
        return torch.randn(m, d, generator=gen, dtype=torch.float64)  # (m, d)
    blocks = []
    for _ in range(math.ceil(m / d)):
        q, r = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))  # (d, d)
        q = q * torch.sign(torch.diagonal(r))  # sign fix: makes q Haar-uniform (else rows are biased)
        blocks.append(q.T)  # (d, d), rows orthonormal, each uniform on the sphere
    omega = torch.cat(blocks, dim=0)[:m]  # (m, d)
    norms = torch.randn(m, d, generator=gen, dtype=torch.float64).norm(dim=-1, keepdim=True)  # (m, 1)
    return omega * norms  # (m, d)


_MAX_KEY_EXPONENT = 60.0  # e^60 ≈ 1e26: far from float32's 3.4e38 even after summing many keys


def favor_plus(d: int, m: int = 256, *, orthogonal: bool = True, seed: int = 0) -> FeatureMap:
    """FAVOR+ positive random features (Performer) for the softmax kernel exp(qᵀk/√d).

        φ(x) = exp(ωᵀx' − ‖x'‖²/2) / √m,  x' = x/d^¼,  ω (m, d) Gaussian
        E_ω[φ(q)ᵀφ(k)] = exp(q'ᵀk') = exp(qᵀk/√d)   (unbiased, and every feature > 0)

    Computed in at least float32. Inside attention the ratio out = φ(q)ᵀS / φ(q)ᵀz
    cancels any constant that multiplies one query's features, or all keys' features:
      * query: exp(ωᵀq' − max_r ω_rᵀq') / √m — a per-query constant, so every feature <= 1/√m
        whatever the query's size (no overflow, never all zero);
      * key: exp(ωᵀk' − ‖k'‖²/2 − c) / √m with one constant c fixed by ω alone. Because
        ωᵀk' − ‖k'‖²/2 <= ‖ω‖²/2 for every k', c = max(0, max_r ‖ω_r‖²/2 − 60) bounds every
        key feature by e^60 for any input; c = 0 (exact features) unless d is large (≳ 100).
    Neither looks at another token, so causal use cannot leak the future (the usual
    stabiliser, a max over all keys of the sequence, does).
    Keys of very large norm (‖k'‖² ≫ 170) underflow to 0 in float32: their weight is
    lost and, if every key underflows, the output is 0 (finite, via eps).
    """
    omega = random_projection(d, m, orthogonal=orthogonal, seed=seed)  # (m, d)
    key_shift = max(0.0, float(omega.pow(2).sum(-1).max() / 2) - _MAX_KEY_EXPONENT)

    def proj(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xs = _softmax_scaled(x)  # (..., d)
        return xs @ omega.to(xs).T, xs  # (..., d) @ (d, m) -> (..., m)

    def fn(x):
        wx, xs = proj(x)  # (..., m)
        return torch.exp(wx - xs.pow(2).sum(-1, keepdim=True) / 2) / math.sqrt(m)  # (..., m)

    def query_fn(x):
        wx, _ = proj(x)  # (..., m)
        return torch.exp(wx - wx.amax(-1, keepdim=True)) / math.sqrt(m)  # (..., m), max = 1/√m

    def key_fn(x):
        wx, xs = proj(x)  # (..., m)
        return torch.exp(wx - xs.pow(2).sum(-1, keepdim=True) / 2 - key_shift) / math.sqrt(m)  # (..., m)

    fmap = FeatureMap("favor+", fn, lambda _d: m, nonnegative=True, positive_kernel=True, d=d,
                      query_fn=query_fn, key_fn=key_fn)
    fmap.omega, fmap.m, fmap.orthogonal, fmap.seed, fmap.key_shift = omega, m, orthogonal, seed, key_shift
    return fmap


def trig_random_features(d: int, m: int = 256, *, orthogonal: bool = True, seed: int = 0) -> FeatureMap:
    """Trigonometric random features (Rahimi & Recht; Performer's FAVOR) for exp(qᵀk/√d).

        φ(x) = exp(‖x'‖²/2)/√m · [sin(ωᵀx'), cos(ωᵀx')],  x' = x/d^¼   -> (..., 2m)
        E_ω[φ(q)ᵀφ(k)] = exp(‖q'‖²/2 + ‖k'‖²/2) E[cos ωᵀ(q'−k')] = exp(q'ᵀk')

    Unbiased, but single estimates can be negative: sums of them make
    denominators near zero or below, which is why the normalised forms reject it
    (``positive_kernel=False``) and why positive features (FAVOR+) exist.
    """
    omega = random_projection(d, m, orthogonal=orthogonal, seed=seed)  # (m, d)

    def fn(x):
        xs = _softmax_scaled(x)  # (..., d)
        wx = xs @ omega.to(xs).T  # (..., d) @ (d, m) -> (..., m)
        amp = torch.exp(xs.pow(2).sum(-1, keepdim=True) / 2) / math.sqrt(m)  # (..., 1)
        return amp * torch.cat([torch.sin(wx), torch.cos(wx)], dim=-1)  # (..., 2m)

    fmap = FeatureMap("trig", fn, lambda _d: 2 * m, nonnegative=False, positive_kernel=False, d=d)
    fmap.omega, fmap.m, fmap.orthogonal, fmap.seed = omega, m, orthogonal, seed
    return fmap


# The one registry of feature maps: a FeatureMap, or a builder(d, **params) -> FeatureMap for random maps.
_REGISTRY: dict[str, FeatureMap | Callable[..., FeatureMap]] = {
    "elu+1": elu_plus_one, "relu": relu, "identity": identity, "taylor": taylor,
    "favor+": favor_plus, "trig": trig_random_features,
}
FEATURE_MAPS = tuple(_REGISTRY)  # the registered names, in registration order


def register_feature_map(name: str, fmap) -> None:
    """Register a FeatureMap (or a builder(d, **params) -> FeatureMap) under ``name``.

    Every widget, error message and test that lists feature maps reads :data:`FEATURE_MAPS`.
    """
    global FEATURE_MAPS
    if not isinstance(name, str) or not name:
        raise TypeError(f"a feature map's name must be a non-empty str; got {name!r}")
    if not (isinstance(fmap, FeatureMap) or callable(fmap)):
        raise TypeError(f"fmap must be a FeatureMap or a builder(d, **params); got {type(fmap).__name__}")
    _REGISTRY[name] = fmap
    FEATURE_MAPS = tuple(_REGISTRY)


def feature_map_names(*, positive_kernel: bool | None = None) -> tuple[str, ...]:
    """The registered names, optionally only those whose kernel is (or is not) positive — what a
    normalised form, and so every explorer's feature-map menu, may offer."""
    if positive_kernel is None:
        return FEATURE_MAPS
    return tuple(n for n in FEATURE_MAPS if get_feature_map(n, 4).positive_kernel == positive_kernel)


def get_feature_map(name, d: int | None = None, **kwargs) -> FeatureMap:
    """Resolve a registered name (or pass a FeatureMap through).

    Random maps ("favor+", "trig") need ``d`` and accept m, orthogonal, seed.
    """
    if d is not None:
        check_positive_int(d, "d")
    if isinstance(name, FeatureMap):
        return name
    if not isinstance(name, str):
        raise TypeError(
            f"feature_map must be a FeatureMap or one of {FEATURE_MAPS}; got {type(name).__name__}"
        )
    if name not in _REGISTRY:
        raise ValueError(f"unknown feature map {name!r}; expected one of {FEATURE_MAPS}")
    entry = _REGISTRY[name]
    if isinstance(entry, FeatureMap):
        if kwargs:
            raise ValueError(f"feature map {name!r} takes no parameters; got {sorted(kwargs)}")
        return entry
    if d is None:
        raise ValueError(f"feature map {name!r} is random and needs the input dim d; got d=None")
    return entry(d, **kwargs)


def resolve_feature_map(feature_map, d: int, *, normalize: bool, owner: str = "inputs") -> FeatureMap:
    """The φ an attention function (or a state, owner="state") uses: a FeatureMap or registered name,
    built for d; a normalised form needs a positive kernel (its denominator is a sum of kernel values)."""
    if not isinstance(feature_map, (FeatureMap, str)):
        raise TypeError(f"feature_map must be a FeatureMap or one of {FEATURE_MAPS}; "
                        f"got {type(feature_map).__name__}")
    phi = get_feature_map(feature_map, d)
    if phi.d is not None and phi.d != d and owner != "inputs":  # on inputs, φ's own call names their shape
        raise ValueError(f"feature map {phi.name!r} was built for d = {phi.d}; the {owner} has d = {d}: "
                         f"build it with the {owner}'s d")
    if normalize and not phi.positive_kernel:
        raise ValueError(f"feature map {phi.name!r} can give negative kernel values, so the normalised "
                         "denominator φ(q)ᵀz can be 0 or negative; expected a map with positive_kernel=True "
                         "(elu+1, relu, favor+, taylor), or normalize=False")
    return phi


def featurize(q: torch.Tensor, k: torch.Tensor, feature_map):
    """Apply φ for attention: (φ.query(q), φ.key(k)) in the compute dtype (float32 for halves).

    q (..., N, d), k (..., M, d), feature_map a FeatureMap or registered name -> (..., N, d_φ), (..., M, d_φ).
    """
    phi = get_feature_map(feature_map, q.shape[-1])
    work = compute_dtype(q.dtype)
    return phi.query(q).to(work), phi.key(k).to(work)  # (..., N, d_φ), (..., M, d_φ)
