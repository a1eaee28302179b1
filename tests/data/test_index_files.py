"""A malformed index file of any published layout is a one-screen error naming the config node, the file and
the line; the readers of vatt.data.datasets.index_files on their own."""
import shutil
from pathlib import Path

import pytest

from vatt.data.datasets.index_files import csv_records, csv_rows, json_document, json_mapping, reading, text_lines
from vatt.errors import ConfigError
from vatt.registry import build


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_csv_rows_keep_the_file_line_numbers_across_comments_blanks_and_quoted_newlines(tmp_path):
    path = write(tmp_path / "a.csv", b'# a comment\nx,1\n\n"two\nlines",2\n# another\ny,3\n')
    assert list(csv_rows(path, "list", comment="#")) == [
        (f"{path}:2", ["x", "1"]), (f"{path}:5", ["two\nlines", "2"]), (f"{path}:7", ["y", "3"])]


def test_csv_records_need_the_named_columns_and_rows_the_header_length(tmp_path):
    good = write(tmp_path / "good.csv", b"a, b\n1,2\n")
    assert list(csv_records(good, "list", ("a", "b"))) == [(f"{good}:2", {"a": "1", "b": "2"})]
    with pytest.raises(ValueError, match=rf"^{tmp_path}/good.csv:1: the header must name a, c; c missing"):
        list(csv_records(good, "list", ("a", "c")))
    short = write(tmp_path / "short.csv", b"a,b\n1,2\n3\n")
    with pytest.raises(ValueError, match=rf"^{short}:3: 1 fields where the header has 2 \(a, b\)"):
        list(csv_records(short, "list", ("a",)))
    empty = write(tmp_path / "empty.csv", b"\n")
    with pytest.raises(ValueError, match=rf"^{empty}:1: the file is empty; its header must name a"):
        list(csv_records(empty, "list", ("a",)))
    with pytest.raises(ValueError, match=rf"^list '{tmp_path}/absent.csv' does not exist$"):
        list(csv_records(tmp_path / "absent.csv", "list", ("a",)))


def test_text_that_is_not_utf8_names_its_line_and_column(tmp_path):
    path = write(tmp_path / "classes.txt", "one\n\ntwo\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=rf"^{path}:4: not UTF-8 text \(byte 0xe9 at column 4\)"):
        list(text_lines(path, "classes"))
    assert list(text_lines(write(tmp_path / "ok.txt", b" one \n\ntwo\n"), "classes")) == [
        (f"{tmp_path}/ok.txt:1", "one"), (f"{tmp_path}/ok.txt:3", "two")]


def test_json_that_does_not_parse_names_its_line_and_a_list_is_not_a_mapping(tmp_path):
    broken = write(tmp_path / "a.json", b'{\n  "a": 1,\n  "b": \n}\n')
    with pytest.raises(ValueError, match=rf"^{broken}:4: not valid JSON \(Expecting value at column 1\)"):
        json_document(broken, "annotations")
    listed = write(tmp_path / "b.json", b"[1, 2]")
    assert json_document(listed, "annotations") == [1, 2]
    with pytest.raises(ValueError, match=rf"^{listed}: the top level must be a JSON object, got a list"):
        json_mapping(listed, "annotations")


@pytest.mark.parametrize("broken, message", [
    (lambda: {"a": 1}["b"], "no 'b' here"), (lambda: [1][2], "too few fields"),
    (lambda: float("ten"), "could not convert string to float: 'ten'"), (lambda: 1 + "x", "unsupported operand")])
def test_reading_names_where_an_entry_broke(broken, message):
    with pytest.raises(ValueError, match=rf"^list.csv:7: {message}"):
        with reading("list.csv:7"):
            broken()


# (layout, the index file under its root, what to write there, the line the error names)
CORRUPTIONS = [
    ("audioset", "balanced_train_segments.csv", b'# YTID, start, end, labels\nabcdefghijk, thirty, 31.2, "/m/0jbk"\n',
     "2: could not convert string to float: 'thirty'"),
    ("audioset", "class_labels_indices.csv", b"index,mid,display_name\n0,/m/09x0r,Sp\xe9ech\n", "2: not UTF-8 text"),
    ("kinetics", "train.csv", b"label,youtube_id,time_start,time_end,split\nabseiling,train000000,10,20\n",
     "2: 4 fields where the header has 5"),
    ("kinetics", "train.csv", b"label,youtube_id,time_start\nabseiling,train000000,10\n",
     "1: the header must name label, youtube_id, time_start, time_end; time_end missing"),
    ("ucf101", "ucfTrainTestlist/classInd.txt", b"1 ApplyEyeMakeup\n2\n", "2: not enough values to unpack"),
    ("hmdb51", "testTrainMulti_7030_splits/brush_hair_test_split1.txt", b"brush_hair_video0.avi 1\nvideo1.avi x\n",
     "2: expected '<name>.avi <tag>' with tag 0, 1 or 2, got 'video1.avi x'"),
    ("esc50", "meta/esc50.csv", b"filename,fold,category\n1-100-A-0.wav,1,dog\n",
     "1: the header must name filename, fold, target, category; target missing"),
    ("msrvtt", "MSRVTT_JSFUSION_test.csv", b"key,vid_key,video_id,sentence\nret0,msr0,video0,a caf\xe9 scene\n",
     "2: not UTF-8 text"),
    ("youcook2", "youcookii_annotations_trainval.json", b'{"database": {\n  "v": {"subset": "validation",}\n}}',
     "2: not valid JSON"),
    ("howto100m", "captions/vid0.csv", b"start,end,text\n0.0,1.0,cut the onion\nzero,2.0,stir\n",
     "3: could not convert string to float: 'zero'"),
    ("moments_in_time", "moments_categories.txt", b"clapping,0\nrunning\n", "2: not enough values to unpack"),
]


@pytest.mark.parametrize("layout, index_file, content, line", CORRUPTIONS,
                         ids=[f"{layout}-{Path(file).name}-{n}" for n, (layout, file, *_) in enumerate(CORRUPTIONS)])
def test_a_malformed_index_file_is_a_config_error_naming_the_node_the_file_and_the_line(
        layout_replicas, tmp_path, layout, index_file, content, line):
    source, node = layout_replicas[layout]
    copy = tmp_path / layout
    shutil.copytree(source, copy)
    write(copy / index_file, content)
    with pytest.raises(ConfigError) as raised:
        build("datasets", {"type": layout, **node, "root": str(copy)}, "data.train")
    assert f"data.train ({layout}): {copy / index_file}:{line}" in str(raised.value)
