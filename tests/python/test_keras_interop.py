"""Conv2D.from_keras against the Keras layer's own output (Keras 3 on its torch backend;
skipped when keras is not installed). Keras' 'same' is TensorFlow's SAME: for stride > 1
the padding depends on the input size, as convx's 'same' does, so the random
configurations use several input sizes."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from types import ModuleType

import numpy as np
import pytest

import convx


@pytest.fixture(scope="module")
def keras(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """keras on the torch backend. The backend and Keras' home are read at keras' first
    import, so both are set in the environment for that import only."""
    pytest.importorskip("torch")
    saved = {k: os.environ.get(k) for k in ("KERAS_BACKEND", "KERAS_HOME")}
    os.environ["KERAS_BACKEND"] = "torch"
    os.environ["KERAS_HOME"] = str(tmp_path_factory.mktemp("keras_home"))
    try:
        module = pytest.importorskip("keras")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if module.backend.backend() != "torch":
        pytest.skip(f"keras was imported earlier with the {module.backend.backend()} backend")
    yield module


def to_numpy(value: object, keras: ModuleType) -> np.ndarray:
    # On the torch backend the conversion goes through torch's __array__, which NumPy 2
    # warns about.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.array(keras.ops.convert_to_numpy(value))


def keras_output(layer: object, x: np.ndarray, keras: ModuleType) -> np.ndarray:
    return to_numpy(layer(x), keras)  # type: ignore[operator]


@pytest.mark.parametrize("i", range(32))
def test_from_keras_matches_keras(keras: ModuleType, i: int) -> None:
    rng = np.random.default_rng(300 + i)
    groups = int(rng.choice([1, 2]))
    c_in = groups * int(rng.integers(1, 4))
    filters = groups * int(rng.integers(1, 4))
    kernel = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    if i % 2:  # Keras allows strides > 1 or dilation > 1, not both
        strides, dilation = (int(rng.integers(1, 4)), int(rng.integers(1, 4))), (1, 1)
    else:
        strides, dilation = (1, 1), (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    padding = ("same", "valid")[i % 4 // 2]
    activation = (None, "linear", "relu")[i % 3]
    channels_last = i % 8 < 4
    layer = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding,
                                dilation_rate=dilation, groups=groups, activation=activation,
                                use_bias=bool(i % 5), bias_initializer="random_normal",
                                data_format="channels_last" if channels_last
                                else "channels_first")
    for h, w in [(9, 8), (13, 12)]:
        shape = (2, h, w, c_in) if channels_last else (2, c_in, h, w)
        x = rng.standard_normal(shape).astype(np.float32)
        expected = keras_output(layer, x, keras)  # the first call builds the layer
        ours = convx.Conv2D.from_keras(layer)
        assert ours.layout == ("NHWC" if channels_last else "NCHW")
        assert ours.activation == (None if activation != "relu" else "relu")
        np.testing.assert_allclose(ours(x), expected, rtol=0, atol=1e-5)


def test_from_keras_weights_are_hwio_transposed(keras: ModuleType) -> None:
    layer = keras.layers.Conv2D(4, (3, 2))
    layer.build((None, 5, 5, 6))
    kernel = to_numpy(layer.kernel, keras)  # HWIO
    ours = convx.Conv2D.from_keras(layer)
    np.testing.assert_array_equal(ours.weight, kernel.transpose(3, 0, 1, 2))  # OHWI
    np.testing.assert_array_equal(ours.state_dict()["weight"], kernel.transpose(3, 2, 0, 1))


def test_from_keras_rejections(keras: ModuleType) -> None:
    tanh = keras.layers.Conv2D(2, 3, activation="tanh")
    tanh.build((None, 5, 5, 1))
    with pytest.raises(ValueError, match="activation 'tanh'"):
        convx.Conv2D.from_keras(tanh)
    with pytest.raises(ValueError, match="not built"):
        convx.Conv2D.from_keras(keras.layers.Conv2D(2, 3))
    conv1d = keras.layers.Conv1D(2, 3)
    with pytest.raises(TypeError, match=r"keras\.layers\.Conv2D, got Conv1D"):
        convx.Conv2D.from_keras(conv1d)
    with pytest.raises(TypeError, match=r"keras\.layers\.Conv2D, got Conv2DTranspose"):
        convx.Conv2D.from_keras(keras.layers.Conv2DTranspose(2, 3))
