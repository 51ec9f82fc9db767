"""Token-identity controls: what a probe can read off the tokens alone.

With a digit tokenizer the last token of "n" is its last digit, so n mod 2, 5 and 10 are
separable at that position in any model. The control probes the same classes from one-hot
features of the number's tokens (one block per position counted from the end), with the
same folds and probe; a site whose kappa the control matches learned nothing beyond them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EXPLAINED_MARGIN = 5.0  # kappa points: kappa <= baseline + margin counts as explained
SEPARABLE_KAPPA = 10.0  # below this there is no separability for the tokens to explain


def token_identity_features(token_ids: Sequence[Sequence[int]]) -> np.ndarray:
    """One-hot features of each row's tokens, aligned from the last token backwards."""
    longest = max(len(t) for t in token_ids)
    blocks = []
    for back in range(1, longest + 1):
        column = np.array([t[-back] if len(t) >= back else -1 for t in token_ids])
        values, codes = np.unique(column, return_inverse=True)
        if values.size > 1:
            block = np.zeros((column.size, values.size))
            block[np.arange(column.size), codes] = 1.0
            blocks.append(block)
    if not blocks:
        return np.zeros((len(token_ids), 1))
    return np.hstack(blocks)


def explained_by_tokens(kappa: float, baseline_kappa: float) -> bool:
    """True when the site is separable (kappa >= 10) and the token-identity control reaches
    its kappa within the margin: the tokens alone explain the separability."""
    return kappa >= SEPARABLE_KAPPA and baseline_kappa >= kappa - EXPLAINED_MARGIN
