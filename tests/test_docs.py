"""README.md and the CLI's help agree: every command documented, the quick-start commands are the real ones."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from index.cli import main

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
CI = REPO / ".ci" / "run"
COMMANDS = [["ask"], ["cite"], ["index", "build"], ["index", "repair"], ["eval"], ["run"], ["sync"]]



def readme() -> str:
    return README.read_text(encoding="utf-8")


def fenced_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_is_in_the_readme(command):
    assert f"newsdesk {' '.join(command)}" in readme()


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(capsys, command):
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: newsdesk {' '.join(command)}")
    description = out.split("\n\n")[1].strip()
    assert len(description) > 20
    assert f"example:\n  newsdesk {' '.join(command)}" in out


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in ("ask", "cite", "index", "eval", "run", "sync"):
        assert re.search(rf"^\s+{command}\s+\S", out, re.M), command


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert capsys.readouterr().out.startswith("usage: newsdesk")


def test_first_block_installs_and_asks():
    lines = fenced_blocks(readme())[0].splitlines()
    assert any(re.search(r"pip install -e \.(\s|$)", line) for line in lines)
    assert any("newsdesk ask " in line for line in lines)


def test_second_block_installs_the_test_extra_and_runs_pytest():
    lines = fenced_blocks(readme())[1].splitlines()
    assert any("pip install -e '.[test]'" in line for line in lines)
    assert any("pytest" in line for line in lines)


def test_ci_runs_the_readme_test_command():
    test_line = next(line for line in fenced_blocks(readme())[1].splitlines() if "pytest" in line)
    assert test_line.strip() in [line.strip() for line in CI.read_text(encoding="utf-8").splitlines()]


def test_passage_ids_shown_in_the_readme_exist(seed_db):
    """The README's example answers are real runs on the shipped corpus: their passage IDs exist."""
    shown = set(re.findall(r"\u00b6\d+(?: \(part \d+\))? \u00b7 `([a-z2-7]{7,})`", readme()))
    assert shown
    with sqlite3.connect(seed_db) as conn:
        known = {row[0] for row in conn.execute("SELECT id FROM passages")}
    assert shown <= known


def test_help_and_readme_agree_on_limits_settings_and_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["ask", "--help"])
    ask_help = capsys.readouterr().out
    assert "1 to 100" in ask_help and "`-k`: 1 to 100" in readme()
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "$NEWSDESK_DB" in top and "$NEWSDESK_DB" in readme()
    assert "--version" in top and "newsdesk --version" in readme()
    documented = dict(re.findall(r"^\s*\| (\d+) \| (.+?) \|$", readme(), re.M))
    helped = dict(re.findall(r"(\d+) ([a-z][a-z ]+?)(?:,|\.)", top.split("exit status:")[1].replace("\n", " ")))
    assert set(helped) == set(documented), (helped, documented)
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.startswith("newsdesk ")
