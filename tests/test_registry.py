"""`entropylab.registry.Registry` and its users: duplicates refused, unknown names list the known ones, the CLI's
choices come from the registries."""

from __future__ import annotations

import subprocess
import sys

import pytest

from entropylab.errors import ConfigError, LogFormatError
from entropylab.registry import Registry


def _action(parser, command: str, option: str):
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return next(a for a in sub._actions if option in a.option_strings)


def test_register_by_decorator_or_call_and_look_up() -> None:
    reg: Registry[object] = Registry("widget", field="widget")

    @reg.register("a", description="the first")
    def a() -> None: ...

    b = reg.register("b", object())
    assert reg.get("a") is a and reg["b"] is b and "a" in reg and len(reg) == 2
    assert reg.names() == ["a", "b"] == list(reg) and reg.describe("a") == "the first"
    assert reg.descriptions() == {"a": "the first", "b": ""}
    reg.register("a", a)  # the same entry again (a module imported twice) is a no-op
    reg.unregister("b")
    assert reg.names() == ["a"]


def test_duplicate_name_is_refused_naming_it() -> None:
    reg: Registry[object] = Registry("widget")
    reg.register("a", object())
    with pytest.raises(ConfigError, match="widget 'a' is already registered"):
        reg.register("a", object())
    with pytest.raises(ConfigError, match="non-empty name"):
        reg.register("", object())


def test_unknown_name_lists_the_known_ones() -> None:
    reg: Registry[int] = Registry("widget", field="kind", error=LogFormatError)
    reg.register("zeta", 1)
    reg.register("alpha", 2)
    with pytest.raises(LogFormatError, match=r"^kind: unknown widget 'nope'; known widgets: zeta, alpha$"):
        reg.get("nope")
    reg.sort_names = True
    with pytest.raises(LogFormatError, match="known widgets: alpha, zeta$"):
        reg.get("nope")


def test_losses_and_advantages_refuse_a_second_function_under_a_taken_name() -> None:
    from entropylab.rl.advantages import ADVANTAGE_ESTIMATORS, get_advantage_estimator, register_advantage_estimator
    from entropylab.rl.losses import POLICY_LOSSES, register_policy_loss, vanilla_policy_loss

    with pytest.raises(ConfigError, match="policy loss 'vanilla' is already registered"):
        register_policy_loss("vanilla")(lambda *a, **k: None)
    assert POLICY_LOSSES.get("vanilla") is vanilla_policy_loss
    with pytest.raises(ConfigError, match="advantage estimator 'grpo' is already registered"):
        register_advantage_estimator("grpo")(lambda *a, **k: None)
    with pytest.raises(
        ConfigError, match="advantage: unknown advantage estimator 'gae'; known advantage estimators: grpo, rloo"
    ):
        get_advantage_estimator("gae")
    assert {"grpo", "rloo"} <= set(ADVANTAGE_ESTIMATORS)


def test_samplers_refuse_a_duplicate_instead_of_replacing() -> None:
    from entropylab.sampling import DESCRIPTIONS, get_sampler, list_samplers, register_sampler

    plain = get_sampler("plain")
    with pytest.raises(ConfigError, match="sampling method 'plain' is already registered"):
        register_sampler("plain", lambda *a, **k: None)
    assert get_sampler("plain") is plain

    def mine(model, tokenizer, prompts, **options):
        return None

    from entropylab.sampling.registry import SAMPLERS

    register_sampler("mine", mine, "a test sampler")
    try:
        assert (
            get_sampler("mine") is mine and list_samplers()[-1] == "mine" and DESCRIPTIONS["mine"] == "a test sampler"
        )
    finally:
        SAMPLERS.unregister("mine")
        DESCRIPTIONS.pop("mine")
    with pytest.raises(ConfigError, match="unknown sampling method 'beam'; known methods: plain, temp"):
        get_sampler("beam")


def test_cli_choices_come_from_the_registries() -> None:
    from entropylab.cli import build_parser
    from entropylab.logs.formats import LOG_FORMATS
    from entropylab.sampling.registry import SAMPLERS

    parser = build_parser()
    assert list(_action(parser, "sample", "--method").choices) == SAMPLERS.names()
    for command in ("ingest", "fit", "watch"):
        assert list(_action(parser, command, "--format").choices) == [
            "auto",
            *sorted(LOG_FORMATS, key=lambda n: (LOG_FORMATS[n].rank, n)),
        ]
    with pytest.raises(SystemExit):
        parser.parse_args(["sample", "--method", "beam"])
    assert parser.parse_args(["sample", "--method", "smc"]).method == "smc"


def test_building_the_parser_imports_no_torch() -> None:
    code = "import sys, entropylab.cli as c; c.build_parser(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
