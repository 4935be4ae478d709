"""Who may change the shared corpus: operators (Manage Server in an admin server, or the app's owner).

One index serves every server the bot is in, so a command that changes it (`/reindex`, `/add`, `/feeds` …)
must not be usable by whoever manages *some* server. Decorate such a command with `@operator_only()`:
`newsdesk sync` then registers it only in the servers listed in NEWSDESK_ADMIN_GUILDS, and the check
refuses it anywhere else, in code, whatever Discord's own permission settings say.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import discord
from discord import app_commands

__all__ = ("NotOperator", "operator_only", "is_operator", "is_owner", "is_operator_command", "load_owners",
           "redact_paths")

_log = logging.getLogger(__name__)

T = TypeVar("T")
_MARK = "__newsdesk_operator__"

# An absolute path in an engine message: POSIX (/srv/news/db) or Windows (C:\news). The look-behind keeps
# URLs whole (the "/" of "https://x/a" follows ":" or a word character).
_PATH = re.compile(r"(?<![\w:/.\\…])(?:/|[A-Za-z]:\\)[^\s\"'`“”‘’<>|]*[^\s\"'`“”‘’<>|.,;:!?)]")


class NotOperator(app_commands.CheckFailure):
    """The person may not run a command that changes the shared index; the message says who may."""


def _owners(client: discord.Client) -> set[int]:
    ids = set(getattr(client, "owner_ids", None) or ())
    owner = getattr(client, "owner_id", None)
    return ids | {owner} if owner else ids


async def load_owners(bot: discord.Client) -> None:
    """Fetch the application's owner (or its team's admins and developers) once, at start-up.

    Cached on the bot (discord.py's own owner_id / owner_ids), so is_operator() needs no request.
    """
    try:
        app = await bot.application_info()
    except discord.HTTPException as e:
        _log.warning("Could not read the application's owner (operator commands stay refused): %s", e)
        return
    if app.team:
        roles = (discord.TeamMemberRole.admin, discord.TeamMemberRole.developer)
        bot.owner_ids = {m.id for m in app.team.members if m.role in roles}   # type: ignore[attr-defined]
    elif app.owner:
        bot.owner_id = app.owner.id                                         # type: ignore[attr-defined]


def is_owner(interaction: discord.Interaction) -> bool:
    """The application's owner, or a member of its team."""
    return interaction.user.id in _owners(interaction.client)


def _admin_guilds(interaction: discord.Interaction) -> frozenset[int]:
    config = getattr(interaction.client, "config", None)
    return frozenset(getattr(config, "admin_guilds", ()) or ())


def is_operator(interaction: discord.Interaction) -> bool:
    """May this person change the shared index here? Only in a server; the owner anywhere, and members
    with Manage Server in an admin server (NEWSDESK_ADMIN_GUILDS; with none configured, the owner only)."""
    if interaction.guild_id is None:
        return False
    if is_owner(interaction):
        return True
    permissions = interaction.permissions
    return interaction.guild_id in _admin_guilds(interaction) and permissions.manage_guild


def _refusal(interaction: discord.Interaction) -> str:
    if interaction.guild_id is None:
        return "This command only works in a server."
    if interaction.guild_id in _admin_guilds(interaction):
        return "Only members with the Manage Server permission can do that."
    return ("This command changes the index every server shares, so it only works in the bot's admin servers "
            "(or for the bot's owner).")


def operator_only() -> Callable[[T], T]:
    """A check for commands that change the shared corpus; also marks them for `newsdesk sync`.

    Put it above or below `@app_commands.command()`; it refuses with a NotOperator whose text is fit to show.
    """
    def predicate(interaction: discord.Interaction) -> bool:
        if is_operator(interaction):
            return True
        raise NotOperator(_refusal(interaction))

    check = app_commands.check(predicate)

    def decorator(func: T) -> T:
        target = getattr(func, "callback", func)   # a Command, or the function it will wrap
        setattr(target, _MARK, True)
        return check(func)

    return decorator


def is_operator_command(command: Any) -> bool:
    """Was this command (or context menu) decorated with operator_only()? A group (/feeds) is when every
    one of its subcommands is: it has no callback of its own to carry the mark."""
    children = getattr(command, "commands", None)
    if children:
        return all(is_operator_command(child) for child in children)
    return bool(getattr(getattr(command, "callback", None), _MARK, False))


def redact_paths(text: str, known: Iterable[Path | str] = ()) -> str:
    """The text with filesystem paths shown as "…": the known ones (they may hold spaces), then any other."""
    for path in sorted((str(p) for p in known if str(p) not in ("", ".", "/")), key=len, reverse=True):
        text = text.replace(path, "…")
    return _PATH.sub("…", text)
