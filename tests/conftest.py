"""Shared pytest markers and fixtures for linattn_edu's tests.

Markers (declared in pyproject.toml, ``--strict-markers`` is on):

- ``cuda``: needs a CUDA GPU; skipped when ``torch.cuda.is_available()`` is False.
- ``browser``: drives a real headless Chromium; skipped when none is found, except under
  ``CI=true`` (CI installs Debian's chromium, so a missing browser there is an error, not a skip).
- ``slow``: runs by default; ``pytest -m "not slow"`` leaves these out for a quick loop.

Fixtures: ``device`` (the torch device a ``cuda``-marked test should use, CPU otherwise),
``chromium_executable`` (path to the browser) and ``chromium_args`` (flags that work as root,
headless, on a machine with no network).
"""

from __future__ import annotations

import os
import shutil

import pytest
import torch

try:  # hypothesis is in the [test] extra; the tests that use it import it themselves
    from hypothesis import HealthCheck, settings
except ImportError:  # pragma: no cover - only without the [test] extra
    settings = None

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# Where a Chromium may live; LINATTN_CHROMIUM overrides (e.g. a Chrome on a laptop).
_CHROMIUM_CANDIDATES = (
    "/usr/bin/chromium",
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
)

# Headless flags that work as root, in a container, with no network (no background fetches).
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

if settings is not None:
    # Torch's first call on a shape can take far longer than hypothesis's 200 ms default deadline
    # on a 2-core machine; timing belongs in benchmarks, not in property tests.
    settings.register_profile(
        "linattn",
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile("ci", parent=settings.get_profile("linattn"), derandomize=True)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if IN_CI else "linattn"))


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable, or None. ``LINATTN_CHROMIUM`` wins if set."""
    override = os.environ.get("LINATTN_CHROMIUM")
    if override:
        return override if shutil.which(override) else None
    for candidate in _CHROMIUM_CANDIDATES:
        path = shutil.which(candidate)
        if path:
            return path
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip ``cuda`` tests without a GPU; skip ``browser`` tests without Chromium (fail in CI)."""
    if item.get_closest_marker("cuda") is not None and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)")
    if item.get_closest_marker("browser") is not None and find_chromium() is None:
        message = (
            "needs Chromium: install Debian's `chromium` (apt-get install -y chromium) "
            "or set LINATTN_CHROMIUM to a Chrome/Chromium executable"
        )
        if IN_CI:
            pytest.fail(f"CI=true but no browser found: {message}", pytrace=False)
        pytest.skip(message)


@pytest.fixture
def device(request: pytest.FixtureRequest) -> torch.device:
    """``cuda`` for tests marked ``cuda`` (they are skipped without a GPU), else ``cpu``."""
    if request.node.get_closest_marker("cuda") is not None:
        return torch.device("cuda")
    return torch.device("cpu")


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Path to a Chromium for Playwright's ``executable_path`` (browser tests only)."""
    path = find_chromium()
    if path is None:  # pytest_runtest_setup already skipped/failed browser-marked tests
        pytest.skip("no Chromium found; mark the test with @pytest.mark.browser")
    return path


@pytest.fixture(scope="session")
def chromium_args() -> list[str]:
    """Launch flags for headless Chromium here (root, no sandbox, no network)."""
    return list(CHROMIUM_ARGS)


# -- one pair of numeric helpers for every test file ------------------------------------------
def rand(*shape: int, dtype=torch.float64, seed: int = 0, device="cpu", scale: float = 1.0) -> torch.Tensor:
    """A seeded standard-normal tensor (times ``scale``): the one way tests make inputs."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).to(dtype=dtype, device=device)


def rel_err(ref: torch.Tensor, got: torch.Tensor) -> float:
    """max |got − ref| / max(max |ref|, tiny): the relative error every test reports."""
    ref64, got64 = ref.detach().double().cpu(), got.detach().double().cpu()
    return float((got64 - ref64).abs().max() / ref64.abs().max().clamp_min(1e-300))


def assert_close(name: str, ref: torch.Tensor, got: torch.Tensor, tol: float) -> None:
    """Fail with the max-abs and relative error when ``got`` is not within ``tol`` (relative) of ``ref``.

    Shapes must match exactly; NaN in either tensor is a failure (never silently equal).
    """
    assert got.shape == ref.shape, f"{name}: shape {tuple(got.shape)} != reference {tuple(ref.shape)}"
    assert torch.isfinite(got).all(), f"{name}: result has NaN/inf"
    abs_err = float((got.detach().double().cpu() - ref.detach().double().cpu()).abs().max()) if got.numel() else 0.0
    err = rel_err(ref, got) if got.numel() else 0.0
    assert err <= tol, f"{name}: max abs err {abs_err:.3e}, rel err {err:.3e} > tol {tol:.1e}"
