"""notebooks/token_entropy_explorer.ipynb: committed without outputs, parameterised, runs end to end."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "token_entropy_explorer.ipynb"


def test_notebook_is_clean_and_parameterised():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert "model_name" in code[0].source and "n_texts" in code[0].source
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip outputs before commit"


@pytest.mark.slow
def test_notebook_executes(tmp_path):
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(out),
        kernel_name="python3",
        cwd=str(NOTEBOOK.parents[1]),
        progress_bar=False,
        parameters=dict(
            n_texts=3,
            max_new_tokens=24,
            grid_temperatures=[0.7, 1.0],
            grid_problems=4,
            export_path=str(tmp_path / "tokens.html"),
        ),
    )
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    kinds = {k for o in outputs for k in o.get("data", {})}
    assert {"text/html", "image/png", "application/vnd.jupyter.widget-view+json"} <= kinds
    assert (tmp_path / "tokens.html").read_text().count('class="tok') > 10
