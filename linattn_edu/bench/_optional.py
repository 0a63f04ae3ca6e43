"""The two questions every optional yardstick (FLA's kernels, transformers' fallback) answers the same way."""
from __future__ import annotations

from typing import Callable

__all__ = ["guards"]


def guards(unavailable_reason: Callable[..., str | None]):
    """From ``unavailable_reason(device) -> None | one sentence``: (available(device) -> bool, require(device))."""
    def available(device="cpu") -> bool:
        return unavailable_reason(device) is None

    def require(device="cpu") -> None:
        """Raise ValueError with the reason when the method cannot run on ``device``."""
        reason = unavailable_reason(device)
        if reason is not None:
            raise ValueError(reason)
    return available, require
