"""A training run (``convergent.train``) as a next-token predictor.

The run's ``LanguageModel`` (embed -> blocks -> RMSNorm -> head) and its ``tokenizers``
tokenizer are wrapped in the small part of the Hugging Face interface that
:class:`~convergent.linearity.hf.HFPredictor` uses (output embedding get/set, ``logits``),
so f, g, reparameterization, the KL check and layer steering are the same code.
Contexts start with the run's document separator ``<|endoftext|>`` (its BOS).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from convergent.errors import ConvergentError
from convergent.linearity.hf import HFPredictor


def _adapters(model: Any, tokenizer: Any) -> tuple[Any, Any]:
    import torch

    class RunLM(torch.nn.Module):
        """Hugging Face-style view of a convergent LanguageModel."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = model
            head = model.head
            if head is None:  # tied: a Linear sharing the input embedding's Parameter
                head = torch.nn.Linear(model.embed.weight.shape[1], model.embed.weight.shape[0],
                                       bias=False)
                head.weight = model.embed.weight
            self.lm_head = head
            if isinstance(model.blocks, torch.nn.Sequential | torch.nn.ModuleList):
                self.blocks = model.blocks

        def get_output_embeddings(self) -> Any:
            return self.lm_head

        def set_output_embeddings(self, module: Any) -> None:
            self.lm_head = module

        def forward(self, input_ids: Any) -> Any:
            return SimpleNamespace(logits=self.lm_head(self.inner.hidden(input_ids)))

    class RunTokenizer:
        def __init__(self) -> None:
            from convergent.train.tokenize import EOS, UNK

            self.inner = tokenizer
            self.bos_token_id = tokenizer.token_to_id(EOS)
            self.unk_token_id = tokenizer.token_to_id(UNK)

        def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
            ids = self.inner.encode(text, add_special_tokens=add_special_tokens).ids
            # a lone leading-space token (byte-level BPE) is not part of the word
            while ids and not self.inner.decode([ids[0]]).strip() and len(ids) > 1:
                ids = ids[1:]
            return ids

    return RunLM().eval(), RunTokenizer()


def run_predictor(spec: str) -> HFPredictor:
    """``DIR`` or ``DIR@STEP`` of a neural training run (classical runs have no predictor)."""
    from convergent.sources.trained import open_run
    from convergent.train.checkpoint import load_tensors, read_state
    from convergent.train.config import TrainConfig
    from convergent.train.models import build_model

    source = open_run(spec)
    folder = Path(source.chosen.path)
    if not (folder / "model.safetensors").is_file():
        raise ConvergentError(
            f"run:{spec}: a classical-embedding run (word2vec/PPMI) has no next-token "
            "distribution; identify needs a neural run"
        )
    state = read_state(folder, verify=True)
    config = TrainConfig.load(source.run_dir / "config.json")
    model = build_model(config.arch, config.model, source.tokenizer.get_vocab_size())
    missing, unexpected = model.load_state_dict(load_tensors(folder / "model.safetensors"),
                                                strict=False)
    if unexpected or [k for k in missing if k != "head.weight"]:
        raise ConvergentError(f"run:{spec}: checkpoint does not match the model "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    lm, tok = _adapters(model, source.tokenizer)
    identity = {"run": str(folder.resolve()), "sha256": state.get("sha256")}
    return HFPredictor(lm, tok, name=source.name, identity=identity)
