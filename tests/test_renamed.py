"""Names users typed before the redesign keep working, with a warning that says the new name."""
import subprocess
import sys

import pytest

from dynlab import flops, profiles
from dynlab.engine import check_fingerprint, model_fingerprint
from dynlab.models import net1_dcnn, resnet18


OLD_MODULES = [("dynlab.train", "dynlab.engine", "fit"), ("dynlab.study", "dynlab.experiments.study", "run_study"),
               ("dynlab.adiac", "dynlab.experiments.adiac", "run_grid")]


def test_old_modules_warn_and_still_work():
    """In a fresh process, so that each module is imported (and warns) for the first time."""
    code = "import importlib, warnings\nwarnings.simplefilter('always')\n"
    for module, _, name in OLD_MODULES:
        code += (f"with warnings.catch_warnings(record=True) as caught:\n    m = importlib.import_module({module!r})\n"
                 f"assert callable(m.{name})\nprint(caught[0].category.__name__, caught[0].message)\n")
    lines = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(lines) == len(OLD_MODULES)
    for line, (_, new, _) in zip(lines, OLD_MODULES):
        assert line.startswith("FutureWarning") and new in line


def test_old_profile_and_function_names_warn_and_still_work():
    with pytest.warns(FutureWarning, match="now called 'paper'"):
        assert profiles.get_profile("seed").name == "paper"
    with pytest.warns(FutureWarning, match="flops.cost"):
        assert flops.profile(resnet18("base", 10, width=8), (1, 3, 16, 16)) == flops.cost(
            resnet18("base", 10, width=8), (1, 3, 16, 16))


def test_a_checkpoint_of_the_renamed_network_class_still_matches():
    model = net1_dcnn("dyconv", 37)
    saved = {**model_fingerprint(model), "model": "SeedCNN"}  # what checkpoints of before recorded
    check_fingerprint(saved, model, "old.pt")
    with pytest.raises(ValueError, match="different model"):
        check_fingerprint({**saved, "model": "TSResNet"}, model, "old.pt")
