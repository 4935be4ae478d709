"""The bot's commands, one extension per area: ask (members), admin (/reindex), info (/sources, /about)."""
