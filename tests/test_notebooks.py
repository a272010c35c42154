"""The paper notebooks: committed without outputs, parameterised (papermill), and running end to end.

Each runs at the quick scale in a runs directory shared with the figure test, so runs trained once are
reused. The token explorer notebook has its own test (test_tokens_notebook.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted(
    p
    for p in (Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")
    if p.name != "token_entropy_explorer.ipynb"
)
#: Small values for the parameters a notebook declares (only the ones it declares are passed).
SMALL = dict(SCALE="quick", N_PROFILES=8, BOOTSTRAP=20, WORKERS=2)


def _parameters(nb) -> set[str]:
    code = next(c for c in nb.cells if c.cell_type == "code")
    return {
        t.id
        for node in ast.parse(code.source).body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }


def test_every_notebook_is_named_in_the_readme():
    """A notebook nobody is told about is dead weight; one the README names must exist."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    named = set(re.findall(r"([a-z_]+)\.ipynb", readme))
    present = {p.stem for p in (Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")}
    assert named == present, (sorted(named - present), sorted(present - named))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), "the first code cell must be tagged 'parameters'"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip outputs before commit"
    assert nb.cells[0].cell_type == "markdown", "start with a title and what the notebook shows"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tmp_path, shared_runs_dir):
    papermill = pytest.importorskip("papermill")
    declared = _parameters(nbformat.read(path, as_version=4))
    params = {k: v for k, v in {**SMALL, "RUNS_DIR": str(shared_runs_dir)}.items() if k in declared}
    out = tmp_path / path.name
    papermill.execute_notebook(
        str(path), str(out), kernel_name="python3", cwd=str(path.parent), progress_bar=False, parameters=params
    )
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3, "the notebook should draw its figures"
