"""Bad configs end in a one-screen error before anything is built: values out of range, sections that are not
mappings, YAML alias bombs, oversized files, and values far too large to print."""
import subprocess
import sys
from pathlib import Path

import pytest

from vatt.run import main

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
# each training recipe shrunk to a step, so that a value that slips through fails the test quickly
SMALL = {
    "quickstart": ["run.steps=1", "run.batch_size=8", "data.train.num_clips=32", "evaluators=[]", "data.eval=null"],
    "finetune_synthetic": ["run.steps=1", "run.batch_size=8", "data.train.num_clips=32", "data.eval.num_clips=8",
                           "evaluators=[]"],
    "audio_synthetic": ["run.steps=1", "run.batch_size=8", "data.train.num_clips=32", "data.eval.num_clips=8",
                        "evaluators=[]"],
}
OUT_OF_RANGE = [
    ("run.batch_size=0", "run.batch_size: must be at least 1, got 0"),
    ("run.batch_size=-4", "run.batch_size: must be at least 1, got -4"),
    ("run.checkpoint_every=0", "run.checkpoint_every: must be at least 1, got 0"),
    ("run.log_every=0", "run.log_every: must be at least 1, got 0"),
    ("run.keep_checkpoints=0", "run.keep_checkpoints: must be at least 1, got 0"),
    ("run.steps=0", "run.steps: must be at least 1, got 0"),
    ("run.eval_every=-1", "run.eval_every: must be at least 0 (0 evaluates only at the end), got -1"),
    ("data.num_workers=-1", "data.num_workers: must be at least 0"),
    ("data.max_failed_share=1.5", "data.max_failed_share: must be in [0, 1]"),
]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("override, says", OUT_OF_RANGE, ids=[o for o, _ in OUT_OF_RANGE])
@pytest.mark.parametrize("config", sorted(SMALL))
def test_a_value_out_of_range_is_refused_by_its_key_before_anything_is_built(config, override, says, tmp_path,
                                                                            monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, CONFIGS / f"{config}.yaml", f"run.dir={tmp_path / 'run'}", *SMALL[config],
                           override)
    assert code == 2 and says in err and "Traceback" not in err, err
    assert "total_steps" not in err  # run.steps is named as the user wrote it, not as the schedule's argument
    assert list(tmp_path.iterdir()) == []  # no run directory, no synthetic data: nothing was built


SECTIONS = [("quickstart", "run"), ("quickstart", "data"), ("quickstart", "model"),
            ("finetune_synthetic", "run"), ("finetune_synthetic", "data"), ("finetune_synthetic", "model"),
            ("audio_synthetic", "training"), ("linear_synthetic", "probe"), ("zero_shot_synthetic", "model")]


@pytest.mark.parametrize("config, section", SECTIONS, ids=[f"{c}-{s}" for c, s in SECTIONS])
def test_a_section_that_is_not_a_mapping_is_a_config_error(config, section, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, CONFIGS / f"{config}.yaml", f"{section}=5")
    assert code == 2 and "Traceback" not in err, err
    assert any(line.startswith(f"  - {section}") and "got 5" in line or f"{section}.modalities" in line
               for line in err.splitlines()), err
    assert list(tmp_path.iterdir()) == []


def test_probe_and_linear_data_ranges_are_checked(capsys):
    code, _, err = run_cli(capsys, CONFIGS / "linear_synthetic.yaml", "probe.batch_size=0", "data.num_workers=-2",
                           "probe.feature_batch_size=0")
    assert code == 2
    for says in ["probe.batch_size: must be at least 1, got 0", "data.num_workers: must be at least 0",
                 "probe.feature_batch_size: must be at least 1, got 0"]:
        assert says in err, err


# ----------------------------------------------------------------------------------------------------------
# Alias bombs: a few hundred bytes of YAML whose aliases stand for gigabytes.
def billion_laughs_lines() -> list[str]:
    """The classic document: 9 levels of 9 aliases each, 9^9 "lol"s once expanded."""
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 9)}]" for i in range(1, 10)]
    return lines


def billion_laughs_flow() -> str:
    parts = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    parts += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    return f"[{', '.join(parts)}]"


def doubling_string_flow() -> str:
    """A 1000-character string in a list that doubles 24 times: 16 million copies, 16 GB as text."""
    parts = [f'&d0 "{"x" * 1000}"'] + [f"&d{i} [*d{i - 1}, *d{i - 1}]" for i in range(1, 25)]
    return f"[{', '.join(parts)}]"


def run_module(*args, timeout=60) -> subprocess.CompletedProcess:
    """`python -m vatt.run args`; unrefused, these bombs hang for minutes or run out of memory."""
    return subprocess.run([sys.executable, "-m", "vatt.run", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def assert_refused(result: subprocess.CompletedProcess, says: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert says in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr) < 1500, len(result.stderr)  # one screen, whatever the bomb stands for


def test_a_billion_laughs_file_is_refused_at_once(tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(["task: pretrain", *billion_laughs_lines(), "run: {steps: *lol9}"]) + "\n")
    assert_refused(run_module(path), f"{path}: refused: the node at line")


def test_a_doubling_list_file_is_refused_at_once(tmp_path):
    path = tmp_path / "doubling.yaml"
    path.write_text(f"task: pretrain\nrun: {doubling_string_flow()}\n")
    assert_refused(run_module(path), f"{path}: refused:")


@pytest.mark.parametrize("bomb", [billion_laughs_flow, doubling_string_flow])
def test_an_alias_bomb_in_an_override_is_refused_at_once(bomb):
    result = run_module(CONFIGS / "quickstart.yaml", f"run.steps={bomb()}")
    assert_refused(result, "override 'run.steps=[")
    assert "refused: the node at line 1 expands through its aliases" in result.stderr


def test_recursive_aliases_and_deep_nesting_are_refused(tmp_path, capsys):
    recursive = tmp_path / "recursive.yaml"
    recursive.write_text("task: pretrain\nrun: &r {steps: *r}\n")
    code, _, err = run_cli(capsys, recursive)
    assert code == 2 and "the alias *r is inside its own anchor (line 2)" in err
    deep = tmp_path / "deep.yaml"
    deep.write_text("task: pretrain\nrun: " + "[" * 2000 + "]" * 2000 + "\n")
    code, _, err = run_cli(capsys, deep)
    assert code == 2 and "nest more than 64 deep" in err and len(err) < 500


def test_a_config_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    path.write_text(f"task: pretrain\nrun: {{steps: \"{'x' * 2_000_000}\"}}\n")
    code, _, err = run_cli(capsys, path)
    assert code == 2 and f"{path}: 2,000,0" in err and "refused above" in err and len(err) < 500


def test_a_config_that_is_not_utf8_names_the_file_and_the_line(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("task: pretrain\n# a caf\xe9 config\n".encode("latin-1"))
    code, _, err = run_cli(capsys, path)
    assert code == 2 and "Traceback" not in err
    assert f"error: {path}:2: not UTF-8 text (byte 0xe9 at column 8); save the file as UTF-8" in err


def test_errors_show_a_cut_value_never_the_whole_node(capsys):
    big = "[" + ", ".join(["1"] * 20000) + "]"
    code, _, err = run_cli(capsys, CONFIGS / "quickstart.yaml", f"run.steps={big}", f"optimizer={big}",
                           f"losses.0.inputs={big}", "--summary")
    assert code == 2, err
    problems = {line.split(":")[0] for line in err.splitlines() if line.startswith("  - ")}
    assert problems >= {"  - run.steps", "  - optimizer", "  - losses.0.inputs"}
    assert "must be a mapping naming its optimizer" in err  # the kind's singular name
    code, _, err_data = run_cli(capsys, CONFIGS / "quickstart.yaml", f"data={big}", "--summary")
    assert code == 2 and "  - data: must be a mapping" in err_data
    for line in (err + err_data).splitlines():
        assert len(line) < 400, line[:500]


def test_thousands_of_problems_still_fit_on_a_screen(capsys):
    # 20000 loss terms that are numbers: each is a problem of its own
    big = "[" + ", ".join(["1"] * 20000) + "]"
    code, _, err = run_cli(capsys, CONFIGS / "quickstart.yaml", f"losses={big}", "--summary")
    assert code == 2 and "problem(s) in config" in err and "more" in err.splitlines()[-1]
    assert len(err.splitlines()) < 30


def test_unknown_keys_of_any_kind_and_length_are_named_cut(tmp_path, capsys):
    path = tmp_path / "keys.yaml"
    # YAML's explicit keys ("? KEY") may be longer than the 1024 characters of plain ones
    path.write_text(f"task: pretrain\n5: five\n? {'k' * 5000}\n: long\nrun:\n  ? {'s' * 5000}\n  : 1\n")
    code, _, err = run_cli(capsys, path, "--summary")
    assert code == 2 and "  - 5: unknown top-level section" in err and "Traceback" not in err, err[-2000:]
    assert "  - kkkkk" in err and "  - run.sssss" in err
    assert all(len(line) < 1000 for line in err.splitlines())  # each key cut, not its 5000 characters
