"""A packed network's pass run as a team (crackscope.deploy.team): work items claimed from both ends
of shared counters, each exactly once; the serial pass's logits bit for bit, whether the helper
thread joins, never comes, fails, or ends after idling and is started again."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from numba import njit

from crackscope import models
from crackscope.deploy import team
from crackscope.deploy.packed import pack_model
from crackscope.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread", "one_numba_thread")


@njit(nogil=True)
def _take_all(counters, base, from_head, taken):
    """Claim items until none is left; ``taken[k]`` is the k-th item this caller got (-1 after)."""
    k = 0
    while True:
        t = team._claim(counters, base, from_head)
        if t < 0:
            return k
        taken[k] = t
        k += 1


def _phase(total: int) -> np.ndarray:
    counters = np.zeros(4, np.int64)
    counters[1] = total  # head 0, tail total
    counters[3] = total
    return counters


def test_claims_from_the_head_and_the_tail_take_each_item_once_in_order():
    counters = _phase(7)
    got = [team._claim(counters, 1, from_head) for from_head in (True, False, True, True, False, False, True, True)]
    # head 0, 1, 2, 3 upwards, tail 6, 5, 4 downwards, then nothing left for either end
    assert got == [0, 6, 1, 2, 5, 4, 3, -1]
    assert team._claim(counters, 1, False) == -1


def test_two_threads_claiming_at_once_take_every_item_exactly_once():
    total = 200_000
    for _ in range(3):
        counters = _phase(total)
        head, tail = np.full(total, -1, np.int64), np.full(total, -1, np.int64)
        counts = {}

        def worker(name, from_head, taken, counters=counters, counts=counts):
            counts[name] = _take_all(counters, 1, from_head, taken)

        _take_all(_phase(1), 1, True, np.zeros(1, np.int64))  # compiled before the race
        threads = [
            threading.Thread(target=worker, args=("head", True, head)),
            threading.Thread(target=worker, args=("tail", False, tail)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        mine, theirs = head[: counts["head"]], tail[: counts["tail"]]
        assert counts["head"] + counts["tail"] == total
        assert np.array_equal(np.sort(np.concatenate([mine, theirs])), np.arange(total))
        # each end in its own order: the head upwards from 0, the tail downwards from the last
        assert np.array_equal(mine, np.arange(len(mine)))
        assert np.array_equal(theirs, np.arange(total - 1, total - 1 - len(theirs), -1))


def _network(name: str = "aoie_net_resnet20"):
    torch.manual_seed(0)
    model = models.create(name, in_channels=1, classes=6).eval()
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():  # trained-looking statistics, one negative BN scale per layer
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
            m.weight.data[0] = -0.7
    return pack_model(model, {"kwargs": {"in_channels": 1, "classes": 6}})


@pytest.fixture(scope="module")
def packed():
    return _network()


@pytest.mark.parametrize("shape", [(1, 1, 64, 64), (3, 1, 37, 41), (1, 1, 130, 96)])
def test_a_team_pass_gives_the_serial_logits_bit_for_bit(packed, shape):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    serial = packed._logits(x)  # one thread here (fixtures): the serial kernels
    for _ in range(3):  # the plan's buffers are reused from pass to pass
        assert torch.equal(packed._team_logits(x, 2), serial)
    # the helper took part: it joined and left each pass (control words 2 and 3 of its slot)
    plan = packed._team_plans[(tuple(x.shape), 2)]
    assert plan.control[team._POSTED] == 3 and plan.control[team._CLOSED] == 3
    assert plan.threads[0] is not None and plan.threads[0].is_alive()


def test_a_stem_that_pytorch_runs_gives_the_serial_logits_in_a_team_too():
    # a stem of two layers is not compiled: PyTorch runs it before the team, into its buffer
    net = _network()
    net.stem = torch.nn.Sequential(*net.stem, torch.nn.ReLU())
    net.prepare()
    assert net._compiled_stem() is None
    x = torch.rand(1, 1, 40, 36, generator=torch.Generator().manual_seed(8))
    serial = net._logits(x)
    for _ in range(2):
        assert torch.equal(net._team_logits(x, 2), serial)
    assert net._team_plans[(1, 1, 40, 36), 2].stem_args[0] is False


def test_the_caller_alone_finishes_a_pass_when_no_helper_comes(packed, monkeypatch):
    x = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(5))
    serial = packed._logits(x)
    monkeypatch.setattr(team.TeamPlan, "_rouse_helpers", lambda self: None)  # no helper ever starts
    packed.__dict__["_team_plans"] = None
    assert torch.equal(packed._team_logits(x, 2), serial)
    assert torch.equal(packed._team_logits(x, 3), serial)  # two helpers missing: the same
    plan = packed._team_plans[(1, 1, 48, 48), 3]
    assert list(plan.control[team._SLOTS : team._SLOTS + 4]) == [0, 0, 0, 0]  # no helper joined


def test_a_helper_that_fails_is_reported_on_the_next_pass_without_hanging(packed, monkeypatch):
    x = torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(6))
    serial = packed._logits(x)

    real = team._take_part

    def flaky(control, slot, last, spin, *rest):  # the helpers' calls (spin > 0) fail, the caller's run
        if spin:
            raise ValueError("helper broke")
        return real(control, slot, last, spin, *rest)

    monkeypatch.setattr(team, "_take_part", flaky)
    packed.__dict__["_team_plans"] = None
    first = packed._team_logits(x, 2)  # the caller finishes it alone if the helper failed first
    assert torch.equal(first, serial)
    plan = packed._team_plans[(1, 1, 40, 40), 2]
    deadline = time.monotonic() + 30
    while plan.failure is None and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(RuntimeError, match="helper thread") as raised:
        packed._team_logits(x, 2)
    assert isinstance(raised.value.__cause__, ValueError)


def test_an_idle_helper_ends_and_the_next_pass_starts_a_new_one(packed, monkeypatch):
    monkeypatch.setattr(team, "SPIN_POLLS", 10)
    monkeypatch.setattr(team, "IDLE_SECONDS", 0.05)
    x = torch.rand(1, 1, 44, 44, generator=torch.Generator().manual_seed(7))
    serial = packed._logits(x)
    packed.__dict__["_team_plans"] = None
    assert torch.equal(packed._team_logits(x, 2), serial)
    plan = packed._team_plans[(1, 1, 44, 44), 2]
    first = plan.threads[0]
    first.join(timeout=300)  # (a first run on a machine may still be compiling its kernels)
    assert not first.is_alive() and plan.threads[0] is None  # it ended after idling
    assert torch.equal(packed._team_logits(x, 2), serial)
    assert plan.threads[0] is not None and plan.threads[0] is not first


def test_a_network_with_weighted_shortcuts_is_not_run_as_a_team():
    model = models.create("aoie_net_resnet18", in_channels=1, classes=4, width=0.25).eval()
    net = pack_model(model, {"kwargs": {"in_channels": 1, "classes": 4, "width": 0.25}})
    assert not net._team_runs()
    with pytest.raises(InputError, match="option-A shortcuts"):
        net._team_units()
    assert _network()._team_runs()


_TWO_THREADS = """
import torch
from crackscope import models
from crackscope.deploy.packed import pack_model
torch.manual_seed(0)
net = pack_model(models.create("aoie_net_resnet20", in_channels=1, classes=6).eval(), {})
x = torch.rand(2, 1, 52, 60)
torch.set_num_threads(1)
one = net(x)
torch.set_num_threads(2)
for mode in ("team", "parallel", "serial") + ("auto",) * 13:  # auto: 12 passes to learn its 3 modes
    net.pass_mode = mode
    assert torch.equal(net(x), one), mode
assert torch.get_num_threads() == 2
assert net._chooser().preferred(((2, 1, 52, 60), 2)) in ("team", "parallel", "serial")
print("ok")
"""


def test_every_pass_mode_on_two_threads_gives_the_one_thread_logits():
    # in fresh processes, so that this one's thread settings stay as the other tests expect; the
    # second loads the kernels from numba's cache, which once failed for a function returning an
    # array of a dtype taken from its argument
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "2"}
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", _TWO_THREADS], capture_output=True, text=True, env=env, timeout=900
        )
        assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
