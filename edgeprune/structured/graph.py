"""Channel dependency analysis of a tf_keras model: which channels must be cut together.

Every output channel of a *producer* (a layer whose kernel creates channels:
Conv1D/2D/3D, Conv2DTranspose, SeparableConv, Dense) is an *atom*. Each
tensor's last axis is described by the atom each position carries (``-1`` for
channels no producer owns: the model input, the output of an unknown layer).
Walking the graph in order:

* layers that keep the channel axis as it is (BatchNormalization, activations,
  Dropout, pooling, padding, DepthwiseConv2D with ``depth_multiplier=1`` ...)
  pass the description through;
* Flatten (channels last) repeats it once per spatial position, so a Dense
  after it cuts the rows of every position a removed channel had;
* Concatenate on the channel axis joins the descriptions, with their offsets;
* Add, Subtract, Multiply, Average, Maximum, Minimum tie position *i* of every
  input together: the atoms are merged (union-find), so all branches and the
  shortcut lose the same channels;
* anything else (an unknown layer, a Reshape that moves the channel axis,
  LayerNormalization, a shared layer, a channels-first layer) *blocks*: the
  atoms reaching it are kept whole, and the report names the layer and why.

A *channel* that can be cut is then a class of merged atoms none of which is
blocked and none of which reaches a model output. A *group* is a set of
producers whose channels are merged (the convolutions around a residual Add
form one group); the pruning unit is one channel of one group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edgeprune.adapters.keras import KerasModel

PRODUCERS = (
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "Conv2DTranspose",
    "SeparableConv1D",
    "SeparableConv2D",
    "Dense",
)
PASS_THROUGH = (
    "BatchNormalization",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "ThresholdedReLU",
    "PReLU",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAveragePooling3D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalMaxPooling3D",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
    "UpSampling1D",
    "UpSampling2D",
    "UpSampling3D",
    "RepeatVector",
    "Identity",
    "DepthwiseConv2D",
    "DepthwiseConv1D",
)
MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")


class _UnionFind:
    def __init__(self) -> None:
        self.parent: list[int] = []

    def add(self, n: int) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        return np.arange(start, start + n)

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass(frozen=True)
class LayerUse:
    """How one layer touches channels: the atom at each input and output position."""

    name: str
    class_name: str
    inputs: tuple[np.ndarray, ...]  # per input tensor: atom id per channel, -1 if fixed
    output: np.ndarray


@dataclass
class Group:
    """Producers whose channels are cut together, and what else those channels reach."""

    producers: list[str]
    layers: list[str]  # every layer whose weights or shape follow these channels
    channels: list[int]  # class roots, in the first producer's channel order
    prunable: bool = True
    reason: str = ""  # why not, when not

    @property
    def size(self) -> int:
        return len(self.channels)


@dataclass
class ChannelGraph:
    """The result of :func:`analyze`."""

    model_name: str
    uses: dict[str, LayerUse]
    atoms: dict[str, np.ndarray]  # producer -> its output atoms
    groups: list[Group]
    blocked: dict[str, str] = field(default_factory=dict)  # layer -> why it blocks
    _uf: _UnionFind | None = None

    def root(self, atom: int) -> int:
        return self._uf.find(int(atom))

    @property
    def prunable_groups(self) -> list[Group]:
        return [g for g in self.groups if g.prunable]

    def keep_masks(self, removed: set[int]) -> dict[str, tuple[tuple[np.ndarray, ...], np.ndarray]]:
        """Per layer: boolean keep masks of each input and of the output, for the
        set of removed channel roots."""

        def mask(atoms: np.ndarray) -> np.ndarray:
            return np.array([a < 0 or self.root(a) not in removed for a in atoms], dtype=bool)

        return {
            name: (tuple(mask(i) for i in use.inputs), mask(use.output))
            for name, use in self.uses.items()
        }


def _nodes(model: KerasModel, config: dict) -> list[tuple[object, list[tuple[str, int]]]]:
    """(layer, [(inbound layer, tensor index), ...]) in execution order."""
    if model.__class__.__name__ == "Sequential":
        out, previous = [], None
        for layer in model.layers:
            out.append((layer, [] if previous is None else [(previous, 0)]))
            previous = layer.name
        return out
    by_name = {layer.name: layer for layer in model.layers}
    out = []
    for entry in config["layers"]:
        nodes = entry.get("inbound_nodes") or []
        layer = by_name[entry["config"]["name"]]
        if len(nodes) > 1:
            out.append((layer, None))  # shared layer: called more than once
            continue
        inbound = []
        for node in nodes:
            items = node if isinstance(node, list) else node.get("args", [])
            for item in items:
                inbound.append((item[0], item[2]))
        out.append((layer, inbound))
    return out


def _channels(shape) -> int:
    return int(shape[-1])


def analyze(model: KerasModel) -> ChannelGraph:
    """The channel groups of a Sequential or functional tf_keras model."""
    uf = _UnionFind()
    tensors: dict[tuple[str, int], np.ndarray] = {}
    uses: dict[str, LayerUse] = {}
    atoms: dict[str, np.ndarray] = {}
    blocked: dict[str, str] = {}
    blocked_atoms: dict[int, str] = {}  # atom -> the layer that keeps it whole
    sequential = model.__class__.__name__ == "Sequential"
    config = model.get_config()

    def block(name: str, why: str, *maps: np.ndarray) -> None:
        blocked.setdefault(name, why)
        for m in maps:
            for a in m:
                if a >= 0:
                    blocked_atoms.setdefault(int(a), name)

    if sequential:
        first = model.layers[0]
        tensors[("__input__", 0)] = np.full(_channels(first.input_shape), -1)
    for layer, inbound in _nodes(model, config):
        cls = layer.__class__.__name__
        name = layer.name
        out_shape = layer.output_shape
        if cls == "InputLayer":
            shape = out_shape[0] if isinstance(out_shape, list) else out_shape
            tensors[(name, 0)] = np.full(_channels(shape), -1)
            continue
        if inbound is None:
            tensors[(name, 0)] = np.full(_channels(out_shape), -1)
            blocked[name] = "shared layer (called more than once)"
            continue
        if sequential and not inbound:
            inbound = [("__input__", 0)]
        ins = tuple(tensors[key] for key in inbound)
        cfg = layer.get_config()
        if isinstance(out_shape, list):  # several outputs: keep everything around it
            block(name, "layer with several outputs", *ins)
            for i, shape in enumerate(out_shape):
                tensors[(name, i)] = np.full(_channels(shape), -1)
            uses[name] = LayerUse(name, cls, ins, tensors[(name, 0)])
            continue
        n_out = _channels(out_shape)
        channels_first = cfg.get("data_format") == "channels_first"
        out: np.ndarray
        if channels_first:
            block(name, "channels_first layout", *ins)
            out = np.full(n_out, -1)
        elif cls in PRODUCERS and cfg.get("groups", 1) == 1 and cfg.get("depth_multiplier", 1) == 1:
            out = uf.add(n_out)
            atoms[name] = out
        elif cls in PRODUCERS:
            block(name, "grouped convolution or depth multiplier", *ins)
            out = np.full(n_out, -1)
        elif cls in ("DepthwiseConv2D", "DepthwiseConv1D") and cfg.get("depth_multiplier") != 1:
            block(name, f"depthwise with depth_multiplier={cfg.get('depth_multiplier')}", *ins)
            out = np.full(n_out, -1)
        elif cls == "BatchNormalization" and cfg["axis"] not in (
            -1,
            [-1],
            len(out_shape) - 1,
            [len(out_shape) - 1],
        ):
            block(name, f"normalizes axis {cfg['axis']}, not the channels", *ins)
            out = np.full(n_out, -1)
        elif cls == "Softmax" and cfg.get("axis", -1) in (-1, len(out_shape) - 1):
            block(name, "softmax over the channels", *ins)
            out = np.full(n_out, -1)
        elif cls in PASS_THROUGH or cls == "Softmax":
            out = ins[0]
        elif cls == "Flatten":
            out = np.tile(ins[0], n_out // max(len(ins[0]), 1))
        elif cls == "Reshape" and int(cfg["target_shape"][-1]) == len(ins[0]):
            out = ins[0]  # the channel axis stays last and whole
        elif cls == "Reshape" and len(cfg["target_shape"]) == 1:
            out = np.tile(ins[0], n_out // max(len(ins[0]), 1))  # a flatten
        elif cls == "Concatenate" and cfg["axis"] in (-1, len(out_shape) - 1):
            out = np.concatenate(ins)
        elif cls in MERGES or cls == "Concatenate":
            if any(len(m) != len(ins[0]) for m in ins):
                block(name, "inputs of different widths (broadcast)", *ins)
                out = np.full(n_out, -1)
            else:
                for m in ins[1:]:
                    for a, b in zip(ins[0], m, strict=True):
                        if a >= 0 and b >= 0:
                            uf.union(int(a), int(b))
                        elif a >= 0 or b >= 0:  # tied to a channel no one may cut
                            blocked_atoms.setdefault(int(max(a, b)), name)
                out = ins[0]
        else:
            why = {
                "Reshape": "reshape that moves the channel axis",
                "LayerNormalization": "normalizes across the channels",
                "Permute": "permutes the channel axis",
                "Lambda": "arbitrary function",
            }.get(cls, f"{cls} is not understood")
            block(name, why, *ins)
            out = np.full(n_out, -1)
        tensors[(name, 0)] = out
        uses[name] = LayerUse(name, cls, ins, out)

    # the model's outputs keep their width
    outputs = [model.layers[-1].name] if sequential else [o[0] for o in config["output_layers"]]
    for name in outputs:
        for a in tensors[(name, 0)]:
            if a >= 0:
                blocked_atoms.setdefault(int(a), f"output:{name}")
    return ChannelGraph(
        model.name, uses, atoms, _groups(uf, uses, atoms, blocked_atoms, blocked), blocked, uf
    )


def _groups(
    uf: _UnionFind,
    uses: dict[str, LayerUse],
    atoms: dict[str, np.ndarray],
    blocked_atoms: dict[int, str],
    blocked: dict[str, str],
) -> list[Group]:
    blocked_roots: dict[int, str] = {}
    for a, layer in blocked_atoms.items():
        blocked_roots.setdefault(uf.find(a), layer)
    # producers are in one group when any of their channels merged
    root_producers: dict[int, set[str]] = {}
    for producer, ids in atoms.items():
        for a in ids:
            root_producers.setdefault(uf.find(int(a)), set()).add(producer)
    link = _UnionFind()
    index = {p: i for i, p in enumerate(atoms)}
    link.add(len(atoms))
    for producers in root_producers.values():
        first, *rest = sorted(producers, key=index.get)
        for p in rest:
            link.union(index[first], index[p])
    members: dict[int, list[str]] = {}
    for p in atoms:
        members.setdefault(link.find(index[p]), []).append(p)
    groups = []
    for producers in members.values():
        # in the first producer's channel order, then any the others add
        roots = list(dict.fromkeys(uf.find(int(a)) for p in producers for a in atoms[p]))
        root_set = set(roots)
        layers = [
            name
            for name, use in uses.items()
            if any(
                a >= 0 and uf.find(int(a)) in root_set for m in (*use.inputs, use.output) for a in m
            )
        ]
        group = Group(producers, layers, roots)
        stops = sorted({blocked_roots[r] for r in root_set if r in blocked_roots})
        if stops:
            group.prunable = False
            outs = [s.split(":", 1)[1] for s in stops if s.startswith("output:")]
            layers_ = [s for s in stops if not s.startswith("output:")]
            group.reason = "; ".join(
                ([f"a model output ({', '.join(outs)})"] if outs else [])
                + [f"reaches {s} ({blocked.get(s, 'cannot be cut')})" for s in layers_]
            )
        groups.append(group)
    return groups
