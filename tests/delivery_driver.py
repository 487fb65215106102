"""A stand-in for the app in crash tests: counts synthetic bins through the real `EventPublisher`.

    python delivery_driver.py STATE_DIR HOST PORT N_BINS [INTERVAL_S]

Per line, bin ``k`` holds ``trays(k)`` trays; the counter state (next bin id, global count) is restored
from the outbox at start and committed with each bin, exactly as the app does, so a ``kill -9`` at any
point followed by a restart must neither lose nor repeat a bin. Prints ``bin <line> <k>`` after each commit
and ``DONE`` after a clean stop.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from delivery_helpers import make_cfg  # noqa: E402

from edge_app.events import BinCompleted, CountUpdate  # noqa: E402
from edge_app.publish import EventPublisher  # noqa: E402

LINES = ("line-1", "line-2")


def trays(bin_id: int) -> int:
    return 20 + bin_id % 7


def main() -> None:
    state_dir, host, port, n_bins = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    interval = float(sys.argv[5]) if len(sys.argv) > 5 else 0.005
    cfg = make_cfg(state_dir, host, port, streams=LINES)
    publisher = EventPublisher(cfg)
    states = publisher.restore_counter_states()
    state = {line: states.get(line, {"next_bin": 1, "global": 0}) for line in LINES}
    publisher.start()
    while any(s["next_bin"] <= n_bins for s in state.values()):
        for line in LINES:
            s = state[line]
            if s["next_bin"] > n_bins:
                continue
            k, total = s["next_bin"], s["global"] + trays(s["next_bin"])
            events = [BinCompleted(stream=line, line=line, bin_id=k, trays=trays(k), start_t=k - 1.0, end_t=float(k),
                                   global_count=total),
                      CountUpdate(stream=line, line=line, t=float(k), local=0, global_count=total, bins_completed=k,
                                  bin_id=k + 1)]
            state[line] = {"next_bin": k + 1, "global": total}
            publisher.commit(events, {line: state[line]})
            print(f"bin {line} {k}", flush=True)
        time.sleep(interval)
    publisher.stop(timeout=20)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
