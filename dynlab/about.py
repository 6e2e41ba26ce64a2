"""Where the kit lives. The one place the repository URL is written: install lines and notebook
badges are made from it (see ``tools/notebook_header.py``)."""
REPOSITORY = "https://github.com/dynlab-course/dynlab"
BRANCH = "main"
_SLUG = REPOSITORY.removeprefix("https://github.com/")


def pip_install_line() -> str:
    return f"pip install 'dynlab @ git+{REPOSITORY}@{BRANCH}'"


def colab_url(notebook: str) -> str:
    return f"https://colab.research.google.com/github/{_SLUG}/blob/{BRANCH}/notebooks/{notebook}"


def binder_url(notebook: str) -> str:
    return f"https://mybinder.org/v2/gh/{_SLUG}/{BRANCH}?urlpath=lab/tree/notebooks/{notebook}"


def raw_url(path: str) -> str:
    """The URL of a committed file at the ref the install line installs (``path`` relative to the repository)."""
    return f"https://raw.githubusercontent.com/{_SLUG}/{BRANCH}/{path}"
