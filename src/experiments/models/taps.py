"""One forward pass that also hands back chosen intermediate tensors: the inputs of some
layers and the outputs of others, for the diagnostics (each block's pre-activation, the
first block whose output is non-finite).

A plain net is a chain (a Sequential): its layers run one after another, as Keras would
run them. A residual net is a graph (a functional model): a layer's input may be a sum of
two earlier outputs, so it runs as one Keras model whose extra outputs are the tapped
tensors. Either way the tapped tensors are the very ones the rest of the pass consumes,
so a GradientTape can differentiate the loss with respect to them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras


def is_chain(model: keras.Model) -> bool:
    return isinstance(model, keras.Sequential)


class Taps:
    """`Taps(model, inputs_of, outputs_of)(x, training)` -> (output, inputs, outputs),
    the tapped tensors in the order of the layers given."""

    def __init__(
        self,
        model: keras.Model,
        inputs_of: Sequence[keras.layers.Layer] = (),
        outputs_of: Sequence[keras.layers.Layer] = (),
    ):
        self.model = model
        self.inputs_of = list(inputs_of)
        self.outputs_of = list(outputs_of)
        self._graph = None
        if not is_chain(model):
            (image,) = model.inputs  # one input, passed bare as Keras expects it then
            self._graph = keras.Model(
                image,
                [
                    *model.outputs,
                    *(layer.input for layer in self.inputs_of),
                    *(layer.output for layer in self.outputs_of),
                ],
                name=f"{model.name}_taps",
            )

    def __call__(self, x, training: bool, watch: Callable | None = None):
        """`watch(tensor)` is called on the tensors the tapped values depend on, so that
        a GradientTape records their computation even where no variable is involved
        (a pre-activation block's first input is the image itself)."""
        if self._graph is not None:
            if watch is not None:
                watch(x)
            values = self._graph(x, training=training)
            n_in = len(self.inputs_of)
            return values[0], list(values[1 : 1 + n_in]), list(values[1 + n_in :])
        position_in = {id(layer): i for i, layer in enumerate(self.inputs_of)}
        position_out = {id(layer): i for i, layer in enumerate(self.outputs_of)}
        ins: list = [None] * len(self.inputs_of)
        outs: list = [None] * len(self.outputs_of)
        outputs = x
        for layer in self.model.layers:
            if id(layer) in position_in:
                if watch is not None:
                    watch(outputs)
                ins[position_in[id(layer)]] = outputs
            outputs = layer(outputs, training=training)
            if id(layer) in position_out:
                outs[position_out[id(layer)]] = outputs
        return outputs, ins, outs
