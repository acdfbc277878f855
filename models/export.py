"""Exporting a trained next-track LSTM: model.pt (weights, sizes, window), TorchScript and ONNX, each
checked to give the trained model's top-k on sample windows. Files go to a folder or URI."""
from __future__ import annotations

import io

import numpy as np
import torch

from models import serving, storage
from models.lstm import NextTrackLSTM, Vocabulary, top_k


def export(model: NextTrackLSTM, folder: str, window: int, vocabulary: Vocabulary, sample: np.ndarray, k: int,
           onnx: bool) -> dict:
    """Write the model's files under `folder`; the checks of each export against the model. The
    TorchScript and ONNX graphs take and give tokens (model.pt holds the vocabulary that maps them);
    `sample` holds windows of track_idx values."""
    serving.save(serving.saved_model(model, window, vocabulary), folder)
    sample = vocabulary.tokens(sample)
    x = torch.as_tensor(sample, dtype=torch.long)
    expected = top_k(model, x, k)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(model, x[:2]), buffer)
    storage.write_bytes(storage.join(folder, "model.torchscript.pt"), buffer.getvalue())
    reloaded = torch.jit.load(io.BytesIO(storage.read_bytes(storage.join(folder, "model.torchscript.pt"))))
    with torch.no_grad():
        ts_scores = reloaded(x)
        ts_scores[:, 0] = float("-inf")
    checks = {"torchscript_top_k_equal": bool(torch.equal(torch.topk(ts_scores, k, dim=1).indices, expected))}
    if onnx:
        checks.update(_onnx(model, folder, x, sample, k, expected))
    if not checks["torchscript_top_k_equal"] or checks.get("onnx_top_k_equal") is False:
        raise RuntimeError(f"an export does not give the trained model's top-{k}: {checks}")
    return checks


def _onnx(model: NextTrackLSTM, folder: str, x: torch.Tensor, sample: np.ndarray, k: int,
          expected: torch.Tensor) -> dict:
    buffer = io.BytesIO()
    try:
        torch.onnx.export(model, (x[:2],), buffer, input_names=["windows"], output_names=["scores"],
                          dynamic_axes={"windows": {0: "batch"}}, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - an exporter gap is reported, not fatal
        return {"onnx": f"not exported: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    storage.write_bytes(storage.join(folder, "model.onnx"), buffer.getvalue())
    import onnxruntime
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    onnx_scores = torch.as_tensor(session.run(["scores"], {"windows": sample.astype(np.int64)})[0])
    onnx_scores[:, 0] = float("-inf")
    return {"onnx_top_k_equal": bool(torch.equal(torch.topk(onnx_scores, k, dim=1).indices, expected)),
            "onnx": "exported"}
