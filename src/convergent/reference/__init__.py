"""Published reference numbers: the paper's kappa, Phi_T, lambda_max and cond(S_W) as data."""

from convergent.reference.paper import (
    MEASURES,
    Comparison,
    PaperRow,
    Published,
    Setting,
    addition_setting,
    compare,
    paper_rows,
    published,
    source_setting,
    train_setting,
)

__all__ = ["MEASURES", "Comparison", "PaperRow", "Published", "Setting", "addition_setting",
           "compare", "paper_rows", "published", "source_setting", "train_setting"]
