"""Exponential moving average (EMA) of a Gluon network's weights, used for validation and export.

From scratch on a few thousand synthetic frames the raw weights wander: with Adam at a useful learning rate,
validation mAP moved by +-0.05 from one epoch to the next in our runs, so "the best epoch" was partly luck of
the draw on 176 validation images. Averaging the weights along the trajectory (Polyak averaging) cancels most
of that noise: the averaged model sits near the centre of the region SGD/Adam is bouncing around in, which
generalises better to lines never seen in training.

The average is updated after every optimizer step::

    d_t   = min(decay, (1 + t) / (10 + t))         # short memory early, when weights change fast
    ema_t = d_t * ema_(t-1) + (1 - d_t) * w_t

BatchNorm running means/variances are parameters too (``grad_req='null'``) and are averaged the same way, so
the averaged weights and their statistics stay consistent. ``swapped_in`` temporarily loads the average
into the network (for validation or export) and puts the raw training weights back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class WeightAverage:
    """EMA of every parameter of ``net`` (weights and BatchNorm statistics)."""

    def __init__(self, net, decay: float = 0.998) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self._params = list(net.collect_params().values())
        self._average = [p.data().copy() for p in self._params]

    def update(self) -> None:
        """Fold the current weights into the average (call after ``trainer.step``)."""
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for avg, p in zip(self._average, self._params, strict=True):
            avg *= d
            avg += (1.0 - d) * p.data()

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Run the block with the averaged weights loaded; the raw weights are restored on exit."""
        raw = [p.data().copy() for p in self._params]
        try:
            for avg, p in zip(self._average, self._params, strict=True):
                p.set_data(avg)
            yield
        finally:
            for r, p in zip(raw, self._params, strict=True):
                p.set_data(r)

    def state(self) -> dict:
        """Arrays to checkpoint (``mx.nd.save``-able dict) so a resumed run keeps its average."""
        return {f"ema{i}": a for i, a in enumerate(self._average)}

    def load_state(self, arrays: dict, updates: int) -> None:
        for i, avg in enumerate(self._average):
            avg[:] = arrays[f"ema{i}"]
        self.updates = updates
