"""Data sources: local/hub loading, file checks, JSONL I/O (the schemas: test_data.py)."""

from __future__ import annotations

import json

import datasets
import huggingface_hub.constants
import pandas as pd
import pytest
from test_data import medmcqa_rows

from smf.data.prepare import prepare_multiple_choice, prepare_text
from smf.data.sources import DataError, load_source, read_jsonl, write_jsonl


@pytest.fixture(autouse=True)
def _private_hf_cache(tmp_path, monkeypatch):
    """Keep `datasets` cache files of each test out of the user's ~/.cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


# ---------------------------------------------------------------- loading


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl", "json_lines", "json_array", "disk"])
def test_local_formats_load(tmp_path, fmt):
    rows = medmcqa_rows(6)
    rows[0]["opb"] = "nan"  # must survive every format, CSV included
    frame = pd.DataFrame(rows)
    if fmt == "parquet":
        path = tmp_path / "d.parquet"
        frame.to_parquet(path)
    elif fmt == "csv":
        path = tmp_path / "d.csv"
        frame.to_csv(path, index=False)
    elif fmt == "disk":
        path = tmp_path / "saved"
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    else:
        path = tmp_path / ("d.jsonl" if fmt == "jsonl" else "d.json")
        if fmt == "json_array":
            path.write_text(json.dumps(rows))
        else:
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records, stats = prepare_multiple_choice(load_source({"path": str(path)}), name=fmt)
    assert [r["id"] for r in records] == [f"q{i}" for i in range(6)]
    assert [r["answer"] for r in records] == [0, 1, 2, 3, 0, 1]
    assert records[0]["options"] == ["a0", "nan", "c0", "d0"]
    assert records[0]["explanation"] == "" and records[1]["explanation"] == "because 1"
    assert stats["label_base"] == "0"


def test_folder_uses_all_files_sorted(tmp_path):
    for name, lo, hi in [("b.jsonl", 3, 6), ("a.jsonl", 0, 3)]:
        rows = [{"text": f"row {i}"} for i in range(lo, hi)]
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "notes.txt").write_text("ignored")
    records, _ = prepare_text(load_source({"path": str(tmp_path)}), name="t")
    assert [r["text"] for r in records] == [f"row {i}" for i in range(6)]


def test_saved_dataset_dict_needs_split(tmp_path):
    dd = datasets.DatasetDict({"validation": datasets.Dataset.from_list([{"text": "v"}])})
    dd.save_to_disk(str(tmp_path / "dd"))
    ds = load_source({"path": str(tmp_path / "dd"), "split": "validation"})
    assert ds[0]["text"] == "v"
    with pytest.raises(DataError, match="validation"):
        load_source({"path": str(tmp_path / "dd"), "split": "test"})


def test_bad_sources(tmp_path):
    with pytest.raises(DataError, match="does-not-exist"):
        load_source({"path": str(tmp_path / "does-not-exist.jsonl")})
    with pytest.raises(DataError, match="exactly one"):
        load_source({"hub_id": "x/y", "path": str(tmp_path), "split": "train"})
    with pytest.raises(DataError, match="unknown key"):
        load_source({"path": str(tmp_path), "splt": "train"})
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DataError, match="unsupported extension"):
        load_source({"path": str(tmp_path / "x.txt")})


def test_hub_failure_explains_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # `datasets` reads the variable at import time; apply it to the live config as well.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    source = {"hub_id": "smf-nonexistent/no-such-dataset", "config": "cfg", "split": "validation"}
    with pytest.raises(DataError) as info:
        load_source(source)
    message = str(info.value)
    for expected in ["smf-nonexistent/no-such-dataset", "cfg", "validation", "path:"]:
        assert expected in message
    assert "HF_DATASETS_OFFLINE=1" in message


# ---------------------------------------------------------------- JSONL


def test_jsonl_round_trip_and_errors(tmp_path):
    records = [{"text": "line\u2028sep ü"}, {"id": "x", "options": ["a", "nan"]}]
    path = write_jsonl(records, tmp_path / "nested" / "out.jsonl")
    assert read_jsonl(path) == records
    assert [p.name for p in path.parent.iterdir()] == ["out.jsonl"]  # no temp file left
    with pytest.raises(DataError, match="record 1 "):  # 1-based, as every data error
        write_jsonl([{"x": float("nan")}], path)
    assert read_jsonl(path) == records  # failed write left the old file intact
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{"a": 2}\n{"a": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl:3"):
        read_jsonl(bad)
