"""convx.gemm against NumPy's float64 matmul, on every ISA path this machine offers."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from reference import conv2d_ref, tolerance, uniform

import convx

DTYPES = [np.float32, np.float64]


def ref_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.float64) @ b.astype(np.float64)


def assert_gemm(got: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    assert got.dtype == a.dtype
    want = ref_matmul(a, b)
    assert got.shape == want.shape
    atol = tolerance(a.dtype, a.shape[1])
    np.testing.assert_allclose(got, want, rtol=atol, atol=atol)


# --------------------------------------------------------------------------------------
# Every M, N, K in 1..40
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", range(1, 41))
def test_all_small_sizes(m: int, dtype: type, isa: str) -> None:
    rng = np.random.default_rng(m)
    a_full = uniform(rng, (m, 40), dtype)
    b_full = uniform(rng, (40, 40), dtype)
    failures = []
    for k in range(1, 41):
        a = np.ascontiguousarray(a_full[:, :k])
        a64 = a.astype(np.float64)
        atol = tolerance(dtype, k)
        for n in range(1, 41):
            b = np.ascontiguousarray(b_full[:k, :n])
            got = convx.gemm(a, b)
            if got.shape != (m, n) or got.dtype != np.dtype(dtype):
                failures.append((m, n, k, "shape/dtype", got.shape, got.dtype))
                continue
            err = float(np.max(np.abs(got - a64 @ b.astype(np.float64))))
            if not err <= atol:
                failures.append((m, n, k, err))
    assert not failures, f"{len(failures)} sizes wrong, first: {failures[:5]}"


# --------------------------------------------------------------------------------------
# Sizes around likely block boundaries
# --------------------------------------------------------------------------------------

EDGE = [63, 64, 65, 127, 128, 129, 255, 256, 257, 383, 384, 385, 511, 512, 513]
BLOCK_SHAPES = (
    [(s, s, s) for s in EDGE[:9]]
    + [(s, 5, s) for s in EDGE[9:]]
    + [(1, 513, 257), (513, 1, 129), (257, 385, 1), (383, 7, 511), (5, 384, 385),
       (385, 129, 64), (128, 511, 383), (512, 17, 256), (31, 512, 513), (384, 255, 2)]
)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("m", "n", "k"), BLOCK_SHAPES)
def test_block_edges(m: int, n: int, k: int, dtype: type, isa: str,
                     rng: np.random.Generator) -> None:
    a = uniform(rng, (m, k), dtype)
    b = uniform(rng, (k, n), dtype)
    assert_gemm(convx.gemm(a, b), a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_square(dtype: type, isa: str, rng: np.random.Generator) -> None:
    a = uniform(rng, (513, 511), dtype)
    b = uniform(rng, (511, 512), dtype)
    assert_gemm(convx.gemm(a, b), a, b)


# --------------------------------------------------------------------------------------
# Strided and transposed operands
# --------------------------------------------------------------------------------------

def _operands(kind: str, rng: np.random.Generator, dtype: type,
              m: int = 37, n: int = 29, k: int = 45) -> tuple[np.ndarray, np.ndarray]:
    if kind == "a_transposed":
        return uniform(rng, (k, m), dtype).T, uniform(rng, (k, n), dtype)
    if kind == "b_transposed":
        return uniform(rng, (m, k), dtype), uniform(rng, (n, k), dtype).T
    if kind == "both_transposed":
        return uniform(rng, (k, m), dtype).T, uniform(rng, (n, k), dtype).T
    if kind == "fortran":
        return (np.asfortranarray(uniform(rng, (m, k), dtype)),
                np.asfortranarray(uniform(rng, (k, n), dtype)))
    if kind == "row_strided":
        return uniform(rng, (3 * m, k), dtype)[::3], uniform(rng, (2 * k, n), dtype)[1::2]
    if kind == "col_strided":
        return uniform(rng, (m, 2 * k), dtype)[:, ::2], uniform(rng, (k, 3 * n), dtype)[:, 2::3]
    if kind == "sub_block":
        return (uniform(rng, (m + 10, k + 7), dtype)[4:4 + m, 3:3 + k],
                uniform(rng, (k + 5, n + 9), dtype)[5:, 9:])
    if kind == "negative_strides":
        return uniform(rng, (m, k), dtype)[::-1], uniform(rng, (k, n), dtype)[:, ::-1]
    if kind == "transposed_and_strided":
        return (uniform(rng, (2 * k, 3 * m), dtype)[::2, ::3].T,
                uniform(rng, (n, 2 * k), dtype)[:, 1::2].T)
    if kind == "broadcast_row":
        row = uniform(rng, (1, k), dtype)
        return np.broadcast_to(row, (m, k)), uniform(rng, (k, n), dtype)
    raise AssertionError(kind)


OPERAND_KINDS = ["a_transposed", "b_transposed", "both_transposed", "fortran", "row_strided",
                 "col_strided", "sub_block", "negative_strides", "transposed_and_strided",
                 "broadcast_row"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", OPERAND_KINDS)
def test_strided_operands(kind: str, dtype: type, isa: str, rng: np.random.Generator) -> None:
    a, b = _operands(kind, rng, dtype)
    assert a.shape == (37, 45)
    assert b.shape == (45, 29)
    before = (a.copy(), b.copy())
    assert_gemm(convx.gemm(a, b), a, b)
    np.testing.assert_array_equal(a, before[0])
    np.testing.assert_array_equal(b, before[1])


@pytest.mark.parametrize("kind", ["a_transposed", "both_transposed", "col_strided"])
def test_strided_operands_large(kind: str, isa: str, rng: np.random.Generator) -> None:
    a, b = _operands(kind, rng, np.float32, m=260, n=130, k=300)
    assert_gemm(convx.gemm(a, b), a, b)


# --------------------------------------------------------------------------------------
# out= and zero-size dimensions
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("m", "n", "k"), [(1, 1, 1), (7, 9, 11), (70, 65, 130)])
def test_out_is_written_in_place(m: int, n: int, k: int, dtype: type,
                                 rng: np.random.Generator) -> None:
    a = uniform(rng, (m, k), dtype)
    b = uniform(rng, (k, n), dtype).T.copy().T     # F-ordered b
    out = np.full((m, n), np.nan, dtype=dtype)      # never read: NaN must not leak
    result = convx.gemm(a, b, out=out)
    assert result is out
    assert_gemm(out, a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_inside_a_larger_buffer(dtype: type, rng: np.random.Generator) -> None:
    # A C-contiguous out that is a slice of rows of a bigger array: the rows around it
    # must stay untouched.
    a = uniform(rng, (6, 5), dtype)
    b = uniform(rng, (5, 4), dtype)
    buffer = np.full((10, 4), -3.0, dtype=dtype)
    out = buffer[2:8]
    assert out.flags.c_contiguous
    assert convx.gemm(a, b, out=out) is out
    assert_gemm(out, a, b)
    assert np.all(buffer[:2] == -3.0)
    assert np.all(buffer[8:] == -3.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("m", "n", "k"), [(0, 5, 3), (4, 0, 3), (0, 0, 3), (0, 0, 0),
                                           (4, 5, 0), (1, 1, 0), (0, 5, 0)])
def test_zero_size_dims(m: int, n: int, k: int, dtype: type) -> None:
    a = np.ones((m, k), dtype=dtype)
    b = np.ones((k, n), dtype=dtype)
    got = convx.gemm(a, b)
    assert got.shape == (m, n)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, np.zeros((m, n)))
    out = np.full((m, n), np.nan, dtype=dtype)
    assert convx.gemm(a, b, out=out) is out
    np.testing.assert_array_equal(out, np.zeros((m, n)))


def test_dtype_is_preserved(rng: np.random.Generator) -> None:
    for dtype in DTYPES:
        a = uniform(rng, (3, 4), dtype)
        assert convx.gemm(a, a.T).dtype == np.dtype(dtype)


def test_exact_for_small_integers(rng: np.random.Generator) -> None:
    # Every partial sum is an integer below 2**24, so f32 accumulation is exact.
    a = rng.integers(-8, 8, size=(50, 300)).astype(np.float32)
    b = rng.integers(-8, 8, size=(300, 40)).astype(np.float32)
    np.testing.assert_array_equal(convx.gemm(a, b), (a.astype(np.int64) @ b.astype(np.int64)))


def test_special_values_propagate() -> None:
    a = np.ones((3, 4), dtype=np.float64)
    b = np.ones((4, 2), dtype=np.float64)
    a[1, 2] = np.nan
    b[0, 1] = np.inf
    got = convx.gemm(a, b)
    assert np.isnan(got[1]).all()
    assert got[0, 1] == np.inf
    assert got[2, 0] == 4.0


# --------------------------------------------------------------------------------------
# Thread count never changes the bits
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("m", [300, 1001])  # 1001: guided M blocks end in a partial panel
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_bitwise_identical_across_thread_counts(m: int, dtype: type, isa: str,
                                                     restore_threads: int,
                                                     rng: np.random.Generator) -> None:
    a = uniform(rng, (m, 500), dtype)
    b = uniform(rng, (500, 200), dtype)
    results = {}
    for threads in (1, 2, 3):
        convx.set_num_threads(threads)
        assert convx.get_num_threads() == threads
        results[threads] = convx.gemm(a, b)
    assert_gemm(results[1], a, b)
    for threads in (2, 3):
        assert results[threads].tobytes() == results[1].tobytes(), threads


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_bitwise_identical_across_thread_counts(layout: str, dtype: type, isa: str,
                                                     restore_threads: int,
                                                     rng: np.random.Generator) -> None:
    x = uniform(rng, (3, 20, 22, 16) if layout == "NHWC" else (3, 16, 20, 22), dtype)
    weight = uniform(rng, (48, 3, 3, 8) if layout == "NHWC" else (48, 8, 3, 3), dtype)
    bias = uniform(rng, (48,), dtype)
    results = []
    # Up and down again: work remembered from a call at one thread count must stay valid
    # at another.
    for threads in (1, 2, 3, 1, 4, 2):
        convx.set_num_threads(threads)
        results.append(convx.conv2d(x, weight, bias, padding=1, groups=2, layout=layout,
                                    activation="relu"))
    want = conv2d_ref(x, weight, bias, padding=1, groups=2, layout=layout, activation="relu")
    atol = tolerance(dtype, 72)
    np.testing.assert_allclose(results[0], want, rtol=atol, atol=atol)
    for i, result in enumerate(results[1:], start=1):
        assert result.tobytes() == results[0].tobytes(), i


def test_isa_paths_agree(isa_names: list[str], rng: np.random.Generator) -> None:
    """Every ISA path agrees with the scalar path, which is always built (a second oracle)."""
    isas = isa_names
    if len(isas) < 2:
        pytest.skip("only one ISA path can be selected on this machine")
    setter = convx._set_isa
    previous = convx.cpu_info()["active"]
    a = uniform(rng, (97, 131), np.float32)
    b = uniform(rng, (131, 75), np.float32)
    outs = {}
    try:
        for name in isas:
            setter(name)
            outs[name] = convx.gemm(a, b)
    finally:
        setter(previous)
    for name, got in outs.items():
        np.testing.assert_allclose(got, outs["scalar"], rtol=1e-4, atol=1e-4, err_msg=name)


def test_contiguous_operands_are_not_copied(rng: np.random.Generator) -> None:
    # Python-side copies are NumPy allocations and show in tracemalloc; a and b here are
    # 4 MB each, the output 1.6 kB.
    a = uniform(rng, (20, 50_000), np.float32)
    b = uniform(rng, (50_000, 20), np.float32)
    out = np.empty((20, 20), np.float32)
    convx.gemm(a, b, out=out)
    tracemalloc.start()
    try:
        convx.gemm(a, b, out=out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < a.nbytes // 8, f"peak Python allocation {peak} B"
    assert_gemm(out, a, b)
