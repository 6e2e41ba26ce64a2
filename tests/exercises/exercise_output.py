"""What the exercise tests read from a self-check's output."""


def says(capsys, *words) -> bool:
    """Whether the check printed exactly one line, holding every one of ``words``."""
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1
    return all(word in out for word in words)
