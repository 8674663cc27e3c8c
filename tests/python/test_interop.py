"""Conv2D / ConvTranspose2D <-> torch.nn modules, and torch-style state dicts.

The random configurations cover stride, dilation, groups, explicit / 'same' / 'valid'
padding, every padding_mode, bias or none, both layouts and float32/float64; each checks
convx's output against the torch module's (computed in float64) and that to_torch gives back
a module equal to the original, parameter for parameter and output for output.
"""

from __future__ import annotations

import numpy as np
import pytest

import convx

torch = pytest.importorskip("torch")
nn = torch.nn

# torch warns that it copies the input for 'same' with an even kernel; that is torch's affair.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")

MODES = ("zeros", "reflect", "replicate", "circular")


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x


def from_layout(y: np.ndarray, layout: str) -> np.ndarray:
    return y.transpose(0, 3, 1, 2) if layout == "NHWC" else y


def torch_out(module: nn.Module, x: np.ndarray) -> np.ndarray:
    """The module's output for x (NCHW), computed in float64 on a float64 copy."""
    copy = type(module)(**module_kwargs(module)).double() if isinstance(
        module, (nn.Conv2d, nn.ConvTranspose2d)) else None
    if copy is None:
        raise TypeError(type(module))
    with torch.no_grad():
        copy.load_state_dict({k: v.double() for k, v in module.state_dict().items()})
        return copy(torch.from_numpy(x.astype(np.float64))).numpy()


def module_kwargs(m: nn.Module) -> dict:
    kwargs = dict(in_channels=m.in_channels, out_channels=m.out_channels,
                  kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                  dilation=m.dilation, groups=m.groups, bias=m.bias is not None,
                  padding_mode=m.padding_mode)
    if isinstance(m, nn.ConvTranspose2d):
        kwargs["output_padding"] = m.output_padding
    return kwargs


def random_conv(rng: np.random.Generator, i: int, mode: str
                ) -> tuple[nn.Conv2d, tuple[int, ...]]:
    """A random nn.Conv2d with this padding_mode and an input shape that fits it."""
    groups = int(rng.choice([1, 1, 2, 3]))
    c_in = groups * int(rng.integers(1, 4))
    c_out = groups * int(rng.integers(1, 4))
    k = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    kind = i % 3
    if kind == 0:  # 'same' (torch allows it for stride 1 only)
        stride: tuple[int, int] = (1, 1)
        padding: object = "same"
    elif kind == 1:
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        padding = "valid"
    else:
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        padding = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
    dtype = torch.float64 if i % 2 else torch.float32
    module = nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, dilation=dilation,
                       groups=groups, bias=bool(rng.integers(0, 2)), padding_mode=mode,
                       dtype=dtype)
    span = [d * (kk - 1) + 1 for d, kk in zip(dilation, k)]
    # Reflection needs the padding smaller than the input; the span bound keeps 'valid' legal.
    h, w = (max(s, 4) + int(rng.integers(0, 5)) for s in span)
    return module, (int(rng.integers(1, 3)), c_in, h, w)


# (configuration, padding_mode): 120 with zeros, 20 with each of the other modes.
CONFIGS = [(i, "zeros") for i in range(120)] + [(120 + i, MODES[1 + i % 3]) for i in range(60)]


@pytest.mark.parametrize(("i", "mode"), CONFIGS)
def test_from_torch_matches_torch(i: int, mode: str) -> None:
    rng = np.random.default_rng(1000 + i)
    module, shape = random_conv(rng, i, mode)
    layout = "NCHW" if i % 4 < 2 else "NHWC"
    layer = convx.Conv2D.from_torch(module, layout=layout)
    np_dtype = np.float64 if module.weight.dtype == torch.float64 else np.float32
    assert layer.dtype == np_dtype
    assert layer.layout == layout
    x = rng.standard_normal(shape).astype(np_dtype)
    expected = torch_out(module, x)
    got = from_layout(layer(to_layout(x, layout)), layout)
    tol = 1e-12 if np_dtype == np.float64 else 1e-5
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=0, atol=tol * scale)

    back = layer.to_torch()
    assert type(back) is nn.Conv2d
    assert module_kwargs(back) == module_kwargs(module)
    assert back.weight.dtype == module.weight.dtype
    for (k1, v1), (k2, v2) in zip(back.state_dict().items(), module.state_dict().items()):
        assert k1 == k2
        assert torch.equal(v1, v2)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        assert torch.equal(back(xt), module(xt))


def random_transpose(rng: np.random.Generator, i: int) -> tuple[nn.ConvTranspose2d,
                                                                tuple[int, ...]]:
    groups = int(rng.choice([1, 2]))
    c_in = groups * int(rng.integers(1, 4))
    c_out = groups * int(rng.integers(1, 4))
    k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    out_pad = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
    padding = tuple(int(rng.integers(0, d * (kk - 1) // 2 + 1)) for d, kk in zip(dilation, k))
    module = nn.ConvTranspose2d(c_in, c_out, k, stride=stride, padding=padding,
                                output_padding=out_pad, dilation=dilation, groups=groups,
                                bias=bool(i % 2),
                                dtype=torch.float64 if i % 3 else torch.float32)
    return module, (2, c_in, int(rng.integers(2, 6)), int(rng.integers(2, 6)))


@pytest.mark.parametrize("i", range(40))
def test_transpose_from_torch_matches_torch(i: int) -> None:
    rng = np.random.default_rng(5000 + i)
    module, shape = random_transpose(rng, i)
    layout = ("NCHW", "NHWC")[i % 2 == 0]
    layer = convx.ConvTranspose2D.from_torch(module, layout=layout)
    np_dtype = np.float64 if module.weight.dtype == torch.float64 else np.float32
    x = rng.standard_normal(shape).astype(np_dtype)
    expected = torch_out(module, x)
    got = from_layout(layer(to_layout(x, layout)), layout)
    tol = 1e-12 if np_dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got, expected, rtol=0,
                               atol=tol * max(1.0, float(np.abs(expected).max())))
    back = layer.to_torch()
    assert module_kwargs(back) == module_kwargs(module)
    for v1, v2 in zip(back.state_dict().values(), module.state_dict().values()):
        assert torch.equal(v1, v2)


# --------------------------------------------------------------------- state dicts ------

@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("bias", [True, False])
def test_state_dict_round_trips_with_torch(layout: str, bias: bool) -> None:
    layer = convx.Conv2D(6, 4, (3, 2), groups=2, bias=bias, layout=layout, seed=3)
    sd = layer.state_dict()
    assert list(sd) == (["weight", "bias"] if bias else ["weight"])
    assert sd["weight"].shape == (4, 3, 3, 2)  # OIHW whatever the layout
    assert sd["weight"].flags.writeable
    module = nn.Conv2d(6, 4, (3, 2), groups=2, bias=bias)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    x = np.random.default_rng(0).standard_normal((1, 6, 5, 5)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(from_layout(layer(to_layout(x, layout)), layout), expected,
                               atol=1e-5)
    # ... and back: torch's state dict (tensors) into a fresh layer.
    other = convx.Conv2D(6, 4, (3, 2), groups=2, bias=bias, layout=layout, seed=9)
    other.load_state_dict(module.state_dict())
    np.testing.assert_array_equal(other.weight, layer.weight)
    if bias:
        np.testing.assert_array_equal(other.bias, layer.bias)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_transpose_state_dict_layout(layout: str) -> None:
    layer = convx.ConvTranspose2D(4, 6, (3, 2), groups=2, layout=layout, seed=1)
    sd = layer.state_dict()
    assert sd["weight"].shape == (4, 3, 3, 2)  # (C_in, C_out/groups, kH, kW)
    module = nn.ConvTranspose2d(4, 6, (3, 2), groups=2)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    x = np.random.default_rng(0).standard_normal((1, 4, 3, 4)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    got = from_layout(layer(to_layout(x, layout)), layout)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_load_state_dict_checks_keys_and_shapes() -> None:
    layer = convx.Conv2D(3, 4, 3, layout="NHWC", seed=0)
    before = layer.state_dict()
    good = {"weight": np.ones((4, 3, 3, 3)), "bias": np.zeros(4)}
    with pytest.raises(ValueError, match=r"missing keys \['bias'\]"):
        layer.load_state_dict({"weight": good["weight"]})
    with pytest.raises(ValueError, match=r"unexpected keys \['running_mean'\]"):
        layer.load_state_dict({**good, "running_mean": np.zeros(4)})
    with pytest.raises(ValueError, match=r"\(4, 3, 3, 2\).*\(4, 3, 3, 3\)"):
        layer.load_state_dict({"weight": np.ones((4, 3, 3, 2)), "bias": np.zeros(4)})
    with pytest.raises(ValueError, match="'bias' has shape"):
        layer.load_state_dict({"weight": good["weight"], "bias": np.zeros(5)})
    with pytest.raises(TypeError, match="dtype int64"):
        layer.load_state_dict({"weight": np.ones((4, 3, 3, 3), dtype=np.int64),
                               "bias": np.zeros(4)})
    with pytest.raises(TypeError, match="mapping"):
        layer.load_state_dict([("weight", good["weight"])])
    # A failed load changes nothing.
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    layer.load_state_dict({"weight": good["weight"]}, strict=False)
    np.testing.assert_array_equal(layer.weight, np.ones((4, 3, 3, 3)))
    np.testing.assert_array_equal(layer.bias, before["bias"])
    no_bias = convx.Conv2D(3, 4, 3, bias=False)
    with pytest.raises(ValueError, match=r"unexpected keys \['bias'\]"):
        no_bias.load_state_dict(good)


def test_state_dict_does_not_alias_the_layer() -> None:
    layer = convx.Conv2D(2, 2, 1, layout="NCHW", seed=0)
    sd = layer.state_dict()
    sd["weight"][...] = 7.0
    assert not np.any(layer.weight == 7.0)


# ---------------------------------------------------------------------- rejections ------

def test_from_torch_rejects_other_modules() -> None:
    with pytest.raises(TypeError, match=r"torch.nn.Conv2d.*Conv1d"):
        convx.Conv2D.from_torch(nn.Conv1d(2, 2, 3))
    with pytest.raises(TypeError, match=r"torch.nn.Conv2d.*Conv3d"):
        convx.Conv2D.from_torch(nn.Conv3d(2, 2, 3))
    with pytest.raises(TypeError, match=r"torch.nn.Conv2d.*ConvTranspose2d"):
        convx.Conv2D.from_torch(nn.ConvTranspose2d(2, 2, 3))
    with pytest.raises(TypeError, match=r"torch.nn.ConvTranspose2d.*Conv2d"):
        convx.ConvTranspose2D.from_torch(nn.Conv2d(2, 2, 3))
    with pytest.raises(TypeError, match="complex"):
        convx.Conv2D.from_torch(nn.Conv2d(2, 2, 3, dtype=torch.complex64))
    with pytest.raises(ValueError, match="lazy"):
        convx.Conv2D.from_torch(nn.LazyConv2d(2, 3))


def test_from_torch_rejects_quantization_aware_modules() -> None:
    qat = pytest.importorskip("torch.ao.nn.qat")
    qconfig = torch.ao.quantization.get_default_qat_qconfig("fbgemm")
    module = qat.Conv2d(2, 2, 3, qconfig=qconfig)
    with pytest.raises(TypeError, match="quantiz"):
        convx.Conv2D.from_torch(module)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_needs_an_explicit_dtype(dtype: str) -> None:
    module = nn.Conv2d(2, 3, 3, dtype=getattr(torch, dtype))
    with pytest.raises(TypeError, match=f"{dtype}.*dtype=np.float32"):
        convx.Conv2D.from_torch(module)
    layer = convx.Conv2D.from_torch(module, layout="NCHW", dtype=np.float32)
    assert layer.dtype == np.float32
    np.testing.assert_array_equal(layer.weight, module.weight.detach().float().numpy())


def test_hooks_are_refused_but_weight_norm_is_followed() -> None:
    module = nn.Conv2d(2, 3, 3)
    module.register_forward_hook(lambda m, i, o: o * 2)
    with pytest.raises(ValueError, match="forward hooks"):
        convx.Conv2D.from_torch(module)
    module = nn.Conv2d(2, 3, 3)
    module.register_forward_pre_hook(lambda m, i: i)
    with pytest.raises(ValueError, match="pre-hook"):
        convx.Conv2D.from_torch(module)


def test_parametrized_weight_norm_module() -> None:
    module = nn.utils.parametrizations.weight_norm(nn.Conv2d(2, 3, 3, dtype=torch.float64))
    with torch.no_grad():
        module.parametrizations.weight.original0.mul_(3.0)  # the norms change the weight
    layer = convx.Conv2D.from_torch(module, layout="NCHW")
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 6))
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(layer(x), expected, atol=1e-12)


def test_to_torch_of_what_nn_conv2d_cannot_express() -> None:
    x = np.random.default_rng(0).standard_normal((1, 3, 7, 8))
    asym = convx.Conv2D(3, 2, 3, padding=((0, 2), (1, 0)), layout="NCHW", dtype=np.float64,
                        activation="relu", seed=0)
    module = asym.to_torch()
    assert isinstance(module, nn.Sequential)
    assert [type(m) for m in module] == [nn.ZeroPad2d, nn.Conv2d, nn.ReLU]
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), asym(x), atol=1e-12)
    lower = convx.Conv2D(3, 2, (2, 4), padding="same_lower", layout="NCHW", dtype=np.float64)
    with torch.no_grad():
        np.testing.assert_allclose(lower.to_torch()(torch.from_numpy(x)).numpy(), lower(x),
                                   atol=1e-12)
    strided_same = convx.Conv2D(3, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="'same' with stride"):
        strided_same.to_torch()
    t = convx.ConvTranspose2D(2, 2, 3, padding=((1, 0), (0, 0)))
    with pytest.raises(ValueError, match="asymmetric"):
        t.to_torch()


@pytest.mark.parametrize("mode", MODES[1:])
def test_padding_mode_passes_through(mode: str) -> None:
    module = nn.Conv2d(2, 3, 3, padding=(1, 2), padding_mode=mode, dtype=torch.float64)
    layer = convx.Conv2D.from_torch(module, layout="NCHW")
    assert layer.padding_mode == mode
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 7))
    with torch.no_grad():
        np.testing.assert_allclose(layer(x), module(torch.from_numpy(x)).numpy(), atol=1e-12)
    assert layer.to_torch().padding_mode == mode


def test_spectral_norm_is_read_without_changing_the_module() -> None:
    module = nn.utils.parametrizations.spectral_norm(nn.Conv2d(2, 3, 3, dtype=torch.float64))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    layer = convx.Conv2D.from_torch(module, layout="NCHW")
    assert module.training
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]), k
    module.eval()
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5))
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(layer(x), expected, atol=1e-12)
