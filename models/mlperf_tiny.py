"""The four MLPerf Tiny reference architectures, rebuilt in tf_keras.

Built from the published definitions in the ``mlcommons/tiny`` repository
(v0.5/v1.0 reference models), layer for layer:

* ``ds_cnn``: keyword spotting, DS-CNN on 49x10x1 MFCCs
  (``v0.1/training/keyword_spotting/keras_model.py``, ``ds_cnn``): a 10x4/2
  conv of 64 filters, four depthwise-separable blocks of 64, average pool,
  12 classes.
* ``mobilenet_v1``: visual wake words, MobileNetV1 alpha=0.25 on 96x96x3
  (``v0.1/benchmarks/visual_wake_words/vww_model.py``): 8 filters first,
  13 depthwise-separable blocks up to 256, average pool, 2 classes.
* ``resnet8``: image classification, ResNet-8 on 32x32x3
  (``benchmark/training/image_classification/keras_model.py``,
  ``resnet_v1_eembc``; 16 filters as in the v0.5 reference ``.tflite``, the file
  now defaults to 26): three residual stacks of 16, 32, 64, 10 classes.
* ``autoencoder``: anomaly detection, the dense autoencoder on 640 inputs
  (``v0.1/benchmarks/anomaly_detection/keras_model.py``): 4 x 128, 8, 4 x 128,
  640, each hidden layer with BatchNormalization and ReLU.

Converted to int8 they have the reference ``.tflite`` files' MAC counts
(``tests/test_models.py`` checks them against the counts shipped in
``targets/calibration/mlperf_tiny_v0.5/``). Their data sets (Speech Commands,
COCO person, CIFAR-10, ToyADMOS) are not bundled here: edgeprune trains them
on generated data of the right shape (:func:`synthetic_data`), which is good
for size, arena and latency work and says nothing about accuracy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edgeprune.adapters.keras import KerasModel

VERSION = 1


def _layers():
    from edgeprune.adapters.keras import keras

    return keras, keras.layers, keras.regularizers.l2(1e-4)


def _conv_bn_relu(x, filters, kernel, strides, name, reg):
    _, layers, _ = _layers()
    x = layers.Conv2D(
        filters, kernel, strides=strides, padding="same", kernel_regularizer=reg, name=name
    )(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _dw_bn_relu(x, strides, name, reg):
    _, layers, _ = _layers()
    x = layers.DepthwiseConv2D(
        3, strides=strides, padding="same", depthwise_regularizer=reg, name=name
    )(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def ds_cnn(input_shape=(49, 10, 1), n_classes: int = 12) -> KerasModel:
    """DS-CNN keyword spotting (MLPerf Tiny KWS reference), 64 filters."""
    keras, layers, reg = _layers()
    inputs = keras.Input(shape=tuple(input_shape), name="mfcc")
    x = _conv_bn_relu(inputs, 64, (10, 4), 2, "conv1", reg)
    x = layers.Dropout(0.2, name="drop1")(x)
    for i in range(1, 5):
        x = _dw_bn_relu(x, 1, f"dw{i}", reg)
        x = _conv_bn_relu(x, 64, 1, 1, f"pw{i}", reg)
    x = layers.Dropout(0.4, name="drop2")(x)
    x = layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="ds_cnn")


#: MobileNetV1's depthwise-separable blocks: (stride, pointwise filters at alpha=1).
_MOBILENET_BLOCKS = (
    (1, 64),
    (2, 128),
    (1, 128),
    (2, 256),
    (1, 256),
    (2, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (2, 1024),
    (1, 1024),
)


def mobilenet_v1(input_shape=(96, 96, 3), n_classes: int = 2, alpha: float = 0.25) -> KerasModel:
    """MobileNetV1 visual wake words (MLPerf Tiny VWW reference), width ``alpha``."""
    keras, layers, reg = _layers()
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = _conv_bn_relu(inputs, int(32 * alpha), 3, 2, "conv1", reg)
    for i, (stride, filters) in enumerate(_MOBILENET_BLOCKS, start=1):
        x = _dw_bn_relu(x, stride, f"dw{i}", reg)
        x = _conv_bn_relu(x, int(filters * alpha), 1, 1, f"pw{i}", reg)
    x = layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="mobilenet_v1")


def resnet8(input_shape=(32, 32, 3), n_classes: int = 10, filters: int = 16) -> KerasModel:
    """ResNet-8 image classification (MLPerf Tiny IC reference)."""
    keras, layers, reg = _layers()
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = _conv_bn_relu(inputs, filters, 3, 1, "conv1", reg)
    for stack in (1, 2, 3):
        width, stride = filters * 2 ** (stack - 1), 1 if stack == 1 else 2
        y = _conv_bn_relu(x, width, 3, stride, f"s{stack}_conv1", reg)
        y = layers.Conv2D(width, 3, padding="same", kernel_regularizer=reg, name=f"s{stack}_conv2")(
            y
        )
        y = layers.BatchNormalization(name=f"s{stack}_conv2_bn")(y)
        if stride != 1:  # the shortcut matches the halved size and doubled width
            x = layers.Conv2D(
                width,
                1,
                strides=stride,
                padding="same",
                kernel_regularizer=reg,
                name=f"s{stack}_shortcut",
            )(x)
        x = layers.Add(name=f"s{stack}_add")([x, y])
        x = layers.Activation("relu", name=f"s{stack}_relu")(x)
    x = layers.AveragePooling2D(pool_size=int(min(x.shape[1:3])), name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="resnet8")


def autoencoder(input_shape=(640,), n_classes: int | None = None) -> KerasModel:
    """Dense autoencoder anomaly detection (MLPerf Tiny AD reference); the output
    is the reconstructed input (``n_classes`` is ignored)."""
    keras, layers, _ = _layers()
    inputs = keras.Input(shape=tuple(input_shape), name="features")
    x = inputs
    for i, units in enumerate((128, 128, 128, 128, 8, 128, 128, 128, 128), start=1):
        x = layers.Dense(units, name=f"fc{i}")(x)
        x = layers.BatchNormalization(name=f"fc{i}_bn")(x)
        x = layers.Activation("relu", name=f"fc{i}_relu")(x)
    outputs = layers.Dense(int(np.prod(input_shape)), name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="autoencoder")


def synthetic_data(
    input_shape, n_classes: int | None, n: int = 512, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Generated samples of ``input_shape`` and labels a model can learn.

    Classification: each class is a fixed random pattern plus Gaussian noise
    (signal-to-noise about 1), so a trained model separates them and its
    activations have the spread of real inputs. ``n_classes=None`` (the
    autoencoder): low-rank inputs, and the target is the input itself. This
    data is for size, arena and latency work: accuracy on it means nothing
    about the real task.
    """
    rng = np.random.default_rng(seed)
    shape = tuple(input_shape)
    if n_classes is None:
        basis = rng.standard_normal((8, int(np.prod(shape))))
        x = (rng.standard_normal((n, 8)) @ basis / np.sqrt(8)).astype(np.float32)
        return x.reshape((n, *shape)), x.reshape((n, *shape))
    patterns = rng.standard_normal((n_classes, *shape))
    y = rng.integers(0, n_classes, n)
    x = patterns[y] + rng.standard_normal((n, *shape))
    return x.astype(np.float32), y.astype(np.int64)


def calibrate_batchnorm(model: KerasModel, x: np.ndarray) -> None:
    """Set every BatchNormalization's moving mean and variance to the statistics
    of its input on ``x``, layer by layer in graph order.

    A few epochs on generated data leave the moving statistics near their
    initial 0 and 1, and in inference mode the signal of a deep depthwise
    stack then decays to nothing (MobileNetV1's output becomes constant). With
    calibrated statistics every layer sees activations of a realistic spread,
    so importance scores, rebuild checks and int8 calibration mean something.
    """
    from edgeprune.adapters.keras import keras

    for layer in model.layers:
        if layer.__class__.__name__ != "BatchNormalization":
            continue
        probe = keras.Model(model.inputs, layer.input)
        a = probe.predict(x, verbose=0, batch_size=64)
        axes = tuple(range(a.ndim - 1))
        gamma, beta, _, _ = layer.get_weights()
        layer.set_weights([gamma, beta, a.mean(axis=axes), a.var(axis=axes)])


#: name -> (builder, input shape, classes or None for the autoencoder)
REFERENCE = {
    "ds_cnn": (ds_cnn, (49, 10, 1), 12),
    "mobilenet_v1": (mobilenet_v1, (96, 96, 3), 2),
    "resnet8": (resnet8, (32, 32, 3), 10),
    "autoencoder": (autoencoder, (640,), None),
}
