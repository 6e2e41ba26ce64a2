"""The course as a student sees it: JupyterLab in Chromium (fixtures in conftest.py).

- every notebook opens: all its cells are in the page, markdown rendered, no dialog, its kernel goes idle;
- 00_start_here, one variant notebook and 09_comparison_study run with Run > Run All Cells and end
  without an error output, every code cell executed (read back from the notebook saved with Ctrl+S);
- in the two with the explorer, each control it shows is changed in the page (each variant in turn, to
  reach the knobs only some variants have) and the picture must change.

Screenshots go to $DYNLAB_SCREENS (a temporary folder unless set; `make screenshots` sets assets/screens).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

# The variant notebook run in the page: global soft attention (squeeze-and-excitation) trains fastest.
VARIANT_NOTEBOOK = "02_global_soft_attention"
RUN_IN_PAGE = ["00_start_here", VARIANT_NOTEBOOK, "09_comparison_study"]
RUN_ALL_S = 900          # one notebook, quick profile, 2 shared cores (1-3 min when they are free)
EXPLORER_RENDER_S = 180  # one redraw of the explorer (a variant or task switch loads a model)

# Notebooks ending with an explorer, and the controls that legitimately offer a single value there
# (a variant notebook explores its own variant only).
EXPLORERS = {VARIANT_NOTEBOOK: {"variant": ["global"]}, "09_comparison_study": {}}
# The explorer's screenshots (assets/screens/ through `make screenshots`): the comparison notebook's, one
# per control, the first time it changes; the variant notebooks hold the same explorer.
EXPLORER_SCREENSHOTS = "09_comparison_study"
CONTROLS = ["variant", "task", "layer", "sample"]


def _served(lab, name: str) -> str:
    """The notebook's file name; skips when the course does not have it yet (and only then)."""
    if not (NOTEBOOKS / f"{name}.ipynb").is_file():
        pytest.skip(f"notebooks/{name}.ipynb does not exist yet")
    if not (lab.server.root / f"{name}.ipynb").is_file():
        pytest.skip(f"notebooks/{name}.ipynb appeared after the test server copied the course; run again")
    return f"{name}.ipynb"


def course_notebooks() -> list[str]:
    """The course's notebooks, in order, from the table in notebooks/README.md, then any other notebook
    in the folder (so that one missing from the table is opened too)."""
    listed = re.findall(r"^\|\s*`(\d\d_[\w-]+)`\s*\|", (NOTEBOOKS / "README.md").read_text(), flags=re.M)
    present = sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))
    return listed + [name for name in present if name not in listed]


@pytest.mark.parametrize("name", course_notebooks())
def test_notebook_opens_and_its_kernel_starts(lab, name):
    notebook = _served(lab, name)
    cells = json.loads((lab.server.root / notebook).read_text())["cells"]
    lab.open(notebook)
    page = lab.page
    shown = page.locator(".jp-Notebook .jp-Cell")
    assert shown.count() == len(cells), f"{notebook}: {shown.count()} cells in the page, {len(cells)} in the file"
    markdown = sum(cell["cell_type"] == "markdown" for cell in cells)
    rendered = page.locator(".jp-Notebook .jp-MarkdownCell .jp-RenderedMarkdown")
    assert rendered.count() == markdown, f"{notebook}: {rendered.count()} of {markdown} markdown cells rendered"
    kernel = page.locator(".jp-NotebookPanel .jp-KernelName").first.inner_text()
    assert "Python" in kernel, f"{notebook}: the toolbar names the kernel {kernel!r}"
    lab.expect_no_errors("after opening")


@pytest.mark.timeout(RUN_ALL_S + 8 * EXPLORER_RENDER_S)
@pytest.mark.parametrize("name", RUN_IN_PAGE)
def test_run_all_cells(lab, name):
    notebook = _served(lab, name)
    lab.open(notebook)
    seconds = lab.run_all(RUN_ALL_S)
    print(f"{notebook}: Run All Cells took {seconds:.0f} s")
    explorers = _explorers(lab)
    # the screenshot shows the explorer, or else the first picture the notebook drew
    shown = explorers.last if explorers.count() else lab.page.locator(".jp-OutputArea-output.jp-RenderedImage").first
    if shown.count():
        shown.evaluate("element => element.scrollIntoView({block: 'center'})")
    lab.expect_no_errors("after Run All Cells")
    saved = lab.save()
    failures = []
    for index, cell in enumerate(saved["cells"]):
        if cell["cell_type"] != "code":
            continue
        for output in cell.get("outputs", []):
            if output["output_type"] == "error":
                failures.append(f"cell {index}: {output['ename']}: {output['evalue']}")
        if cell.get("execution_count") is None and "".join(cell["source"]).strip():
            failures.append(f"cell {index} did not run")
    assert not failures, f"{notebook} after Run All Cells:\n" + "\n".join(failures)
    lab.screenshot(f"{name}-lab")  # only once it passed: these may become the committed screenshots
    if name in EXPLORERS:
        assert explorers.count(), f"{notebook}: no explorer (a box with dropdowns and an image) in the page"
        exercise_explorer(lab, explorers.last, name, fixed=EXPLORERS[name])


def _explorers(lab):
    page = lab.page
    return page.locator(".widget-vbox").filter(has=page.locator(".widget-image")).filter(
        has=page.locator(".widget-dropdown"))


CONTROL_TYPES = {"widget-dropdown": "dropdown", "widget-slider": "slider", "widget-checkbox": "checkbox",
                 "widget-toggle-buttons": "toggle"}
# The explorer's controls as they are in the page: each one's label (a checkbox's is beside its box), type,
# and whether it is enabled. Hidden ones (a knob of another variant) are left out.
CONTROLS_IN_PAGE = """root => [...root.querySelectorAll(%s)]
    .filter(el => el.offsetParent !== null)
    .map(el => {
        const type = Object.entries(%s).find(([cls]) => el.classList.contains(cls))[1];
        const label = type === 'checkbox' ? el.querySelector('.widget-label-basic span')
                                          : el.querySelector('label.widget-label');
        const disabled = !!el.querySelector('select:disabled, input:disabled, .noUi-target[disabled]')
                         || [...el.querySelectorAll('button')].some(b => b.disabled);
        return [label ? label.textContent.trim() : '', type, disabled];
    })""" % (json.dumps(", ".join("." + c for c in CONTROL_TYPES)), json.dumps(CONTROL_TYPES))


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")


class ExplorerInPage:
    """One explorer in the page: changes each control as a student does and checks the picture after each."""

    def __init__(self, lab, explorer, name: str) -> None:
        self.lab, self.explorer, self.name = lab, explorer, name
        self.page = lab.page
        self.image = explorer.locator("img.widget-image")
        self.image.wait_for(state="visible")
        self.src, digest = lab.image_digest(self.image)
        self.seen = {digest: "the first picture"}
        self.step = 0
        self.done: list[str] = []
        self.shots = name == EXPLORER_SCREENSHOTS
        if self.shots:
            lab.screenshot(f"{name}-explorer-0-start", element=explorer)

    def controls(self) -> list[tuple[str, str, bool]]:
        return [tuple(c) for c in self.explorer.evaluate(CONTROLS_IN_PAGE)]

    def control(self, label: str, type_: str):
        selector = {"dropdown": ".widget-dropdown", "slider": ".widget-slider", "checkbox": ".widget-checkbox",
                    "toggle": ".widget-toggle-buttons"}[type_]
        title = (self.page.locator(".widget-label-basic span", has_text=re.compile(f"^{re.escape(label)}$"))
                 if type_ == "checkbox" else
                 self.page.locator("label.widget-label", has_text=re.compile(f"^{re.escape(label)}$")))
        found = self.explorer.locator(selector).filter(has=title)
        assert found.count() == 1, f"{self.name}: the explorer has {found.count()} controls labelled {label!r}"
        return found

    def change(self, label: str, type_: str, option: str | None = None) -> bool:
        """Change the control (to ``option``, for a dropdown); False if it offers nothing to change to."""
        control = self.control(label, type_)
        if type_ == "dropdown":
            select = control.locator("select")
            options = select.locator("option").evaluate_all("options => options.map(o => o.value)")
            current = select.input_value()
            if len(options) < 2:
                return False
            target = option or options[(options.index(current) + 1) % len(options)]
            select.select_option(target)
            change = f"{label} {current} -> {target}"
        elif type_ == "slider":
            from playwright.sync_api import expect  # without playwright the tests skip, in conftest

            readout = control.locator(".widget-readout")
            before = readout.inner_text()
            handle = control.locator(".noUi-handle")
            at_end = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
            handle.focus()
            self.page.keyboard.press("ArrowLeft" if at_end else "ArrowRight")
            expect(readout).not_to_have_text(before, timeout=10_000)
            change = f"{label} {before} -> {readout.inner_text()}"
        elif type_ == "checkbox":
            box = control.locator("input[type=checkbox]")
            before = box.is_checked()
            box.click()
            change = f"{label} {'on -> off' if before else 'off -> on'}"
        else:
            button = control.locator("button:not(.mod-active)").first
            target = button.inner_text()
            button.click()
            change = f"{label} -> {target}"
        self.expect_new_picture(change, label)
        return True

    def expect_new_picture(self, change: str, label: str) -> None:
        try:
            self.page.wait_for_function(
                """([img, old]) => img.src !== old
                    || [...document.querySelectorAll('.widget-html')].some(e => e.textContent.includes('could not draw'))""",
                arg=[self.image.element_handle(), self.src], timeout=EXPLORER_RENDER_S * 1000, polling=250)
        except Exception:
            pytest.fail(f"{self.name}: the picture stayed the same {EXPLORER_RENDER_S} s after {change}")
        self.lab.wait_for_kernel_idle(EXPLORER_RENDER_S, f"the kernel to finish drawing after {change}")
        self.lab.expect_no_errors(f"after {change}")
        self.src, digest = self.lab.image_digest(self.image)
        assert digest not in self.seen, (
            f"{self.name}: after {change} the picture is the same bytes as {self.seen[digest]}")
        self.seen[digest] = change
        self.step += 1
        if self.shots and label not in self.done:
            self.lab.screenshot(f"{self.name}-explorer-{self.step}-{_slug(label)}", element=self.explorer)
        self.done.append(label)

    def exercise_the_rest(self) -> None:
        """Each control shown now that has not been changed yet (but variant and task), if it is enabled;
        the page is read again after each change, which may show or hide others."""
        tried = {"variant", "task", *self.done}
        while True:
            pending = [(label, type_) for label, type_, disabled in self.controls()
                       if label not in tried and not disabled]
            if not pending:
                return
            label, type_ = pending[0]
            tried.add(label)
            self.change(label, type_)  # a dropdown with one option has nothing to change to: left as it is


def exercise_explorer(lab, explorer, name: str, fixed: dict[str, list[str]]) -> None:
    """Change each control through the page; after each, the picture's bytes must differ from every
    picture shown before, and no error may appear.

    The controls are found by their labels: first variant, task, layer and sample, which every explorer
    has (one may keep its value only if ``fixed`` says which single value it offers); then every other
    control the page shows (dropdowns, sliders, checkboxes, toggle buttons); then each other variant in
    turn, to reach the knobs that only some variants show."""
    page_explorer = ExplorerInPage(lab, explorer, name)
    types = {label: type_ for label, type_, _ in page_explorer.controls()}
    for label in CONTROLS:
        assert label in types, f"{name}: the explorer has no control labelled {label!r}; it has {sorted(types)}"
        if not page_explorer.change(label, types[label]):
            options = page_explorer.control(label, "dropdown").locator("option").evaluate_all(
                "options => options.map(o => o.value)")
            assert label in fixed and options == fixed[label], (
                f"{name}: the explorer's {label} offers {options}: nothing to switch to")
    page_explorer.exercise_the_rest()
    variants = page_explorer.control("variant", "dropdown").locator("option").evaluate_all(
        "options => options.map(o => o.value)")
    current = page_explorer.control("variant", "dropdown").locator("select").input_value()
    for variant in [v for v in variants if v != current]:
        page_explorer.change("variant", "dropdown", variant)
        page_explorer.exercise_the_rest()
    print(f"{name}: the explorer's controls changed in the page: {', '.join(page_explorer.done)}")
