"""DLPack inputs: PyTorch (and JAX, when installed) CPU tensors are read in place.

Every array argument of convx goes through convx._args.as_array / as_out_array, which
read an object implementing __dlpack__ with np.from_dlpack: the same memory, no copy.
The tests show the core is handed the tensor's own data pointer by spying on the
operator convx makes (functional._make_op) and on the input a layer keeps for backward.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import convx
import convx.functional as functional

torch = pytest.importorskip("torch")


def data_ptr(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


class Producer:
    """An array known to convx only through the DLPack protocol (no __array__), as a
    library other than NumPy or PyTorch would offer it, on the device given."""

    def __init__(self, array: np.ndarray, device: tuple[int, int] = (1, 0)) -> None:
        self._array = array
        self._device = device

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._device


class OperatorSpy:
    """Records the data pointers of the arrays each operator call is given."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[dict[str, int | None]] = []
        real = functional._make_op
        spy = self

        class Proxy:
            def __init__(self, op: Any) -> None:
                self._op = op

            def __call__(self, x: Any, w: Any, b: Any, out: Any) -> Any:
                spy.calls.append({"x": data_ptr(x), "weight": data_ptr(w),
                                  "out": None if out is None else data_ptr(out)})
                return self._op(x, w, b, out)

            def try_call(self, x: Any, w: Any, b: Any, out: Any) -> Any:
                return None  # every call takes the path above

        monkeypatch.setattr(functional, "_OPS", {})
        monkeypatch.setattr(functional, "_make_op", lambda call, packed=None: Proxy(real(call)))


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> OperatorSpy:
    return OperatorSpy(monkeypatch)


def tensors(rng: np.random.Generator) -> tuple[Any, Any, Any]:
    x = torch.from_numpy(rng.standard_normal((2, 9, 9, 3)).astype(np.float32))
    w = torch.from_numpy(rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    b = torch.from_numpy(rng.standard_normal(4).astype(np.float32))
    return x, w, b


# --------------------------------------------------------------------------- conv2d


def test_torch_tensors_give_the_numpy_result_from_their_own_memory(
        spy: OperatorSpy, rng: np.random.Generator) -> None:
    x, w, b = tensors(rng)
    got = convx.conv2d(x, w, b, padding=1)
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, convx.conv2d(x.numpy(), w.numpy(), b.numpy(), padding=1))
    assert spy.calls[0]["x"] == x.data_ptr() and spy.calls[0]["weight"] == w.data_ptr()


def test_torch_tensor_out_is_written_in_place(spy: OperatorSpy,
                                              rng: np.random.Generator) -> None:
    x, w, b = tensors(rng)
    out = torch.empty((2, 7, 7, 4))
    result = convx.conv2d(x, w, b, out=out)
    assert spy.calls[0]["out"] == out.data_ptr() and data_ptr(result) == out.data_ptr()
    np.testing.assert_array_equal(out.numpy(), convx.conv2d(x.numpy(), w.numpy(), b.numpy()))


def test_an_object_with_only_dlpack_is_read_in_place(spy: OperatorSpy,
                                                     rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 6, 6, 2))
    w = rng.standard_normal((3, 2, 2, 2))
    out = np.empty((1, 5, 5, 3))
    convx.conv2d(Producer(x), Producer(w), out=Producer(out))
    assert spy.calls[0] == {"x": data_ptr(x), "weight": data_ptr(w), "out": data_ptr(out)}
    np.testing.assert_array_equal(out, convx.conv2d(x, w))


def test_repeated_tensor_calls_reuse_the_cached_operator(rng: np.random.Generator,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setattr(functional, "_OPS", {})
    x, w, b = tensors(rng)
    first = convx.conv2d(x, w, b)
    assert len(functional._OPS) == 1
    np.testing.assert_array_equal(convx.conv2d(x, w, b), first)
    assert len(functional._OPS) == 1


def test_non_contiguous_tensor_is_copied_as_a_strided_array_is(
        rng: np.random.Generator) -> None:
    x, w, _ = tensors(rng)
    nchw = x.permute(0, 3, 1, 2)  # a strided view of NHWC memory
    before = x.clone()
    w_oihw = w.permute(0, 3, 1, 2)
    got = convx.conv2d(nchw, w_oihw, layout="NCHW")
    want = convx.conv2d(np.ascontiguousarray(nchw.numpy()),
                        np.ascontiguousarray(w_oihw.numpy()), layout="NCHW")
    np.testing.assert_array_equal(got, want)
    assert torch.equal(x, before)


def test_tensor_that_requires_grad_is_refused_with_detach_advice(
        rng: np.random.Generator) -> None:
    x, w, _ = tensors(rng)
    with pytest.raises(TypeError, match=r"x is a tensor that requires grad.*x\.detach\(\)"):
        convx.conv2d(x.clone().requires_grad_(), w)
    with pytest.raises(TypeError, match=r"weight is a tensor that requires grad"):
        convx.conv2d(x, torch.nn.Parameter(w))
    parameter = torch.nn.Parameter(w)
    np.testing.assert_array_equal(convx.conv2d(x, parameter.detach()), convx.conv2d(x, w))


def test_integer_and_other_dtypes_are_refused_as_numpy_ones_are(
        rng: np.random.Generator) -> None:
    x, w, _ = tensors(rng)
    with pytest.raises(TypeError, match=r"x has an integer dtype \(int64\)"):
        convx.conv2d(x.to(torch.int64), w)
    with pytest.raises(TypeError, match=r"weight has a half-precision dtype"):
        convx.conv2d(x, w.half())
    with pytest.raises(TypeError, match=r"x \(Tensor of dtype torch.bfloat16\) cannot be read "
                                        r"through DLPack"):
        convx.conv2d(x.to(torch.bfloat16), w)
    with pytest.raises(TypeError, match=r"x \(Tensor of dtype torch.complex64\) cannot be read"):
        convx.conv2d(x.to(torch.complex64).conj(), w)  # the conjugate bit: no DLPack view
    with pytest.raises(TypeError, match="weight is float64 but x is float32"):
        convx.conv2d(x, w.double())


def test_other_devices_are_refused(rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 4, 4, 1))
    w = rng.standard_normal((1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"x is in CUDA memory; convx takes arrays in CPU "
                                         r"memory: copy it to the CPU first"):
        convx.conv2d(Producer(x, (2, 0)), w)
    with pytest.raises(ValueError, match=r"weight is in DLPack device type 99 memory"):
        convx.conv2d(x, Producer(w, (99, 0)))
    with pytest.raises(ValueError, match=r"x: its DLPack device cannot be read"):
        convx.conv2d(torch.empty((1, 4, 4, 1), device="meta"), w)


def test_read_only_memory_cannot_be_out(rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 4, 4, 1))
    w = rng.standard_normal((1, 1, 1, 1))
    out = np.zeros((1, 4, 4, 1))
    out.setflags(write=False)
    with pytest.raises(ValueError, match=r"out must be writeable \(read-only memory"):
        convx.conv2d(x, w, out=Producer(out))
    assert not out.any()
    with pytest.raises(TypeError, match=r"out must be a numpy\.ndarray \(or a CPU tensor"):
        convx.conv2d(x, w, out=[0.0])  # type: ignore[arg-type]


# ------------------------------------------------------------ layers, backward, others


def test_conv2d_layer_reads_tensors_in_place_and_learns_from_them(
        rng: np.random.Generator) -> None:
    x, _, _ = tensors(rng)
    layer = convx.Conv2D(3, 4, 3, padding=1, seed=0)
    want = layer(x.numpy())
    for _ in range(2):  # the second call runs the operator the first one published
        np.testing.assert_array_equal(layer(x), want)
        assert layer._saved_input is not None
        assert data_ptr(layer._saved_input) == x.data_ptr()
    out = torch.empty(want.shape)
    layer(x, out=out)
    np.testing.assert_array_equal(out.numpy(), want)
    grad = torch.from_numpy(rng.standard_normal(want.shape).astype(np.float32))
    dx = layer.backward(grad)
    layer.zero_grad()
    layer(x.numpy())
    np.testing.assert_array_equal(dx, layer.backward(grad.numpy()))


def test_layer_weights_from_a_torch_module(rng: np.random.Generator) -> None:
    module = torch.nn.Conv2d(3, 4, 3)
    layer = convx.Conv2D(3, 4, 3, layout="NCHW")
    with pytest.raises(TypeError, match=r"weight is a tensor that requires grad"):
        layer.weight = module.weight
    layer.weight = module.weight.detach()
    layer.bias = module.bias.detach()
    x = torch.from_numpy(rng.standard_normal((1, 3, 8, 8)).astype(np.float32))
    np.testing.assert_allclose(layer(x), module(x).detach().numpy(), atol=1e-5)


def test_backward_and_transposed_take_tensors(rng: np.random.Generator) -> None:
    x, w, _ = tensors(rng)
    g = torch.from_numpy(rng.standard_normal((2, 7, 7, 4)).astype(np.float32))
    got = convx.conv2d_backward(g, x, w)
    want = convx.conv2d_backward(g.numpy(), x.numpy(), w.numpy())
    for a, e in zip(got, want):
        np.testing.assert_array_equal(a, e)
    out = torch.empty((2, 9, 9, 3))
    convx.conv_transpose2d(g, w, out=out)  # the adjoint of conv2d with weight w
    np.testing.assert_array_equal(out.numpy(), convx.conv_transpose2d(g.numpy(), w.numpy()))
    a = torch.from_numpy(rng.standard_normal((5, 3)))
    np.testing.assert_array_equal(convx.gemm(a, a.T), convx.gemm(a.numpy(), a.numpy().T))


def test_conv1d_takes_tensors_in_place(spy: OperatorSpy, rng: np.random.Generator) -> None:
    x = torch.from_numpy(rng.standard_normal((2, 3, 20)).astype(np.float32))
    w = torch.from_numpy(rng.standard_normal((5, 3, 4)).astype(np.float32))
    out = torch.empty((2, 5, 17))
    convx.conv1d(x, w, layout="NCL", out=out)
    assert spy.calls[0] == {"x": x.data_ptr(), "weight": w.data_ptr(), "out": out.data_ptr()}
    want = torch.nn.functional.conv1d(x, w).numpy()
    np.testing.assert_allclose(out.numpy(), want, atol=1e-5)
    layer = convx.Conv1D(3, 5, 4, layout="NCL", bias=False)
    layer.weight = w
    np.testing.assert_allclose(layer(x), want, atol=1e-5)
    assert data_ptr(layer._conv._saved_input) == x.data_ptr()
    with pytest.raises(TypeError, match="x is a tensor that requires grad"):
        layer(x.clone().requires_grad_())


def test_jax_arrays_are_read_and_cannot_be_out(rng: np.random.Generator) -> None:
    jnp = pytest.importorskip("jax.numpy")
    x = rng.standard_normal((1, 6, 6, 2)).astype(np.float32)
    w = rng.standard_normal((3, 2, 2, 2)).astype(np.float32)
    np.testing.assert_array_equal(convx.conv2d(jnp.asarray(x), jnp.asarray(w)),
                                  convx.conv2d(x, w))
    with pytest.raises(ValueError, match="out must be writeable"):
        convx.conv2d(x, w, out=jnp.zeros((1, 5, 5, 3), jnp.float32))
