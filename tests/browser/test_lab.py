"""The course as a student sees it: JupyterLab in Chromium (fixtures in conftest.py).

- every notebook opens: all its cells are in the page, markdown rendered, no dialog, its kernel goes idle;
- 00_start_here, one variant notebook and 09_comparison_study run with Run > Run All Cells and end
  without an error output, every code cell executed (read back from the notebook saved with Ctrl+S);
- in the two with the explorer, each control is changed in the page and the picture must change.

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


@pytest.mark.timeout(RUN_ALL_S + 4 * EXPLORER_RENDER_S)
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


def exercise_explorer(lab, explorer, name: str, fixed: dict[str, list[str]]) -> None:
    """Change each control through the page; after each, the picture's bytes must differ from every
    picture shown before, and no error may appear. A control may keep its value only if ``fixed`` says
    which single value it offers."""
    from playwright.sync_api import expect  # imported here: without playwright the tests skip, in conftest

    page = lab.page
    image = explorer.locator("img.widget-image")
    image.wait_for(state="visible")
    src, digest = lab.image_digest(image)
    seen = {digest: "the first picture"}
    lab.screenshot(f"{name}-explorer-0-start", element=explorer)
    for step, label in enumerate(CONTROLS, start=1):
        control = explorer.locator(".widget-dropdown, .widget-slider").filter(
            has=page.locator("label.widget-label", has_text=re.compile(f"^{label}$")))
        assert control.count() == 1, f"{name}: the explorer has {control.count()} controls labelled {label!r}"
        if label == "sample":
            readout = control.locator(".widget-readout")
            before = readout.inner_text()
            control.locator(".noUi-handle").focus()
            page.keyboard.press("ArrowRight")
            expect(readout).not_to_have_text(before, timeout=10_000)
            change = f"sample {before} -> {readout.inner_text()}"
        else:
            select = control.locator("select")
            options = select.locator("option").evaluate_all("options => options.map(o => o.value)")
            current = select.input_value()
            if len(options) < 2:
                assert label in fixed and options == fixed[label], (
                    f"{name}: the explorer's {label} offers {options}: nothing to switch to")
                continue
            target = options[(options.index(current) + 1) % len(options)]
            select.select_option(target)
            change = f"{label} {current} -> {target}"
        try:
            page.wait_for_function(
                """([img, old]) => img.src !== old
                    || [...document.querySelectorAll('.widget-html')].some(e => e.textContent.includes('could not draw'))""",
                arg=[image.element_handle(), src], timeout=EXPLORER_RENDER_S * 1000, polling=250)
        except Exception:
            pytest.fail(f"{name}: the picture stayed the same {EXPLORER_RENDER_S} s after {change}")
        lab.wait_for_kernel_idle(EXPLORER_RENDER_S, f"the kernel to finish drawing after {change}")
        lab.expect_no_errors(f"after {change}")
        src, digest = lab.image_digest(image)
        assert digest not in seen, f"{name}: after {change} the picture is the same bytes as {seen[digest]}"
        seen[digest] = change
        lab.screenshot(f"{name}-explorer-{step}-{label}", element=explorer)
