"""`TokenExplorer`: an ipywidgets explorer of per-token values over a rollout dump or profiled texts.

Dropdowns choose the step / prompt / sample (or the text), the value to colour by and the percentile that
defines forking tokens; the colour scale is shared by every sequence of the current step (or of all texts).
Branching: choose a position with the `position` box and press "Branch" (a click on an HTML span cannot call
Python in JupyterLab without a custom extension); the model resamples the continuation from that position
and the branches are shown side by side with the original. The callbacks are plain methods (`on_select`,
`branch`), so they run without a front end.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from entropylab.tokens.errors import TokensError
from entropylab.tokens.io import TokenSeq, frame_kind, read_rollouts, sequences
from entropylab.tokens.render import ColorScale, show_tokens
from entropylab.tokens.stats import entropy_cutoff

__all__ = ["VALUE_COLUMNS", "TokenExplorer"]

#: Columns the explorer can colour by, in menu order (only those present with finite values are offered).
VALUE_COLUMNS = ("entropy", "logprob", "advantage", "covariance", "varentropy", "prob", "old_logprob", "reward")

BRANCH_CSS = (
    "<style>.elab-branches{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:8px}"
    ".elab-branches>div{border:1px solid #ddd;padding:4px}.elab-branches h4{margin:0 0 4px 0;font-size:12px}</style>"
)


class TokenExplorer:
    """Explore per-token values of a rollout dump (DataFrame, run directory or dump file) or of texts.

    `source`: a dump / profile DataFrame, a path to a run directory or `step_*.parquet`, or a list of texts
    (profiled with `model` and `tokenizer`). `prompts` maps a dump's prompt_id to its prompt text (per step:
    a mapping keyed by (step, prompt_id) also works) so that branches continue the full prompt + response
    prefix; without it branches continue the response prefix alone.
    """

    def __init__(
        self,
        source,
        model=None,
        tokenizer=None,
        *,
        prompts: Mapping | Callable | None = None,
        value: str = "entropy",
        percentile: float = 80.0,
        max_new_tokens: int = 48,
        temperature: float = 1.0,
        seed: int = 0,
        profile_kwargs: dict | None = None,
    ):
        import ipywidgets as w

        self.model, self.tokenizer, self.prompts = model, tokenizer, prompts
        self.max_new_tokens, self.temperature, self.seed = max_new_tokens, temperature, seed
        self.df = self._load(source, profile_kwargs or {})
        self.kind = frame_kind(self.df)
        if self.kind == "tokens":
            self.df = self.df.assign(text_id=0)
            self.kind = "profile"
        self.values = [
            c for c in VALUE_COLUMNS if c in self.df.columns and np.isfinite(self.df[c].to_numpy(float)).any()
        ]
        if not self.values:
            raise TokensError(f"TokenExplorer: none of {VALUE_COLUMNS} in the frame; it has {list(self.df.columns)}")
        self._updating = False
        self.last_branches: pd.DataFrame | None = None
        style = {"description_width": "initial"}
        self.value_w = w.Dropdown(
            options=self.values,
            value=value if value in self.values else self.values[0],
            description="colour by",
            style=style,
        )
        self.percentile_w = w.FloatSlider(
            value=percentile,
            min=50.0,
            max=99.5,
            step=0.5,
            description="forking ≥ pct",
            style=style,
            continuous_update=False,
        )
        if self.kind == "dump":
            steps = sorted(self.df["step"].unique().tolist()) if "step" in self.df.columns else [0]
            self.step_w = w.Dropdown(options=steps, value=steps[0], description="step", style=style)
            self.prompt_w = w.Dropdown(options=[], description="prompt", style=style)
            self.sample_w = w.Dropdown(options=[], description="sample", style=style)
            selectors = [self.step_w, self.prompt_w, self.sample_w]
        else:
            texts = sorted(self.df["text_id"].unique().tolist())
            self.text_w = w.Dropdown(options=texts, value=texts[0], description="text", style=style)
            selectors = [self.text_w]
        self.position_w = w.BoundedIntText(value=1, min=0, max=1, description="position", style=style)
        self.n_w = w.BoundedIntText(value=3, min=1, max=16, description="branches", style=style)
        self.branch_w = w.Button(description="Branch", tooltip="resample the continuation from this position")
        self.view = w.HTML()
        self.info = w.HTML()
        self.branch_view = w.HTML()
        for widget in [*selectors, self.value_w, self.percentile_w]:
            widget.observe(self.on_select, names="value")
        self.branch_w.on_click(lambda _: self._branch_clicked())
        self.widget = w.VBox(
            [
                w.HBox(selectors),
                w.HBox([self.value_w, self.percentile_w]),
                self.info,
                self.view,
                w.HBox([self.position_w, self.n_w, self.branch_w]),
                self.branch_view,
            ]
        )
        self.on_select()

    # -------------------------------------------------------------------------------------------- data

    def _load(self, source, profile_kwargs: dict) -> pd.DataFrame:
        if isinstance(source, pd.DataFrame):
            return source.reset_index(drop=True)
        if isinstance(source, str | Path) and Path(source).exists():
            return read_rollouts(source)
        if isinstance(source, str):
            source = [source]
        if isinstance(source, Sequence) and source and all(isinstance(s, str) for s in source):
            if self.model is None or self.tokenizer is None:
                raise TokensError("TokenExplorer: pass model and tokenizer to explore texts")
            from entropylab.tokens.profile import entropy_profile

            return entropy_profile(self.model, self.tokenizer, list(source), **profile_kwargs)
        raise TokensError(f"TokenExplorer: cannot explore a {type(source).__name__}; pass a DataFrame, path or texts")

    def _scope(self) -> pd.DataFrame:
        """The rows sharing one colour scale and one forking cutoff: the current step, or all texts."""
        if self.kind == "dump" and "step" in self.df.columns:
            return self.df[self.df["step"] == self.step_w.value]
        return self.df

    def key(self) -> dict:
        """The selected sequence's key columns and values."""
        if self.kind == "dump":
            key = {"prompt_id": self.prompt_w.value, "sample_id": self.sample_w.value}
            return {"step": self.step_w.value, **key} if "step" in self.df.columns else key
        return {"text_id": self.text_w.value}

    def rows(self) -> pd.DataFrame:
        """The selected sequence's rows, by position."""
        mask = np.ones(len(self.df), dtype=bool)
        for col, val in self.key().items():
            mask &= (self.df[col] == val).to_numpy()
        rows = self.df[mask]
        return rows.sort_values("position", kind="stable") if "position" in rows.columns else rows

    def current(self) -> TokenSeq:
        """The selected sequence, ready to render with the chosen value."""
        seqs = sequences(self.rows(), self.value_w.value)
        if not seqs:
            raise TokensError(f"TokenExplorer: no tokens for {self.key()}")
        return seqs[0]

    @property
    def scale(self) -> ColorScale:
        """The colour scale of the chosen value over the current scope."""
        return ColorScale.from_values(self._scope()[self.value_w.value].to_numpy(float), value_name=self.value_w.value)

    @property
    def cutoff(self) -> float | None:
        """The forking cutoff: the chosen entropy percentile over the current scope."""
        if "entropy" not in self.df.columns:
            return None
        return entropy_cutoff(self._scope()["entropy"], 1.0 - self.percentile_w.value / 100.0)

    # -------------------------------------------------------------------------------------------- callbacks

    def _refresh_options(self) -> None:
        if self.kind != "dump":
            return
        scope = self._scope()
        prompts = sorted(scope["prompt_id"].unique().tolist())
        if list(self.prompt_w.options) != prompts:
            self.prompt_w.options = prompts
        if self.prompt_w.value not in prompts:
            self.prompt_w.value = prompts[0]
        samples = sorted(scope.loc[scope["prompt_id"] == self.prompt_w.value, "sample_id"].unique().tolist())
        if list(self.sample_w.options) != samples:
            self.sample_w.options = samples
        if self.sample_w.value not in samples:
            self.sample_w.value = samples[0]

    def select(self, **key) -> TokenExplorer:
        """Set selectors by name (step, prompt/prompt_id, sample/sample_id, text/text_id, value, percentile)."""
        names = {
            "step": "step_w",
            "prompt": "prompt_w",
            "prompt_id": "prompt_w",
            "sample": "sample_w",
            "sample_id": "sample_w",
            "text": "text_w",
            "text_id": "text_w",
            "value": "value_w",
            "percentile": "percentile_w",
        }
        self._updating = True
        try:
            for name, val in key.items():
                if name not in names or not hasattr(self, names[name]):
                    raise TokensError(f"TokenExplorer.select: unknown selector {name!r}")
                getattr(self, names[name]).value = val
                self._refresh_options()
        finally:
            self._updating = False
        self.on_select()
        return self

    def on_select(self, change=None) -> None:
        """Re-render the selected sequence (called when any selector changes)."""
        if self._updating:
            return
        self._updating = True
        try:
            self._refresh_options()
        finally:
            self._updating = False
        seq = self.current()
        cutoff = self.cutoff
        self.view.value = show_tokens(
            seq.tokens,
            seq.values,
            value_name=self.value_w.value,
            probs=seq.probs,
            alternatives=seq.alternatives,
            entropy=seq.entropy,
            scale=self.scale,
            forking_cutoff=cutoff,
        ).html
        self.position_w.max = max(0, len(seq.tokens) - 1)
        self.info.value = self._info(seq, cutoff)

    def _info(self, seq: TokenSeq, cutoff: float | None) -> str:
        rows = self.rows()
        parts = [f"{len(seq.tokens)} tokens"]
        if seq.entropy is not None and np.isfinite(seq.entropy).any():
            parts.append(f"mean entropy {np.nanmean(seq.entropy):.3f}")
            if cutoff is not None:
                parts.append(f"{int(np.nansum(seq.entropy >= cutoff))} forking (entropy ≥ {cutoff:.3g})")
        for col in ("reward", "advantage"):
            if col in rows.columns and len(rows):
                parts.append(f"{col} {float(rows[col].iloc[0]):.3g}")
        return "<small>" + html.escape(" · ".join(parts)) + "</small>"

    # -------------------------------------------------------------------------------------------- branching

    def _prompt_ids(self) -> list[int]:
        from entropylab.generation import encode_prompts

        if self.kind != "dump":
            return []
        key = self.key()
        text = None
        if callable(self.prompts):
            text = self.prompts(key)
        elif isinstance(self.prompts, Mapping):
            text = self.prompts.get((key.get("step"), key["prompt_id"]), self.prompts.get(key["prompt_id"]))
        elif isinstance(self.prompts, Sequence):
            text = self.prompts[key["prompt_id"]]
        if text is None:
            bos = getattr(self.tokenizer, "bos_token_id", None)
            return [bos] if bos is not None else []
        return encode_prompts(self.tokenizer, [text])[0]

    def prefix_ids(self, position: int) -> list[int]:
        """Token ids the branches continue: the prompt (for dumps) and the sequence's tokens before `position`."""
        seq = self.current()
        if seq.token_ids is None:
            raise TokensError("TokenExplorer: the frame has no token_id column; cannot branch")
        if not 0 <= position < len(seq.tokens):
            raise TokensError(f"position must be in [0, {len(seq.tokens) - 1}], got {position}")
        prefix = self._prompt_ids() + [int(t) for t in seq.token_ids[:position]]
        if not prefix:
            raise TokensError("TokenExplorer: nothing precedes position 0 of a text; branch from position >= 1")
        return prefix

    def branch(
        self, position: int, n: int = 3, *, max_new_tokens: int | None = None, seed: int | None = None
    ) -> pd.DataFrame:
        """Resample the continuation from `position` `n` times; show them beside the original.

        Returns one row per continuation (branch -1 is the original): branch, text, tokens, entropy.
        """
        if self.model is None or self.tokenizer is None:
            raise TokensError("TokenExplorer: branching needs a model and a tokenizer")
        from entropylab.generation import sample

        seq = self.current()
        prefix = self.prefix_ids(position)
        remaining = len(seq.tokens) - position
        budget = int(max_new_tokens or max(remaining + 8, self.max_new_tokens))
        out = sample(
            self.model,
            self.tokenizer,
            [prefix],
            n=n,
            max_new_tokens=budget,
            temperature=self.temperature,
            seed=self.seed if seed is None else seed,
        )
        rows = [
            dict(
                branch=-1,
                text="".join(seq.tokens[position:]),
                tokens=list(seq.tokens[position:]),
                entropy=list(seq.entropy[position:]) if seq.entropy is not None else [np.nan] * remaining,
            )
        ]
        mask = out.response_mask.cpu()
        for b in range(len(out)):
            ids = out.response_ids[b].cpu()[mask[b]].tolist()
            rows.append(
                dict(
                    branch=b,
                    text=out.texts[b],
                    tokens=[self.tokenizer.decode([i], skip_special_tokens=False) for i in ids],
                    entropy=out.entropy[b].cpu()[mask[b]].tolist(),
                )
            )
        table = pd.DataFrame(rows)
        self.last_branches = table
        self.branch_view.value = self._branch_html(table, seq, position)
        return table

    def _branch_html(self, table: pd.DataFrame, seq: TokenSeq, position: int) -> str:
        scale = (
            ColorScale.from_values(self._scope()["entropy"].to_numpy(float))
            if "entropy" in self.df.columns
            else ColorScale.from_values([e for es in table["entropy"] for e in es])
        )
        cutoff = self.cutoff
        alts = ""
        if seq.alternatives is not None:
            items = ", ".join(f"{t!r} {p:.3g}" for t, p in seq.alternatives[position])
            alts = f" · model's alternatives there: {html.escape(items)}"
        head = (
            f"<div><small>branching at position {position} (token {seq.tokens[position]!r}, entropy "
            f"{_fmt(seq.entropy[position] if seq.entropy is not None else np.nan)}){alts}</small></div>"
        )
        cells = []
        for _, row in table.iterrows():
            title = "original" if row["branch"] < 0 else f"branch {row['branch']}"
            body = (
                show_tokens(row["tokens"], row["entropy"], scale=scale, forking_cutoff=cutoff, legend=False).html
                if row["tokens"]
                else "<i>(empty)</i>"
            )
            cells.append(f"<div><h4>{title}</h4>{body}</div>")
        return BRANCH_CSS + head + f"<div class='elab-branches'>{''.join(cells)}</div>"

    def _branch_clicked(self) -> None:
        try:
            self.branch(int(self.position_w.value), int(self.n_w.value))
        except Exception as exc:  # shown in the widget instead of a traceback in the log
            self.branch_view.value = f"<b>cannot branch:</b> {html.escape(str(exc))}"

    # -------------------------------------------------------------------------------------------- display

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def display(self):
        """Show the explorer (in a notebook)."""
        from IPython.display import display

        display(self.widget)
        return self


def _fmt(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{float(v):.3g}"
