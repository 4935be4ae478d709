"""Newsdesk's engine: corpus files to passages, BM25 over them, quoted answers. Usable without Discord."""
