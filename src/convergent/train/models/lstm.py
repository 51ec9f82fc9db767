"""A stacked LSTM language model (``torch.nn.LSTM``, cuDNN on GPU).

Under bf16 autocast ``nn.LSTM`` runs in bf16 on CPU (oneDNN) and GPU (cuDNN), with float32
parameters and gradients; no exception is needed.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from convergent.train.config import ModelConfig
from convergent.train.models.common import LanguageModel
from convergent.train.models.segments import positions


class LSTMStack(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(config.d_model, config.d_model, config.n_layers, batch_first=True)

    def forward(self, x: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, d] -> [B, T, d]. ``nn.LSTM`` cannot reset its state mid-sequence, so packed
        ``segments`` run as separate sequences: every segment becomes a row of a
        ``PackedSequence`` (lengths to the CPU, one scatter in and one gather out). The
        work is the same; the parallelism per time step is the number of segments still
        running, and the number of steps is the longest segment, not T."""
        if segments is None:
            return self.lstm(x)[0]
        b, t, d = x.shape
        at = positions(segments).reshape(-1)
        row = (at == 0).cumsum(0) - 1  # segment index over the flattened batch
        lengths = torch.bincount(row)
        padded = x.new_zeros(len(lengths), int(lengths.max()), d)
        padded[row, at] = x.reshape(-1, d)
        packed = pack_padded_sequence(padded, lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True)
        return out[row, at].view(b, t, -1)

    def reset_special(self) -> None:
        """Uniform(+-1/sqrt(d)) weights as PyTorch's default, forget-gate bias 1."""
        self.lstm.reset_parameters()
        d = self.lstm.hidden_size
        for name, param in self.lstm.named_parameters():
            if name.startswith("bias_ih"):
                with torch.no_grad():
                    param[d:2 * d].fill_(1.0)


def build(config: ModelConfig, vocab_size: int) -> LanguageModel:
    return LanguageModel(config, vocab_size, LSTMStack(config))
