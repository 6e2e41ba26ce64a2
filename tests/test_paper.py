"""The seed's tables as data (``dynlab.paper``): typed in once, checked against each other, used everywhere."""
import pytest

from dynlab import metrics, paper
from dynlab.experiments import adiac, study


def test_table_4b_is_table_4a_summarised_with_the_population_std():
    folds = paper.table("4a")["accuracy"]
    summary = paper.table("4b")
    for name, values in folds.items():
        assert len(values) == 10
        mean, std = metrics.mean_std(values)
        assert round(mean, 3) == summary["mean_accuracy"][name]
        assert round(std, 3) == summary["std_accuracy"][name]


def test_the_reports_claims_come_from_the_tables():
    assert study.PAPER_CLAIMS["classification"]["values"] == paper.by_variant("3", "accuracy")
    assert study.PAPER_CLAIMS["segmentation"]["values"]["hard"] == 70.69
    assert study.PAPER_CLAIMS["timeseries"]["values"]["D-CNN"] == "0.653 (0.062)"
    assert adiac.PAPER_TABLE_4B == {"CNN": (0.571, 0.059), "D-CNN": (0.653, 0.062)}


def test_every_model_name_maps_to_a_name_of_dynlab():
    for name in paper.names():
        for column, values in paper.table(name).items():
            if isinstance(values, dict) and name in ("3", "4", "4a", "4b"):
                assert paper.by_variant(name, column).keys() <= {"base", "global", "local", "hard", "OD-CNN",
                                                                 "CNN", "D-CNN"}


def test_a_table_is_a_copy_and_an_unknown_one_is_named():
    paper.table("1")["settings"]["epochs"] = 3
    assert paper.table("1")["settings"]["epochs"] == 30
    with pytest.raises(KeyError, match="tables: 1, 2, 3"):
        paper.table("5")


def test_the_module_examples_hold():
    import doctest

    assert doctest.testmod(paper).failed == 0
