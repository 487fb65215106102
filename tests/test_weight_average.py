"""The EMA of the weights: the update rule, swapping in and out, and a checkpoint round trip."""

from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest

from training.weight_average import WeightAverage


def _net() -> mx.gluon.nn.HybridSequential:
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(3, in_units=2), mx.gluon.nn.BatchNorm(in_channels=3))
    net.initialize(mx.init.Constant(1.0))
    return net


def _set_all(net, value: float) -> None:
    for p in net.collect_params().values():
        p.set_data(mx.nd.full(p.shape, value))


def test_update_follows_the_warmed_up_ema_rule() -> None:
    net = _net()
    _set_all(net, 1.0)  # biases and BatchNorm statistics have their own initialisers
    ema = WeightAverage(net, decay=0.9)
    expected = 1.0
    for t, value in enumerate([3.0, 5.0, -2.0, 7.0], start=1):
        _set_all(net, value)
        ema.update()
        d = min(0.9, (1 + t) / (10 + t))
        expected = d * expected + (1 - d) * value
    with ema.swapped_in():
        for p in net.collect_params().values():  # BatchNorm running stats are averaged too
            np.testing.assert_allclose(p.data().asnumpy(), expected, rtol=1e-6)


def test_swapped_in_restores_the_raw_weights_and_changes_outputs() -> None:
    net = _net()
    ema = WeightAverage(net, decay=0.5)
    _set_all(net, 4.0)
    ema.update()
    x = mx.nd.ones((1, 2))
    raw_out = net(x).asnumpy()
    with ema.swapped_in():
        averaged_out = net(x).asnumpy()
    assert not np.allclose(raw_out, averaged_out)
    for p in net.collect_params().values():
        np.testing.assert_allclose(p.data().asnumpy(), 4.0)
    np.testing.assert_allclose(net(x).asnumpy(), raw_out)


def test_state_round_trip_resumes_the_same_average(tmp_path) -> None:
    net = _net()
    ema = WeightAverage(net, decay=0.9)
    _set_all(net, 2.0)
    ema.update()
    mx.nd.save(str(tmp_path / "last.ema"), ema.state())
    other = WeightAverage(net, decay=0.9)
    other.load_state(mx.nd.load(str(tmp_path / "last.ema")), ema.updates)
    assert other.updates == 1
    for a, b in zip(ema._average, other._average, strict=True):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())


def test_decay_outside_0_1_is_rejected() -> None:
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_net(), decay=1.0)
