"""`make_figures` at the quick scale writes every named figure, each a non-blank image; `--only` draws only the
named figures and computes only what they need."""

from __future__ import annotations

import matplotlib.image as mpimg
import pytest

from entropylab.figures import FIGURES


@pytest.mark.slow
def test_make_figures_quick(tmp_path, shared_runs_dir):
    from entropylab.figures import make_figures

    written = make_figures(tmp_path / "figures", scale="quick", runs_dir=shared_runs_dir, progress=False)
    assert {p.name for p in written} >= {f"{name}.{ext}" for name in FIGURES for ext in ("png", "svg")}
    for name in FIGURES:
        png = tmp_path / "figures" / f"{name}.png"
        image = mpimg.imread(png)
        assert image.var() > 1e-4, f"{name}.png is blank"
        assert 700 <= image.shape[1] <= 2000, f"{name}.png is {image.shape[1]} px wide"
    assert (tmp_path / "figures" / "table1.csv").read_text().startswith("tokens,")


def test_only_draws_the_named_figures_and_computes_only_their_jobs(tmp_path, capsys):
    from entropylab.cli import main

    out, runs = tmp_path / "figures", tmp_path / "runs"
    assert (
        main(
            [
                "figures",
                "--scale",
                "quick",
                "--out",
                str(out),
                "--runs-dir",
                str(runs),
                "--quiet",
                "--only",
                "toy_example,mh_exactness",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "mh_exactness.png",
        "mh_exactness.svg",
        "toy_example.png",
        "toy_example.svg",
    ]
    assert [p.name for p in runs.iterdir()] == ["exactness"]  # no training run, comparison or profile
    assert main(["figures", "--out", str(out), "--runs-dir", str(runs), "--only", "toy_example,nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("entropylab figures: error: unknown figure 'nope'; known: ") and "\n" not in err


def test_every_gallery_image_is_a_made_figure():
    """The README shows only files `make figures` writes, and each is in figures/ (PNG and SVG)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    shown = set(re.findall(r"figures/([a-z0-9_]+)\.png", (root / "README.md").read_text()))
    assert shown and shown <= set(FIGURES), sorted(shown - set(FIGURES))
    for name in shown:
        assert (root / "figures" / f"{name}.png").is_file() and (root / "figures" / f"{name}.svg").is_file(), name


def test_saved_figures_are_byte_identical_when_remade(tmp_path):
    """No dates or random ids in the files: regenerating a figure from the same data leaves git clean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from entropylab.plots.style import apply_style, save_figure

    blobs = []
    for i in range(2):
        apply_style()
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3], [0.1, 0.3, 0.2], label="run")
        ax.legend()
        blobs.append([p.read_bytes() for p in save_figure(fig, tmp_path / f"f{i}")])
    assert blobs[0] == blobs[1]
    assert b"<dc:date>" not in blobs[0][1]


def test_a_figure_drawn_from_the_first_seed_trains_only_the_first_seed(tmp_path):
    """`law_fit_runs` reads each preset's first seed: it asks for one run a preset and the sizes, not every seed;
    the interventions figure, drawn with seed bands, asks for every seed."""
    from entropylab import experiments as ex
    from entropylab.figures import NEEDS, gallery_jobs

    seeds = ex.SEEDS["full"]
    assert len(seeds) > 1

    def runs(figure: str) -> set[str]:
        """The preset runs the figure's jobs train ("grpo" is the first GRPO seed's job), and the sizes."""
        names = gallery_jobs(
            ex.Cache(tmp_path),
            set(NEEDS[figure]),
            scale="full",
            task="ladder",
            sampling_task="fork",
            size_task="arith",
            progress=False,
        )
        return {f"run:grpo:{seeds[0]}" if n == "grpo" else n for n in names}

    sizes = {f"size:{s}" for s in ex.SIZE_SCALES["full"]["sizes"]}
    assert runs("law_fit_runs") == {f"run:{p}:{seeds[0]}" for p in ex.FIGURE_PRESETS} | sizes
    assert runs("interventions") == {f"run:{p}:{s}" for p in ex.FIGURE_PRESETS for s in seeds}
    assert runs("law_forecast") == {f"run:grpo:{seeds[0]}"}
