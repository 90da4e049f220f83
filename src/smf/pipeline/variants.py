"""Retrofit variants (config `retrofit_variants`): a variant V replaces keys of `retrofit` for
its own model (results/models/retrofit_V/) and, with its `background:` keys, of the top-level
`background` for its own statistics (results/background_V/). Plain config in, plain dicts out:
rules/common.smk and the config checks read the settings from here."""

from __future__ import annotations

from collections.abc import Mapping


def variant_spec(config: Mapping, variant: str | None) -> Mapping:
    """A variant's entry ({} for the main retrofit, variant None or "")."""
    return config["retrofit_variants"][variant] if variant else {}


def retrofit_settings(config: Mapping, variant: str | None) -> dict:
    """The `retrofit` section without its recovery, with the variant's keys replaced."""
    spec = {k: v for k, v in config["retrofit"].items() if k != "recovery"}
    own = variant_spec(config, variant)
    return {**spec, **{k: v for k, v in own.items() if k != "background"}}


def background_settings(config: Mapping, variant: str | None) -> dict:
    """The top-level `background` with the variant's `background:` keys replaced."""
    return {**config["background"], **variant_spec(config, variant).get("background", {})}


def background_refs(config: Mapping) -> dict[str, str]:
    """{config key: dataset name} of the variants that count their own background dataset."""
    return {
        f"retrofit_variants.{name}.background.dataset": spec["background"]["dataset"]
        for name, spec in config.get("retrofit_variants", {}).items()
        if "dataset" in spec.get("background", {})
    }
