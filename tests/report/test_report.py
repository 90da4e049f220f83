"""Report stage: eval JSONs -> main table (csv/md/tex); the figures are in test_figures.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from smf.report.paper_tables import load_eval_results, main_table, write_tables

PROBES = {  # probe -> (kind, metric, higher_is_better)
    "medmcqa": ("multiple_choice", "accuracy", True),
    "wikitext": ("perplexity", "perplexity", False),
    "triviaqa": ("qa", "accuracy", True),
}
PROBE_ORDER = ["medmcqa", "wikitext", "triviaqa"]
METRICS = {p: m for p, (_, m, _) in PROBES.items()}
# arm -> seed -> probe -> value; base/retrofit have seed None
VALUES = {
    "base": {None: {"medmcqa": 0.40, "wikitext": 15.00, "triviaqa": 0.30}},
    "retrofit": {None: {"medmcqa": 0.39, "wikitext": 15.20, "triviaqa": 0.29}},
    "full": {
        0: {"medmcqa": 0.50, "wikitext": 17.0, "triviaqa": 0.20},
        1: {"medmcqa": 0.52, "wikitext": 18.0, "triviaqa": 0.22},
    },
    "smf_kl": {
        0: {"medmcqa": 0.42, "wikitext": 15.1, "triviaqa": 0.29},
        1: {"medmcqa": 0.43, "wikitext": 15.3, "triviaqa": 0.30},
    },
}


def write_eval(root: Path, arm: str, seed: int | None, probe: str, value: float, **extra) -> Path:
    kind, metric, higher = PROBES[probe]
    model = arm if seed is None else f"{arm}-seed{seed}"
    record = {
        "model": model,
        "arm": arm,
        "seed": seed,
        "probe": probe,
        "kind": kind,
        "protocol": "paper3",
        "metric": metric,
        "value": value,
        "higher_is_better": higher,
        "n": 1000,
    } | extra
    path = root / model / f"{probe}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def write_all(root: Path, values: dict = VALUES) -> list[Path]:
    return [
        write_eval(root, arm, seed, probe, v)
        for arm, by_seed in values.items()
        for seed, by_probe in by_seed.items()
        for probe, v in by_probe.items()
    ]


@pytest.fixture()
def results(tmp_path: Path) -> pd.DataFrame:
    return load_eval_results(write_all(tmp_path / "eval"))


def test_load_eval_results_rows_and_columns(tmp_path: Path) -> None:
    paths = write_all(tmp_path)
    paths.append(write_eval(tmp_path / "x", "lora", 0, "medmcqa", 0.45, extra_field={"a": 1}))
    df = load_eval_results(paths)
    assert len(df) == 2 * 3 + 2 * 2 * 3 + 1
    assert "extra_field" not in df.columns
    assert {"arm", "seed", "probe", "value", "path"} <= set(df.columns)
    base = df[(df["arm"] == "base") & (df["probe"] == "wikitext")]
    assert base["value"].item() == 15.0 and pd.isna(base["seed"].item())
    assert sorted(df.loc[df["arm"] == "full", "seed"].unique()) == [0, 1]


def test_load_eval_results_malformed_file_names_file_and_key(tmp_path: Path) -> None:
    good = write_eval(tmp_path, "base", None, "medmcqa", 0.4)
    bad = tmp_path / "bad.json"
    record = json.loads(good.read_text())
    del record["higher_is_better"]
    bad.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"bad\.json.*higher_is_better"):
        load_eval_results([good, bad])

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.json"):
        load_eval_results([broken])

    percent = write_eval(tmp_path / "p", "base", None, "medmcqa", 40.0)
    with pytest.raises(ValueError, match=r"medmcqa\.json.*'value'.*\[0, 1\]"):
        load_eval_results([percent])

    with pytest.raises(ValueError, match=r"missing\.json.*not found"):
        load_eval_results([tmp_path / "missing.json"])


def test_load_eval_results_rejects_duplicates(tmp_path: Path) -> None:
    a = write_eval(tmp_path / "a", "full", 0, "medmcqa", 0.5)
    b = write_eval(tmp_path / "b", "full", 0, "medmcqa", 0.6)
    with pytest.raises(ValueError, match="duplicate.*full"):
        load_eval_results([a, b])


def test_main_table_numbers_and_order(results: pd.DataFrame) -> None:
    table = main_table(results, ["smf_kl", "full"], PROBE_ORDER)
    assert list(table.index) == ["base", "retrofit", "smf_kl", "full"]
    assert list(table.columns) == [
        *(c for p in PROBE_ORDER for c in (p, f"{p}_std", f"{p}_delta")),
        "n_seeds",
    ]
    assert table.loc["full", "medmcqa"] == pytest.approx(0.51)
    assert table.loc["full", "medmcqa_std"] == pytest.approx(math.sqrt(2 * 0.01**2))
    assert table.loc["full", "medmcqa_delta"] == pytest.approx(0.11)
    assert table.loc["full", "wikitext"] == pytest.approx(17.5)
    assert table.loc["full", "wikitext_std"] == pytest.approx(math.sqrt(0.5))
    assert table.loc["full", "wikitext_delta"] == pytest.approx(2.5)
    assert table.loc["smf_kl", "triviaqa_delta"] == pytest.approx(-0.005)
    assert table.loc["retrofit", "wikitext_delta"] == pytest.approx(0.2)
    assert table.loc["base", "medmcqa_delta"] == 0.0
    assert math.isnan(table.loc["base", "medmcqa_std"])
    assert list(table["n_seeds"]) == [1, 1, 2, 2]
    assert table.attrs["higher_is_better"] == {"medmcqa": True, "wikitext": False, "triviaqa": True}
    assert table.attrs["metric"]["wikitext"] == "perplexity"


def test_main_table_missing_arm_or_probe_raises(results: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"arm='lora', probe='medmcqa'"):
        main_table(results, ["full", "lora"], PROBE_ORDER)
    no_retrofit = results[~((results["arm"] == "retrofit") & (results["probe"] == "triviaqa"))]
    with pytest.raises(ValueError, match=r"arm='retrofit', probe='triviaqa'"):
        main_table(no_retrofit, ["full"], PROBE_ORDER)
    with pytest.raises(ValueError, match="duplicates"):
        main_table(results, ["full", "full"], PROBE_ORDER)


def test_main_table_rejects_uneven_seeds_and_mixed_protocols(results: pd.DataFrame) -> None:
    drop = (results["arm"] == "full") & (results["seed"] == 1) & (results["probe"] == "wikitext")
    with pytest.raises(ValueError, match="'full'.*number of seeds"):
        main_table(results[~drop], ["full"], PROBE_ORDER)
    mixed = results.copy()
    mixed.loc[mixed["arm"] == "full", "protocol"] = "lm_eval"
    with pytest.raises(ValueError, match="'medmcqa' mixes protocol"):
        main_table(mixed, ["full"], PROBE_ORDER)


def test_write_tables(results: pd.DataFrame, tmp_path: Path) -> None:
    table = main_table(results, ["full", "smf_kl"], PROBE_ORDER)
    out = tmp_path / "tables"
    write_tables(table, out / "t.csv", out / "t.md", out / "t.tex", METRICS)

    csv = pd.read_csv(out / "t.csv", index_col="arm")
    assert list(csv.index) == ["base", "retrofit", "full", "smf_kl"]
    assert csv.loc["full", "medmcqa"] == pytest.approx(0.51)  # raw fraction, not percent

    md = (out / "t.md").read_text()
    for arm in ("base", "retrofit", "full", "smf_kl"):
        assert f"| {arm} " in md
    assert "MedMCQA acc (%) ↑" in md and "WikiText ppl ↓" in md and "TriviaQA acc (%) ↑" in md
    assert "51.0 ± 1.4 (Δ +11.0)" in md
    assert "17.50 ± 0.71 (Δ +2.50)" in md
    assert "39.0 ± – (Δ -1.0)" in md  # retrofit: single model, std shown as a dash
    assert "| 40.0 ± –  " in md or "| 40.0 ± – |" in md  # base row carries no delta

    tex = (out / "t.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"MedMCQA acc (\%) $\uparrow$" in tex and r"WikiText ppl $\downarrow$" in tex
    assert r"smf\_kl" in tex
    assert r"51.0 $\pm$ 1.4 ($\Delta$ $+11.0$)" in tex
    assert r"39.0 $\pm$ -- ($\Delta$ $-1.0$)" in tex


def test_write_tables_checks_metrics(results: pd.DataFrame, tmp_path: Path) -> None:
    table = main_table(results, ["full"], PROBE_ORDER)
    paths = (tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.tex")
    with pytest.raises(ValueError, match="no entry for probe 'triviaqa'"):
        write_tables(table, *paths, {"medmcqa": "accuracy", "wikitext": "perplexity"})
    with pytest.raises(ValueError, match="'wikitext'.*perplexity"):
        write_tables(table, *paths, METRICS | {"wikitext": "accuracy"})


def test_single_seed_std_renders_as_dash(tmp_path: Path) -> None:
    one_seed = {arm: dict(list(by_seed.items())[:1]) for arm, by_seed in VALUES.items()}
    table = main_table(load_eval_results(write_all(tmp_path, one_seed)), ["full"], PROBE_ORDER)
    assert table["medmcqa_std"].isna().all()
    assert list(table["n_seeds"]) == [1, 1, 1]
    write_tables(table, tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.tex", METRICS)
    md = (tmp_path / "t.md").read_text()
    assert "50.0 ± – (Δ +10.0)" in md
    assert "17.00 ± – (Δ +2.00)" in md
    assert "nan" not in md.lower()
    assert "nan" not in (tmp_path / "t.tex").read_text().lower()
