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


def test_the_tree_sampler_sums_every_process_below_the_root():
    """A small parent whose child holds 64 MB: the tree's sum has the child's 64 MB, and both processes."""
    import subprocess
    import sys

    from bench.tree import TreeSampler

    child = "import sys; held = b'x' * (64 << 20); print('ready', flush=True); sys.stdin.read()"
    starts_child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    parent = subprocess.Popen([sys.executable, "-c", starts_child], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert parent.stdout.readline().strip() == "ready"     # the grandchild's line, through the inherited pipe
        tree = TreeSampler(parent.pid)
        tree.sample()
        alone = TreeSampler(parent.pid, include_root=False)
        alone.sample()
    finally:
        parent.stdin.close()
        parent.wait(timeout=30)
    assert len(tree.hwm_kb) == 2 and tree.peak_processes == 2
    assert tree.peak_rss_kb >= 64 * 1024 and tree.peak_pss_kb >= 60 * 1024
    assert tree.largest_hwm_kb >= 64 * 1024
    assert tree.peak_rss_kb - alone.peak_rss_kb < 32 * 1024      # the parent itself is small: the 64 MB are the child's
