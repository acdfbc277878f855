"""The next-track model: a track embedding, LSTM layers, and scores over its vocabulary.

The vocabulary (Vocabulary) is the tracks with enough plays to learn from: token 1..n for them,
one shared token for every other track (rare and newer ones), 0 for padding. A real long-tail
catalogue has most tracks played once: they share one row of the embedding and one output instead
of a row each. Inputs are windows of tokens (0 pads a short window on the left); the output is a
score for every token (padding and the shared token are never recommended). Training uses the full softmax, or for large
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


class Vocabulary:
    """track_idx <-> token: tokens 1..n for `tracks` (sorted track_idx), n + 1 (`shared`) for every
    other track, 0 for padding (track_idx 0 is padding too)."""

    def __init__(self, tracks):
        self.tracks = np.unique(np.asarray(tracks, dtype=np.int64))
        self.tracks = self.tracks[self.tracks > 0]

    @classmethod
    def identity(cls, size: int) -> "Vocabulary":
        """Every track_idx below `size` is its own token (models saved before vocabularies existed)."""
        vocabulary = cls(np.arange(1, max(size - 1, 1)))
        return vocabulary

    @property
    def shared(self) -> int:
        return len(self.tracks) + 1

    @property
    def size(self) -> int:
        """Tokens including padding and the shared token: the model's input and output width."""
        return len(self.tracks) + 2

    def tokens(self, track_idx: np.ndarray) -> np.ndarray:
        ids = np.asarray(track_idx, dtype=np.int64)
        pos = np.searchsorted(self.tracks, ids)
        known = (pos < len(self.tracks)) & (self.tracks[np.minimum(pos, len(self.tracks) - 1)] == ids) \
            if len(self.tracks) else np.zeros(ids.shape, dtype=bool)
        return np.where(ids <= 0, 0, np.where(known, pos + 1, self.shared)).astype(np.int64)

    def track_of(self, tokens: np.ndarray) -> np.ndarray:
        """track_idx of known tokens (1..n); padding and the shared token have none (callers mask them)."""
        t = np.asarray(tokens, dtype=np.int64)
        return self.tracks[np.clip(t - 1, 0, max(len(self.tracks) - 1, 0))] if len(self.tracks) else t * 0


@dataclass(frozen=True)
class LstmParams:
    vocab: int            # tokens: the vocabulary's size (tracks + padding + the shared token)
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
