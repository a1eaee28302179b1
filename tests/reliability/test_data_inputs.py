"""Bad data ends in a one-screen error naming what is wrong, or is skipped and counted like any unreadable
sample: a manifest smaller than a batch, badly named shard members, packed shards under `vatt.data check`, a
manifest that is not UTF-8."""
import io
import json
import logging
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml

from vatt.data import shards
from vatt.data.__main__ import main as data_main
from vatt.data.datasets.manifest import read_manifest
from vatt.data.pack import pack_manifest
from vatt.errors import DataError
from vatt.run import main
from vatt.testing.replicas import REPLICAS

ROOT = Path(__file__).resolve().parents[2]
READ = dict(frames=4, size=16, audio_rate=8000)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> dict:
    """The manifest replica: 3 captioned, labelled clips."""
    return REPLICAS["manifest"](tmp_path_factory.mktemp("manifest"))


@pytest.fixture(scope="module")
def packed(tmp_path_factory, manifest) -> Path:
    """The manifest packed into 2 shards (2 clips and 1)."""
    folder = tmp_path_factory.mktemp("packed") / "shards"
    pack_manifest(manifest["path"], folder, fps=10, size=24, audio_rate=8000, clips_per_shard=2)
    return folder


# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", ["quickstart", "finetune_synthetic"])
def test_a_dataset_smaller_than_a_batch_names_the_dataset_its_size_and_the_batch(config, manifest, tmp_path,
                                                                                capsys):
    node = json.dumps({"type": "manifest", "path": manifest["path"], "vocabulary": manifest["vocabulary"], **READ})
    code = main([str(ROOT / "configs" / f"{config}.yaml"), f"run.dir={tmp_path}", "run.batch_size=8",
                 f"data.train={node}", f"data.eval={node}", "evaluators=[]"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert f"data.train: manifest {manifest['path']} has 3 samples, fewer than run.batch_size (8)" in err


# ----------------------------------------------------------------------------------------------------------
def renamed(shard: Path, key: str, name: str) -> None:
    """Rewrite ``shard`` with the members of sample ``key`` renamed ``name`` + their suffix."""
    out = io.BytesIO()
    with tarfile.open(shard) as source, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name.startswith(f"{key}."):
                member.name = name + member.name[len(key):]
            archive.addfile(member, io.BytesIO(data))
    shard.write_bytes(out.getvalue())


def with_first_sample_named(packed: Path, to: Path, name: str) -> Path:
    shutil.copytree(packed, to)
    renamed(to / "shard-000000.tar", "000000000", name)
    return to


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("name", ["clip_a", "../000000000", "ABSOLUTE"])
def test_a_member_not_named_by_a_numeric_key_is_skipped_counted_and_named(name, packed, manifest, tmp_path,
                                                                        caplog):
    planted = tmp_path / "planted"  # where an extracting reader would write the absolute member
    name = str(planted / "000000000") if name == "ABSOLUTE" else name
    folder = with_first_sample_named(packed, tmp_path / "shards", name)
    before = tree(tmp_path)
    caplog.set_level(logging.WARNING, logger="vatt.data")
    dataset = shards.ShardDataset(str(folder), vocabulary=manifest["vocabulary"], max_failure_rate=0.5, **READ)
    assert sorted(int(sample["label"]) for sample in dataset) == [1, 2] and dataset.failed == 1
    assert f"{folder / 'shard-000000.tar'}:{name}.00000.jpg: member '{name}.00000.jpg' is not named" in caplog.text
    strict = shards.ShardDataset(str(folder), vocabulary=manifest["vocabulary"], **READ)  # 1 % allowed
    with pytest.raises(DataError, match=r"1 of 3 samples could not be read"):
        list(strict)
    assert tree(tmp_path) == before and not planted.exists()  # members are read in memory, never extracted
    assert not (tmp_path / "000000000.json").exists()


# ----------------------------------------------------------------------------------------------------------
def shards_config(tmp_path: Path, folder: Path, manifest: dict) -> Path:
    path = tmp_path / "shards.yaml"
    node = {"type": "shards", "root": str(folder), "vocabulary": manifest["vocabulary"], **READ}
    path.write_text(yaml.safe_dump({"task": "pretrain", "data": {"train": node}}))
    return path


def test_check_reads_every_packed_sample_of_a_config(packed, manifest, tmp_path, capsys):
    assert data_main(["check", str(shards_config(tmp_path, packed, manifest)), "--json"]) == 0
    (summary,) = json.loads(capsys.readouterr().out)
    assert (summary["dataset"], summary["entries"], summary["checked"], summary["readable"]) == ("data.train", 3, 3, 3)
    assert summary["fps"] == {"10": 3} and summary["duration_s"]["max"] == pytest.approx(1.6)
    assert summary["captions_per_clip"]["max"] == 2 and summary["clips_per_s"] > 0
    assert sorted(r["path"].rsplit(":", 1)[1] for r in summary["reports"]) == ["000000000", "000000001", "000000002"]
    assert data_main(["check", str(shards_config(tmp_path, packed, manifest)), "--sample", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["checked"] == 2


def test_check_reports_broken_and_lost_packed_samples(packed, manifest, tmp_path, capsys):
    folder = with_first_sample_named(packed, tmp_path / "broken", "clip_a")
    assert data_main(["check", str(shards_config(tmp_path, folder, manifest))]) == 1
    out = capsys.readouterr().out
    assert "data.train: 3 of 3 entries checked, 2 readable, 1 unreadable" in out
    assert f"unreadable: {folder / 'shard-000000.tar'}:clip_a.00000.jpg: member 'clip_a.00000.jpg'" in out
    (folder / "shard-000000.tar").write_bytes((folder / "shard-000000.tar").read_bytes()[:2000])  # truncated
    assert data_main(["check", str(shards_config(tmp_path, folder, manifest))]) == 1
    out = capsys.readouterr().out
    assert "3 of 3 entries checked, 1 readable, 2 unreadable" in out
    assert f"unreadable: {folder / 'shard-000000.tar'}: unreadable after 0 of 2 samples: truncated" in out


# ----------------------------------------------------------------------------------------------------------
def not_utf8(manifest: dict, to: Path, suffix: str) -> Path:
    """The manifest as .jsonl or .csv with a Latin-1 'é' in the caption of its third clip."""
    entries = [json.loads(line) for line in Path(manifest["path"]).read_text().splitlines()]
    clips = str(Path(manifest["path"]).parent / "clips")
    if suffix == ".jsonl":
        lines = [json.dumps({**e, "video": f"{clips}/{n}.mp4"}).encode() for n, e in enumerate(entries)]
    else:
        lines = [b"video,caption"] + [f"{clips}/{n}.mp4,a clip".encode() for n in range(len(entries))]
    lines[2] = lines[2].replace(b"a blue clip" if suffix == ".jsonl" else b"a clip", "un caf\u00e9".encode("latin-1"))
    path = to / f"latin1{suffix}"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_manifest_that_is_not_utf8_names_the_file_and_the_line(suffix, manifest, tmp_path, capsys):
    path = not_utf8(manifest, tmp_path, suffix)
    with pytest.raises(ValueError, match=rf"^{path}:3: not UTF-8 text \(byte 0xe9 at column \d+\)"):
        read_manifest(path)
    assert data_main(["check", str(path)]) == 2
    assert f"error: {path}:3: not UTF-8 text" in capsys.readouterr().err
    node = json.dumps({"type": "manifest", "path": str(path), "vocabulary": manifest["vocabulary"], **READ})
    assert main([str(ROOT / "configs" / "quickstart.yaml"), f"run.dir={tmp_path / 'run'}", f"data.train={node}",
                 "evaluators=[]", "data.eval=null"]) == 2
    assert f"data.train (manifest): {path}:3: not UTF-8 text" in capsys.readouterr().err
