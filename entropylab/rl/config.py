"""The trainer's configuration: one dataclass, named presets, YAML files and `--set key=value` overrides.

Resolution order: defaults <- preset <- YAML file <- overrides. Every value is validated, and an invalid
value raises ConfigError naming the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from entropylab.errors import ConfigError
from entropylab.precision import CHOICES as PRECISION_CHOICES
from entropylab.rl.losses import LossOptions
from entropylab.rl.presets import PRESETS

LR_SCHEDULES = ("constant", "linear", "cosine")


@dataclass
class TrainConfig:
    """Everything a GRPO run depends on. Defaults suit the shipped tiny model on a 2-core CPU."""

    # what to train, on what
    model: str = "ladder"  # shipped name or local checkpoint directory
    task: str = "ladder"
    difficulty: int | None = None  # None: the task's default
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # torch CPU threads (None: torch's default)
    precision: str = "float32"  # of the policy update: float32 | bfloat16 (autocast) | auto (the faster here)
    # rollouts
    steps: int = 150
    prompts_per_step: int = 16
    group_size: int = 8  # G samples per prompt; GRPO needs >= 2
    max_new_tokens: int = 64
    temperature: float = 1.0
    # advantages
    advantage: str = "grpo"  # grpo | rloo
    norm_std: bool = True  # False: Dr. GRPO (no std normalisation)
    # optimisation
    lr: float = 1e-4
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ppo_epochs: int = 1
    mini_batches: int = 2  # optimizer steps per epoch; > 1 makes later updates off-policy (KL-Cov acts)
    micro_batch_size: int = 64  # sequences per forward/backward (gradient accumulation)
    loss: LossOptions = field(default_factory=LossOptions)
    # evaluation and artifacts
    val_every: int = 10
    val_problems: int = 500  # standard error of val/acc at most 0.022
    val_greedy: bool = True
    dump_every: int = 10  # per-token rollout dump every N steps (0: never)
    checkpoint_every: int = 25  # a checkpoint every N steps and at the last (0: at the last only)
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.loss, dict):
            self.loss = LossOptions(**self.loss)
        positive = (
            "steps",
            "prompts_per_step",
            "max_new_tokens",
            "ppo_epochs",
            "mini_batches",
            "micro_batch_size",
            "val_problems",
            "keep_checkpoints",
        )
        for name in positive:
            _check(
                self, name, isinstance(getattr(self, name), int) and getattr(self, name) >= 1, "must be an integer >= 1"
            )
        _check(
            self,
            "group_size",
            isinstance(self.group_size, int) and self.group_size >= 2,
            "GRPO compares samples within a group: it needs at least 2",
        )
        for name in ("val_every", "dump_every", "checkpoint_every", "warmup_steps"):
            _check(
                self, name, isinstance(getattr(self, name), int) and getattr(self, name) >= 0, "must be an integer >= 0"
            )
        for name in ("lr", "temperature"):
            v = getattr(self, name)
            _check(self, name, isinstance(v, int | float) and math.isfinite(v) and v > 0, "must be a positive number")
        for name in ("weight_decay", "grad_clip"):
            v = getattr(self, name)
            _check(self, name, isinstance(v, int | float) and math.isfinite(v) and v >= 0, "must be a number >= 0")
        _check(self, "lr_schedule", self.lr_schedule in LR_SCHEDULES, f"one of {', '.join(LR_SCHEDULES)}")
        _check(self, "precision", self.precision in PRECISION_CHOICES, f"one of {', '.join(PRECISION_CHOICES)}")
        _check(
            self,
            "mini_batches",
            self.mini_batches <= self.prompts_per_step * self.group_size,
            "cannot exceed the number of sequences per step (prompts_per_step * group_size)",
        )

    def to_dict(self) -> dict:
        """Plain nested dict (what config.yaml holds)."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _check(cfg: Any, name: str, ok: bool, why: str) -> None:
    if not ok:
        raise ConfigError(f"{name} = {getattr(cfg, name)!r}: {why}")


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _set(tree: dict, key: str, value: Any, source: str) -> None:
    """Set a dotted key in a nested config dict, refusing keys the config does not have."""
    parts = key.split(".")
    known = {"": _field_names(TrainConfig), "loss": _field_names(LossOptions)}
    scope = ".".join(parts[:-1])
    names = known.get(scope)
    if names is None or parts[-1] not in names:
        every = known[""] + [f"loss.{n}" for n in known["loss"]]
        hint = difflib.get_close_matches(key, every, n=3)
        raise ConfigError(
            f"{source}: unknown config key '{key}'" + (f" (did you mean {', '.join(hint)}?)" if hint else "")
        )
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for k, v in tree.items():
        if isinstance(v, dict) and k == "loss" and not prefix:
            flat.update(_flatten(v, "loss."))
        else:
            flat[prefix + k] = v
    return flat


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` with the value read as YAML (numbers, booleans, null, strings)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string; users mean the number
        try:
            value = float(value)
        except ValueError:
            pass
    return key.strip(), value


def resolve_config(
    preset: str = "grpo", config_file: str | Path | None = None, overrides: list[str] | None = None
) -> TrainConfig:
    """Build a validated TrainConfig: defaults, then the preset, then the YAML file, then `key=value` overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset '{preset}'; known: {', '.join(PRESETS)}")
    tree: dict[str, Any] = {}
    for k, v in PRESETS[preset].items():
        _set(tree, k, v, f"preset {preset}")
    if config_file is not None:
        path = Path(config_file)
        if not path.exists():
            raise ConfigError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{path}:{where} not valid YAML") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of config keys")
        for k, v in _flatten(data).items():
            _set(tree, k, v, str(path))
    for text in overrides or []:
        k, v = parse_override(text)
        _set(tree, k, v, f"--set {text}")
    try:
        return TrainConfig(**tree)
    except TypeError as err:  # wrong types the dataclass itself rejects
        raise ConfigError(str(err)) from None
