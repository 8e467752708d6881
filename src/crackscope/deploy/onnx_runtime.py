"""A full-precision network of a run, run by ONNX Runtime: :func:`onnx_logits`.

The cascade's full-precision tile classifier spends its time in small convolutions, where ONNX
Runtime's CPU kernels are about twice as fast as PyTorch's eager ones (docs/survey.md). The graph
comes from the run's own ONNX export when it is there and made from the same weights: ``crackscope
export --format onnx`` writes ``RUN/export/model.onnx`` with the SHA-256 of ``model.safetensors`` in
its metadata (:data:`WEIGHTS_KEY`), and a shipped model folder holds it as ``model.onnx``. Otherwise
(no file, or one exported from other weights) the network is exported in memory when it is loaded,
which costs about a second.

The logits are PyTorch's up to float rounding (about 1e-5; the export checks it). ONNX Runtime runs
on as many threads as PyTorch is set to when the network is loaded, and its threads do not spin
between calls, so that they leave the cores to the segmenter that runs next.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch

from crackscope.deploy.package import ONNX_FILE

__all__ = ["OnnxLogits", "onnx_logits", "weights_digest", "ONNX_FILES", "WEIGHTS_KEY"]

ONNX_FILES = (ONNX_FILE, f"export/{ONNX_FILE}")  # in a model folder / in a run directory
WEIGHTS_KEY = "weights_sha256"  # ONNX metadata: the model.safetensors the graph was exported from
INPUT_NAME, OUTPUT_NAME = "image", "logits"


def weights_digest(run_dir: str | Path) -> str:
    """SHA-256 (hex) of ``RUN/model.safetensors``: what an exported graph must have been made from."""
    return hashlib.sha256((Path(run_dir) / "model.safetensors").read_bytes()).hexdigest()


def export_image_model(model: torch.nn.Module, example: torch.Tensor, opset: int = 17) -> bytes:
    """The ONNX graph (bytes) of an image classifier taking (N, C, H, W) float images with dynamic
    N, H and W (traced on ``example``, one such batch) and returning (N, K) logits."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # shape checks in forward() are constants of the traced shape
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (example,),
            buffer,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, OUTPUT_NAME: {0: "batch"}},
            dynamo=False,
        )
    return buffer.getvalue()


def _session(graph: bytes | str | Path, threads: int):
    """An ONNX Runtime CPU session on ``threads`` intra-op threads that do not spin between calls."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        graph if isinstance(graph, bytes) else str(graph), options, providers=["CPUExecutionProvider"]
    )


class OnnxLogits:
    """A callable (N, C, H, W) float tensor -> (N, K) float32 logits tensor over one ONNX Runtime
    ``session`` (:func:`_session`). ``source``: where the graph came from (a file, or ``"exported at
    load"``)."""

    def __init__(self, session, source: str):
        self.session = session
        self.input = session.get_inputs()[0].name
        self.output = session.get_outputs()[0].name
        self.source = source

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(torch.as_tensor(x).detach().float().cpu().numpy())
        return torch.from_numpy(self.session.run([self.output], {self.input: array})[0])


def onnx_logits(run_dir: str | Path, model: torch.nn.Module, channels: int, threads: int | None = None) -> OnnxLogits:
    """ONNX Runtime logits of the run's ``model`` (its loaded PyTorch network, (N, ``channels``, H, W)
    images): from ``RUN/model.onnx`` or ``RUN/export/model.onnx`` when its recorded weights digest is
    that of ``RUN/model.safetensors``, else exported now. ``threads``: ONNX Runtime's threads
    (default: PyTorch's current count)."""
    run_dir = Path(run_dir)
    threads = torch.get_num_threads() if threads is None else threads
    digest = weights_digest(run_dir)
    for name in ONNX_FILES:
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            session = _session(path, threads)
        except Exception:  # an unreadable file is not the run's graph; export instead
            continue
        if session.get_modelmeta().custom_metadata_map.get(WEIGHTS_KEY) == digest:
            return OnnxLogits(session, str(path))
    graph = export_image_model(model, torch.rand(1, channels, 64, 64))
    return OnnxLogits(_session(graph, threads), "exported at load")
