"""convx inside other people's processes: forked children, worker threads that cannot
start, interpreter shutdown with a call in flight, and the thread-count defaults.

Each scenario runs in a fresh interpreter (a hang or an abort there fails the test
instead of the test session), with a timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import convx

# A layer large enough to run on the pool at two threads, and its answer at one thread.
SETUP = textwrap.dedent("""
    import os, sys, warnings
    import numpy as np
    import convx
    warnings.simplefilter("ignore", RuntimeWarning)  # more threads than CPUs is fine here
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 56, 56, 64)).astype(np.float32)
    layer = convx.Conv2D(64, 64, 3, padding=1, seed=0)
    convx.set_num_threads(1)
    expected = layer(x)
""")


def run_script(body: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CONVX_ISA", "CONVX_NUM_THREADS", "CONVX_FLUSH_DENORMAL")}
    return subprocess.run([sys.executable, "-c", SETUP + textwrap.dedent(body)], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_forked_child_computes_after_pooled_work_in_the_parent() -> None:
    result = run_script("""
        convx.set_num_threads(2)
        assert np.array_equal(layer(x), expected)
        pid = os.fork()
        if pid == 0:
            ok = np.array_equal(layer(x), expected)
            convx.set_num_threads(1)  # replaces the pool, whose workers the child lacks
            ok = ok and np.array_equal(layer(x), expected)
            convx.set_num_threads(2)
            ok = ok and np.array_equal(layer(x), expected)
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert np.array_equal(layer(x), expected)  # the parent's pool is untouched
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok"]


def test_fork_pool_workers_compute_after_pooled_work_in_the_parent() -> None:
    result = run_script("""
        import multiprocessing
        convx.set_num_threads(2)
        layer(x)
        def check(_):
            return bool(np.array_equal(layer(x), expected))
        with multiprocessing.get_context("fork").Pool(2) as pool:
            print(pool.map(check, range(4)))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[True,", "True,", "True,", "True]"]


def test_threads_that_cannot_start_give_memory_error_and_a_usable_pool() -> None:
    # Just above the current address space there is room for about one thread stack, so
    # most of the 8 workers cannot start. The call either raises a MemoryError that says
    # so or, if the memory happened to suffice, succeeds; never an abort or a hang. Once
    # the limit is lifted the pool computes with the threads that started.
    result = run_script("""
        import re, resource
        convx.set_num_threads(8)
        size = int(re.search(r"VmSize:\\s+(\\d+)", open("/proc/self/status").read())[1]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size + 12 * 2**20, resource.RLIM_INFINITY))
        try:
            layer(x)
            print("computed")
        except MemoryError as e:
            assert "threads" in str(e), str(e)
            print("MemoryError")
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY,) * 2)
        n = convx.get_num_threads()
        assert 1 <= n <= 8, n
        assert np.array_equal(layer(x), expected)
        convx.set_num_threads(2)
        assert np.array_equal(layer(x), expected)
        print(n)
    """)
    assert result.returncode == 0, (result.returncode, result.stderr)
    outcome, threads = result.stdout.split()
    assert outcome in ("MemoryError", "computed")
    assert (outcome == "computed") == (int(threads) == 8)


def test_interpreter_exit_with_a_daemon_thread_inside_a_call() -> None:
    # The main thread returns while a daemon thread computes without the GIL; CPython
    # ends that thread when it asks for the GIL back. Repeated, since the moment varies.
    body = """
        import threading, time
        convx.set_num_threads(2)
        batch = np.repeat(x, 4, axis=0)
        def loop():
            while True:
                layer(batch)
        threading.Thread(target=loop, daemon=True).start()
        time.sleep(0.05)
        print("main returns")
    """
    for _ in range(4):
        result = run_script(body)
        assert result.returncode == 0, (result.returncode, result.stderr)
        assert "terminate" not in result.stderr


def test_more_threads_than_cpus_warns_once() -> None:
    result = run_script("""
        import warnings
        warnings.simplefilter("always")
        cpus = convx.cpu_info()["usable_cpus"]
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            convx.set_num_threads(cpus)
            convx.set_num_threads(cpus + 1)
            convx.set_num_threads(cpus + 2)
        print(len(seen), convx.get_num_threads() == cpus + 2)
        print(seen[0].message)
    """)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "1 True"
    assert "usable CPU" in lines[1]


def test_default_threads_never_exceed_the_usable_cpus() -> None:
    info = convx.cpu_info()
    if hasattr(os, "sched_getaffinity"):
        assert 1 <= info["usable_cpus"] <= len(os.sched_getaffinity(0))
    env = {k: v for k, v in os.environ.items() if k != "CONVX_NUM_THREADS"}
    result = subprocess.run([sys.executable, "-c", "import convx; print(convx.get_num_threads())"],
                            env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == info["usable_cpus"]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_default_threads_follow_the_affinity_mask() -> None:
    # A process pinned to one CPU (as taskset or a container's cpuset would) starts one
    # thread by default.
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "import convx; print(convx.get_num_threads(), convx.cpu_info()['usable_cpus'])")
    env = {k: v for k, v in os.environ.items() if k != "CONVX_NUM_THREADS"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1"]
