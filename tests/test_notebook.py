"""Runs notebooks/inference.ipynb end to end, on a small photo with a random-weight model.

The notebook gets the SavedModel that tests/shared.py exports (once per process), so its
export cell is skipped here; export_saved_model itself is tested in tests/test_export.py.
"""

import os

import nbformat
from nbclient import NotebookClient

from shared import random_saved_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, "notebooks", "inference.ipynb")


def test_inference_notebook_runs_and_shows_images(monkeypatch):
    # The kernel inherits this process's environment.
    monkeypatch.setenv("HIFILL_SAVED_MODEL", random_saved_model())
    monkeypatch.setenv("HIFILL_IMAGE", os.path.join(REPO, "tests", "data", "volna-640x360.jpg"))
    monkeypatch.setenv("HIFILL_MAX_SIDE", "320")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells), "commit it without outputs"
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}}).execute()

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the overview figure and the crops
    text = "".join(o.get("text", "") for o in outputs)
    assert "volna-640x360.jpg: 320x180, hole" in text and "inpainted in" in text
