from dataclasses import dataclass

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from vatt import config as cfglib
from vatt.errors import UserError


def write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_extends_merges_one_level(tmp_path):
    write(tmp_path / "base.yaml", {"run": {"steps": 10, "seed": 1}, "losses": [{"type": "nce"}]})
    child = write(tmp_path / "child.yaml", {"extends": "base.yaml", "run": {"steps": 20},
                                            "losses": [{"type": "mil_nce"}]})
    cfg = cfglib.load(child)
    assert cfg == {"run": {"steps": 20, "seed": 1}, "losses": [{"type": "mil_nce"}]}


def test_extends_of_extends_is_refused(tmp_path):
    write(tmp_path / "a.yaml", {"run": {}})
    write(tmp_path / "b.yaml", {"extends": "a.yaml"})
    c = write(tmp_path / "c.yaml", {"extends": "b.yaml"})
    with pytest.raises(UserError, match="one level"):
        cfglib.load(c)


def test_missing_and_malformed_files_name_the_file(tmp_path):
    with pytest.raises(UserError, match="nope.yaml"):
        cfglib.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: [1, 2\n")
    with pytest.raises(UserError, match="bad.yaml: not valid YAML"):
        cfglib.load(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(UserError, match="mapping at the top level"):
        cfglib.load(listy)


def test_overrides_parse_yaml_values_and_create_mappings(tmp_path):
    path = write(tmp_path / "c.yaml", {"run": {"steps": 1}, "data": {"train": None},
                                       "losses": [{"type": "nce", "weight": 1.0}]})
    cfg = cfglib.load(path, ["run.steps=5", "run.dir=runs/x", "data.train.type=synthetic",
                             "losses.0.weight=2.5", "run.lr=1e-4", "model={a: [1, 2]}"])
    assert cfg["run"] == {"steps": 5, "dir": "runs/x", "lr": 1e-4}
    assert cfg["data"]["train"] == {"type": "synthetic"}
    assert cfg["losses"][0]["weight"] == 2.5
    assert cfg["model"] == {"a": [1, 2]}


@pytest.mark.parametrize("text,match", [("run.steps", "key.sub=value"), ("run..x=1", "empty key"),
                                        ("losses.3.weight=1", "list index"), ("run.steps.x=1", "not a mapping")])
def test_bad_overrides(tmp_path, text, match):
    path = write(tmp_path / "c.yaml", {"run": {"steps": 1}, "losses": [{"type": "nce"}]})
    with pytest.raises(UserError, match=match):
        cfglib.load(path, [text])


@given(st.dictionaries(st.sampled_from("abc"), st.integers() | st.dictionaries(st.sampled_from("xy"), st.integers())),
       st.dictionaries(st.sampled_from("abc"), st.integers() | st.dictionaries(st.sampled_from("xy"), st.integers())))
def test_merge_keeps_base_untouched_and_update_wins(base, update):
    snapshot = yaml.safe_dump(base)
    merged = cfglib.merge(base, update)
    assert yaml.safe_dump(base) == snapshot
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            assert merged[key] == {**base[key], **value}
        else:
            assert merged[key] == value


def test_component_nodes_found_by_key():
    cfg = {"model": {"modalities": {"video": {"tokenizer": {"type": "t"}, "backbone": {"type": "b"},
                                              "head": {"type": "h"}}}},
           "losses": [{"type": "nce"}, {"type": "mil_nce"}], "data": {"train": {"type": "synthetic"}},
           "optimizer": {"type": "adam"}}
    found = {(path, kind) for path, kind, _ in cfglib.component_nodes(cfg)}
    assert found == {("model.modalities.video.tokenizer", "tokenizers"),
                     ("model.modalities.video.backbone", "backbones"),
                     ("model.modalities.video.head", "heads"), ("losses.0", "losses"), ("losses.1", "losses"),
                     ("data.train", "datasets"), ("optimizer", "optimizers")}


@dataclass
class Settings:
    steps: int = 1
    dir: str | None = None


def test_check_section_and_top_level():
    problems = cfglib.check_section(Settings, {"step": 3, "dir": 5}, "run")
    text = "\n".join(problems)
    assert "run.step" in text and "did you mean 'steps'" in text and "run.dir: expected str" in text
    assert cfglib.check_top_level({"run": {}, "modle": {}}, {"run", "model"}) == [
        "modle: unknown top-level section; did you mean 'model'? (valid: model, run)"]


def test_save_resolved_round_trips(tmp_path):
    cfg = {"run": {"steps": 3}, "losses": [{"type": "nce", "inputs": ["video.va", "audio.va"]}]}
    cfglib.save_resolved(cfg, tmp_path / "run" / "config.yaml")
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text()) == cfg
