"""Entry points: `newsdesk run` / `python -m bot` start the bot; `newsdesk sync` publishes its commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Sequence

import aiohttp
import discord

from index.errors import NewsdeskError

from .app import NewsdeskBot, apply_endpoints
from .checks import is_operator_command
from .config import Config, ConfigError
from .shards import make_bot

__all__ = ("main", "sync_commands", "run", "sync")

_log = logging.getLogger(__name__)

NO_TOKEN = "Error: DISCORD_TOKEN is not set. Put the bot's token in the environment or in a .env file."
REJECTED = "Error: Discord rejected the token in DISCORD_TOKEN. Copy it again from the Developer Portal (Bot → Token)."


# Gateway close codes after which Discord will not take the bot back (discord.py re-raises them).
_FATAL_CLOSES = {4010: "invalid shard", 4011: "sharding required", 4012: "invalid API version",
                 4013: "invalid intents"}


def _fail(line: str) -> int:
    print(line, file=sys.stderr)
    return 1


def _load(**overrides) -> Config | int:
    try:
        config = Config.load(**overrides)
    except ConfigError as e:
        return _fail(f"Error: {e}")
    return config if config.token else _fail(NO_TOKEN)


def _setup_logging(level: int) -> None:
    """discord.py's log format on the root logger, replacing the plain one `newsdesk` (index.cli) set up."""
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    discord.utils.setup_logging(level=level, root=True)


def main(corpus: Path | None = None, db: Path | None = None) -> int:
    """Run the bot until SIGTERM or Ctrl-C; returns the exit status."""
    config = _load(corpus=corpus, db=db)
    if isinstance(config, int):
        return config
    _setup_logging(logging.INFO)
    return asyncio.run(run(config))


def sync_commands(guild_id: int | None = None) -> int:
    """Publish the slash commands: to one server (instant; NEWSDESK_GUILD_ID by default) or globally.

    Commands that change the shared index go to the NEWSDESK_ADMIN_GUILDS servers only, when set.
    """
    config = _load()
    if isinstance(config, int):
        return config
    _setup_logging(logging.WARNING)
    return asyncio.run(sync(config, guild_id if guild_id is not None else config.guild_id))


async def run(config: Config) -> int:
    """Log in, connect and serve until closed; start-up failures become one line on stderr."""
    apply_endpoints(config)
    bot = make_bot(config)
    loop = asyncio.get_running_loop()
    signals = [s for s in (signal.SIGTERM, signal.SIGINT) if _on_signal(loop, s, bot)]
    try:
        async with bot:
            await bot.start(config.token or "")
    except discord.LoginFailure:
        return _fail(REJECTED)
    except discord.ConnectionClosed as e:
        # A fatal close (bad token, invalid shard or intents, API version): discord.py does not reconnect.
        if e.code == 4004:
            return _fail(REJECTED)
        why = _FATAL_CLOSES.get(e.code, e.reason or "")
        return _fail(f"Error: Discord closed the gateway connection (code {e.code}" + (f": {why}" if why else "")
                     + ") and Newsdesk cannot reconnect.")
    except discord.PrivilegedIntentsRequired:
        return _fail("Error: Discord refused the gateway intents; Newsdesk needs no privileged intents.")
    except NewsdeskError as e:
        return _fail(f"Error: {e}")
    except (aiohttp.ClientError, OSError) as e:
        return _fail(f"Error: cannot reach Discord at {discord.http.Route.BASE}: {e}")
    finally:
        for s in signals:
            loop.remove_signal_handler(s)
        await bot.close()          # a shutdown a signal started is finished, not cut short by asyncio.run
    _log.info("Newsdesk stopped")
    return 0


def _on_signal(loop: asyncio.AbstractEventLoop, sig: signal.Signals, bot: NewsdeskBot) -> bool:
    def stop() -> None:
        _log.info("%s received: finishing in-flight commands, then closing", sig.name)
        asyncio.ensure_future(bot.close())

    try:
        loop.add_signal_handler(sig, stop)
    except (NotImplementedError, RuntimeError):   # not the main thread, or not supported here
        return False
    return True


async def sync(config: Config, guild_id: int | None) -> int:
    """Log in (no gateway, no index) and replace the published commands with the bot's own."""
    apply_endpoints(config)
    bot = NewsdeskBot(config, open_index=False)
    try:
        async with bot:
            await bot.login(config.token or "")
            tree = bot.tree
            operators = [c for c in tree.get_commands() if is_operator_command(c)]
            if config.admin_guilds:
                # The corpus-changing commands leave the global set; each admin server gets its own copy.
                for command in operators:
                    tree.remove_command(command.name, type=getattr(command, "type", discord.AppCommandType.chat_input))
                    for admin_guild in config.admin_guilds:
                        tree.add_command(command, guild=discord.Object(admin_guild))
            if guild_id is not None:
                guild = discord.Object(guild_id)
                tree.copy_global_to(guild=guild)
                synced = await tree.sync(guild=guild)
            else:
                synced = await tree.sync()
            admin_synced = {g: await tree.sync(guild=discord.Object(g))
                            for g in sorted(config.admin_guilds) if g != guild_id}
    except discord.LoginFailure:
        return _fail(REJECTED)
    except discord.HTTPException as e:
        return _fail(f"Error: Discord refused the commands: {e}")
    except (aiohttp.ClientError, OSError) as e:
        return _fail(f"Error: cannot reach Discord at {discord.http.Route.BASE}: {e}")
    names = ", ".join(sorted(c.name for c in synced))
    where = f"to server {guild_id} (shown at once)" if guild_id is not None else \
        "globally (Discord may take up to an hour to show changes)"
    print(f"Published {len(synced)} commands {where}: {names}")
    for admin_guild, commands in admin_synced.items():
        print(f"Published {len(commands)} operator commands to admin server {admin_guild}: "
              + ", ".join(sorted(c.name for c in commands)))
    return 0


def _cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Run the Newsdesk Discord bot.")
    parser.add_argument("--corpus", type=Path, help="article folder (default: $NEWSDESK_CORPUS)")
    parser.add_argument("--db", type=Path, help="index database (default: $NEWSDESK_DB)")
    parser.add_argument("--sync", action="store_true", help="publish the commands instead of running")
    parser.add_argument("--guild", type=int, help="with --sync: publish to this server only")
    args = parser.parse_args(argv)
    if args.sync:
        return sync_commands(args.guild)
    return main(corpus=args.corpus, db=args.db)


if __name__ == "__main__":
    sys.exit(_cli())
