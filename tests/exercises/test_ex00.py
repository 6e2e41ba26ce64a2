"""Notebook 00's self-checks: right answers pass, typical wrong ones fail with a reason, odd types do not raise."""

from dynlab.exercises import ex00

ONE_THREAD = True

ORIENTATION_PAIRS = [("horizontal bar", "vertical bar"), ("vertical stripes", "horizontal stripes"),
                     ("arrow right", "arrow left")]


def test_the_rotated_pairs_are_found_from_the_shapes():
    pairs = ex00.rotated_pairs()
    assert set(pairs) == {frozenset(p) for p in ORIENTATION_PAIRS}
    assert pairs[frozenset(("arrow left", "arrow right"))] == 2  # a half turn
    assert pairs[frozenset(("horizontal bar", "vertical bar"))] in (1, 3)  # a quarter turn


def test_check_1(capsys):
    assert ex00.check_1(ORIENTATION_PAIRS)
    assert capsys.readouterr().out.startswith("Right:")
    assert ex00.check_1([("Vertical Bar ", "horizontal bar"), *ORIENTATION_PAIRS[1:]])  # order and case free
    capsys.readouterr()
    assert not ex00.check_1(ORIENTATION_PAIRS[:2])
    assert "half turn" in capsys.readouterr().out
    assert not ex00.check_1([*ORIENTATION_PAIRS, ("disc", "square")])
    assert "disc / square" in capsys.readouterr().out
    assert not ex00.check_1([("disc", "triangle")])
    assert "not a class" in capsys.readouterr().out
    for odd in ("bars", 3, None, [("disc",)]):
        assert not ex00.check_1(odd)
        assert "Not yet: give a list of pairs" in capsys.readouterr().out


def test_check_2(capsys):
    full = ex00._classification_params("full")
    quick = ex00._classification_params("quick")
    assert ex00.check_2(full / quick)
    assert capsys.readouterr().out.startswith("Right:")
    assert ex00.check_2(16)  # the prediction, within 3%
    capsys.readouterr()
    for wrong, reason in ((4, "ratio of the widths"), (quick / full, "quick / full"), (256, "once too often"),
                          (10, "is off"), ("sixteen", "not a number")):
        assert not ex00.check_2(wrong)
        out = capsys.readouterr().out
        assert out.startswith("Not yet:") and reason in out


def test_check_3(capsys):
    b = ex00.adiac_baselines()
    assert b["commonest training class"] < b["uniform guess"] < b["commonest test class"]
    assert ex00.check_3(b["commonest training class"])
    assert capsys.readouterr().out.startswith("Right:")
    assert ex00.check_3(100 * b["commonest training class"])  # as a percentage
    capsys.readouterr()
    for wrong, reason in ((b["commonest test class"], "test labels"), (1 / 37, "uniformly at random"),
                          (0.5, "is off"), ("2%", "not a number"), (None, "not a number")):
        assert not ex00.check_3(wrong)
        out = capsys.readouterr().out
        assert out.startswith("Not yet:") and reason in out
