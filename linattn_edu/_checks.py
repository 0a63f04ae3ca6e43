"""Input checks and memory guards shared by every core form.

Every public function validates at its boundary and raises a ``ValueError`` or
``TypeError`` that names what was expected and what came, e.g.::

    k must be (..., N, d) with d == q.shape[-1] == 64; got (2, 8, 128, 32)

Dense N×N work (naive softmax, the quadratic linear form, returned weights) goes
through :func:`check_dense_budget` first, so a large N gives a clear message
instead of an out-of-memory crash.
"""
from __future__ import annotations

import math

import torch

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_budget_bytes = 2 * 1024**3  # default: 2 GiB for any single dense (..., N, M) tensor


class MemoryBudgetError(ValueError):
    """Raised *before* allocating a tensor that would exceed the memory budget."""


def set_memory_budget(nbytes: int) -> int:
    """Set the largest dense tensor (in bytes) a form may allocate; returns the old budget."""
    global _budget_bytes
    if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes <= 0:
        raise ValueError(f"memory budget must be a positive int of bytes; got {nbytes!r}")
    old, _budget_bytes = _budget_bytes, nbytes
    return old


def memory_budget() -> int:
    """The current budget in bytes for a single dense tensor."""
    return _budget_bytes


def format_bytes(n: float) -> str:
    """Human-readable binary size: 1536 -> '1.5 KiB', 17179869184 -> '16.0 GiB'.

    Sizes below 1 MiB that are not whole bytes keep two digits (0.25 MiB prints as '256.0 KiB').
    """
    check_number(n, "a byte count")
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


# One table of dtype names for the whole library (CLI flags, records, error messages).
DTYPES = {
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float64": torch.float64, "fp64": torch.float64, "double": torch.float64,
}


def dtype_name(dtype: torch.dtype) -> str:
    """torch.float32 -> 'float32' (the name records and messages use)."""
    return str(dtype).replace("torch.", "")


def parse_dtype(dtype) -> torch.dtype:
    """A floating torch.dtype, or one of its names in :data:`DTYPES` ('bf16', 'float32', ...)."""
    if isinstance(dtype, torch.dtype) and dtype in _FLOAT_DTYPES:
        return dtype
    if isinstance(dtype, str) and dtype.lower() in DTYPES:
        return DTYPES[dtype.lower()]
    raise ValueError(
        f"dtype must be one of {sorted(set(DTYPES))} (or the matching torch dtype); got {dtype!r}"
    )


def check_number(x, name: str, *, integer: bool = False, minimum=None, maximum=None,
                 exclusive_minimum: bool = False) -> None:
    """The one scalar validator: a finite real number (an ``int`` when ``integer``) in range.

    A bool, a string, a tensor or anything else that is not a Python number raises TypeError;
    NaN, ±inf or a value out of [minimum, maximum] raises ValueError. Messages name what was
    expected and what came, e.g. ``chunk_size must be an int >= 1; got 0``.
    """
    kind = "an int" if integer else "a finite number"
    bounds = []
    if minimum is not None:
        bounds.append(f"{'>' if exclusive_minimum else '>='} {minimum}")
    if maximum is not None:
        bounds.append(f"<= {maximum}")
    expected = f"{name} must be {kind}" + (f" {' and '.join(bounds)}" if bounds else "")
    ok_types = (int,) if integer else (int, float)
    if isinstance(x, bool) or not isinstance(x, ok_types):
        raise TypeError(f"{expected}; got {type(x).__name__} {x!r}")
    if not math.isfinite(x):
        raise ValueError(f"{expected}; got {x!r}")
    too_small = minimum is not None and (x <= minimum if exclusive_minimum else x < minimum)
    if too_small or (maximum is not None and x > maximum):
        raise ValueError(f"{expected}; got {x!r}")


def check_bool(x, name: str) -> None:
    """x must be a real bool (``causal='no'`` is a TypeError, not a silent True)."""
    if not isinstance(x, bool):
        raise TypeError(f"{name} must be True or False; got {type(x).__name__} {x!r}")


def safe_divide(num: torch.Tensor, den: torch.Tensor, eps: float) -> torch.Tensor:
    """out = num / (den + eps), the one safe division of the library.

    num (..., d_v), den (..., 1) -> (..., d_v). A row with no weight at all (den + eps == 0,
    only possible with eps = 0) gives 0, not 0/0: the denominator is clamped to the smallest
    positive normal number, and such a row has num == 0.
    """
    den = (den + eps).clamp_min(torch.finfo(den.dtype).tiny)  # (..., 1); 0 -> tiny
    return num / den                                          # (..., d_v)


def check_dense_budget(shape: tuple[int, ...], dtype: torch.dtype, what: str, hint: str) -> None:
    """Raise MemoryBudgetError if a tensor of ``shape`` and ``dtype`` exceeds the budget."""
    numel = 1
    for s in shape:
        numel *= int(s)
    nbytes = numel * torch.empty((), dtype=dtype).element_size()
    if nbytes > _budget_bytes:
        raise MemoryBudgetError(
            f"{what} would allocate {tuple(shape)} {str(dtype).replace('torch.', '')} = "
            f"{format_bytes(nbytes)} > budget {format_bytes(_budget_bytes)}; {hint} "
            f"(or raise it with linattn_edu.set_memory_budget)"
        )


def check_tensor(x, name: str, *, min_rank: int = 2) -> None:
    """x must be a floating-point torch.Tensor of rank >= min_rank."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a floating tensor (float16/bfloat16/float32/float64); got {x.dtype}"
        )
    if x.dim() < min_rank:
        raise ValueError(
            f"{name} must have at least {min_rank} dims (..., N, d); got shape {tuple(x.shape)}"
        )


def check_qkv(q, k, v, *, causal: bool = False) -> None:
    """Validate the SDPA convention: q (..., N, d), k (..., M, d), v (..., M, d_v).

    Leading dims must be equal, dtypes and devices must match, and causal
    attention needs N == M.
    """
    for x, name in ((q, "q"), (k, "k"), (v, "v")):
        check_tensor(x, name)
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share one dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device; got {q.device}, {k.device}, {v.device}")
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"k must be (..., M, d) with d == q.shape[-1] == {q.shape[-1]}; got {tuple(k.shape)}"
        )
    if v.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"v must be (..., M, d_v) with M == k.shape[-2] == {k.shape[-2]}; got {tuple(v.shape)}"
        )
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ValueError(
            "q, k, v must share leading (batch/head) dims; got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if q.shape[-1] == 0 or k.shape[-2] == 0 or q.shape[-2] == 0:
        raise ValueError(
            f"q, k, v need N >= 1 and d >= 1; got q {tuple(q.shape)}, k {tuple(k.shape)}"
        )
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"causal attention needs as many queries as keys (N == M); got q {tuple(q.shape)}, "
            f"k {tuple(k.shape)}"
        )


def check_positive_int(x, name: str) -> None:
    """x must be an int >= 1 (bool is rejected)."""
    check_number(x, name, integer=True, minimum=1)


def check_eps(eps) -> None:
    """eps must be a finite number >= 0."""
    check_number(eps, "eps", minimum=0)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision inputs are computed (and states accumulated) in float32."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def weighted_sum(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """out = weights @ values, where a weight of exactly 0 never meets a NaN/inf value.

    weights (..., N, M), values (..., M, d_v) -> (..., N, d_v). A plain matmul computes 0·NaN = NaN,
    so one non-finite value (a NaN at token t) would reach every row, also rows i < t that give it
    weight 0. Here a row takes the plain product only where it gives a non-finite value a nonzero
    weight (or has a NaN weight itself); every other row is computed with those values set to 0.
    When every value is finite (the usual case) this is one matmul.
    """
    finite = torch.isfinite(values)  # (..., M, d_v)
    if bool(finite.all()):
        return weights @ values  # (..., N, M) @ (..., M, d_v) -> (..., N, d_v)
    clean = values.masked_fill(~finite, 0)  # (..., M, d_v)
    touched = (weights != 0).to(weights.dtype) @ (~finite).to(weights.dtype) > 0  # (..., N, d_v)
    return torch.where(touched, weights @ values, weights @ clean)  # (..., N, d_v)


def check_shape(shape, name: str) -> tuple[int, ...]:
    """A tuple (or list) of ints >= 1, e.g. a batch_shape (2, 8); returns it as a tuple."""
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of ints >= 1 (e.g. (2, 8) or ()); got "
                        f"{type(shape).__name__} {shape!r}")
    for i, s in enumerate(shape):
        check_number(s, f"{name}[{i}]", integer=True, minimum=1)
    return tuple(shape)


def check_device(device, name: str = "device"):
    """None, a torch.device or a device string torch knows ('cpu', 'cuda:0'); returns torch.device or None."""
    if device is None or isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"{name} must be None, a torch.device or a string like 'cpu'; got {type(device).__name__}")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ValueError(f"{name} must name a torch device ('cpu', 'cuda', 'cuda:0', ...); got {device!r}") from None
