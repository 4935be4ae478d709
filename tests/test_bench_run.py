"""bench/run.py's README writer replaces the marked table and leaves every other byte of the README alone."""

import pytest

from bench.run import END, README, START, replace_marked


def test_the_writer_replaces_exactly_the_marked_region():
    before = "# Title\n\nprose above, | not | a table |\n\n"
    after = "\n\nprose below\n| a | table |\n|---|---|\n"
    text = f"{before}{START}\n| old | table |\n|---|---|\n| 1 | 2 |\n{END}{after}"

    written = replace_marked(text, "| new |\n|---|")

    assert written == f"{before}{START}\n| new |\n|---|\n{END}{after}"
    assert replace_marked(written, "| new |\n|---|") == written       # a second run changes nothing


@pytest.mark.parametrize("text", ["no markers at all", f"{START}\nonly the start", f"only the end\n{END}"])
def test_the_writer_refuses_a_readme_without_both_markers(text):
    with pytest.raises(SystemExit, match="write between"):
        replace_marked(text, "| new |")


def test_the_readme_has_one_marked_region_inside_its_benchmarks_section():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Benchmarks\n"):text.index("\n## Development\n")]
    assert text.count(START) == text.count(END) == 1
    assert START in section and END in section and section.index(START) < section.index(END)
