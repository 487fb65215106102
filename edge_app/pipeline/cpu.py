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


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity / container cpusets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_inference_threads() -> int:
    return max(1, available_cores() - 1)


def single_threaded_opencv() -> None:
    """One thread per OpenCV call: the pipeline's parallelism is one decode thread per stream already.

    OpenCV's own thread pool (used by ``cv2.resize`` and friends) has the same weakness as ONNX Runtime's
    under contention: a call waits for its slowest helper thread. Measured on the shared 2-core machine,
    the GluonCV-exact area resize of a 640x480 frame took 6.9 ms wall time with OpenCV's default 2 threads
    and 4.8 ms with 1, for the same CPU time.
    """
    import cv2

    cv2.setNumThreads(1)
