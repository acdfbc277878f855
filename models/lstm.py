"""The next-track model: a track embedding, LSTM layers, and scores over the whole catalogue.

Inputs are windows of track_idx values (0 pads a short window on the left); the output is a score
for every track_idx (0 included, never a target). Training uses the full softmax, or for large
catalogues a sampled softmax: the target's logit against `num_sampled` tracks drawn uniformly,
with the sampling probability corrected out (logQ), which is an unbiased estimate of the full
softmax's gradient direction at a fraction of the cost.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class LstmParams:
    vocab: int            # largest track_idx + 1
    embed_dim: int
    hidden: int
    layers: int
    dropout: float


class NextTrackLSTM(nn.Module):
    def __init__(self, p: LstmParams, pretrained: dict[int, np.ndarray] | None = None):
        super().__init__()
        self.params = p
        self.embedding = nn.Embedding(p.vocab, p.embed_dim, padding_idx=0)
        if pretrained:
            with torch.no_grad():
                for idx, vector in pretrained.items():
                    if 0 < idx < p.vocab and len(vector) == p.embed_dim:
                        self.embedding.weight[idx] = torch.as_tensor(vector, dtype=torch.float32)
        self.lstm = nn.LSTM(p.embed_dim, p.hidden, num_layers=p.layers, batch_first=True,
                            dropout=p.dropout if p.layers > 1 else 0.0)
        self.out = nn.Linear(p.hidden, p.vocab)

    def hidden_state(self, windows: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.lstm(self.embedding(windows))
        return outputs[:, -1, :]

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """Scores (batch, vocab) for the next track after each window."""
        return self.out(self.hidden_state(windows))


def full_softmax_loss(model: NextTrackLSTM, windows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(windows), targets)


def sampled_softmax_loss(model: NextTrackLSTM, windows: torch.Tensor, targets: torch.Tensor, num_sampled: int,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Cross-entropy of the target against uniformly sampled tracks (shared by the batch), logQ-corrected."""
    h = model.hidden_state(windows)
    vocab = model.params.vocab
    sampled = torch.randint(1, vocab, (num_sampled,), generator=generator, device=h.device)
    weight, bias = model.out.weight, model.out.bias
    target_logits = (h * weight[targets]).sum(-1) + bias[targets]
    sampled_logits = h @ weight[sampled].T + bias[sampled]
    # A sampled track equal to the target is not a negative.
    sampled_logits = sampled_logits.masked_fill(sampled.unsqueeze(0) == targets.unsqueeze(1), float("-inf"))
    log_q = torch.log(torch.tensor(num_sampled / (vocab - 1), device=h.device))
    logits = torch.cat([target_logits.unsqueeze(1), sampled_logits - log_q], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long, device=h.device))


def next_tracks(model: NextTrackLSTM, windows: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices, probabilities) of the k most probable next tracks per window (padding excluded)."""
    with torch.no_grad():
        scores = model(windows)
        scores[:, 0] = float("-inf")
        values, indices = torch.topk(torch.softmax(scores, dim=1), min(k, scores.shape[1] - 1), dim=1)
        return indices, values


def top_k(model: NextTrackLSTM, windows: torch.Tensor, k: int) -> torch.Tensor:
    """The k best next tracks per window (padding index 0 excluded)."""
    with torch.no_grad():
        scores = model(windows)
        scores[:, 0] = float("-inf")
        return torch.topk(scores, k, dim=1).indices


class NextTrackObjective(nn.Module):
    """The training loss as a module, so that a data-parallel wrapper sees every parameter used in
    one forward call (DistributedDataParallel synchronises gradients through its forward)."""

    def __init__(self, model: NextTrackLSTM, loss: str, num_sampled: int):
        super().__init__()
        self.model, self.loss, self.num_sampled = model, loss, num_sampled

    def forward(self, windows: torch.Tensor, targets: torch.Tensor, generator: torch.Generator | None = None):
        if self.loss == "sampled":
            return sampled_softmax_loss(self.model, windows, targets, self.num_sampled, generator)
        return full_softmax_loss(self.model, windows, targets)
