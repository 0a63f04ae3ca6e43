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
