"""Batch stacking: rotating buffers, stacking one batch ahead on its own thread, end and failure hand-over."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edge_app.frame import Frame
from edge_app.pipeline import DynamicBatcher
from edge_app.pipeline.jobs import Job
from edge_app.pipeline.stacking import InlineStacking, StackAhead, StackBuffers

IMAGE = np.zeros((4, 4, 3), np.uint8)


def job(stream: str, index: int, tensor: np.ndarray | None) -> Job:
    return Job(Frame(stream, index, index / 10, IMAGE), time.monotonic(), tensor)


def tensor(value: float) -> np.ndarray:
    return np.full((3, 2, 2), value, np.float32)


def test_stack_buffers_copy_tensors_in_order_into_rotating_reused_arrays() -> None:
    buffers = StackBuffers(max_batch=4, count=2)
    first = buffers.stack([job("a", 0, tensor(1)), job("b", 0, tensor(2))])
    assert first.tensors is not None and first.tensors.shape == (2, 3, 2, 2)
    assert first.tensors[:, 0, 0, 0].tolist() == [1.0, 2.0]
    second = buffers.stack([job("a", 1, tensor(3))])
    assert second.tensors is not None and not np.shares_memory(first.tensors, second.tensors)
    third = buffers.stack([job("a", 2, tensor(4)), job("a", 3, tensor(5)), job("b", 1, tensor(6))])
    assert third.tensors is not None and np.shares_memory(first.tensors, third.tensors)  # back to the first array
    assert third.tensors[:, 0, 0, 0].tolist() == [4.0, 5.0, 6.0]


def test_stack_buffers_leave_unprepared_or_mixed_batches_unstacked() -> None:
    buffers = StackBuffers(max_batch=4, count=1)
    assert buffers.stack([job("a", 0, tensor(1)), job("b", 0, None)]).tensors is None
    assert buffers.stack([job("a", 0, tensor(1)), job("b", 0, np.zeros((3, 4, 4), np.float32))]).tensors is None
    assert buffers.stack([]).tensors is None
    # a new input size (another model) reallocates instead of failing
    assert buffers.stack([job("a", 0, np.ones((3, 5, 5), np.float32))]).tensors.shape == (1, 3, 5, 5)


def fill(batcher: DynamicBatcher[Job], streams: dict[str, int]) -> None:
    for name, frames in streams.items():
        queue = batcher.add_queue(name, 100)
        for i in range(frames):
            queue.put(job(name, i, tensor(i)))
        queue.close()


@pytest.mark.parametrize("ahead", [True, False])
def test_every_frame_comes_out_once_in_stream_order_then_an_empty_batch(ahead: bool) -> None:
    batcher: DynamicBatcher[Job] = DynamicBatcher(max_batch=3, max_wait_s=0.0)
    fill(batcher, {"a": 7, "b": 5})
    feed = StackAhead("t", batcher) if ahead else InlineStacking(batcher)
    if isinstance(feed, StackAhead):
        feed.start()
    seen: dict[str, list[int]] = {"a": [], "b": []}
    while (batch := feed.next_batch()).jobs:
        assert batch.tensors is not None and len(batch.tensors) == len(batch.jobs) <= 3
        for j, row in zip(batch.jobs, batch.tensors, strict=True):
            assert row[0, 0, 0] == j.frame.index  # each row is its own frame's tensor
            seen[j.frame.stream].append(j.frame.index)
    assert seen == {"a": list(range(7)), "b": list(range(5))}
    if isinstance(feed, StackAhead):
        feed.join(5)
        assert not feed.is_alive()


def test_stack_ahead_stays_one_batch_ahead_of_a_slow_consumer() -> None:
    batcher: DynamicBatcher[Job] = DynamicBatcher(max_batch=2, max_wait_s=0.0)
    fill(batcher, {"a": 20})
    feed = StackAhead("t", batcher)
    feed.start()
    first = feed.next_batch()
    time.sleep(0.2)  # the consumer is busy: the stacker prepares one batch and waits with it
    left = sum(len(q) for q in batcher.queues.values())
    assert left == 20 - 2 - 2 - 2  # taken: the batch consumed, the one handed over, the one being handed over
    values = first.tensors[:, 0, 0, 0].tolist()
    while feed.next_batch().jobs:
        pass
    assert values == [0.0, 1.0]  # the consumed batch's rows were not overwritten by the batches stacked after it
    feed.join(5)


def test_stack_ahead_reports_a_failure_to_its_consumer() -> None:
    class Broken(DynamicBatcher[Job]):
        def next_batch(self) -> list[Job]:
            raise ValueError("queue exploded")

    feed = StackAhead("t", Broken(max_batch=2, max_wait_s=0.0))
    feed.start()
    with pytest.raises(RuntimeError, match="queue exploded"):
        feed.next_batch()


def test_stack_ahead_gives_up_handing_over_when_its_consumer_has_gone() -> None:
    batcher: DynamicBatcher[Job] = DynamicBatcher(max_batch=1, max_wait_s=0.0)
    fill(batcher, {"a": 10})
    feed = StackAhead("t", batcher)
    feed.HAND_OVER_POLL_S = 0.01
    feed.start()
    feed.next_batch()
    feed.close()  # the worker died: nobody will take the next batch
    feed.join(2)
    assert not feed.is_alive()
