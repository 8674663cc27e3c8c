"""convx.workspace_bytes: bounded scratch that does not grow with the image.

Scratch is per thread and its blocks depend on the kernel, so the bounds below are checked
at a fixed thread count (two, the count the memory target is stated for) on every ISA path
this machine has, whatever its CPU count and best path."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import convx


@pytest.fixture(autouse=True)
def two_threads(restore_threads: int) -> None:
    convx.set_num_threads(2)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_workspace_does_not_grow_with_the_image(layout: str, isa: str) -> None:
    w_shape = (128, 3, 3, 128) if layout == "NHWC" else (128, 128, 3, 3)
    sizes = []
    for hw in (56, 112, 224, 448):
        x_shape = (1, hw, hw, 128) if layout == "NHWC" else (1, 128, hw, hw)
        sizes.append(convx.workspace_bytes(x_shape, w_shape, padding=1, layout=layout))
    assert sizes[1] == sizes[2] == sizes[3]
    # Far below the im2col matrix of the largest image (448*448 x 1152 floats, ~880 MiB):
    # per-thread blocks, plus a packed block of B bounded by the cache-derived budget when
    # the M blocks share one (NCHW, when C_out exceeds the kernel's M block).
    budget = convx.cpu_info()["gemm_blocking"]["float32"]["packed_b_bytes"]
    assert 0 < sizes[-1] < 4 * 2**20 + (budget if layout == "NCHW" else 0)


def test_vgg_conv2_2_workspace_is_under_two_mib(isa: str) -> None:
    # The GEMM's bound; auto takes Winograd here, whose workspace for weights given per
    # call also holds their transform (36/9 times the weights), as the next test states.
    assert convx.workspace_bytes((1, 112, 112, 128), (128, 3, 3, 128), padding=1,
                                 algorithm="gemm") <= 2 * 2**20


def test_winograd_workspace_is_blocks_plus_the_transformed_filters(isa: str) -> None:
    shape, w_shape = (1, 112, 112, 128), (128, 3, 3, 128)
    wino = convx.workspace_bytes(shape, w_shape, padding=1, algorithm="winograd")
    transformed = 36 * 128 * 128 * 4
    assert transformed < wino <= transformed + 2 * 2**20 * convx.get_num_threads()
    # It does not grow with the image.
    assert convx.workspace_bytes((1, 224, 224, 128), w_shape, padding=1,
                                 algorithm="winograd") == wino


def test_workspace_grows_at_most_linearly_with_threads(isa: str) -> None:
    def at(threads: int) -> int:
        convx.set_num_threads(threads)
        return convx.workspace_bytes((1, 112, 112, 128), (128, 3, 3, 128), padding=1)

    one, two, eight = at(1), at(2), at(8)
    assert 0 < one <= two <= eight <= 8 * one


def test_workspace_depends_on_dtype_and_validates() -> None:
    f32 = convx.workspace_bytes((1, 32, 32, 16), (16, 3, 3, 16), padding=1)
    f64 = convx.workspace_bytes((1, 32, 32, 16), (16, 3, 3, 16), padding=1, dtype=np.float64)
    # Other kernels and blocks; the blocks are sized in bytes for the caches, so neither
    # dtype's scratch is far above the other's.
    assert f32 != f64 and max(f32, f64) <= 4 * min(f32, f64)
    with pytest.raises(TypeError, match="dtype"):
        convx.workspace_bytes((1, 32, 32, 16), (16, 3, 3, 16), dtype=np.int32)
    with pytest.raises(ValueError, match="kernel_size"):
        convx.workspace_bytes((1, 2, 2, 16), (16, 3, 3, 16))


def test_workspace_bytes_of_a_huge_batch_is_computed_not_enumerated() -> None:
    # 2**40 images: the figure must come from block counts, not from a list of the blocks
    # (which would need memory in proportion to the batch, most on the scalar path, whose
    # blocks are the smallest). Under a 2 GiB address-space limit in a fresh process.
    code = ("import resource, warnings, convx\n"
            "warnings.simplefilter('ignore', RuntimeWarning)\n"
            "resource.setrlimit(resource.RLIMIT_AS, (2**31, resource.RLIM_INFINITY))\n"
            "convx._core._set_isa('scalar')\n"
            "convx.set_num_threads(3)\n"
            "print(convx.workspace_bytes((2**40, 4, 4, 1), (1, 1, 1, 1)))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert 0 < int(result.stdout) < 2**30
