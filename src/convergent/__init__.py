"""convergent: do different language models learn the same representations, and why?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from convergent.numbers.analysis import NumberAnalysis, analyze_numbers
    from convergent.representation import Representation

__all__ = ["NumberAnalysis", "Representation", "__version__", "analyze_numbers"]


def __getattr__(name: str) -> Any:
    """Lazy exports keep ``import convergent`` fast."""
    if name in ("analyze_numbers", "NumberAnalysis"):
        from convergent.numbers import analysis

        return getattr(analysis, name)
    if name == "Representation":
        from convergent.representation import Representation

        return Representation
    raise AttributeError(f"module 'convergent' has no attribute {name!r}")
