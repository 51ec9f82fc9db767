"""``--compile``: train with TorchInductor-compiled blocks, failing early with one line.

Measured with ``benchmarks/bench_train.py`` (2 threads, idle machine, five runs over two
shapes): compiling the blocks makes a training step 1.0-1.16x (Transformer), 1.06-1.26x
(Mamba-2) and 1.02-1.38x (Gated DeltaNet layer) faster, after a one-time compile of
15-45 s per family (cached on disk by Inductor; later runs 3-15 s). Worth it for runs
longer than a few minutes; the quick preset (about a minute of training) does not gain.
"""

from __future__ import annotations

from torch import nn

from convergent.errors import ConvergentError
from convergent.train.data import Batch
from convergent.train.models import compile_blocks


def compile_for_training(model: nn.Module, sample: Batch) -> nn.Module:
    """Compile ``model``'s blocks and run one forward/backward on ``sample``.

    The compiler runs lazily at the first call, so its errors (no C++ compiler, an
    unsupported platform) would otherwise surface mid-loop; here they become one
    :class:`~convergent.errors.ConvergentError` before any checkpoint is written. The
    warm-up's gradients are discarded; no parameter changes.
    """
    compile_blocks(model)
    try:
        model.loss(sample.tokens, sample.mask, sample.segments).backward()
    except Exception as err:  # the compiler stack raises many exception types
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConvergentError(
            f"--compile failed ({type(err).__name__}: {first[:200]}); run without --compile"
        ) from None
    finally:
        model.zero_grad(set_to_none=True)
    return model
