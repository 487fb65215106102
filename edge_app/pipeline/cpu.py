"""How many threads inference gets on a CPU device: all cores but one.

Why not all cores: the pipeline has other work that runs *at the same time* as inference - decoding
every stream, resizing and normalising frames, counting, publishing. With ONNX Runtime on every core,
that work preempts one of its intra-op threads, and the others wait for it at the end of every operator
(the pool synchronises per op, spinning while it waits). Measured on the 2-core development machine
under load: a 2-thread session ran at about half the speed of a 1-thread one; with one thread for
inference, the second core absorbs decoding and post-processing and the detector never waits.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity / container cpusets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_inference_threads() -> int:
    return max(1, available_cores() - 1)


DEFAULT_BACKGROUND_NICE = 5
"""How much lower the decode and post-processing threads run than inference (see `lower_thread_priority`)."""


def lower_thread_priority(steps: int) -> None:
    """Make the calling thread ``steps`` nice levels lower in priority than it is (Linux; no-op elsewhere).

    Why: inference is the bottleneck and the one stage that must never wait. With several streams, the
    decode threads (decoding, resizing, normalising) want more than the spare core, and the scheduler then
    shares the inference core with them: every slice a decoder gets there is a slice the detector loses.
    At nice +5 a decoder gets about a third of the inference thread's share when both want the same core
    (CFS weights 1024 vs 335), so decoders fill the idle time instead of taking turns with the detector.
    (Measured only together with the bilinear resize: README, Performance.)
    Linux applies ``setpriority(PRIO_PROCESS, tid)`` to one thread; raising one's own nice needs no privilege.
    """
    if steps <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
    except (AttributeError, OSError):  # not Linux, or a sandbox that forbids it: run at normal priority
        pass


@dataclass(frozen=True)
class CorePlan:
    """Inference on its own cores, everything else (decoding, preprocessing, counting) on the others.

    The idea beyond lowering the background threads' priority: the scheduler balances *load*, so with
    several decode threads it still parks one next to the inference thread now and then, and each such slice
    (and each cache refill after it) slows the detector. Measured on the 2-core development machine it made no
    difference beyond round-to-round noise (README, Performance), so ``pipeline.pin_threads`` is off by default;
    it is there for devices where it does.
    """

    inference: frozenset[int]
    background: frozenset[int]

    @classmethod
    def split(cls, inference_threads: int) -> CorePlan | None:
        """The first ``inference_threads`` allowed cores for inference, the rest for the background; None when
        there is no core left over (pinning would then only forbid the scheduler from helping)."""
        try:
            cores = sorted(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            return None
        if len(cores) <= inference_threads:
            return None
        return cls(frozenset(cores[:inference_threads]), frozenset(cores[inference_threads:]))


def pin_this_thread(cores: frozenset[int] | None) -> None:
    """Restrict the calling thread to ``cores`` (Linux: the affinity of one thread); no-op for None/elsewhere."""
    if not cores:
        return
    try:
        os.sched_setaffinity(threading.get_native_id(), cores)
    except (AttributeError, OSError):  # not Linux, or cores outside our cpuset: leave it to the scheduler
        pass


@dataclass(frozen=True)
class Placement:
    """Where and how eagerly one pipeline thread runs; applied by the thread itself when it starts."""

    nice: int = 0
    cores: frozenset[int] | None = None

    def apply(self) -> None:
        lower_thread_priority(self.nice)
        pin_this_thread(self.cores)


def single_threaded_opencv() -> None:
    """One thread per OpenCV call: the pipeline's parallelism is one decode thread per stream already.

    OpenCV's own thread pool (used by ``cv2.resize`` and friends) has the same weakness as ONNX Runtime's
    under contention: a call waits for its slowest helper thread. Measured on the shared 2-core machine,
    the GluonCV-exact area resize of a 640x480 frame took 6.9 ms wall time with OpenCV's default 2 threads
    and 4.8 ms with 1, for the same CPU time.
    """
    import cv2

    cv2.setNumThreads(1)
