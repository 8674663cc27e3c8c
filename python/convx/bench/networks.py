"""The convolution layers of whole networks, as data, for `python -m convx bench --networks`.

Each network is the list of its convolutions at batch 1 and a 224x224 input, written from
its paper's (or reference implementation's) tables: per row the input height and width,
input and output channels, the square kernel's size, stride, symmetric padding, groups,
and how many times that convolution appears; a repeated block (bottleneck, inception
module, ShuffleNet unit, inverted residual) is a helper that gives its rows from the numbers
of the paper's block table. Rows may repeat a geometry (a 1x1
projection shortcut has the shape of a block's expansion layer, say); `unique_layers`
merges them, adding their counts, so each distinct layer is timed once and weighted by how
often the network runs it. Pooling, normalisation, activations, concatenation, channel
shuffles and the classifier are not convolutions and are not listed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from convx.bench.suite import Layer

__all__ = ["NETWORKS", "ConvSpec", "Network", "network_named", "unique_layers"]


@dataclass(frozen=True)
class ConvSpec:
    """One convolution of a network at a 224x224 input (a batch-1 suite layer, named by its
    label), which the network runs `count` times."""

    label: str
    layer: Layer
    count: int

    @property
    def geometry(self) -> tuple[int, int, int, int, int, int, int, int]:
        """(h, w, c_in, c_out, k, stride, pad, groups): what makes two layers the same."""
        lay = self.layer
        return (lay.h, lay.w, lay.c_in, lay.c_out, lay.k, lay.stride, lay.pad, lay.groups)

    @property
    def macs(self) -> int:
        """Multiply-adds of one run of this convolution (bias not counted)."""
        lay = self.layer
        ho, wo = lay.out_hw
        return ho * wo * lay.c_out * lay.k * lay.k * (lay.c_in // lay.groups)


@dataclass(frozen=True)
class Network:
    name: str
    title: str
    source: str
    specs: tuple[ConvSpec, ...]

    @property
    def conv_layers(self) -> int:
        """Convolutions the network runs (the rows' counts summed)."""
        return sum(s.count for s in self.specs)

    @property
    def gmacs(self) -> float:
        """Giga multiply-adds of all its convolutions at 224x224, batch 1."""
        return sum(s.count * s.macs for s in self.specs) / 1e9


def _c(label: str, h: int, c_in: int, c_out: int, k: int = 1, stride: int = 1,
       groups: int = 1, count: int = 1) -> ConvSpec:
    """A square-input convolution padded to keep the size at stride 1 ("same")."""
    return ConvSpec(label, Layer(label, 1, h, h, c_in, c_out, k, stride, (k - 1) // 2, 1, groups),
                    count)


def _dw(label: str, h: int, c: int, stride: int = 1, count: int = 1) -> ConvSpec:
    """A 3x3 depthwise convolution, padding 1."""
    return _c(label, h, c, c, 3, stride, groups=c, count=count)


def _bottleneck_stage(n: int, h: int, c_in: int, width: int, blocks: int, stride: int
                      ) -> tuple[ConvSpec, ...]:
    """A ResNet v1.5 stage `conv{n}_x` of bottleneck blocks 1x1 -> 3x3 -> 1x1 (to 4 x
    width): the stride is on the first block's 3x3, whose projection shortcut is a 1x1
    convolution of the stage's input."""
    out, ho, s2 = 4 * width, h // stride, "/2" if stride == 2 else ""
    return (_c(f"conv{n}_1 1x1a", h, c_in, width),
            _c(f"conv{n}_1 3x3{s2}", h, width, width, 3, stride),
            _c(f"conv{n} 1x1b", ho, width, out, count=blocks),
            _c(f"conv{n}_1 shortcut{s2}", h, c_in, out, 1, stride),
            _c(f"conv{n} 1x1a", ho, out, width, count=blocks - 1),
            _c(f"conv{n} 3x3", ho, width, width, 3, count=blocks - 1))


# ResNet-50 v1.5 (the torchvision model): stages of [3, 4, 6, 3] bottleneck blocks with
# widths 64, 128, 256, 512.
RESNET50 = Network("resnet50", "ResNet-50", "He et al. 2015, Table 1; torchvision v1.5", (
    _c("conv1", 224, 3, 64, 7, 2),
    *_bottleneck_stage(2, 56, 64, 64, 3, 1),
    *_bottleneck_stage(3, 56, 256, 128, 4, 2),
    *_bottleneck_stage(4, 28, 512, 256, 6, 2),
    *_bottleneck_stage(5, 14, 1024, 512, 3, 2),
))

# VGG-19 (configuration E): sixteen 3x3 convolutions, padding 1, a 2x2 max-pool after each
# group.
VGG19 = Network("vgg19", "VGG-19", "Simonyan and Zisserman 2014, Table 1, column E", (
    _c("conv1_1", 224, 3, 64, 3),
    _c("conv1_2", 224, 64, 64, 3),
    _c("conv2_1", 112, 64, 128, 3),
    _c("conv2_2", 112, 128, 128, 3),
    _c("conv3_1", 56, 128, 256, 3),
    _c("conv3_2-4", 56, 256, 256, 3, count=3),
    _c("conv4_1", 28, 256, 512, 3),
    _c("conv4_2-4", 28, 512, 512, 3, count=3),
    _c("conv5_1-4", 14, 512, 512, 3, count=4),
))


def _inception(name: str, h: int, c_in: int, n1: int, r3: int, n3: int, r5: int, n5: int,
               proj: int) -> tuple[ConvSpec, ...]:
    """One inception module as the paper's table gives it: #1x1, #3x3 reduce, #3x3,
    #5x5 reduce, #5x5 and pool proj (the 1x1 after the 3x3 max-pool)."""
    return (_c(f"{name} 1x1", h, c_in, n1), _c(f"{name} 3x3 reduce", h, c_in, r3),
            _c(f"{name} 3x3", h, r3, n3, 3), _c(f"{name} 5x5 reduce", h, c_in, r5),
            _c(f"{name} 5x5", h, r5, n5, 5), _c(f"{name} pool proj", h, c_in, proj))


# GoogLeNet (Inception v1), with the paper's 5x5 branches; the auxiliary classifiers,
# used in training only, are left out.
GOOGLENET = Network("googlenet", "GoogLeNet (Inception v1)", "Szegedy et al. 2014, Table 1", (
    _c("conv1 7x7/2", 224, 3, 64, 7, 2),
    _c("conv2 3x3 reduce", 56, 64, 64),
    _c("conv2 3x3", 56, 64, 192, 3),
    *_inception("3a", 28, 192, 64, 96, 128, 16, 32, 32),
    *_inception("3b", 28, 256, 128, 128, 192, 32, 96, 64),
    *_inception("4a", 14, 480, 192, 96, 208, 16, 48, 64),
    *_inception("4b", 14, 512, 160, 112, 224, 24, 64, 64),
    *_inception("4c", 14, 512, 128, 128, 256, 24, 64, 64),
    *_inception("4d", 14, 512, 112, 144, 288, 32, 64, 64),
    *_inception("4e", 14, 528, 256, 160, 320, 32, 128, 128),
    *_inception("5a", 7, 832, 256, 160, 320, 32, 128, 128),
    *_inception("5b", 7, 832, 384, 192, 384, 48, 128, 128),
))

# ShuffleNet v1, 1x, g = 3: units of a grouped 1x1 (to a quarter of the stage's width), a
# channel shuffle, a 3x3 depthwise and a grouped 1x1 back. A stage's first unit has stride
# 2 and concatenates an average-pooled shortcut, so its last 1x1 gives the stage's width less
# the input's; the first 1x1 of stage 2 is not grouped (its input has only 24 channels).
def _shuffle_unit(name: str, h: int, c_in: int, c_out: int, first: bool = False,
                  groups: int = 3, count: int = 1) -> tuple[ConvSpec, ...]:
    """A ShuffleNet unit to c_out channels with a bottleneck of c_out / 4. The first unit of
    a stage has stride 2 and gives c_out - c_in channels (the pooled input is concatenated);
    `groups` is that of its first 1x1."""
    mid, stride = c_out // 4, 2 if first else 1
    return (_c(f"{name} 1x1 a", h, c_in, mid, groups=groups, count=count),
            _dw(f"{name} dw" + ("/2" if first else ""), h, mid, stride, count),
            _c(f"{name} 1x1 b", h // stride, mid, c_out - (c_in if first else 0), groups=3,
               count=count))


SHUFFLENET = Network("shufflenet_g3", "ShuffleNet v1 (1x, g=3)", "Zhang et al. 2017, Table 1", (
    _c("conv1 3x3/2", 224, 3, 24, 3, 2),
    *_shuffle_unit("stage2_1", 56, 24, 240, first=True, groups=1),
    *_shuffle_unit("stage2", 28, 240, 240, count=3),
    *_shuffle_unit("stage3_1", 28, 240, 480, first=True),
    *_shuffle_unit("stage3", 14, 480, 480, count=7),
    *_shuffle_unit("stage4_1", 14, 480, 960, first=True),
    *_shuffle_unit("stage4", 7, 960, 960, count=3),
))

# MobileNet-v2 (width 1.0): inverted residual blocks, a 1x1 expansion by t, a 3x3 depthwise
# (the stride of a sequence's first block) and a linear 1x1 projection; the rows follow the
# paper's (t, c, n, s) table.
def _inverted(name: str, h: int, c_in: int, c_out: int, t: int, stride: int = 1,
              count: int = 1) -> tuple[ConvSpec, ...]:
    """An inverted residual block: expansion by t (none when t is 1), depthwise, projection."""
    hidden = c_in * t
    expand = () if t == 1 else (_c(f"{name} expand", h, c_in, hidden, count=count),)
    return (*expand, _dw(f"{name} dw" + ("/2" if stride == 2 else ""), h, hidden, stride, count),
            _c(f"{name} project", h // stride, hidden, c_out, count=count))


MOBILENET_V2 = Network("mobilenet_v2", "MobileNet-v2", "Sandler et al. 2018, Table 2", (
    _c("conv 3x3/2", 224, 3, 32, 3, 2),
    *_inverted("c16", 112, 32, 16, 1),
    *_inverted("c24_1", 112, 16, 24, 6, 2),
    *_inverted("c24", 56, 24, 24, 6),
    *_inverted("c32_1", 56, 24, 32, 6, 2),
    *_inverted("c32", 28, 32, 32, 6, count=2),
    *_inverted("c64_1", 28, 32, 64, 6, 2),
    *_inverted("c64", 14, 64, 64, 6, count=3),
    *_inverted("c96_1", 14, 64, 96, 6),
    *_inverted("c96", 14, 96, 96, 6, count=2),
    *_inverted("c160_1", 14, 96, 160, 6, 2),
    *_inverted("c160", 7, 160, 160, 6, count=2),
    *_inverted("c320", 7, 160, 320, 6),
    _c("conv 1x1", 7, 320, 1280),
))

NETWORKS = (RESNET50, VGG19, SHUFFLENET, GOOGLENET, MOBILENET_V2)


def network_named(name: str) -> Network:
    for net in NETWORKS:
        if net.name == name:
            return net
    raise ValueError(f"network: unknown name {name!r}; known: "
                     f"{', '.join(n.name for n in NETWORKS)}")


def unique_layers(net: Network, resolution: int = 224) -> list[tuple[Layer, int]]:
    """The network's distinct convolutions as batch-1 suite layers, each with the number of
    times the network runs it, in order of first appearance.

    Rows of equal geometry are merged and their counts added; the layer keeps the first
    row's label, prefixed by the network's name. A resolution other than 224 scales every
    input's height and width by resolution / 224 (rounded up), which keeps each layer's
    channels and kernel but not the chaining of shapes between layers: it is for quick
    runs of the harness, not for measurements.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution: expected a positive int, got {resolution!r}")
    merged: dict[tuple[int, ...], tuple[ConvSpec, int]] = {}
    for spec in net.specs:
        first, count = merged.get(spec.geometry, (spec, 0))
        merged[spec.geometry] = (first, count + spec.count)
    return [(replace(spec.layer, name=f"{net.name} {spec.label}",
                     h=-(-spec.layer.h * resolution // 224),
                     w=-(-spec.layer.w * resolution // 224)), count)
            for spec, count in merged.values()]
