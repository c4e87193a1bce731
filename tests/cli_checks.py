"""Running `memrl` in-process and checking the one-line error rule, for the table-driven bad-input tests
(tests/test_hardening_*.py): every refusal is exit 2, one `error: ...` line on stderr, no traceback."""

from __future__ import annotations

from memrl.cli import main


def exit_code(argv) -> int:
    """The exit code of `memrl ARGV` (the data subcommands exit through SystemExit)."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as e:
        return int(e.code or 0)


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `memrl ARGV`, output captured from this call only."""
    capsys.readouterr()
    rc = exit_code(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def assert_one_line_error(rc: int, err: str, needle: str) -> str:
    """Exit 2, one `error: ` line on stderr containing `needle`, no traceback; returns the line."""
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0], lines[0]
    return lines[0]
