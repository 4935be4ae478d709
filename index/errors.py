"""Newsdesk's exceptions: every message is a sentence fit to show a user."""

from __future__ import annotations

__all__ = (
    "NewsdeskError",
    "CorpusError",
    "IndexNotBuilt",
    "QueryError",
    "PassageNotFound",
    "RebuildInProgress",
    "BuildFailed",
)


class NewsdeskError(Exception):
    """Root of the errors Newsdesk reports to people rather than logs as bugs."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message   # the sentence alone, for places where a CLI hint does not fit
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n{hint}")


class CorpusError(NewsdeskError):
    """The corpus cannot be read or holds nothing to index."""


class IndexNotBuilt(NewsdeskError):
    """There is no index to search yet."""


class QueryError(NewsdeskError):
    """The question or an argument cannot be searched as given."""


class PassageNotFound(NewsdeskError):
    """No passage has the ID asked for."""

    def __init__(self, passage_id: str, closest: list[str]) -> None:
        self.passage_id = passage_id
        self.closest = closest
        hint = f"Closest IDs: {', '.join(closest)}" if closest else None
        super().__init__(f"No passage has the ID {passage_id!r}.", hint)


class RebuildInProgress(NewsdeskError):
    """A rebuild was asked for while another one is running."""


class BuildFailed(NewsdeskError):
    """A rebuild stopped for a reason other than the corpus; the previous index is untouched."""
