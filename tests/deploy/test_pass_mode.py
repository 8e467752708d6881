"""The packed network's choice between a pass split over the threads (as a team, or by numba's
parallel kernels) and one wholly on one thread (crackscope.deploy.pass_mode), driven by given pass
times instead of a clock, and the network's logits in every mode on two threads."""

import os
import subprocess
import sys

import pytest

from crackscope.deploy.pass_mode import PassModeChooser

KEY = ((1, 1, 64, 64), 2)


def _passes(chooser, cost, n):
    """n passes with the chooser; ``cost(mode)``: the seconds a pass takes in that mode now."""
    modes = []
    for _ in range(n):
        mode = chooser.choose(KEY)
        chooser.record(KEY, mode, cost(mode))
        modes.append(mode)
    return modes


def test_it_learns_each_mode_in_turn_then_runs_the_faster_and_probes_the_other():
    chooser = PassModeChooser(window=2, probe_every=16)
    cost = {"parallel": 1.2e-3, "serial": 1.45e-3}.get
    modes = _passes(chooser, cost, 6)
    # one untimed and two timed passes of each mode, parallel first
    assert modes == ["parallel"] * 3 + ["serial"] * 3
    assert chooser.preferred(KEY) == "parallel"
    modes = _passes(chooser, cost, 58)  # passes 7..64
    # every 16th pass starts a probe of the other mode: that pass and the next run serial
    probes = [i + 7 for i, m in enumerate(modes) if m == "serial"]
    assert probes == [16, 17, 32, 33, 48, 49, 64]
    assert chooser.preferred(KEY) == "parallel"


def test_it_follows_the_machine_when_the_faster_mode_changes():
    chooser = PassModeChooser(window=2, probe_every=16)
    state = {"parallel": 1.2e-3, "serial": 1.45e-3}
    _passes(chooser, state.get, 10)
    assert chooser.preferred(KEY) == "parallel"
    # one pass slowed by another thread (a 6-ms spike) does not switch modes: the fastest of the
    # last two parallel passes is still 1.2 ms
    spike = {"parallel": 6e-3, "serial": 1.45e-3}
    assert _passes(chooser, spike.get, 1) + _passes(chooser, state.get, 1) == ["parallel"] * 2  # passes 11, 12
    assert chooser.preferred(KEY) == "parallel"
    # the host slows two threads down for good: once both of the last two parallel passes took
    # 2.1 ms, above the serial 1.45 ms, the serial mode runs from then on
    state["parallel"] = 2.1e-3
    modes = _passes(chooser, state.get, 2)  # passes 13, 14
    assert modes == ["parallel", "parallel"]
    assert chooser.preferred(KEY) == "serial"
    # and back: the probe at pass 16 (untimed) and 17 (timed) finds the parallel mode fast again;
    # its time replaces the slow ones, so from pass 18 on it runs, but for the probes of the
    # serial mode at 32-33 and 48-49
    state["parallel"] = 1.2e-3
    modes = _passes(chooser, state.get, 40)  # passes 15..54
    serial = [i + 15 for i, m in enumerate(modes) if m == "serial"]
    assert serial == [15, 32, 33, 48, 49]
    assert chooser.preferred(KEY) == "parallel"


def test_with_three_modes_it_learns_each_and_probes_the_other_two_in_turn():
    chooser = PassModeChooser(window=2, probe_every=8, modes=("team", "parallel", "serial"))
    cost = {"team": 1.0e-3, "parallel": 1.2e-3, "serial": 1.45e-3}.get
    modes = _passes(chooser, cost, 9)
    assert modes == ["team"] * 3 + ["parallel"] * 3 + ["serial"] * 3
    modes = _passes(chooser, cost, 31)  # passes 10..40: probes start at 16, 24, 32, 40
    probed = {i + 10: m for i, m in enumerate(modes) if m != "team"}
    assert probed == {
        16: "parallel",
        17: "parallel",
        24: "serial",
        25: "serial",
        32: "parallel",
        33: "parallel",
        40: "serial",
    }
    # the machine changes: serial gets fastest; the next probe of it (pass 40-41) finds it
    cost = {"team": 1.0e-3, "parallel": 1.2e-3, "serial": 0.5e-3}.get
    modes = _passes(chooser, cost, 3)  # passes 41..43
    assert modes == ["serial"] * 3 and chooser.preferred(KEY) == "serial"
    # passes of each mode: PassModeChooser.run calls the chosen one
    assert chooser.run(KEY, {"team": lambda: "t", "parallel": lambda: "p", "serial": lambda: "s"}) == "s"


def test_keys_are_learned_apart_and_bad_settings_are_refused():
    chooser = PassModeChooser(window=1, probe_every=4)
    other = ((1, 1, 200, 200), 2)
    for _ in range(4):
        for key, fast in ((KEY, "parallel"), (other, "serial")):
            mode = chooser.choose(key)
            chooser.record(key, mode, 1.0 if mode == fast else 2.0)
    assert chooser.preferred(KEY) == "parallel" and chooser.preferred(other) == "serial"
    assert PassModeChooser().preferred(KEY) is None  # nothing learned yet
    # at most max_keys shapes are remembered: a third one makes it forget the first
    small = PassModeChooser(window=1, probe_every=4, max_keys=2)
    for key in (KEY, other, ((2, 1, 64, 64), 2)):
        for _ in range(4):
            mode = small.choose(key)
            small.record(key, mode, 1.0)
    assert small.preferred(KEY) is None and small.preferred(other) is not None
    for bad in ({"window": 0}, {"probe_every": 1}, {"max_keys": 0}, {"modes": ("serial",)}, {"modes": ("a", "a")}):
        with pytest.raises(ValueError):
            PassModeChooser(**bad)


def test_an_unknown_pass_mode_is_refused_by_name():
    import torch

    from crackscope import models
    from crackscope.deploy.packed import pack_model
    from crackscope.errors import InputError

    packed = pack_model(models.create("aoie_net_resnet20", in_channels=1, classes=6).eval(), {})
    packed.pass_mode = "fast"
    with pytest.raises(InputError, match="pass_mode 'fast'"):
        packed(torch.zeros(1, 1, 32, 32))


_NETWORK = """
import torch
from crackscope import models
from crackscope.deploy import bitconv
from crackscope.deploy.packed import pack_model
torch.set_num_threads(2)
torch.manual_seed(0)
packed = pack_model(models.create("aoie_net_resnet20", in_channels=1, classes=6).eval(), {})
x = torch.randn(1, 1, 64, 64)
packed.pass_mode = "serial"
reference = packed(x)
packed.pass_mode = "parallel"
assert torch.equal(packed(x), reference)
packed.pass_mode = "auto"
seen = set()
chooser = packed._chooser()
real_record = chooser.record
chooser.record = lambda key, mode, seconds: (seen.add(mode), real_record(key, mode, seconds))
packed.pass_mode = "team"
assert torch.equal(packed(x), reference)
packed.pass_mode = "auto"
for _ in range(40):
    assert torch.equal(packed(x), reference)
assert seen == {"team", "serial"}, seen  # the chooser of a network run as a team
assert torch.get_num_threads() == 2  # the one-thread passes put PyTorch's thread count back
assert chooser.preferred(((1, 1, 64, 64), 2)) in ("team", "serial")
print("ok")
"""


def test_the_network_gives_the_same_logits_in_every_mode_on_two_threads():
    env = {**os.environ, "OMP_NUM_THREADS": "2", "NUMBA_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", _NETWORK], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
