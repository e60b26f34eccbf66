"""Split a functional generator into an LR *trunk* and an upsampling *tail* that share its layers.

Why. Post-upsampling generators (ESPCN, SRResNet, EDSR, RRDBNet: Shi et al. 2016, Ledig et al.
2017, Wang et al. 2018) do most of their convolutions at LR resolution with a few 64-channel maps,
then upsample. Per LR pixel the tail is the memory hog (SRResNet x4: 256-channel maps at x2 and
64-channel maps at x4, ~8 KB live per LR pixel against ~1 KB in the trunk), while the trunk has the
large receptive field (SRResNet: ~26 LR pixels effective). Tiling the whole network makes the
memory of the tail set the tile size and the receptive field of the trunk set the overlap, so
small tiles recompute wide margins. Tiling trunk and tail separately lets each use its own tile
size and overlap (:mod:`srkeras.inference.planning`).

Where to cut. Every node of the graph gets the spatial size of its outputs from a symbolic pass
(``compute_output_spec`` on an ``n x n`` input). Trunk candidates are the nodes whose outputs and
ancestors all stay at input size; every other node is tail. The tensors crossing the cut (trunk
tensors read by the tail: the features and any skip connection into the tail, the LR image itself
for a bicubic global residual) become the tail's inputs. The cut is then moved backwards greedily
while that lowers the number of crossing channels (SRResNet's last LR conv widens 64 -> 256 for
the PixelShuffle: cutting before it halves nothing but quarters the feature map that must be
held). Models that upsample first (SRCNN on a bicubic input) or whose tail has no weights (ESPCN:
a bare PixelShuffle) gain nothing and are not split (``None``).

Exactness. Trunk and tail are ``keras.Model`` views on the same layer objects (no weight copies),
so ``tail(trunk(x)) == model(x)`` up to float rounding; :func:`split_generator` checks it on a small
random input and refuses the split (returns ``None``) if it does not hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SYMBOLIC_SIZE = 24  # input edge of the symbolic pass; any size >= 1 that the model accepts works


@dataclass(frozen=True, kw_only=True)
class Split:
    trunk: object  # keras.Model: LR image -> crossing tensors, all at LR size
    tail: object  # keras.Model: crossing tensors (same order) -> HR output
    channels: tuple  # channels of each crossing tensor
    cut: tuple  # names of the layers producing the crossing tensors

    @property
    def feature_channels(self) -> int:
        return int(sum(self.channels))


def functional_graph(model):
    """The functional graph behind ``model`` (a Sequential's inner Functional), or None."""
    import keras

    if isinstance(model, keras.Sequential):
        model = getattr(model, "_functional", None)
    if model is None or not hasattr(model, "_nodes_by_depth"):
        return None
    return model


def _graph_and_shapes(model, n):
    """(functional graph, tensor shapes for an n x n input) of ``model``, or None when either fails."""
    graph = functional_graph(model)
    if graph is None:
        return None
    try:
        return graph, tensor_shapes(graph, n)
    except Exception:
        return None


def topo_nodes(graph) -> list:
    """Non-input nodes of a functional graph in execution order."""
    by_depth = graph._nodes_by_depth
    return [n for d in sorted(by_depth, reverse=True) for n in by_depth[d] if not n.is_input]


def tensor_shapes(graph, n: int = SYMBOLIC_SIZE) -> dict:
    """id(KerasTensor) -> static shape of every tensor in ``graph`` for n x n inputs (batch 1)."""
    import keras
    from keras import tree

    shapes, values = {}, {}
    for x in graph.inputs:
        spec = keras.KerasTensor((1, n, n, x.shape[-1]), dtype=x.dtype)
        values[id(x)] = spec
        shapes[id(x)] = spec.shape
    for node in topo_nodes(graph):
        args, kwargs = node.arguments.fill_in(values)
        out = node.operation.compute_output_spec(*args, **kwargs)
        for kt, spec in zip(node.outputs, tree.flatten(out)):
            values[id(kt)] = spec
            shapes[id(kt)] = tuple(spec.shape)
    return shapes


def _has_weights(layer) -> bool:
    return bool(getattr(layer, "weights", None))


@dataclass
class _Graph:
    """A functional graph indexed by tensor id: nodes in execution order, producers, consumers."""

    graph: object
    shapes: dict  # id(KerasTensor) -> shape for an n x n input
    n: int
    nodes: list
    tensors: dict  # id -> KerasTensor
    producer: dict  # tensor id -> node
    consumers: dict  # tensor id -> [node]

    @classmethod
    def index(cls, graph, shapes, n):
        nodes = topo_nodes(graph)
        tensors = {id(x): x for x in graph.inputs}
        producer, consumers = {}, {}
        for node in nodes:
            for kt in node.outputs:
                tensors[id(kt)] = kt
                producer[id(kt)] = node
            for kt in node.input_tensors:
                consumers.setdefault(id(kt), []).append(node)
        return cls(graph, shapes, n, nodes, tensors, producer, consumers)

    def at_input_size(self, t_id) -> bool:
        s = self.shapes.get(t_id)
        return s is not None and len(s) == 4 and s[1] == self.n and s[2] == self.n

    def channels(self, t_ids) -> int:
        return sum(int(self.shapes[t][-1]) for t in t_ids)


@dataclass
class _Cut:
    """Trunk side of a cut: its node ids and the ids of the tensors they produce (inputs included)."""

    nodes: set
    tensors: set

    @classmethod
    def widest(cls, g: _Graph):
        """Every node whose inputs are trunk tensors and whose outputs stay at input size."""
        cut = cls(set(), {id(x) for x in g.graph.inputs})
        for node in g.nodes:
            if all(id(t) in cut.tensors for t in node.input_tensors) and all(
                g.at_input_size(id(t)) for t in node.outputs
            ):
                cut.nodes.add(id(node))
                cut.tensors.update(id(t) for t in node.outputs)
        return cut

    def crossing(self, g: _Graph) -> list:
        """Trunk tensors read by the tail (or that are model outputs)."""
        out_ids = {id(x) for x in g.graph.outputs}
        return [t for t in self.tensors
                if t in out_ids or any(id(c) not in self.nodes for c in g.consumers.get(t, []))]  # fmt: skip

    def narrow(self, g: _Graph) -> None:
        """Move frontier nodes to the tail while that narrows the cut (fewer channels to hold)."""
        out_ids = {id(x) for x in g.graph.outputs}
        while True:
            cross = set(self.crossing(g))
            best, best_gain = None, 0
            for node in g.nodes:
                if id(node) not in self.nodes:
                    continue
                outs = [id(t) for t in node.outputs]
                if not all(t in cross for t in outs) or any(t in out_ids for t in outs):
                    continue
                if any(id(c) in self.nodes for t in outs for c in g.consumers.get(t, [])):
                    continue
                gain = g.channels(outs) - g.channels({id(t) for t in node.input_tensors} - cross)
                if gain > best_gain:
                    best, best_gain = node, gain
            if best is None:
                return
            self.nodes.discard(id(best))
            for t in best.outputs:
                self.tensors.discard(id(t))


def split_generator(model, n: int = SYMBOLIC_SIZE, check: bool = True):
    """:class:`Split` of a single-input, single-output functional generator, or None (see module doc)."""
    import keras

    shaped = _graph_and_shapes(model, n)
    if shaped is None or len(shaped[0].inputs) != 1 or len(shaped[0].outputs) != 1:
        return None
    g = _Graph.index(*shaped, n)
    cut = _Cut.widest(g)
    cut.narrow(g)
    trunk_layers = [nd.operation for nd in g.nodes if id(nd) in cut.nodes]
    tail_layers = [nd.operation for nd in g.nodes if id(nd) not in cut.nodes]
    if not any(map(_has_weights, trunk_layers)) or not any(map(_has_weights, tail_layers)):
        return None
    # Crossing tensors in execution order, so the split is deterministic.
    order = {id(x): i for i, x in enumerate(g.graph.inputs)}
    for i, node in enumerate(g.nodes):
        for kt in node.outputs:
            order[id(kt)] = len(g.graph.inputs) + i
    cross = sorted(cut.crossing(g), key=order.__getitem__)
    cross_kt = [g.tensors[t] for t in cross]
    try:
        cut_kt = cross_kt[0] if len(cross_kt) == 1 else cross_kt
        trunk = keras.Model(g.graph.inputs[0], cut_kt, name=f"{model.name}_trunk")
        tail = keras.Model(cut_kt, g.graph.outputs[0], name=f"{model.name}_tail")
    except Exception:
        return None
    names = tuple(g.producer[t].operation.name if t in g.producer else g.tensors[t].name for t in cross)
    sp = Split(trunk=trunk, tail=tail, channels=tuple(int(g.shapes[t][-1]) for t in cross), cut=names)
    if check and not _agrees(model, sp):
        return None
    return sp


def _agrees(model, sp: Split, size: int = 13) -> bool:
    """tail(trunk(x)) == model(x) on a small random input (relative 1e-4)."""
    c = int(model.inputs[0].shape[-1])
    x = np.random.default_rng(0).random((1, size, size, c), dtype=np.float32)
    ref = np.asarray(model(x, training=False), dtype=np.float32)
    feats = sp.trunk(x, training=False)
    got = np.asarray(sp.tail(feats, training=False), dtype=np.float32)
    return got.shape == ref.shape and float(np.abs(got - ref).max()) <= 1e-4 * (1.0 + float(np.abs(ref).max()))


def live_floats_per_pixel(model, n: int = SYMBOLIC_SIZE) -> float | None:
    """Peak number of float values alive at once per input pixel when the graph runs node by node.

    Walks the nodes in execution order; a tensor is allocated when its node runs and freed after
    its last reader (inputs and outputs stay alive throughout). This is what a graph executor
    that frees tensors on last use holds; None when ``model`` is not a functional graph.
    """
    shaped = _graph_and_shapes(model, n)
    if shaped is None:
        return None
    graph, shapes = shaped
    nodes = topo_nodes(graph)
    last = {}
    for i, node in enumerate(nodes):
        for t in node.input_tensors:
            last[id(t)] = i
    keep = {id(x) for x in graph.outputs} | {id(x) for x in graph.inputs}

    def size(t):
        return float(np.prod(shapes[t][1:])) / (n * n)

    live = {id(x): size(id(x)) for x in graph.inputs}
    peak = sum(live.values())
    for i, node in enumerate(nodes):
        for t in node.outputs:
            live[id(t)] = size(id(t))
        peak = max(peak, sum(live.values()))
        for t in list(node.input_tensors) + list(node.outputs):
            if id(t) not in keep and last.get(id(t), -1) <= i:
                live.pop(id(t), None)
    return peak


def flops_per_pixel(model, n: int = SYMBOLIC_SIZE) -> float | None:
    """Multiply-adds x 2 per input pixel of the layers that have a kernel (convolutions, dense).

    ``2 * K.size * A / n^2`` for Conv2D / DepthwiseConv2D / Dense, A the output area, and
    ``2 * K.size * A_in / n^2`` for transposed convolutions (each input pixel scatters K).
    None when ``model`` is not a functional graph or has no such layer.
    """
    import keras

    shaped = _graph_and_shapes(model, n)
    if shaped is None:
        return None
    graph, shapes = shaped
    total = 0.0
    for node in topo_nodes(graph):
        layer = node.operation
        kernel = getattr(layer, "kernel", None) if isinstance(layer, keras.layers.Layer) else None
        if kernel is None or not node.outputs:
            continue
        if isinstance(layer, (keras.layers.Conv2DTranspose, keras.layers.Conv1DTranspose)):
            ref = shapes[id(node.input_tensors[0])]
        else:
            ref = shapes[id(node.outputs[0])]
        area = float(np.prod(ref[1:-1])) / (n * n)
        total += 2.0 * float(np.prod(kernel.shape)) * area
    return total or None


__all__ = [
    "Split",
    "flops_per_pixel",
    "functional_graph",
    "live_floats_per_pixel",
    "split_generator",
    "tensor_shapes",
    "topo_nodes",
]
