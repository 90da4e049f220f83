"""Figures: eval JSONs -> learning vs forgetting, train logs -> loss curves (PNG and PDF)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_report import VALUES, write_all

from smf.report.figures import load_train_logs, plot_learning_vs_forgetting, plot_loss_curves
from smf.report.paper_tables import load_eval_results


@pytest.fixture()
def results(tmp_path: Path) -> pd.DataFrame:
    return load_eval_results(write_all(tmp_path / "eval"))


def assert_figures(png: Path, pdf: Path) -> None:
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1_000


def test_plot_learning_vs_forgetting(results: pd.DataFrame, tmp_path: Path) -> None:
    png, pdf = tmp_path / "fig" / "lf.png", tmp_path / "fig" / "lf.pdf"
    plot_learning_vs_forgetting(results, "medmcqa", ["wikitext", "triviaqa"], png, pdf)
    assert_figures(png, pdf)
    with pytest.raises(ValueError, match=r"arm='lora', probe='medmcqa'"):
        plot_learning_vs_forgetting(
            results, "medmcqa", ["wikitext"], png, pdf, arm_order=["full", "lora"]
        )


def test_plot_learning_vs_forgetting_single_seed(tmp_path: Path) -> None:
    one_seed = {arm: dict(list(by_seed.items())[:1]) for arm, by_seed in VALUES.items()}
    df = load_eval_results(write_all(tmp_path, one_seed))
    png, pdf = tmp_path / "lf.png", tmp_path / "lf.pdf"
    plot_learning_vs_forgetting(df, "medmcqa", ["wikitext"], png, pdf)  # no error bars, no crash
    assert_figures(png, pdf)


def write_log(path: Path, losses: list[float], rows: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"step": i + 1, "loss": loss, "lr": 1e-4, "rows_updated": rows})
        for i, loss in enumerate(losses)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_load_train_logs_and_plot_loss_curves(tmp_path: Path) -> None:
    steps = 200
    runs = tmp_path / "runs"
    paths = {
        arm: [
            write_log(
                runs / arm / f"seed{seed}" / "train_log.jsonl",
                [scale * (3.0 / (1 + 0.05 * i) + 0.6 + 0.05 * seed) for i in range(steps)],
                rows=rows,
            )
            for seed in (0, 3)
        ]
        for arm, scale, rows in (("full", 1.0, 0), ("smf_kl", 1.2, 1536))
    }
    logs = load_train_logs(paths)
    assert list(logs.columns) == ["arm", "seed", "step", "loss", "lr", "rows_updated"]
    assert len(logs) == 2 * 2 * steps
    assert sorted(logs["seed"].unique()) == [0, 3]  # parsed from the folder name
    assert set(logs.loc[logs["arm"] == "smf_kl", "rows_updated"]) == {1536}

    png, pdf = tmp_path / "loss.png", tmp_path / "loss.pdf"
    plot_loss_curves(logs, png, pdf)
    assert_figures(png, pdf)


def test_load_train_logs_seed_from_index_and_errors(tmp_path: Path) -> None:
    a = write_log(tmp_path / "a" / "train_log.jsonl", [2.0, 1.5])
    b = write_log(tmp_path / "b" / "train_log.jsonl", [2.1, 1.4])
    logs = load_train_logs({"lora": [a, b]})
    assert sorted(logs["seed"].unique()) == [0, 1]

    bad = tmp_path / "c" / "train_log.jsonl"
    bad.parent.mkdir()
    good_line = '{"step": 1, "loss": 2.0, "lr": 0.1, "rows_updated": 0}'
    bad.write_text(good_line + '\n{"step": 2, "lr": 0.1}\n')
    with pytest.raises(ValueError, match=r"c/train_log\.jsonl:2: missing key 'loss'"):
        load_train_logs({"lora": [bad]})
