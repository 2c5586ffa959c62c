"""What a user mistake looks like on the command line, shared by the CLI tests of ``verify`` and ``verify --torch``."""


def assert_one_line_error(capsys, message: str) -> None:
    """The command printed ``l2compare: error: ...`` holding ``message`` on one stderr line, no traceback, nothing
    on stdout (the caller checks the exit code)."""
    captured = capsys.readouterr()
    assert captured.err.startswith("l2compare: error: ") and message in captured.err, captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    assert captured.out == ""
