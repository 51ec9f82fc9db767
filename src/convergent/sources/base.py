"""The interface every source implements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from convergent.errors import ConvergentError
from convergent.representation import Representation


@runtime_checkable
class Source(Protocol):
    """Something that yields representations of numbers at named sites.

    ``number_representations`` returns one Representation per requested site, holding the
    rows of the requested numbers that the source has (missing ones are left out; the caller
    decides through :func:`convergent.sources.require_numbers` whether that is an error).
    """

    name: str

    def number_representations(
        self, numbers: Sequence[int], sites: Sequence[str]
    ) -> list[Representation]: ...


def reject_options(source: str, options: Mapping[str, Any]) -> None:
    """Raise if options that do not apply to this kind of source were given."""
    given = sorted(k for k, v in options.items() if v is not None)
    if given:
        raise ConvergentError(f"{source}: option(s) {', '.join(given)} do not apply to this source")


def require_embed_site(source: str, sites: Sequence[str]) -> None:
    """Static vectors have one site, ``embed``."""
    bad = [s for s in sites if s != "embed"]
    if bad:
        raise ConvergentError(
            f"{source}: static vectors have only the site 'embed', not {', '.join(bad)}"
        )
