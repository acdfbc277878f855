"""Exporting a trained next-track LSTM: model.pt (weights, sizes, window), TorchScript and ONNX, each
checked to give the trained model's scores and top-k on sample windows. Files go to a folder or URI.

Another runtime computes the same network with other kernels, so its scores differ from torch's in
the last bits (ONNX Runtime: up to about 5e-6 on scores of magnitude 10, lfm1b-dev 2026-12-06), and
where two tracks score exactly alike in torch it may rank them the other way round. The check
allows exactly that and nothing more: every score within the tolerance of torch's, and each of
the export's top k tracks scored by torch within the tolerance of torch's own score at that rank."""
from __future__ import annotations

import io
import warnings

import numpy as np
import torch

from models import serving, storage
from models.lstm import NextTrackLSTM, Vocabulary


def export(model: NextTrackLSTM, folder: str, window: int, vocabulary: Vocabulary, sample: np.ndarray, k: int,
           onnx: bool) -> dict:
    """Write the model's files under `folder`; the checks of each export against the model. The
    TorchScript and ONNX graphs take and give tokens (model.pt holds the vocabulary that maps them);
    `sample` holds windows of track_idx values."""
    serving.save(serving.saved_model(model, window, vocabulary), folder)
    sample = vocabulary.tokens(sample)
    x = torch.as_tensor(sample, dtype=torch.long)
    with torch.no_grad():
        reference = without_padding(model(x))
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(model, x[:2]), buffer)
    storage.write_bytes(storage.join(folder, "model.torchscript.pt"), buffer.getvalue())
    reloaded = torch.jit.load(io.BytesIO(storage.read_bytes(storage.join(folder, "model.torchscript.pt"))))
    with torch.no_grad():
        ts_scores = without_padding(reloaded(x))
    checks = {"torchscript_top_k_equal": top_k_agrees(reference, ts_scores, k)}
    if onnx:
        checks.update(_onnx(model, folder, x, sample, k, reference))
    if not checks["torchscript_top_k_equal"] or checks.get("onnx_top_k_equal") is False:
        raise RuntimeError(f"an export does not give the trained model's scores and top-{k} on {len(sample)} sample "
                           f"windows (within {RTOL:g} relative + {ATOL:g}): {checks}; train.export_onnx=false skips "
                           f"the ONNX export")
    return checks


RTOL, ATOL = 1e-5, 1e-5


def without_padding(scores: torch.Tensor) -> torch.Tensor:
    """`scores` ([windows, tokens]) with the padding token's (0) set to -inf, in place: padding is
    never a next track, so no export is checked on it."""
    scores[:, 0] = float("-inf")
    return scores


def top_k_agrees(reference: torch.Tensor, scores: torch.Tensor, k: int) -> bool:
    """Whether `scores` (an export's, [windows, tokens]) give the top k of `reference` (the trained
    model's): every finite score within RTOL * |reference| + ATOL of the reference's, and the
    reference's score of each of the export's top k tracks within that tolerance of the reference's
    k best scores, rank for rank. Tracks that tie in the reference may come in either order; a
    track that scores lower by more than the tolerance may not take a place."""
    tolerance = RTOL * reference.abs() + ATOL
    finite = torch.isfinite(reference)
    if not torch.equal(finite, torch.isfinite(scores)) or bool((scores - reference).abs()[finite].gt(
            tolerance[finite]).any()):
        return False
    best = torch.topk(reference, k, dim=1).values
    picked = reference.gather(1, torch.topk(scores, k, dim=1).indices)
    return bool(((picked - best).abs() <= RTOL * best.abs() + ATOL).all())


def _onnx(model: NextTrackLSTM, folder: str, x: torch.Tensor, sample: np.ndarray, k: int,
          reference: torch.Tensor) -> dict:
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # torch warns that an LSTM traced at one batch size may fail at another; the graph is
            # traced on 2 windows and then checked below on the whole sample's batch
            warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
            torch.onnx.export(model, (x[:2],), buffer, input_names=["windows"], output_names=["scores"],
                              dynamic_axes={"windows": {0: "batch"}}, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - an exporter gap is reported, not fatal
        return {"onnx": f"not exported: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    storage.write_bytes(storage.join(folder, "model.onnx"), buffer.getvalue())
    import onnxruntime
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    onnx_scores = without_padding(torch.as_tensor(session.run(["scores"], {"windows": sample.astype(np.int64)})[0]))
    return {"onnx_top_k_equal": top_k_agrees(reference, onnx_scores, k), "onnx": "exported",
            "onnx_max_abs_diff": float((onnx_scores - reference).abs()[torch.isfinite(reference)].max())}
