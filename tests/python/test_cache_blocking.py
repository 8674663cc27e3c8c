"""Cache sizes (convx.cpu_info) and the GEMM blocking derived from them.

CONVX_CACHE_SIZES is read once per process, so the override is checked in subprocesses.
Results under another blocking are compared with a float64 NumPy reference: a different
K block changes the order of the sum, so only agreement within rounding is expected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import convx
from convx import _core

KIB, MIB = 1 << 10, 1 << 20


def run_with_sizes(sizes: str | None, body: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CONVX_CACHE_SIZES"}
    if sizes is not None:
        env["CONVX_CACHE_SIZES"] = sizes
    return subprocess.run([sys.executable, "-c", textwrap.dedent(body)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_cpu_info_reports_the_caches_and_the_blocking() -> None:
    info = convx.cpu_info()
    assert info["cache_source"] in ("cpuid", "sysfs", "default", "env")
    assert 1 * KIB <= info["l1d"] <= info["l2"]
    assert info["l3"] == 0 or info["l3"] >= info["l2"]
    assert info["l2_shared_by"] >= 1 and info["l3_shared_by"] >= 1
    for dtype, size in (("float32", 4), ("float64", 8)):
        blk = info["gemm_blocking"][dtype]
        assert info["active"] in blk["kernel"]
        derived = _core._derive_blocking(blk["mr"], blk["nr"], size, info["l1d"], info["l2"],
                                         info["l3"], info["l3_shared_by"])
        assert {k: blk[k] for k in ("mc", "kc", "nc", "packed_b_bytes")} == \
            {k: derived[k] for k in ("mc", "kc", "nc", "packed_b_bytes")}


@pytest.mark.parametrize("l1d, l2, l3", [
    (32 * KIB, 512 * KIB, 8 * MIB), (48 * KIB, MIB, 32 * MIB), (48 * KIB, 2 * MIB, 300 * MIB),
    (4 * KIB, 16 * KIB, 0), (MIB, 64 * MIB, 1 << 30)])
@pytest.mark.parametrize("mr, nr, size", [(4, 8, 4), (6, 16, 4), (12, 32, 4), (12, 16, 8)])
def test_derived_blocks_satisfy_the_rule(l1d: int, l2: int, l3: int, mr: int, nr: int,
                                         size: int) -> None:
    b = _core._derive_blocking(mr, nr, size, l1d, l2, l3)
    assert 64 <= b["kc"] <= 256 and b["kc"] % (64 // size) == 0
    if b["kc"] > 64:  # the B micro-panel and an A sliver fit in 15/16 of L1d
        assert b["kc"] * (mr + nr) * size <= l1d - l1d // 16
    assert b["mc"] % mr == 0 and mr <= b["mc"] <= 64 * mr
    if b["mc"] > mr:  # the packed A block fits in a quarter of L2
        assert b["mc"] * b["kc"] * size <= l2 // 4
    assert MIB <= b["packed_b_bytes"] <= 16 * MIB
    assert b["nc"] % nr == 0 and nr <= b["nc"] <= 4096


def test_blocks_follow_the_caches() -> None:
    zen5 = _core._derive_blocking(12, 32, 4, 48 * KIB, MIB, 32 * MIB, 2)
    assert (zen5["mc"], zen5["kc"], zen5["nc"], zen5["packed_b_bytes"]) == (252, 256, 4096, 8 * MIB)
    assert _core._derive_blocking(12, 32, 4, 32 * KIB, MIB, 32 * MIB, 2)["kc"] < 256
    assert _core._derive_blocking(12, 32, 4, 48 * KIB, 2 * MIB, 32 * MIB, 2)["mc"] > 252
    with pytest.raises(ValueError, match="mr"):
        _core._derive_blocking(0, 32, 4, 48 * KIB, MIB, 0)


CHECK_RESULTS = """
    import json
    import numpy as np
    import convx
    rng = np.random.default_rng(0)
    errs = []
    for dtype, tol in ((np.float32, 2e-4), (np.float64, 1e-11)):
        a = rng.standard_normal((301, 517)).astype(dtype)
        b = rng.standard_normal((517, 203)).astype(dtype)
        ref = a.astype(np.float64) @ b.astype(np.float64)
        errs.append(float(np.max(np.abs(convx.gemm(a, b) - ref)) / np.max(np.abs(ref))) < tol)
        x = rng.standard_normal((2, 17, 19, 40)).astype(dtype)
        layer = convx.Conv2D(40, 24, 3, padding=1, dtype=dtype, seed=1)
        y1 = layer(x)
        convx.set_num_threads(1)
        y2 = layer(x)
        errs.append(bool(np.array_equal(y1, y2)))
    info = convx.cpu_info()
    print(json.dumps({"ok": errs, "source": info["cache_source"], "l1d": info["l1d"],
                      "l2": info["l2"], "l3": info["l3"],
                      "blocking": info["gemm_blocking"]["float32"]}))
"""


@pytest.mark.parametrize("sizes, expect", [
    ("32K,512K,32M", (32 * KIB, 512 * KIB, 32 * MIB)),
    ("48k,2MiB,300M", (48 * KIB, 2 * MIB, 300 * MIB)),
    ("4K,16K", (4 * KIB, 16 * KIB, 0))])
def test_override_sets_caches_and_blocks_and_results_stay_right(
        sizes: str, expect: tuple[int, int, int]) -> None:
    result = run_with_sizes(sizes, CHECK_RESULTS)
    assert result.returncode == 0, result.stderr
    assert "RuntimeWarning" not in result.stderr
    out = json.loads(result.stdout)
    assert out["source"] == "env" and (out["l1d"], out["l2"], out["l3"]) == expect
    blk = out["blocking"]
    derived = _core._derive_blocking(blk["mr"], blk["nr"], 4, *expect)
    assert (blk["mc"], blk["kc"], blk["nc"]) == (derived["mc"], derived["kc"], derived["nc"])
    assert all(out["ok"]), out["ok"]  # gemm and Conv2D right; 1 and N threads bitwise equal


@pytest.mark.parametrize("bad", ["48K", "1M,48K", "48K,1M,512K", "lots", "48K,1M,32M,1G"])
def test_invalid_override_warns_and_keeps_the_detected_sizes(bad: str) -> None:
    body = "import convx; print(convx.cpu_info()['cache_source'], convx.cpu_info()['l1d'])"
    result = run_with_sizes(bad, body)
    assert result.returncode == 0, result.stderr
    assert "CONVX_CACHE_SIZES" in result.stderr and "RuntimeWarning" in result.stderr
    source, l1d = result.stdout.split()
    assert source != "env"
    assert (source, int(l1d)) == (convx.cpu_info()["cache_source"], convx.cpu_info()["l1d"]) \
        or "CONVX_CACHE_SIZES" in os.environ


def test_info_command_prints_caches_and_blocking() -> None:
    result = run_with_sizes("48K,1M,32M", "import convx.__main__ as m; m.main(['info'])")
    assert result.returncode == 0, result.stderr
    assert "L1d 48 KiB, L2 1 MiB, L3 32 MiB [env]" in result.stdout
    assert "gemm float32:" in result.stdout and "KC 256" in result.stdout
