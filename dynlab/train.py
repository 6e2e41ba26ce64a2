"""Deprecated: the training engine is ``dynlab.engine`` now (``python -m dynlab.engine.smoke`` for the smoke run)."""
import warnings

from .engine import *  # noqa: F401,F403
from .engine import __all__  # noqa: F401
from .engine.smoke import TinyNet, main as _main, smoke_datasets  # noqa: F401

warnings.warn("dynlab.train is now dynlab.engine; import from there (dynlab.train will be removed)",
              FutureWarning, stacklevel=2)

if __name__ == "__main__":
    raise SystemExit(_main())
