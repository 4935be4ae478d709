"""Newsdesk's exceptions: every message is a sentence fit to show a user, and each kind has its exit status."""

from __future__ import annotations

__all__ = (
    "NewsdeskError",
    "CorpusError",
    "IndexNotBuilt",
    "QueryError",
    "PassageNotFound",
    "ArticleNotFound",
    "RebuildInProgress",
    "BuildFailed",
    "BuildInterrupted",
    "StoreError",
    "DatabaseIsDirectory",
    "DatabaseNotAFile",
    "DatabaseUnderFile",
    "DatabasePermission",
    "DatabaseBusy",
    "DatabaseDamaged",
)


class NewsdeskError(Exception):
    """Root of the errors Newsdesk reports to people rather than logs as bugs."""

    exit_code = 1     # what `newsdesk` exits with: scripts tell a lock from damage without parsing text

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


class ArticleNotFound(QueryError):
    """No indexed article matches the one asked for."""


class RebuildInProgress(NewsdeskError):
    """A rebuild was asked for while another one is running."""


class BuildFailed(NewsdeskError):
    """A rebuild stopped for a reason other than the corpus; the previous index is untouched."""


class BuildInterrupted(NewsdeskError):
    """A rebuild was stopped on request (Ctrl-C, SIGTERM, shutdown); its transaction was rolled back."""

    exit_code = 130


# -- the database file: each way of failing has its own message and exit status, and none of them
# -- but DatabaseDamaged (SQLite's own verdict, confirmed by quick_check) ever leads to moving a file.

class StoreError(NewsdeskError):
    """The database cannot be used as it is."""

    exit_code = 2


class DatabaseIsDirectory(StoreError):
    exit_code = 3


class DatabaseNotAFile(StoreError):
    """A device node, a pipe or a socket."""

    exit_code = 4


class DatabaseUnderFile(StoreError):
    """A path such as file.txt/newsdesk.db: a parent is a regular file, not a folder."""

    exit_code = 5


class DatabasePermission(StoreError):
    exit_code = 6


class DatabaseBusy(StoreError):
    """Another process holds a lock longer than we were willing to wait."""

    exit_code = 7


class DatabaseDamaged(StoreError):
    """SQLite itself says the file is corrupt or not a database, and quick_check agrees."""

    exit_code = 8
