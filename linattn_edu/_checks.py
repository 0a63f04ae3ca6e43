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


def check_on_device(x: torch.Tensor, name: str, device: torch.device) -> None:
    """x must live on ``device`` (checked before any value check reads x's data)."""
    if x.device != device:
        raise ValueError(f"{name} must be on {device}; got {x.device}")


def _first_bad(x: torch.Tensor, bad: torch.Tensor) -> float:
    """The first entry of x where ``bad`` holds, for an error message."""
    return x[bad].flatten()[0].item()


def check_log_decay(log_decay, lead: tuple, d_phi: int | None, device: torch.device, name: str = "log_decay",
                    *, values: bool = True) -> None:
    """A log-decay g: (*lead) [one gate per step] or (*lead, d_φ) [one per key channel], on ``device``, finite, <= 0.

    Shape and device are checked first; the values (one fused pass, one host sync) only on tensors
    that hold data (a meta tensor has shapes only), and only with ``values`` (see :func:`check_gate_values`).
    """
    check_tensor(log_decay, name, min_rank=0)
    shapes = [tuple(lead)] + ([(*lead, d_phi)] if d_phi is not None else [])
    if tuple(log_decay.shape) not in shapes:
        want = " or ".join(str(s) for s in shapes)
        per_channel = ", + (d_φ,) for one gate per key channel" if d_phi is not None else ""
        raise ValueError(f"{name} must have shape {want} (q.shape[:-1]{per_channel}); got {tuple(log_decay.shape)}")
    check_on_device(log_decay, name, device)
    if values:
        check_gate_values(log_decay=(log_decay, name))


def check_beta(beta, lead: tuple, device: torch.device, name: str = "beta", maximum: float = 1.0, *,
               values: bool = True) -> None:
    """A write strength β: shape (*lead), on ``device``, every entry in (0, maximum] (NaN fails)."""
    check_tensor(beta, name, min_rank=0)
    if tuple(beta.shape) != tuple(lead):
        raise ValueError(f"{name} must have shape {tuple(lead)} (q.shape[:-1], one β per token); "
                         f"got {tuple(beta.shape)}")
    check_on_device(beta, name, device)
    if values:
        check_gate_values(beta=(beta, name, maximum))


def check_gate_values(*, log_decay=None, beta=None) -> None:
    """The values of a log-decay (finite, <= 0) and a β (in (0, max]) in one fused pass and ONE host sync.

    log_decay: (tensor, name) or None; beta: (tensor, name, maximum) or None. Meta tensors (no data)
    are skipped. A decode step calls this once per token, so its cost stays small next to a d × d update.
    """
    stats = []  # (min, max) of each tensor: aminmax is one kernel, NaN propagates into both
    if log_decay is not None and not log_decay[0].is_meta:
        stats += log_decay[0].detach().aminmax()
    if beta is not None and not beta[0].is_meta:
        stats += beta[0].detach().aminmax()
    if not stats:
        return
    values = torch.stack(stats).tolist()  # the one host sync
    g_ok = log_decay is None or log_decay[0].is_meta or (values[0] > -math.inf and values[1] <= 0)
    b_lo, b_hi = values[-2:] if beta is not None and not beta[0].is_meta else (1.0, 1.0)
    if g_ok and b_lo > 0 and b_hi <= (beta[2] if beta is not None else 1.0):  # NaN fails every comparison
        return
    if log_decay is not None and not log_decay[0].is_meta:
        g, name = log_decay
        bad = ~((g <= 0) & (g > -math.inf))
        if bool(bad.any()):
            raise ValueError(f"{name} must be finite and <= 0 (a decay exp(g) in (0, 1]); "
                             f"got an entry {_first_bad(g, bad)!r}")
    b, name, top = beta
    raise ValueError(f"{name} must lie in (0, {top:g}] (a learning rate); got an entry "
                     f"{_first_bad(b, ~((b > 0) & (b <= top)))!r}")


def check_state_dtype(dtype) -> torch.dtype:
    """A state is kept in float32 or float64: a torch dtype or its name ('float64', 'fp32', …)."""
    try:
        parsed = parse_dtype(dtype)
    except ValueError:
        parsed = None
    if parsed not in (torch.float32, torch.float64):
        raise TypeError(f"state dtype must be float32 or float64 (a torch.dtype or its name); got {dtype!r}")
    return parsed


def check_chunk_size(chunk_size, n_tokens: int) -> int:
    """chunk_size must be an int >= 1; returns the C actually used, min(chunk_size, N)."""
    check_positive_int(chunk_size, "chunk_size")
    return min(chunk_size, n_tokens)


def check_initial_state(state, shapes: dict, device: torch.device, name: str = "initial_state") -> tuple | None:
    """An attention function's initial_state: None, or the state it returns with ``return_state=True``.

    shapes {field: expected shape}, e.g. {"S": (2, 8, 64, 64), "z": (2, 8, 64)}: one field is passed
    as a tensor, several as a tuple in that order. Returns a tuple of the tensors (or None).
    """
    if state is None:
        return None
    names = list(shapes)
    want = names[0] if len(names) == 1 else "(" + ", ".join(names) + ")"
    parts = (state,) if len(names) == 1 else state
    if len(names) > 1 and not (isinstance(state, (tuple, list)) and len(state) == len(names)):
        raise TypeError(f"{name} must be a tuple {want} (what return_state=True returns); "
                        f"got {type(state).__name__}")
    for part, field in zip(parts, names):
        label = name if len(names) == 1 else f"{name}'s {field}"  # one tensor is the state itself
        check_tensor(part, label, min_rank=1)
        if tuple(part.shape) != tuple(shapes[field]):
            raise ValueError(f"{label} must have shape {tuple(shapes[field])} ({field}, as return_state=True "
                             f"returns it); got {tuple(part.shape)}")
        check_on_device(part, label, device)
    return tuple(parts)
