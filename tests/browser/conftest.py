"""JupyterLab in a real browser: a server on a temporary copy of the course, driven through Chromium.

Fixtures, from the outside in:

- ``chromium``: the browser executable; the tests skip (saying how to install) without it or playwright,
  or fail instead where ``DYNLAB_BROWSER_REQUIRED=1`` (CI, ``make screenshots``).
- ``lab_server``: ``jupyter lab`` on a free 127.0.0.1 port with a random token, serving a temporary copy
  of ``notebooks/`` (nothing tracked is written), quick profile (``DYNLAB_QUICK=1``), the session's
  ``DYNLAB_RUNS`` (else a fresh one) and no ``MPLBACKEND`` (so the kernels draw inline). Stopped, kernels included, at the end.
- ``browser``: headless Chromium driven by Playwright.
- ``lab``: one fresh page and a :class:`Lab` helper for it; its kernels are shut down afterwards, and
  the page of a failed test is kept in a temporary folder (its path is printed with the failure).
- ``screens``: where screenshots go: ``$DYNLAB_SCREENS``, or a temporary folder.

Every wait is for a condition, with a bound; a timeout names what it waited for.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"

INSTALL_HINT = ("install with `apt-get install -y chromium` (Debian/Ubuntu, as root) and "
                "`pip install playwright` (in the project's venv: `pip install -e '.[test]'`)")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]

# Bounds of the waits, in seconds (2 shared CPU cores: generous, but every one is finite).
SERVER_START_S = 120
KERNEL_READY_S = 120
PAGE_READY_S = 90
SHUTDOWN_S = 30

# JupyterLab settings for the test server: no news pop-up over the screenshots, every cell kept in the
# page (no windowing) so that prompts and outputs of all cells can be read from the DOM, no autosave.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}
CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember whether a test's body failed, so that the ``lab`` fixture can keep a screenshot of it."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed


def _chromium_path() -> str | None:
    explicit = os.environ.get("DYNLAB_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


@pytest.fixture(scope="session")
def chromium() -> str:
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package")
    path = _chromium_path()
    if path is None:
        missing.append("Chromium")
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        missing.append("jupyterlab (the 'lab' extra)")
    if missing:
        message = f"browser tests need {' and '.join(missing)}: {INSTALL_HINT}"
        if os.environ.get("DYNLAB_BROWSER_REQUIRED") == "1":  # CI and `make screenshots`: no silent skip
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def screens(tmp_path_factory) -> Path:
    folder = os.environ.get("DYNLAB_SCREENS")
    path = Path(folder).resolve() if folder else tmp_path_factory.mktemp("screens")
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- the server ----------------------------------------------------------------------------------

@dataclass
class LabServer:
    url: str
    token: str
    root: Path          # the temporary copy of notebooks/ that the server serves
    log: Path
    process: subprocess.Popen = field(repr=False)

    def api(self, method: str, path: str, timeout: float = 10):
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def sessions(self) -> list[dict]:
        return self.api("GET", "/api/sessions")

    def kernel_state(self, notebook: str) -> str | None:
        """The execution state of the kernel of ``notebook`` ('idle', 'busy', 'starting', ...), None if none."""
        for session in self.sessions():
            if session.get("path") == notebook and session.get("kernel"):
                return session["kernel"].get("execution_state")
        return None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_course(target: Path) -> Path:
    """notebooks/ copied to target/notebooks; results/ beside it, as notebooks read ``../results``."""
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "runs", "__pycache__")
    shutil.copytree(NOTEBOOKS, target / "notebooks", ignore=ignore)
    if (ROOT / "results").is_dir():
        shutil.copytree(ROOT / "results", target / "results", ignore=ignore)
    return target / "notebooks"


def _stop(server: LabServer) -> None:
    """Ask the server to shut down (it stops its kernels), then make sure: kernels run in sessions of their
    own, so every process below the server is found first and killed if it outlives the shutdown."""
    import psutil  # a dependency of ipykernel

    try:
        family = psutil.Process(server.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    try:
        server.api("POST", "/api/shutdown", timeout=5)
    except (OSError, urllib.error.URLError):
        pass
    try:
        server.process.wait(SHUTDOWN_S)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(SHUTDOWN_S)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(SHUTDOWN_S)
    for process in family:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=SHUTDOWN_S)
    for process in alive:
        process.kill()


@pytest.fixture(scope="session")
def lab_server(chromium, tmp_path_factory) -> LabServer:
    base = tmp_path_factory.mktemp("lab")
    root = _copy_course(base / "course")
    for name, values in LAB_SETTINGS.items():
        path = base / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}
    # reuse the session's runs folder when there is one (make test shares it with nbval, which has
    # trained the course's models by then), else a fresh one
    runs = os.environ.get("DYNLAB_RUNS") or str(base / "runs")
    env.update(DYNLAB_QUICK="1", DYNLAB_RUNS=runs, PYTHONUNBUFFERED="1",
               # the user's Jupyter config, data and runtime folders stay out of the test
               JUPYTER_CONFIG_DIR=str(base / "jupyter-config"), JUPYTER_DATA_DIR=str(base / "jupyter-data"),
               JUPYTER_RUNTIME_DIR=str(base / "jupyter-runtime"))
    port, token = _free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.token={token}",
               f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={base / 'settings'}",
               f"--LabApp.workspaces_dir={base / 'workspaces'}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI runs as root
    log = base / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = LabServer(f"http://127.0.0.1:{port}", token, root, log, process)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with {process.returncode} at start:\n{server.log_tail()}")
            try:
                server.api("GET", "/api/status", timeout=2)
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer /api/status within {SERVER_START_S} s:\n"
                                f"{server.log_tail()}")
                time.sleep(0.5)  # poll interval of the bounded wait above
        yield server
    finally:
        _stop(server)


# -- the browser ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def failures(tmp_path_factory) -> Path:
    """Screenshots of failed tests: a temporary folder, never the committed screenshots'."""
    return tmp_path_factory.mktemp("failed")


@pytest.fixture
def lab(request, browser, lab_server, screens, failures):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(30_000)
    page = context.new_page()
    helper = Lab(page, lab_server, screens)
    try:
        yield helper
    finally:
        if request.node.stash.get(CALL_FAILED, False):
            path = failures / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', request.node.name)}.png"
            page.screenshot(path=str(path))
            print(f"the page when the test failed: {path}")
            if helper.page_errors:
                print("errors in the page's JavaScript:\n" + "\n".join(helper.page_errors))
        context.close()
        helper.shut_down_kernels()


class Lab:
    """One browser page on the test server, with the steps a student takes and the checks made after them."""

    def __init__(self, page, server: LabServer, screens: Path) -> None:
        self.page = page
        self.server = server
        self.screens = screens
        self.notebook: str | None = None
        self.page_errors: list[str] = []
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    # -- opening -------------------------------------------------------------------------------
    def open(self, notebook: str) -> None:
        """Open ``notebook`` (a file name in the served folder) in a fresh workspace, wait until its kernel
        is idle, and close the file browser so that the notebook has the page's width."""
        self.notebook = notebook
        workspace = uuid.uuid4().hex[:12]
        self.page.goto(f"{self.server.url}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={self.server.token}")
        panel = self.page.locator(".jp-NotebookPanel").filter(has=self.page.locator(".jp-Notebook"))
        panel.first.wait_for(state="visible", timeout=PAGE_READY_S * 1000)
        self.expect_no_dialog(f"opening {notebook}")
        self.wait_for_kernel_idle(KERNEL_READY_S, f"the kernel of {notebook} to start")
        self.expect_no_dialog(f"starting the kernel of {notebook}")
        if self.page.locator("#jp-left-stack").is_visible():
            self.page.keyboard.press("Control+b")  # View > Show Left Sidebar (toggle)
            self.page.locator("#jp-left-stack").wait_for(state="hidden")

    def expect_no_dialog(self, when: str) -> None:
        dialogs = self.page.locator(".jp-Dialog")
        if dialogs.count():
            pytest.fail(f"a dialog appeared while {when}: {dialogs.first.inner_text()!r}")

    def kernel_status_text(self) -> str:
        """The status bar's kernel item, e.g. 'Python 3 (ipykernel) | Idle'."""
        items = self.page.locator(".jp-StatusBar-TextItem").filter(has_text=" | ")
        return items.first.inner_text() if items.count() else "(no kernel status in the status bar)"

    def wait_for_kernel_idle(self, timeout_s: float, what: str) -> None:
        """Until the page's status bar says Idle and the server's session for the notebook says idle."""
        deadline = time.monotonic() + timeout_s
        status = self.page.locator(".jp-StatusBar-TextItem").filter(has_text=re.compile(r"\| Idle$"))
        try:
            status.first.wait_for(state="visible", timeout=timeout_s * 1000)
        except Exception:
            pytest.fail(f"waited {timeout_s:.0f} s for {what}; the status bar says {self.kernel_status_text()!r}")
        while (state := self.server.kernel_state(self.notebook)) != "idle":
            if time.monotonic() > deadline:
                pytest.fail(f"waited {timeout_s:.0f} s for {what}; the server says the kernel is {state!r}")
            self.page.wait_for_timeout(250)  # poll interval of the bounded wait above

    # -- running -------------------------------------------------------------------------------
    def run_all(self, timeout_s: float) -> float:
        """Run > Run All Cells from the menu bar; wait until no cell is queued or running and the kernel is
        idle. Returns the seconds it took."""
        start = time.monotonic()
        self.page.get_by_role("menuitem", name="Run", exact=True).click()
        self.page.locator("li[data-command='runmenu:run-all']").click()
        done = """() => {
            const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
            const indicator = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
            return prompts.every(p => !p.textContent.includes('*'))
                && (!indicator || indicator.dataset.status === 'idle');
        }"""
        try:
            self.page.wait_for_function(done, timeout=timeout_s * 1000, polling=500)
        except Exception:
            pending = self.page.locator(".jp-Notebook .jp-CodeCell").filter(
                has=self.page.locator(".jp-InputPrompt", has_text="*"))
            count = pending.count()
            running = ""
            if count:
                pending.first.scroll_into_view_if_needed()  # for the screenshot of the failure
                running = (f"\nthe first of them:\n{pending.first.locator('.jp-InputArea').inner_text()[:500]}\n"
                           f"its output so far:\n{pending.first.locator('.jp-OutputArea').inner_text()[-1500:]}")
            pytest.fail(f"{self.notebook}: still running after {timeout_s:.0f} s ({count} cells queued or "
                        f"running); the status bar says {self.kernel_status_text()!r}{running}")
        self.wait_for_kernel_idle(60, f"the kernel of {self.notebook} to be idle after Run All")
        return time.monotonic() - start

    def errors_in_page(self) -> list[str]:
        """What a student would see as failures: tracebacks in outputs, widgets that did not render,
        the explorer's own error line, JupyterLab error dialogs."""
        found = []
        for text in self.page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                                      ).all_inner_texts():
            if "Traceback" in text or re.search(r"^\w+(Error|Exception)\b", text, flags=re.M):
                found.append(f"error output:\n{text[-3000:]}")
        for text in self.page.locator(".jupyter-widgets-error-widget, .jp-OutputArea-output:has-text("
                                      "'Error displaying widget')").all_inner_texts():
            found.append(f"a widget did not render: {text[:500]!r}")
        for text in self.page.locator(".widget-html:has-text('could not draw')").all_inner_texts():
            found.append(f"the explorer says: {text!r}")
        if self.page.locator(".jp-Dialog").count():
            found.append(f"a dialog: {self.page.locator('.jp-Dialog').first.inner_text()!r}")
        return found

    def expect_no_errors(self, when: str) -> None:
        errors = self.errors_in_page()
        if errors:
            pytest.fail(f"{self.notebook}, {when}:\n" + "\n\n".join(errors), pytrace=False)

    def save(self) -> dict:
        """File > Save (Ctrl+S), wait until the file on disk is written, and return it as JSON."""
        path = self.server.root / self.notebook
        before = path.stat().st_mtime_ns
        self.page.locator(".jp-NotebookPanel .jp-Notebook").first.click(position={"x": 5, "y": 5})
        self.page.keyboard.press("Escape")  # command mode
        self.page.keyboard.press("Control+s")
        try:
            self.page.wait_for_function(
                "() => !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')", timeout=30_000)
        except Exception:
            pytest.fail(f"{self.notebook}: Ctrl+S did not save within 30 s")
        self.expect_no_dialog(f"saving {self.notebook}")
        assert path.stat().st_mtime_ns != before, f"{self.notebook}: Ctrl+S left the file unchanged"
        return json.loads(path.read_text())

    # -- pictures ------------------------------------------------------------------------------
    def screenshot(self, name: str, element=None) -> Path:
        """A PNG of the page (or of ``element``) in 256 colours: what `make screenshots` commits stays small."""
        from PIL import Image  # matplotlib's dependency

        path = self.screens / f"{name}.png"
        (element or self.page).screenshot(path=str(path), animations="disabled")
        with Image.open(path) as shot:
            small = shot.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
        small.save(path, optimize=True)
        return path

    def image_digest(self, image) -> tuple[str, str]:
        """(src, SHA-256 of the bytes it shows) of an <img>: ipywidgets' Image points src at a blob URL."""
        return image.evaluate("""async (img) => {
            const bytes = await (await fetch(img.src)).arrayBuffer();
            const digest = await crypto.subtle.digest('SHA-256', bytes);
            return [img.src, Array.from(new Uint8Array(digest), b => b.toString(16).padStart(2, '0')).join('')];
        }""")

    # -- clean-up ------------------------------------------------------------------------------
    def shut_down_kernels(self) -> None:
        """Delete every session the page opened (their kernels stop), and wait until no kernel is left."""
        for session in self.server.sessions():
            try:
                self.server.api("DELETE", f"/api/sessions/{session['id']}", timeout=30)
            except urllib.error.HTTPError as error:
                if error.code != 404:
                    raise
        deadline = time.monotonic() + SHUTDOWN_S
        while self.server.api("GET", "/api/kernels"):
            assert time.monotonic() < deadline, f"kernels still running {SHUTDOWN_S} s after their sessions ended"
            time.sleep(0.25)  # poll interval of the bounded wait above
