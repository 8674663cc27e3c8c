"""Shared fixtures for the convx Python tests.

* Hypothesis profiles: "ci" (the default, derandomised; 300 examples for each
  property, over 2,000 in all, and the whole suite still runs in a few minutes on
  two cores), "dev" (random, same size) and "thorough" (for a long local run). Pick one with
  HYPOTHESIS_PROFILE=name. The session ends with the line "hypothesis: N examples
  run by M property tests", which .ci/run checks against the 2,000.
* `isa`: a test that takes it runs once per instruction-set path this machine
  offers, with that path selected through the private convx._set_isa; the
  previously active path is restored afterwards.
* `rng`: a NumPy generator seeded from the test's node id, so failures reproduce.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# The helpers in reference.py are imported as a plain module, whatever import mode
# pytest runs in.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import convx

# When a property test fails, Hypothesis's pytest plugin imports its patch writer, which
# imports libcst when that is installed; libcst's import raises a DeprecationWarning from
# mypy_extensions. Under filterwarnings = error that turns every failing property test
# into an INTERNALERROR that aborts the session and hides the real report. Importing it
# once here, with that warning silenced, keeps failures readable.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:  # libcst absent: the plugin then skips patch writing
        pass

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=300,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=1000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# Examples run by the session's property tests: each @given test's inner
# function (which Hypothesis calls once per example, and looks up on every run)
# is wrapped to count its calls.
_examples = {"run": 0, "tests": 0}


def _counted(inner: Any) -> Any:
    @functools.wraps(inner)
    def run_one(*args: Any, **kwargs: Any) -> Any:
        _examples["run"] += 1
        return inner(*args, **kwargs)

    run_one._convx_counted = True  # type: ignore[attr-defined]
    return run_one


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        handle = getattr(getattr(item, "obj", None), "hypothesis", None)
        if handle is None:
            continue
        _examples["tests"] += 1
        if not getattr(handle.inner_test, "_convx_counted", False):
            handle.inner_test = _counted(handle.inner_test)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _examples["tests"]:
        terminalreporter.write_line(
            f"hypothesis: {_examples['run']} examples run by {_examples['tests']} property "
            f"tests (profile {os.environ.get('HYPOTHESIS_PROFILE', 'ci')})"
        )


def _isa_setter():
    return getattr(convx, "_set_isa", None)


def available_isas() -> list[str]:
    """ISA paths a test can select here: all of them when the private setter exists,
    otherwise only the active one (there is no way to switch)."""
    info = convx.cpu_info()
    if _isa_setter() is None:
        return [str(info["active"])]
    return [str(name) for name in info["available"]]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "isa" in metafunc.fixturenames:
        metafunc.parametrize("isa", available_isas(), indirect=True)


@pytest.fixture
def isa(request: pytest.FixtureRequest) -> Iterator[str]:
    name = request.param
    setter = _isa_setter()
    previous = str(convx.cpu_info()["active"])
    if setter is not None:
        setter(name)
        assert convx.cpu_info()["active"] == name
    try:
        yield name
    finally:
        if setter is not None:
            setter(previous)


@pytest.fixture
def isa_names() -> list[str]:
    return available_isas()


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def restore_threads() -> Iterator[int]:
    """Yields the current thread count and puts it back after the test."""
    before = convx.get_num_threads()
    try:
        yield before
    finally:
        convx.set_num_threads(before)
