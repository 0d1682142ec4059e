"""Every notebook in notebooks/ runs top to bottom against the demo township, and is stored clean.

The notebooks read the database as ``landeco serve`` does (:class:`layers.settings.Settings`):
here the kernel gets ``LANDECO_DATABASE_URL`` of a throwaway demo database with its rasters.
The kernel is this interpreter (a kernelspec written for ``sys.executable``), so the test runs
the project's venv on a fresh machine whatever kernels Jupyter has registered there.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from sqlalchemy.engine import URL

from layers.demo import load_demo
from layers.settings import Settings
from layers.store.database import engine_for

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "landeco-tests"
#: What each notebook must show once run: charts (PNG) and maps (a framed page), at least.
EXPECTED = {
    "annual_ecology_review.ipynb": {"image/png": 4, "map": 1},
    "surveyor_precheck.ipynb": {"image/png": 0, "map": 1},
    "raster_monitoring.ipynb": {"image/png": 3, "map": 0},
}
#: Text each notebook's outputs must hold: the figures it exists for, on the demo township.
TEXTS = {
    "annual_ecology_review.ipynb": ["成活率", "搬迁", "万元", "一年内到期"],
    # the sample file's four mistakes, its encoding and CRS decisions, and the unmatched column
    "surveyor_precheck.ipynb": ["value_not_allowed", "value_out_of_range", "geometry_invalid",
                                "code_duplicate", "GB18030", "EPSG:4545", "负责人", "否：请先改正错误"],
    # the zonal statistics computed (the test's database has none stored) for both layers
    "raster_monitoring.ipynb": ["柠条地块 323 块已计算", "已计算（含 500 米环带）", "柠条地块平均植被覆盖度"],
}


def test_the_notebooks_are_there():
    """A notebook gone is noticed; a new one says what it must show (EXPECTED, TEXTS)."""
    assert {p.name for p in NOTEBOOKS} == set(EXPECTED) == set(TEXTS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs(path):
    """Outputs would carry one person's data (and its size) into git; cleared before commit."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a cell has outputs (clear them before committing)"
            assert cell.execution_count is None, f"{path.name}: a cell has an execution count"
    # Jupyter in the project's venv offers that venv's Python as "python3"
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_sql_of_their_own(path):
    """Figures come from landeco's functions, so a notebook and the web agree (no copied SQL)."""
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for word in ("sa.text(", "exec_driver_sql", "SELECT ", "select ", "FROM "):
        assert word not in code, f"{path.name} writes SQL ({word.strip()}): use layers.* instead"


@pytest.fixture(scope="module")
def notebook_db(new_database, tmp_path_factory) -> Iterator[URL]:
    """The demo township with its rasters, in a database of the notebooks' own.

    Not the shared ``demo_url``: the raster notebook stores zonal statistics, as staff running
    it would (and the web then shows them), so the notebooks get a demo they may write to.
    """
    from layers.demo_rasters import load_demo_rasters

    with new_database("landeco_test_notebooks") as url:
        load_demo(url)
        load_demo_rasters(engine_for(url.render_as_string(hide_password=False)),
                          Settings(home=tmp_path_factory.mktemp("notebook-rasters")))
        yield url


@pytest.fixture(scope="module")
def kernels(tmp_path_factory) -> KernelSpecManager:
    """Kernel specs holding one kernel: this interpreter, with ipykernel."""
    from ipykernel.kernelspec import write_kernel_spec

    folder = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(folder / KERNEL, overrides={"display_name": "landeco tests"})
    return KernelSpecManager(kernel_dirs=[str(folder)])


def _outputs(nb) -> tuple[dict[str, int], str]:
    counts = {"image/png": 0, "map": 0}
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            counts["image/png"] += "image/png" in data
            html = data.get("text/html", "")
            if "<iframe srcdoc=" in html:
                # offline: Leaflet's own code inside the page, no link to a server's /static
                assert "/static/vendor" not in html and "leafletjs.com" in html
                counts["map"] += 1
            if out.get("output_type") == "stream":
                # matplotlib warns per glyph when no CJK font is set: the labels would be boxes
                assert "missing from font" not in out["text"], out["text"][:300]
                texts.append(out["text"])
            texts.append(data.get("text/plain", ""))
            if "<iframe srcdoc=" not in html:
                texts.append(html)
    return counts, "\n".join(texts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_runs_on_the_demo(path, notebook_db, kernels, tmp_path):
    nb = nbformat.read(path, as_version=4)
    km = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=kernels)
    client = NotebookClient(nb, km=km, timeout=180, allow_errors=False,
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    env = {**os.environ, "LANDECO_DATABASE_URL": notebook_db.render_as_string(hide_password=False),
           "LANDECO_HOME": str(tmp_path / "home"), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    start = time.perf_counter()
    client.execute(env=env)  # raises CellExecutionError, with the cell and traceback, on any error
    elapsed = time.perf_counter() - start
    print(f"{path.name}: {elapsed:.1f} s")
    counts, text = _outputs(nb)
    for kind, least in EXPECTED[path.name].items():
        assert counts[kind] >= least, f"{path.name} showed {counts[kind]} {kind}, expected {least} at least"
    for word in TEXTS.get(path.name, []):
        assert word in text, f"{path.name} did not show {word!r}"
