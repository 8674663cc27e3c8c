"""Run-time configuration: the CONVX_ISA override, ISA selection, thread counts and
re-entrancy from several Python threads."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from reference import conv2d_ref, tolerance, uniform

import convx

PROBE = (
    "import numpy as np, convx\n"
    "a = np.arange(12, dtype=np.float32).reshape(3, 4)\n"
    "assert np.array_equal(convx.gemm(a, a.T), a @ a.T)\n"
    "info = convx.cpu_info()\n"
    "print(info['active'], convx.get_num_threads())\n"
)


def run_probe(env_updates: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CONVX_ISA", "CONVX_NUM_THREADS")}
    env.update(env_updates)
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


# --------------------------------------------------------------------------------------
# cpu_info and the CONVX_ISA environment override
# --------------------------------------------------------------------------------------

def test_cpu_info_keys() -> None:
    info = convx.cpu_info()
    for key in ("active", "best", "available"):
        assert key in info
    available = list(info["available"])
    assert "scalar" in available
    assert info["active"] in available
    assert info["best"] in available
    assert all(isinstance(name, str) for name in available)
    assert len(set(available)) == len(available)


def test_default_path_is_best() -> None:
    result = run_probe({})
    assert result.returncode == 0, result.stderr
    active = result.stdout.split()[0]
    assert active == convx.cpu_info()["best"]


def test_convx_isa_scalar() -> None:
    result = run_probe({"CONVX_ISA": "scalar"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "scalar"


@pytest.mark.parametrize("name", ["scalar", "avx2", "avx512"])
def test_convx_isa_each_available_path(name: str) -> None:
    if name not in convx.cpu_info()["available"]:
        pytest.skip(f"{name} is not available on this machine")
    result = run_probe({"CONVX_ISA": name})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == name


@pytest.mark.parametrize("value", ["bogus", "avx3", "sse9", "scalar,avx2"])
def test_convx_isa_invalid_warns_and_uses_the_best_path(value: str) -> None:
    # One warning at import that names the variable, then the default: the whole API
    # (the probe calls gemm, cpu_info and get_num_threads) keeps working.
    result = run_probe({"CONVX_ISA": value})
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert result.stdout.split()[0] == convx.cpu_info()["best"]
    assert result.stderr.count("RuntimeWarning") == 1, result.stderr
    assert f"CONVX_ISA='{value}'" in result.stderr


@pytest.mark.parametrize("name", ["avx2", "avx512"])
def test_convx_isa_unsupported_path_never_crashes(name: str) -> None:
    # Asking for a path this CPU (or build) lacks must not run its instructions: either a
    # clear Python error naming the variable, or a fallback to a path that is available.
    if name in convx.cpu_info()["available"]:
        pytest.skip(f"{name} is available here")
    result = run_probe({"CONVX_ISA": name})
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert result.stdout.split()[0] == convx.cpu_info()["best"]
    assert f"CONVX_ISA={name} is not available" in result.stderr


def test_set_isa_round_trip(isa_names: list[str]) -> None:
    setter = getattr(convx._core, "_set_isa", None)
    if setter is None:
        pytest.skip("convx._core._set_isa does not exist")
    previous = convx.cpu_info()["active"]
    try:
        for name in isa_names:
            setter(name)
            assert convx.cpu_info()["active"] == name
    finally:
        setter(previous)
    assert convx.cpu_info()["active"] == previous


def test_set_isa_rejects_unknown() -> None:
    setter = getattr(convx._core, "_set_isa", None)
    if setter is None:
        pytest.skip("convx._core._set_isa does not exist")
    previous = convx.cpu_info()["active"]
    with pytest.raises((ValueError, RuntimeError), match=r"(?i)bogus|isa"):
        setter("bogus")
    for name in ("avx2", "avx512"):
        if name not in convx.cpu_info()["available"]:
            with pytest.raises((ValueError, RuntimeError), match=name):
                setter(name)
    assert convx.cpu_info()["active"] == previous


# --------------------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_set_get_num_threads(n: int, restore_threads: int) -> None:
    convx.set_num_threads(n)
    assert convx.get_num_threads() == n


def test_default_thread_count_is_positive() -> None:
    assert convx.get_num_threads() >= 1


def test_convx_num_threads_env() -> None:
    result = run_probe({"CONVX_NUM_THREADS": "3"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1] == "3"


@pytest.mark.parametrize("value", ["0", "-2", "-1", "abc", "2.5", "100000", "9" * 30])
def test_convx_num_threads_env_invalid_warns_and_uses_the_default(value: str) -> None:
    result = run_probe({"CONVX_NUM_THREADS": value})
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert int(result.stdout.split()[1]) == convx.cpu_info()["usable_cpus"]
    assert result.stderr.count("RuntimeWarning") == 1, result.stderr
    assert f"CONVX_NUM_THREADS='{value}'" in result.stderr


def test_invalid_environment_leaves_the_api_usable() -> None:
    code = ("import warnings\n"
            "with warnings.catch_warnings(record=True) as seen:\n"
            "    warnings.simplefilter('always')\n"
            "    import convx\n"
            "print(len(seen))\n"
            "convx.set_num_threads(1)\n"
            "convx._core._set_isa('scalar')\n"
            "print(convx.get_num_threads(), convx.cpu_info()['active'])\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("CONVX_ISA", "CONVX_NUM_THREADS", "CONVX_FLUSH_DENORMAL")}
    env.update(CONVX_ISA="bogus", CONVX_NUM_THREADS="0", CONVX_FLUSH_DENORMAL="maybe")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3", "1", "scalar"]


@pytest.mark.parametrize("n", [10**6, 2**31, 10**20])
def test_set_num_threads_rejects_absurd_counts(n: int, restore_threads: int) -> None:
    with pytest.raises((ValueError, TypeError), match=r"(?i)thread|\bn\b"):
        convx.set_num_threads(n)
    assert convx.get_num_threads() == restore_threads


@pytest.mark.parametrize("value", [2.5, "many", None])
def test_set_num_threads_rejects_non_int(value: object, restore_threads: int) -> None:
    with pytest.raises(TypeError, match=r"(?i)thread|\bn\b"):
        convx.set_num_threads(value)  # type: ignore[arg-type]


def test_more_threads_than_work(restore_threads: int, rng: np.random.Generator) -> None:
    convx.set_num_threads(8)
    a = uniform(rng, (2, 3), np.float64)
    b = uniform(rng, (3, 1), np.float64)
    np.testing.assert_allclose(convx.gemm(a, b), a @ b, rtol=1e-14)
    x = uniform(rng, (1, 2, 2, 1), np.float32)
    w = uniform(rng, (1, 1, 1, 1), np.float32)
    np.testing.assert_allclose(convx.conv2d(x, w), x * w[0, 0, 0, 0], rtol=1e-6)


def test_concurrent_calls_from_python_threads(rng: np.random.Generator) -> None:
    # Several Python threads call into convx at once (the GIL is released inside): every
    # call must still get its own, correct answer.
    problems = []
    for i in range(12):
        dtype = np.float32 if i % 2 else np.float64
        groups = 2 if i % 3 == 1 else 1
        x = uniform(rng, (2, 11 + i, 9, 6), dtype)
        w = uniform(rng, (8, 3, 3, 6 // groups), dtype)
        problems.append((x, w, groups))

    def work(problem: tuple[np.ndarray, np.ndarray, int]) -> tuple[np.ndarray, np.ndarray]:
        x, w, groups = problem
        a = x.reshape(-1, x.shape[-1])
        return (convx.conv2d(x, w, padding=1, groups=groups), convx.gemm(a, a.T))

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, problems * 2))
    for (x, w, groups), (y, g) in zip(problems * 2, results):
        fan_in = 9 * w.shape[3]
        want = conv2d_ref(x, w, padding=1, groups=groups)
        np.testing.assert_allclose(y, want, rtol=tolerance(x.dtype, fan_in),
                                   atol=tolerance(x.dtype, fan_in))
        a = x.reshape(-1, x.shape[-1]).astype(np.float64)
        np.testing.assert_allclose(g, a @ a.T, rtol=tolerance(x.dtype, 6),
                                   atol=tolerance(x.dtype, 6))


def test_concurrent_calls_while_changing_thread_count(rng: np.random.Generator) -> None:
    # Changing thread count between calls from another thread must not corrupt results.
    a = uniform(rng, (150, 140), np.float64)
    b = uniform(rng, (140, 130), np.float64)
    want = a @ b
    before = convx.get_num_threads()

    def work(i: int) -> np.ndarray:
        if i % 5 == 0:
            convx.set_num_threads(1 + i % 3)
        return convx.gemm(a, b)

    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            results = list(pool.map(work, range(15)))
    finally:
        convx.set_num_threads(before)
    for got in results:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
