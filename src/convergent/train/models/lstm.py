"""A stacked LSTM language model (``torch.nn.LSTM``, cuDNN on GPU)."""

from __future__ import annotations

import torch
from torch import nn

from convergent.train.config import ModelConfig
from convergent.train.models.common import LanguageModel


class LSTMStack(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(config.d_model, config.d_model, config.n_layers, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]

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
