"""How a packed network's pass uses several threads: split over them (as a team,
:mod:`crackscope.deploy.team`, or by numba's parallel kernels) or wholly on one thread (the serial
kernels, PyTorch's layers on one thread), chosen by the times of its own recent passes.

On a machine of two vCPUs the second thread does not always pay: on this project's 2-vCPU AMD
EPYC, a 64 x 64 px AOIE-Net pass took 1.20-1.24 ms with every layer on two threads and 1.42-1.45 ms
on one in one state of the host, and 2.08-2.20 ms against 1.52-1.57 ms in the other, and the host
moved between them within seconds (docs/binary.md, "Serial or parallel, chosen while it runs").
Which split pays moves with it too: at 200 px the team took 8.0 ms in either state, numba's
parallel kernels 7.3 ms in one and 11.6 ms in the other. No fixed rule can be right in every
state, so :class:`PassModeChooser` keeps the last few wall times of each mode per input shape and
runs the fastest, timing the others again, one every ``probe_every`` passes, to notice when the
machine changes. A mode's time is the fastest of its last few passes, not their median: another
thread only ever slows a pass (numba's or PyTorch's worker threads still spinning after the passes
of another mode, a helper preempted for a time slice: 4-8 ms spikes in 1-ms passes), so the fastest
pass is the mode's own cost on the machine as it is now, and a slowed pass does not switch modes.
Every mode computes the same numbers (the kernels are tested bit for bit equal,
and the network's logits in each mode are those on one thread: tested), so the choice moves only
the time.
"""

from __future__ import annotations

import threading
import time
from collections import deque

MODES = ("parallel", "serial")  # the default modes: split over the threads, or wholly on one


class PassModeChooser:
    """Per key (an input shape and thread count), the mode whose recent passes were faster, of
    ``modes`` (two or more names).

    - Each mode is tried first, one after the other in the order given: its first pass is not
      timed (it may load or compile kernels, or wake threads), the next ``window`` are.
    - Then the mode whose fastest of its last ``window`` timed passes was faster runs; every
      ``probe_every``-th pass starts a probe of another one (each other mode in turn), so that its
      times follow the machine too: two passes, of which only the second is timed (after a stretch
      of serial passes, the first parallel one wakes sleeping threads and meets cold caches, and
      would make the parallel mode look slower than it runs). The probe's time replaces that mode's
      older ones, which may date from another state of the machine.
    """

    def __init__(self, window: int = 2, probe_every: int = 16, max_keys: int = 64, modes: tuple = MODES):
        if window < 1 or probe_every < 2 or max_keys < 1 or len(set(modes)) < 2 or len(set(modes)) != len(modes):
            raise ValueError(
                f"window={window} must be >= 1, probe_every={probe_every} >= 2, max_keys={max_keys} >= 1"
                f" and modes={modes!r} two or more names, each once"
            )
        self.window, self.probe_every, self.max_keys = window, probe_every, max_keys
        self.modes = tuple(modes)
        self._lock = threading.Lock()
        # key -> passes so far ("calls"), modes whose next pass is not timed ("untimed"), the mode a
        # probe's timed pass runs next ("probe", or None) and the mode whose next timed pass replaces
        # its older ones ("fresh"), probes so far ("probes"), whether every mode has been learned
        # ("learned"), and per mode a deque of its last timed passes (s)
        self._state: dict = {}

    def _entry(self, key) -> dict:
        entry = self._state.get(key)
        if entry is None:
            if len(self._state) >= self.max_keys:  # a server seeing many shapes: forget the oldest
                del self._state[next(iter(self._state))]
            entry = self._state[key] = {
                "calls": 0,
                "untimed": set(self.modes),
                "probe": None,
                "fresh": None,
                "probes": 0,
                "learned": False,
            }
            entry.update({mode: deque(maxlen=self.window) for mode in self.modes})
        return entry

    def choose(self, key) -> str:
        """The mode for the next pass of ``key``."""
        with self._lock:
            entry = self._entry(key)
            entry["calls"] += 1
            if entry["probe"] is not None:  # the timed pass of a probe
                entry["fresh"], entry["probe"] = entry["probe"], None
                return entry["fresh"]
            if not entry["learned"]:  # still learning: one mode's passes, then the next one's
                for mode in self.modes:
                    if mode in entry["untimed"] or len(entry[mode]) < self.window:
                        return mode
                entry["learned"] = True
            best = self._best(entry)
            if entry["calls"] % self.probe_every == 0:  # a probe's first, untimed pass
                others = [m for m in self.modes if m != best]
                other = others[entry["probes"] % len(others)]
                entry["probes"] += 1
                entry["untimed"].add(other)
                entry["probe"] = other
                return other
            return best

    def _best(self, entry: dict) -> str:
        return min(self.modes, key=lambda m: min(entry[m]))

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
            if entry is None or not (entry["learned"] or all(len(entry[m]) == self.window for m in self.modes)):
                return None
            return self._best(entry)

    def run(self, key, passes: dict):
        """``passes[mode]()`` for the chosen mode, timed; ``passes`` maps each mode to a callable
        that runs the pass that way."""
        mode = self.choose(key)
        start = time.perf_counter()
        out = passes[mode]()
        self.record(key, mode, time.perf_counter() - start)
        return out
