"""The wheel as users get it: what it holds, and that, installed into a fresh venv, it answers from its own corpus."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
QUESTION = "which countries bombed the PFG?"
PASSAGE = "There are strong indications that the UAE and Egyptian warplanes"   # README's first quote, ¶17


def pip(*args: str | Path, cwd: Path | None = None) -> None:
    """This venv's pip, never reaching a registry: the wheel is built and installed from local files only."""
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repo built into a wheel, from a copy so the build leaves no build/ or *.egg-info in the checkout."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    # A stale build/ would leak old files into the wheel; local databases and caches are no part of the source.
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", "*.db", "*.db-*", ".env"))
    # Without build isolation pip fetches nothing: it builds with this venv's setuptools (the test extra).
    pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", root / "dist", source)
    [built] = (root / "dist").glob("newsdesk-*.whl")
    return built


def test_the_wheel_holds_the_package_data_and_nothing_stray(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    data = {n.removeprefix("index/data/") for n in names if n.startswith("index/data/")}
    assert data == {p.name for p in (REPO / "index" / "data").iterdir() if p.suffix in (".txt", ".tsv")}
    shipped = {n.removeprefix("index/shipped_corpus/") for n in names if n.startswith("index/shipped_corpus/")}
    assert shipped == {p.name for p in (REPO / "corpus").iterdir() if p.suffix == ".txt"}
    assert {n.split("/")[0] for n in names} == {"index", "bot", wheel.name.split("-py")[0] + ".dist-info"}
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".db")) or "__editable__" in n]


def test_the_installed_wheel_answers_the_readme_question_from_its_own_corpus(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)             # this venv's pip installs into it: faster than ensurepip
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / ("python.exe" if os.name == "nt" else "python")
    pip("--python", python, "install", "--no-deps", "--no-index", wheel)
    # The dependencies (discord.py, numpy, nltk, ...) come from this venv rather than the registry: a .pth line
    # naming this venv's site-packages. A plain directory line runs none of the .pth files in it, so this venv's
    # editable install of newsdesk (an __editable__ .pth and its finder) stays out; the check below proves it.
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "outer_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n", encoding="utf-8")

    home, cwd = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NEWSDESK_", "PYTHON")) and k not in ("VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"))

    where = subprocess.run([python, "-c", "import index.shipped as s; print(s.__file__); print(s.shipped_corpus())"],
                           cwd=cwd, env=env, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    module, corpus = (Path(line).resolve() for line in where.stdout.splitlines())
    assert module.is_relative_to(env_dir.resolve()), where.stdout       # the wheel's package, not the repo's
    assert corpus.is_relative_to(env_dir.resolve()), where.stdout       # ... and the wheel's articles
    assert {p.name for p in corpus.iterdir()} == {p.name for p in (REPO / "corpus").iterdir() if p.suffix == ".txt"}

    asked = subprocess.run([bin_dir / "newsdesk", "ask", QUESTION], cwd=cwd, env=env, capture_output=True, text=True)
    assert asked.returncode == 0, asked.stdout + asked.stderr
    assert PASSAGE in asked.stdout and "bombed PFG" in asked.stdout
    assert (home / "data" / "newsdesk" / "newsdesk.db").is_file()
