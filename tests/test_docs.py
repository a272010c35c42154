"""The documents the README relies on are in the repository, and docs/howto.md's examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOWTO = ROOT / "docs" / "howto.md"


def python_blocks(path: Path) -> dict[str, str]:
    """{section title: the python code block under it} of a Markdown file."""
    blocks, title = {}, None
    for part in re.split(r"(^## .*$)", path.read_text(), flags=re.M):
        if part.startswith("## "):
            title = part[3:].strip()
        elif title:
            code = re.findall(r"```python\n(.*?)```", part, flags=re.S)
            if code:
                blocks[title] = code[0]
    return blocks


@pytest.mark.parametrize(
    "title, registry, name", [("Add a policy loss", "losses", "reinforce_is"), ("Add a sampler", "samplers", "nucleus")]
)
def test_howto_example_runs(title, registry, name):
    from entropylab.rl.losses import POLICY_LOSSES
    from entropylab.sampling.registry import SAMPLERS

    reg = {"losses": POLICY_LOSSES, "samplers": SAMPLERS}[registry]
    code = python_blocks(HOWTO)[title]
    try:
        exec(compile(code, f"{HOWTO}:{title}", "exec"), {"__name__": "howto"})
        assert name in reg.names()
    finally:
        if name in reg.names():  # leave the registry as found
            reg.unregister(name)


def test_readme_links_resolve_inside_the_repository():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", readme)
    assert "docs/architecture.md" in targets and "docs/science.md" in targets and "docs/howto.md" in targets
    for t in targets:
        assert (ROOT / t).is_file(), t
    assert not re.search(r"\b(REFERENCE|ARCHITECTURE)\.md\b", readme)  # documents of the project's own only
