"""The articles shipped with Newsdesk: the default corpus, wherever the package is installed."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

__all__ = ("shipped_corpus",)

_log = logging.getLogger(__name__)

# pyproject.toml maps the data-only subpackage index.shipped_corpus onto the repo's top-level corpus/, so a wheel
# carries the articles as index/shipped_corpus/*.txt while a checkout keeps them in corpus/ for people to see.
_IN_WHEEL = "shipped_corpus"
_IN_CHECKOUT = "corpus"


def shipped_corpus() -> Path:
    """The folder of shipped articles: index/shipped_corpus in an installed wheel, else the checkout's corpus/."""
    # Anchored on `index`, not on the data-only `index.shipped_corpus`: setuptools' editable finder cannot import a
    # subpackage without __init__.py, and an __init__.py in corpus/ would leave a __pycache__ among the articles.
    # In an editable install or a bare checkout the package is <repo>/index and the articles <repo>/corpus (so editable
    # installs made before the articles became package data keep working). The scanner needs a real folder: pip and
    # pipx install wheels unzipped, so the Traversable is a plain directory and Path(str(...)) is exact.
    package = Path(str(resources.files("index")))
    installed = package / _IN_WHEEL
    folder = installed if installed.is_dir() else package.parent / _IN_CHECKOUT
    _log.debug("shipped corpus: %s", folder)
    return folder
