"""threadpoolctl sees convx's thread pool: threadpool_info() lists it and threadpool_limits()
sets its thread count for the duration of the block. Every limit here is 1 or the current
count, never more threads than the machine has."""

from __future__ import annotations

import ctypes
import importlib
import importlib.machinery
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import convx

threadpoolctl = pytest.importorskip("threadpoolctl", minversion="3.0")


def _convx_entries() -> list[dict[str, Any]]:
    return [info for info in threadpoolctl.threadpool_info() if info["user_api"] == "convx"]


def test_threadpool_info_lists_convx() -> None:
    entries = _convx_entries()
    assert len(entries) == 1
    (info,) = entries
    assert info["internal_api"] == "convx"
    assert info["num_threads"] == convx.get_num_threads()
    assert info["version"] == convx.__version__
    assert os.path.realpath(info["filepath"]) == os.path.realpath(convx._core.__file__)


def test_threadpool_info_follows_set_num_threads(restore_threads: int) -> None:
    convx.set_num_threads(1)
    assert [info["num_threads"] for info in _convx_entries()] == [1]


@pytest.mark.parametrize("user_api", [None, "convx"])
def test_threadpool_limits_limits_convx(user_api: str | None, restore_threads: int) -> None:
    with threadpoolctl.threadpool_limits(limits=1, user_api=user_api):
        assert convx.get_num_threads() == 1
        assert [info["num_threads"] for info in _convx_entries()] == [1]
    assert convx.get_num_threads() == restore_threads
    controller = threadpoolctl.ThreadpoolController()
    with controller.limit(limits=1, user_api="convx"):
        assert convx.get_num_threads() == 1
    assert convx.get_num_threads() == restore_threads


def test_limits_for_another_api_leave_convx_alone(restore_threads: int) -> None:
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        assert convx.get_num_threads() == restore_threads


def _extension_shared_object() -> str | None:
    """The file of a standard-library extension module built as a shared object, if any."""
    for name in ("_ctypes", "_json", "_struct", "_decimal"):
        try:
            path = getattr(importlib.import_module(name), "__file__", None)
        except ImportError:
            continue
        if path and path.endswith(".so"):
            return str(path)
    return None


def test_another_module_named_core_is_not_taken_for_convx(tmp_path: Path) -> None:
    # A loaded shared object whose file name starts with "_core", as many packages'
    # compiled modules' names do, but that is not convx's: it must not be listed as convx.
    source = _extension_shared_object()
    if source is None:
        pytest.skip("no standard-library extension module here is a shared object")
    other = tmp_path / f"_core{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    shutil.copyfile(source, other)
    ctypes.CDLL(str(other))
    if sys.platform == "linux":  # where threadpoolctl lists what /proc/self/maps shows
        assert str(other) in Path("/proc/self/maps").read_text()
    assert [os.path.realpath(info["filepath"]) for info in _convx_entries()] == \
        [os.path.realpath(convx._core.__file__)]


def test_registration_needs_the_controller_api() -> None:
    # threadpoolctl before 3.0 has neither LibController nor register: nothing happens.
    from convx import _threadpoolctl

    assert _threadpoolctl.register_with(types.ModuleType("threadpoolctl")) is False


def test_convx_imports_without_threadpoolctl() -> None:
    code = ("import sys; sys.modules['threadpoolctl'] = None\n"
            "import convx, convx._threadpoolctl as t\n"
            "assert not t._registered and convx.get_num_threads() >= 1\n"
            "import numpy as np\n"
            "print(convx.conv2d(np.ones((1, 3, 3, 1)), np.ones((1, 3, 3, 1)))[0, 0, 0, 0])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "9.0"
