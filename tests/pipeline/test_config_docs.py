"""docs/config.md is what tools/config_docs.py generates from config/schema.yaml (and the
hand-written docs/config_intro.md): the reference cannot drift from the schema."""

from __future__ import annotations

import importlib.util
import re

import yaml
from conftest import REPO

DOC = REPO / "docs" / "config.md"


def config_docs():
    path = REPO / "tools" / "config_docs.py"
    spec = importlib.util.spec_from_file_location("config_docs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def anchors(markdown: str) -> set[str]:
    tool = config_docs()
    return {tool.anchor(h) for h in re.findall(r"^#+ (.+)$", markdown, flags=re.M)}


def test_docs_config_md_is_generated_from_the_schema():
    assert DOC.read_text(encoding="utf-8") == config_docs().generate(), (
        "docs/config.md differs from config/schema.yaml: run `python tools/config_docs.py`"
    )


def test_every_key_has_a_section_or_row_and_a_description():
    text = DOC.read_text(encoding="utf-8")
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    for key in schema["properties"]:
        assert f"## `{key}`" in text
    for path in ("data.NAME.source.path", "probes.NAME.retention", "arms.NAME.smf.top_t",
                 "train.group_size", "experiments.NAME.extra_learning_probes",
                 "retrofit.memory.n_keys", "base.demo.pretrain", "job_request.cpus"):  # fmt: skip
        assert f"| `{path}` |" in text, path
    undescribed = [
        row for row in text.splitlines() if row.startswith("| `") and row.endswith("| — |")
    ]
    assert not undescribed, f"keys without a `description:` in the schema: {undescribed}"


def test_links_into_the_config_reference_resolve():
    have = anchors(DOC.read_text(encoding="utf-8"))
    assert {"demo", "data", "datanamesource", "train", "arms", "armsnamesmf", "tradeoff"} <= have
    own = re.findall(r"\]\(#([^)]+)\)", DOC.read_text(encoding="utf-8"))
    assert set(own) <= have, set(own) - have
    for md in [REPO / "README.md", *(REPO / "docs").rglob("*.md")]:
        for target in re.findall(r"config\.md#([A-Za-z0-9_-]+)", md.read_text(encoding="utf-8")):
            assert target in have, f"{md.relative_to(REPO)} links to config.md#{target}"


def test_a_new_key_is_documented_without_touching_the_tool(tmp_path):
    tool = config_docs()
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    schema["properties"]["new_top"] = {
        "description": "A new knob.",
        "type": "integer",
        "default": 3,
    }
    schema["$defs"]["train_settings"]["properties"]["new_train"] = {
        "description": "A new training knob.",
        "type": "boolean",
    }
    schema["$defs"]["probe"]["properties"]["new_qa"] = {
        "description": "A qa knob.",
        "type": "integer",
    }
    qa = next(
        b
        for b in schema["$defs"]["probe"]["allOf"]
        if b["if"]["properties"]["kind"]["const"] == "qa"
    )
    qa["then"]["propertyNames"]["enum"].append("new_qa")
    qa["then"]["properties"]["new_qa"] = {"default": 7}
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(schema))
    (tmp_path / "intro.md").write_text("# Intro\n")
    text = tool.generate(tmp_path / "schema.yaml", tmp_path / "intro.md")
    assert "| `new_top` | int | `3` | A new knob. |" in text
    assert "| `train.new_train` | bool | — | A new training knob. |" in text
    assert "| `probes.NAME.new_qa` | int | qa | `7` | A qa knob. |" in text


def test_check_fails_on_a_stale_page(tmp_path, monkeypatch, capsys):
    tool = config_docs()
    monkeypatch.setattr(tool, "OUT", tmp_path / "config.md")
    (tmp_path / "config.md").write_text("# hand-edited\n")
    assert tool.main(["--check"]) == 1
    assert "python tools/config_docs.py" in capsys.readouterr().err
    assert tool.main([]) == 0 and tool.main(["--check"]) == 0
