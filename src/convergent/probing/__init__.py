"""Cross-validated linear probes shared by every analysis (numbers, concepts, relations)."""

from convergent.probing.folds import bootstrap_kappa_interval, cohen_kappa, stratified_folds
from convergent.probing.logistic import (
    LogisticSettings,
    ProbeTask,
    cross_validated_predictions,
    held_out_predictions,
)

__all__ = [
    "LogisticSettings",
    "ProbeTask",
    "bootstrap_kappa_interval",
    "cohen_kappa",
    "cross_validated_predictions",
    "held_out_predictions",
    "stratified_folds",
]
