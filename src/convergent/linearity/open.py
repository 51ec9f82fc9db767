"""Open a source spec for the linearity verbs: word vectors, or a next-token predictor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from convergent.errors import ConvergentError
from convergent.linearity.predictors import Predictor, predictor_from


def is_word_vectors(source: Any) -> bool:
    return hasattr(source, "word_rows") and hasattr(source, "vocab")


def open_target(spec: str, **options: Any) -> Any:
    """A word-vector source (``word_rows``) or a :class:`Predictor` for ``spec``.

    Model sources come from :func:`convergent.sources.open_source` and are wrapped through
    their ``load_model()``; a local folder with ``config.json`` is loaded with transformers
    directly if the Hugging Face source module is unavailable.
    """
    from convergent.sources import open_source

    try:
        source = open_source(spec, **options)
    except ConvergentError as err:
        folder = Path(spec.removeprefix("hf:"))
        if "not part of this version" not in str(err) or not (folder / "config.json").is_file():
            raise
        return _local_folder(folder)
    if is_word_vectors(source):
        return source
    if hasattr(source, "run_dir") and hasattr(source, "chosen"):  # a training run
        from convergent.linearity.run import run_predictor

        step = getattr(source.chosen, "step", None)
        return run_predictor(f"{source.run_dir}@{step}" if step is not None else
                             str(source.run_dir))
    return predictor_from(source, name=getattr(source, "name", spec))


def _local_folder(folder: Path) -> Predictor:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return predictor_from((model, tokenizer), name=folder.name)
