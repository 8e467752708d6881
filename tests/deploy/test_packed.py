"""Bit-packed binary inference: the XNOR/popcount convolution against float64 convolution of the
binarised tensors, a hand-worked border case, and whole packed networks against their PyTorch models."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from crackscope import models
from crackscope.deploy import bitconv
from crackscope.deploy import packed as packed_module
from crackscope.deploy.packed import compare_with_model, load_packed, pack_model, packed_size_bits, save_packed
from crackscope.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread", "one_numba_thread")


def _packed_conv(x, thresholds, below, signs, a_lo, a_hi, w_lo, w_hi, scale, shift, stride):
    """Run the kernel on planes p: bits from (x, thresholds[p], below[p]), weights signs[p]."""
    planes = thresholds.shape[0]
    triples = bitconv.pack_row_triples(x, thresholds, below, stride)
    words = np.stack([bitconv.pack_weight_rows(signs[p]) for p in range(planes)])
    consts = [bitconv.conv_constants(signs[p], a_lo[p], a_hi[p], w_lo[p], w_hi[p], scale) for p in range(planes)]
    return bitconv.binary_conv3x3(
        triples,
        words,
        np.stack([c[0] for c in consts]),
        np.stack([c[1] for c in consts]),
        np.stack([c[2] for c in consts]),
        shift,
        stride,
        x.shape[2],
        x.shape[3],
    )


def _reference(x, thresholds, below, signs, a_lo, a_hi, w_lo, w_hi, scale, shift, stride):
    """The same operation spelled out in float64: binarise, F.conv2d with zero padding, affine."""
    out = 0
    for p in range(thresholds.shape[0]):
        t = thresholds[p][None, :, None, None]
        bits = np.where(below[p][None, :, None, None], x <= t, x >= t)
        a = torch.from_numpy(np.where(bits, a_hi[p], a_lo[p]))
        w = torch.from_numpy(np.where(signs[p], w_hi[p][:, None, None, None], w_lo[p][:, None, None, None]))
        out = out + F.conv2d(a, w, stride=stride, padding=1).numpy()
    return out * scale[None, :, None, None] + shift[None, :, None, None]


def _random_case(rng, c_in, c_out, h, w, stride, planes):
    """Random inputs of _packed_conv / _reference: two images, thresholds (30 % of them 'below'),
    weight signs, activation and weight levels (lo < hi), a BN scale and shift."""
    x = rng.standard_normal((2, c_in, h, w)).astype(np.float32)
    thresholds = (0.3 * rng.standard_normal((planes, c_in))).astype(np.float32)
    below = rng.random((planes, c_in)) < 0.3
    signs = rng.random((planes, c_out, c_in, 3, 3)) < 0.5
    a_lo = rng.standard_normal(planes)
    a_hi = a_lo + rng.random(planes) + 0.1
    w_lo = rng.standard_normal((planes, c_out))
    w_hi = w_lo + rng.random((planes, c_out)) + 0.1
    scale, shift = rng.standard_normal(c_out), rng.standard_normal(c_out)
    return x, thresholds, below, signs, a_lo, a_hi, w_lo, w_hi, scale, shift, stride


@pytest.mark.parametrize(
    "c_in,c_out,h,w,stride,planes",
    [
        (16, 16, 13, 11, 1, 2),  # AOIE-Net stage 1: one 48-bit word per kernel row, two planes
        (16, 32, 12, 9, 2, 1),  # down-sampling unit, even size
        (32, 64, 7, 8, 2, 2),  # two words per kernel row
        (64, 64, 5, 5, 1, 1),  # one word per field
        (100, 40, 6, 7, 1, 2),  # fields of two words, unused bits
        (3, 5, 4, 4, 1, 1),  # field narrower than the channel count rounds up to 4
        (8, 8, 1, 1, 1, 1),  # a single pixel: every neighbour is padding
        (8, 8, 3, 2, 2, 2),  # odd height with stride 2
        (16, 8, 40, 36, 1, 2),  # few border pixels: their constants added one by one, not per pixel
    ],
)
def test_bit_convolution_equals_float64_convolution_of_binarised_tensors(c_in, c_out, h, w, stride, planes):
    rng = np.random.default_rng(c_in * 100 + h)
    args = _random_case(rng, c_in, c_out, h, w, stride, planes)
    got, expected = _packed_conv(*args), _reference(*args)
    assert got.shape == expected.shape == (2, c_out, (h - 1) // stride + 1, (w - 1) // stride + 1)
    # exact integer sums, one float32 rounding at the end
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("c_in,stride", [(16, 1), (8, 2), (32, 1), (24, 2), (64, 1), (48, 2), (96, 1)])
def test_two_planes_sharing_one_weight_set_equal_float64_convolution(c_in, stride):
    # AOIE-Net's DBN-IEB: both planes use the same weight bits and levels, with different
    # activation levels; the kernel folds them into one pass for one word per kernel row (16
    # channels or fewer) and counts plane by plane above that
    rng = np.random.default_rng(c_in + stride)
    x, thresholds, below, signs, a_lo, a_hi, w_lo, w_hi, scale, shift, _ = _random_case(
        rng, c_in, 24, 10, 13, stride, 2
    )
    signs[1], w_lo[1], w_hi[1] = signs[0], w_lo[0], w_hi[0]
    args = (x, thresholds, below, signs, a_lo, a_hi, w_lo, w_hi, scale, shift, stride)
    expected = _reference(*args)
    np.testing.assert_allclose(_packed_conv(*args), expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("rows_per_block,stride", [(1, 1), (2, 1), (3, 2)])
def test_bit_convolution_over_several_row_blocks_equals_float64_convolution(monkeypatch, rows_per_block, stride):
    # work items of a few output rows (the last one shorter): blocks in the middle of the image,
    # blocks holding the bottom border row, border columns in every block
    rng = np.random.default_rng(rows_per_block)
    c_in, c_out, h, w, planes = 16, 8, 11, 9, 2
    monkeypatch.setattr(bitconv, "BLOCK_PIXELS", rows_per_block * ((w - 1) // stride + 1))
    args = _random_case(rng, c_in, c_out, h, w, stride, planes)
    expected = _reference(*args)
    np.testing.assert_allclose(_packed_conv(*args), expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("c_in,stride,shared", [(16, 1, True), (16, 1, False), (32, 1, False), (16, 2, True)])
def test_small_maps_in_blocks_of_whole_images_equal_float64_convolution(monkeypatch, c_in, stride, shared):
    # the cascade's tile classifier: many small maps, most pixels at the border; blocks of two whole
    # images share one map of border constants (the last block holds one image)
    rng = np.random.default_rng(c_in + 10 * stride)
    h = w = 10 if stride == 2 else 5
    h_out, w_out = (h - 1) // stride + 1, (w - 1) // stride + 1
    monkeypatch.setattr(bitconv, "BLOCK_PIXELS", 2 * h_out * w_out)
    x, thresholds, below, signs, a_lo, a_hi, w_lo, w_hi, scale, shift, _ = _random_case(rng, c_in, 12, h, w, stride, 2)
    x = rng.standard_normal((5, c_in, h, w)).astype(np.float32)
    if shared:  # AOIE-Net: one weight set, two activation levels
        signs[1], w_lo[1], w_hi[1] = signs[0], w_lo[0], w_hi[0]
    args = (x, thresholds, below, signs, a_lo, a_hi, w_lo, w_hi, scale, shift, stride)
    expected = _reference(*args)
    got = _packed_conv(*args)
    assert got.shape == (5, 12, h_out, w_out)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


_TWO_THREADS = """
import numpy as np, torch
from crackscope.deploy import bitconv
from crackscope.deploy import packed as packed_module
rng = np.random.default_rng(7)
x = rng.standard_normal((2, 16, 9, 10)).astype(np.float32)
args = (np.zeros((1, 16), np.float32), np.zeros((1, 16), bool), 1)
bitconv.PARALLEL_MIN_WORK = 0  # this small input on the parallel kernels too
words = bitconv.pack_weight_rows(rng.random((16, 16, 3, 3)) < 0.5)[None]
c = [v[None] for v in bitconv.conv_constants(rng.random((16, 16, 3, 3)) < 0.5, -1.0, 1.0, -np.ones(16), np.ones(16))]
def run():
    triples = bitconv.pack_row_triples(x, *args)
    return bitconv.binary_conv3x3(triples, words, *c, np.zeros(16), 1, 9, 10)
# one thread: the serial kernels, which start no numba threads (a cached parallel build once stood in)
torch.set_num_threads(1)
serial = run()
try:
    bitconv.numba.threading_layer()
    raise AssertionError("the one-thread kernels started numba's thread pool")
except ValueError:
    pass
torch.set_num_threads(2)
assert bitconv._kernels() is bitconv._PARALLEL and torch.get_num_threads() == 2
parallel = run()
torch.set_num_threads(1)
assert bitconv._kernels() is bitconv._SERIAL
assert np.array_equal(parallel, serial) and np.array_equal(run(), serial)
# one image on two threads: its rows are split between them, with the same numbers
x = x[:1]
torch.set_num_threads(1)
serial = run()
torch.set_num_threads(2)
assert bitconv._rows_per_task(1, 9, 10, bitconv._PARALLEL) == 5 == bitconv._rows_per_block(1, 9, 10, bitconv._PARALLEL)
assert np.array_equal(run(), serial)
# a residual chain on the parallel kernels gives the serial chain's numbers
from crackscope import models
from crackscope.deploy.packed import pack_model
torch.manual_seed(0)
net = pack_model(models.create("aoie_net_resnet20", in_channels=1, classes=6).eval(), {})
z = np.ascontiguousarray(rng.random((2, 16, 12, 11)).astype(np.float32) - 0.5)
chain = net._steps()[0]
torch.set_num_threads(1)
one = chain.run(z)
torch.set_num_threads(2)
assert np.array_equal(chain.run(z), one)
# a batch of several chunks on two threads: whole chunks on two worker threads, each with the serial
# kernels and one PyTorch thread, give the logits of one thread; PyTorch's count is put back
import threading
packed_module.CHUNK_BYTES = 2 * 16 * 48 * 44 * 4  # two 48 x 44 images per chunk: 7 images, 4 chunks
xb = torch.rand(7, 1, 48, 44)
seen = []
own_logits = net._logits
def logits(part):
    seen.append((threading.get_ident(), bitconv._kernels() is bitconv._SERIAL, torch.get_num_threads()))
    return own_logits(part)
net._logits = logits
torch.set_num_threads(1)
one = net(xb)
assert [s[0] for s in seen] == [threading.get_ident()] * 4
seen.clear()
torch.set_num_threads(2)
two = net(xb)
assert torch.equal(one, two), (one - two).abs().max()
assert len(seen) == 4 and threading.get_ident() not in {s[0] for s in seen}, seen
assert all(serial and threads == 1 for _, serial, threads in seen), seen
assert torch.get_num_threads() == 2 and bitconv._kernels() is bitconv._PARALLEL
print("ok")
"""


def test_kernels_follow_pytorchs_thread_count():
    # here (one torch thread): the serial kernels, which the tests above check against float64
    assert bitconv._kernels() is bitconv._SERIAL
    before = torch.get_num_threads()
    try:  # two threads: serial for small work, parallel for large
        torch.set_num_threads(2)
        assert bitconv._kernels(bitconv.PARALLEL_MIN_WORK - 1) is bitconv._SERIAL
    finally:
        torch.set_num_threads(before)
    # two threads: the row-parallel kernels give the same numbers (in a fresh process, so that this
    # one's thread settings stay as the other tests expect)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", _TWO_THREADS], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


_NO_TEAMS_IN_WORKERS = """
import os, torch
from crackscope import models
from crackscope.deploy import bitconv
from crackscope.deploy import packed as packed_module
from crackscope.deploy.packed import pack_model
torch.manual_seed(0)
net = pack_model(models.create("aoie_net_resnet20", in_channels=1, classes=6).eval(), {})
threads = lambda: len(os.listdir("/proc/self/task"))
torch.set_num_threads(2)
net(torch.rand(1, 1, 96, 96))  # one chunk: PyTorch's and numba's own threads start here
before = threads()
packed_module.CHUNK_BYTES = 8 * 16 * 64 * 64 * 4  # 8 images of 64 px per chunk: 3 chunks on two workers
net(torch.rand(24, 1, 64, 64))  # (a stem this large runs on an OpenMP team unless held to one thread)
net(torch.rand(24, 1, 64, 64))
print(threads() - before, torch.get_num_threads())
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_the_chunk_workers_start_no_threads_of_their_own():
    # The workers' PyTorch layers must run on one thread: a new thread's OpenMP count is the process
    # default (here 2), and a convolution there would start an OpenMP team per worker, after which
    # libgomp's threads outnumber the cores and every parallel kernel of the process slows down.
    # Two chunk calls add the two worker threads and nothing else; PyTorch's count is put back.
    env = {**os.environ, "OMP_NUM_THREADS": "2", "NUMBA_NUM_THREADS": "2"}
    done = subprocess.run(
        [sys.executable, "-c", _NO_TEAMS_IN_WORKERS], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["2", "2"], done.stdout


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the AVX2 path exists on x86 only")
def test_the_avx2_path_gives_the_same_numbers_as_float64():
    # numba compiles for a CPU without AVX-512 (Haswell: AVX2, no VPOPCNTQ); the kernels then count
    # bits with byte-table lookups, and the convolution tests above must still pass
    env = {**os.environ, "NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": ""}
    probe = "from crackscope.deploy import bitconv; print(bitconv.instruction_set())"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=600)
    assert done.stdout.strip() == "AVX2, popcount by byte table (VPSHUFB)", done.stderr[-2000:]
    tests = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", "float64_convolution"]
    done = subprocess.run(tests, capture_output=True, text=True, env=env, timeout=900)
    ran = re.search(r"(\d+) passed", done.stdout)
    # the 14 convolution tests above (8 shapes, 3 shared-weight cases, 3 row-block cases)
    assert done.returncode == 0 and ran and int(ran.group(1)) >= 14, done.stdout[-2000:]


def test_hand_worked_sign_convolution_counts_only_inside_the_image():
    # one channel, all activations +1 (x >= 0), levels -1/+1; weights +1 except the centre (-1):
    # interior output = 8 - 1 = 7; a corner sees 4 positions (centre, 3 neighbours): 3 - 1 = 2;
    # an edge sees 6: 5 - 1 = 4.
    x = np.ones((1, 1, 4, 5), np.float32)
    signs = np.ones((1, 1, 1, 3, 3), bool)
    signs[0, 0, 0, 1, 1] = False
    ones = np.ones(1)
    out = _packed_conv(
        x,
        np.zeros((1, 1), np.float32),
        np.zeros((1, 1), bool),
        signs,
        -ones,
        ones,
        -ones[None],
        ones[None],
        ones,
        np.zeros(1),
        1,
    )[0, 0]
    assert out[0, 0] == out[0, 4] == out[3, 0] == out[3, 4] == 2
    assert out[0, 2] == out[2, 0] == 4
    assert out[1, 1] == out[2, 3] == 7


def _randomise_statistics(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Trained-looking BN statistics and activation parameters, some BN scales negative or zero."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.3 * torch.randn(n, generator=gen))
            m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=gen))
            m.weight.data.copy_(1 + 0.3 * torch.randn(n, generator=gen))
            m.weight.data[0] = -0.7  # negative scale: the threshold flips direction
            if n > 2:
                m.weight.data[1] = 0.0  # zero scale: a constant bit
            m.bias.data.copy_(0.3 * torch.randn(n, generator=gen))
    for name, p in model.named_parameters():
        if name.endswith("alpha"):
            p.data.copy_(0.5 + torch.rand(p.shape, generator=gen))
        elif name.endswith("act.beta") or name.endswith("act1.beta") or name.endswith("act2.beta"):
            p.data.copy_(0.2 * torch.randn(p.shape, generator=gen))
    return model.eval()


BINARY_FAMILIES = [
    "aoie_net_resnet20",
    "adabin_resnet20",
    "fracbnn_resnet20",
    "reactnet_resnet20",
    "ienet_resnet20",
    "bnn_resnet20",
    "xnor_resnet20",
]


@pytest.mark.parametrize("name", BINARY_FAMILIES)
def test_packed_network_reproduces_the_pytorch_model(name):
    # seeded weights: with unseeded ones the test depended on the hash seed (the order of earlier
    # random draws) and for some draws an activation within float32 rounding of its threshold
    # flipped in the packed chain (PyTorch's float32 sums round, the packed integer sums do not)
    torch.manual_seed(0)
    model = _randomise_statistics(models.create(name, in_channels=1, classes=6))
    packed = pack_model(model, {"kwargs": {"in_channels": 1, "classes": 6}})
    x = torch.rand(3, 1, 33, 30, generator=torch.Generator().manual_seed(1))
    report = compare_with_model(model, packed, x)
    # fed the model's own real-valued inputs, every threshold gives the model's activation bit
    assert report["activation_bits_flipped"] == 0 and report["activation_bits"] > 0
    assert report["same_prediction"] == 1.0
    with torch.no_grad():
        scale = model(x).abs().max().item()
    assert report["max_abs_logit_diff"] <= 1e-4 * max(1.0, scale)


def test_a_residual_chain_gives_the_values_of_its_units_run_one_by_one():
    """The packed network runs each stage after its first unit as one compiled call
    (bitconv.ResidualChain): bit for bit what the units give one by one, at the stages' three field
    widths (16, 32 and 64 channels), for a map of several row blocks and one of a single block."""
    torch.manual_seed(0)
    model = _randomise_statistics(models.create("aoie_net_resnet20", in_channels=1, classes=6))
    packed = pack_model(model, {"kwargs": {"in_channels": 1, "classes": 6}})
    steps = packed._steps()
    kinds = [type(s).__name__ for s in steps]
    assert kinds == ["ResidualChain", "PackedUnit", "ResidualChain", "PackedUnit", "ResidualChain"]
    assert [len(s) for s in steps if kinds[steps.index(s)] == "ResidualChain"] == [6, 5, 5]
    for x in (torch.rand(2, 1, 70, 66), torch.rand(1, 1, 9, 12)):
        z = np.ascontiguousarray(packed.stem(x).detach().numpy())
        units = iter(packed.units)
        for step in steps:
            if isinstance(step, bitconv.ResidualChain):
                one_by_one = z
                for _ in range(len(step)):
                    one_by_one = next(units).run(one_by_one)
                z = step.run(z)
                assert np.array_equal(z, one_by_one)
            else:
                z = step.run(z)
                next(units)
    with pytest.raises(ValueError, match="takes 16 channels, not 32"):
        steps[0].run(np.zeros((1, 32, 8, 8), np.float32))
    # the compiled chains are not state: a network that ran copies and pickles, and the copy agrees
    import copy
    import pickle

    x = torch.rand(2, 1, 20, 20)
    expected = packed(x)
    for twin in (copy.deepcopy(packed), pickle.loads(pickle.dumps(packed))):
        assert torch.equal(twin(x), expected)


@pytest.mark.parametrize("c_in, c_out, stride, side", [(16, 32, 2, 9), (16, 32, 2, 8), (8, 11, 1, 5)])
def test_the_option_a_shortcut_on_arrays_is_the_modules_own(c_in, c_out, stride, side):
    from crackscope.deploy.packed import _pad_shortcut
    from crackscope.models.binary.resnet import PadShortcut

    shortcut = PadShortcut(c_in, c_out, stride)
    x = torch.randn(2, c_in, side, side + 1, generator=torch.Generator().manual_seed(3))
    out = _pad_shortcut(x.numpy(), shortcut)
    # by hand: every stride-th row and column, the input channels between zero channels
    front = (c_out - c_in) // 2
    assert out.shape == (2, c_out, -(-side // stride), -(-(side + 1) // stride)) and out.dtype == np.float32
    assert np.array_equal(out[:, front : front + c_in], x.numpy()[:, :, ::stride, ::stride])
    assert not out[:, :front].any() and not out[:, front + c_in :].any()
    assert np.array_equal(out, shortcut(x).numpy()) and out.flags.c_contiguous


def test_packed_resnet18_with_real_downsampling_shortcuts():
    model = _randomise_statistics(models.create("aoie_net_resnet18", in_channels=3, classes=4, width=0.25))
    packed = pack_model(model, {"kwargs": {"in_channels": 3, "classes": 4, "width": 0.25}})
    report = compare_with_model(model, packed, torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(2)))
    assert report["activation_bits_flipped"] == 0 and report["same_prediction"] == 1.0


def test_packed_network_with_a_patchify_stem_reproduces_the_model_and_reloads(tmp_path):
    kwargs = {"in_channels": 1, "classes": 2, "width": 0.5, "stem_stride": 4}
    model = _randomise_statistics(models.create("aoie_net_resnet20", **kwargs))
    packed = pack_model(model, {"kwargs": kwargs})
    x = torch.rand(4, 1, 64, 64, generator=torch.Generator().manual_seed(4))
    report = compare_with_model(model, packed, x)
    assert report["activation_bits_flipped"] == 0 and report["same_prediction"] == 1.0
    loaded = load_packed(save_packed(packed, tmp_path / "s4.safetensors"))
    assert torch.equal(loaded(x), packed(x))
    for net in (packed, loaded, pack_model(model)):  # the size check also without kwargs in meta
        with pytest.raises(InputError, match="H, W >= 32"):
            net(torch.rand(1, 1, 16, 16))


def test_packed_network_behind_per_image_standardisation_keeps_it_and_reloads(tmp_path):
    """model.input_norm: per_image: the packed twin standardises each image as the model does (its
    logits match), keeps doing so after saving and loading, and so ignores exposure and contrast."""
    from crackscope.nn.input_norm import StandardizedInput

    kwargs = {"in_channels": 1, "classes": 2, "width": 0.5, "stem_stride": 4}
    torch.manual_seed(0)
    model = StandardizedInput(_randomise_statistics(models.create("aoie_net_resnet20", **kwargs))).eval()
    packed = pack_model(model, {"kwargs": kwargs})
    assert packed.meta["input_norm"] == "per_image" and packed.meta["min_std"] == model.standardize.min_std
    x = torch.rand(4, 1, 64, 64, generator=torch.Generator().manual_seed(4))
    report = compare_with_model(model, packed, x)
    assert report["activation_bits_flipped"] == 0 and report["same_prediction"] == 1.0
    assert report["max_abs_logit_diff"] <= 1e-4 * max(1.0, model(x).abs().max().item())
    loaded = load_packed(save_packed(packed, tmp_path / "norm.safetensors"))
    assert loaded.standardize is not None and torch.equal(loaded(x), packed(x))
    # half the exposure and half the contrast about a grey level: the same standardised image
    torch.testing.assert_close(loaded(0.2 + 0.5 * x), loaded(x), atol=1e-4, rtol=0)
    plain = pack_model(model.net, {"kwargs": kwargs})  # without the wrapper: raw input, different logits
    assert plain.standardize is None and not torch.allclose(plain(x), packed(x), atol=1e-3)


def test_chunk_size_keeps_the_first_stage_activation_within_the_budget():
    model = _randomise_statistics(models.create("aoie_net_resnet20", in_channels=1, classes=6))
    packed = pack_model(model)
    # hand-worked: 16 channels x 200 x 200 px x 4 bytes = 2,560,000 bytes per image, over 2 MiB
    assert packed_module.CHUNK_BYTES == 2 * 2**20
    assert packed.images_per_chunk(200, 200) == 1
    assert packed.images_per_chunk(64, 64) == 8  # 262,144 bytes per image: exactly 8
    assert packed.images_per_chunk(4000, 4000) == 1  # one image over the budget still runs
    patchify = pack_model(
        _randomise_statistics(models.create("aoie_net_resnet20", in_channels=1, classes=2, width=0.5, stem_stride=4))
    )
    assert patchify.images_per_chunk(200, 200) == 2 * 2**20 // (4 * 8 * 50 * 50) == 26  # 8 channels at 50 x 50
    # ImageNet-style stem: 7 x 7 conv with stride 2, then 3 x 3 max-pool with stride 2: 224 -> 56
    resnet18 = pack_model(
        _randomise_statistics(models.create("aoie_net_resnet18", in_channels=3, classes=4, width=0.25))
    )
    assert resnet18.images_per_chunk(224, 224) == 2 * 2**20 // (4 * 16 * 56 * 56) == 10


def test_a_batch_run_in_chunks_gives_each_image_its_own_logits(monkeypatch):
    torch.manual_seed(0)
    model = _randomise_statistics(models.create("aoie_net_resnet20", in_channels=1, classes=6))
    packed = pack_model(model)
    x = torch.rand(5, 1, 40, 36, generator=torch.Generator().manual_seed(5))
    one_by_one = torch.cat([packed(x[i : i + 1]) for i in range(5)])
    monkeypatch.setattr(packed_module, "CHUNK_BYTES", 2 * 4 * 16 * 40 * 36)  # two images per chunk: 2 + 2 + 1
    assert packed.images_per_chunk(40, 36) == 2
    torch.testing.assert_close(packed(x), one_by_one, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_array_equal(packed(x).argmax(1).numpy(), model(x).argmax(1).numpy())


def test_save_and_load_give_the_same_network_and_size_counts_one_bit_per_weight(tmp_path):
    model = _randomise_statistics(models.create("aoie_net_resnet20", in_channels=1, classes=6))
    packed = pack_model(model, {"kwargs": {"in_channels": 1, "classes": 6}, "classes": list("abcdef")})
    path = save_packed(packed, tmp_path / "m.safetensors")
    loaded = load_packed(path)
    x = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(3))
    assert torch.equal(loaded(x), packed(x))
    assert loaded.meta["classes"] == list("abcdef")
    # independent count: every binary 3x3 conv of ResNet-20 (16/32/64 channels, 18 units)
    binary_weights = sum(
        c_out * c_in * 9
        for c_in, c_out, n in ((16, 16, 6), (16, 32, 1), (32, 32, 5), (32, 64, 1), (64, 64, 5))
        for _ in range(n)
    )
    size = packed_size_bits(packed)
    assert size["weight_sign_bits"] == binary_weights == 267_264
    assert path.stat().st_size * 8 >= size["total_bits"]
    float_resnet20_bits = 32 * sum(p.numel() for p in models.create("resnet20", in_channels=1, classes=6).parameters())
    assert size["total_bits"] < float_resnet20_bits / 15


def test_unpackable_models_and_files_are_refused(tmp_path):
    with pytest.raises(InputError, match="full-precision"):
        pack_model(models.create("resnet20", in_channels=1, classes=6))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="bad.safetensors"):
        load_packed(bad)
    with pytest.raises(InputError, match="does not exist"):
        load_packed(tmp_path / "missing.safetensors")
    packed = pack_model(
        _randomise_statistics(models.create("bnn_resnet20", in_channels=1, classes=2)),
        {"kwargs": {"in_channels": 1, "classes": 2}},
    )
    with pytest.raises(InputError, match=r"\(B, 1, H, W\)"):
        packed(torch.rand(1, 3, 16, 16))
    with pytest.raises(InputError, match="H, W >= 8"):
        packed(torch.rand(1, 1, 16, 7))
    # a file whose values do not fit the network its metadata names
    path = save_packed(packed, tmp_path / "bnn.safetensors")
    packed.meta["model"] = "aoie_net_resnet20"
    mismatched = save_packed(packed, tmp_path / "mismatched.safetensors")
    assert load_packed(path).meta["model"] == "bnn_resnet20"
    with pytest.raises(InputError, match="does not match the network"):
        load_packed(mismatched)
