"""The committed results are found in a checkout and are None outside one (a notebook copied alone)."""
from dynlab.experiments import adiac, committed, study


def test_the_committed_results_are_found_in_the_checkout():
    assert (study.committed_results() / "results.csv").is_file()
    assert (adiac.committed_results() / adiac.RESULT_FILES["standard"]).is_file()


def test_outside_a_checkout_there_are_none_unless_dynlab_results_names_them(tmp_path, monkeypatch):
    found = study.committed_results().parent
    monkeypatch.setattr(committed, "__file__", str(tmp_path / "site" / "dynlab" / "experiments" / "committed.py"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DYNLAB_RESULTS", raising=False)
    assert study.committed_results() is None and adiac.committed_results() is None
    monkeypatch.setenv("DYNLAB_RESULTS", str(found))
    assert study.committed_results() == found / "study-quick"
