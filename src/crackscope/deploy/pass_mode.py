"""Whether a packed network's pass runs with its layers split over the threads or wholly on one
thread (the serial kernels, PyTorch's layers on one thread), chosen by the times of its own recent
passes.

On a machine of two vCPUs the second thread does not always pay: on this project's 2-vCPU AMD
EPYC, a 64 x 64 px AOIE-Net pass took 1.20-1.24 ms with every layer on two threads and 1.42-1.45 ms
on one in one state of the host, and 2.08-2.20 ms against 1.52-1.57 ms in the other, and the host
moved between them within seconds (docs/binary.md, "Serial or parallel, chosen while it runs").
No fixed rule can be right in both states, so :class:`PassModeChooser` keeps the last few
wall times of each mode per input shape and runs the faster, timing the other mode again every
``probe_every`` passes to notice when the machine changes. Both modes compute the same numbers (the
serial and parallel kernels are tested bit for bit equal, and the network's logits on one thread
are those on two: tested), so the choice moves only the time.
"""

from __future__ import annotations

import threading
import time
from collections import deque

MODES = ("parallel", "serial")


def _median(times) -> float:
    """The median of a few times (``statistics.median`` costs microseconds a pass)."""
    ordered = sorted(times)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


class PassModeChooser:
    """Per key (an input shape and thread count), the mode whose recent passes were faster.

    - Each mode is tried first, one after the other: its first pass is not timed (it may load or
      compile kernels, or wake threads), the next ``window`` are.
    - Then the mode with the lower median of its last ``window`` timed passes runs; every
      ``probe_every``-th pass starts a probe of the other one, so that its times follow the machine
      too: two passes, of which only the second is timed (after a stretch of serial passes, the
      first parallel one wakes numba's sleeping threads and meets cold caches, and would make the
      parallel mode look slower than it runs). The probe's time replaces that mode's older ones,
      which may date from another state of the machine.
    """

    def __init__(self, window: int = 2, probe_every: int = 16, max_keys: int = 64):
        if window < 1 or probe_every < 2 or max_keys < 1:
            raise ValueError(
                f"window={window} must be >= 1, probe_every={probe_every} >= 2 and max_keys={max_keys} >= 1"
            )
        self.window, self.probe_every, self.max_keys = window, probe_every, max_keys
        self._lock = threading.Lock()
        # key -> passes so far ("calls"), modes whose next pass is not timed ("untimed"), whether the
        # next pass is a probe's timed one ("probe") and which mode it times ("fresh"), whether both
        # modes have been learned ("learned"), and per mode a deque of its last timed passes (s)
        self._state: dict = {}

    def _entry(self, key) -> dict:
        entry = self._state.get(key)
        if entry is None:
            if len(self._state) >= self.max_keys:  # a server seeing many shapes: forget the oldest
                del self._state[next(iter(self._state))]
            entry = self._state[key] = {"calls": 0, "untimed": set(MODES), "probe": 0, "fresh": None, "learned": False}
            entry.update({mode: deque(maxlen=self.window) for mode in MODES})
        return entry

    def choose(self, key) -> str:
        """The mode for the next pass of ``key``."""
        with self._lock:
            entry = self._entry(key)
            entry["calls"] += 1
            if entry["probe"]:  # the timed pass of a probe
                entry["probe"] = 0
                entry["fresh"] = MODES[1 - MODES.index(self._best(entry))]
                return entry["fresh"]
            if not entry["learned"]:  # still learning: one mode's passes, then the other's
                for mode in MODES:
                    if mode in entry["untimed"] or len(entry[mode]) < self.window:
                        return mode
                entry["learned"] = True
            best = self._best(entry)
            if entry["calls"] % self.probe_every == 0:  # a probe's first, untimed pass
                other = MODES[1 - MODES.index(best)]
                entry["untimed"].add(other)
                entry["probe"] = 1
                return other
            return best

    @staticmethod
    def _best(entry: dict) -> str:
        return min(MODES, key=lambda m: _median(entry[m]))

    def record(self, key, mode: str, seconds: float) -> None:
        """The wall time of a pass of ``key`` in ``mode``."""
        with self._lock:
            entry = self._entry(key)
            if mode in entry["untimed"]:
                entry["untimed"].discard(mode)
                return
            if entry["fresh"] == mode:  # a probe's timed pass: the mode's time now
                entry["fresh"] = None
                entry[mode].clear()
            entry[mode].append(seconds)

    def preferred(self, key) -> str | None:
        """The mode that runs now for ``key`` outside probes (None while it is still learning)."""
        with self._lock:
            entry = self._state.get(key)
            if entry is None or not (entry["learned"] or all(len(entry[m]) == self.window for m in MODES)):
                return None
            return self._best(entry)

    def run(self, key, fn, serial_context):
        """``fn()`` in the chosen mode, timed: ``serial_context()`` makes the serial one (a context
        manager under which the pass runs on one thread)."""
        mode = self.choose(key)
        start = time.perf_counter()
        if mode == "serial":
            with serial_context():
                out = fn()
        else:
            out = fn()
        self.record(key, mode, time.perf_counter() - start)
        return out
