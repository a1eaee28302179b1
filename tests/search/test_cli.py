"""The command line: what query prints, and bad input in every command as a one-screen error with exit code 2."""
import json

import pytest

from vatt.search.cli import main

SCREEN_LINES = 25


@pytest.fixture(scope="module")
def built(random_model, media_template, tmp_path_factory):
    index = tmp_path_factory.mktemp("cli") / "index"
    assert main(["index", str(random_model), str(media_template), str(index), "--workers", "1", "--no-progress"]) == 0
    return index


def test_query_prints_the_top_windows_with_file_times_and_score(built, capsys):
    assert main(["query", str(built), "a red ball rises", "-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(" s  " in line and (".mp4" in line) for line in lines)
    assert lines[0].lstrip().startswith("1. ")


def test_query_json_per_file_and_several_texts(built, tmp_path, capsys):
    queries = tmp_path / "queries.txt"
    queries.write_text("a red ball rises\n\nthe blue square falls\n")
    assert main(["query", str(built), "--text-file", str(queries), "-k", "10", "--per-file", "--json"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert [a["query"] for a in answers] == ["a red ball rises", "the blue square falls"]
    for answer in answers:  # text searches video windows only: 2 video files, one window each per file
        assert sorted(r["path"].rsplit("/", 1)[1] for r in answer["results"]) == ["clip.mp4", "long.mp4"]
        assert all(set(r) >= {"path", "start", "end", "score"} for r in answer["results"])
    assert main(["query", str(built), "--audio", str(built.parent / "missing.wav")]) == 2


def test_audio_and_video_queries_search_s_va_and_may_include_sound_files(built, media_template, capsys):
    assert main(["query", str(built), "--video", str(media_template / "long.mp4"), "-k", "20", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)[0]["results"]
    assert len(hits) == 6 and {h["kind"] for h in hits} == {"video"}
    assert main(["query", str(built), "--audio", str(media_template / "sound.wav"), "--kind", "all", "-k", "20",
                 "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)[0]["results"]
    assert len(hits) == 8 and {h["kind"] for h in hits} == {"video", "audio"}
    assert hits == sorted(hits, key=lambda h: -h["score"])


def bad(argv: list[str], capsys, expected: str) -> None:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert "Traceback" not in err and expected in err and len(err.splitlines()) <= SCREEN_LINES, err


def test_bad_input_to_index_is_a_one_screen_error(random_model, other_model, built, media_template, tmp_path,
                                                  capsys):
    out = str(tmp_path / "new")
    bad(["index", str(tmp_path / "no-model"), str(media_template), out], capsys, "no such model folder")
    bad(["index", str(tmp_path), str(media_template), out], capsys, "no config.yaml")
    (tmp_path / "empty").mkdir()
    bad(["index", str(random_model), str(tmp_path / "empty"), out], capsys, "no media files")
    bad(["index", str(random_model), str(tmp_path / "nowhere"), out], capsys, "no such folder or file")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "x.mp4").write_bytes(b"not a video")
    bad(["index", str(random_model), str(tmp_path / "corrupt"), out, "--no-progress"], capsys,
        "none of the 1 file(s) could be read")
    bad(["index", str(other_model), str(media_template), str(built), "--no-progress"], capsys,
        "built by another model")


def test_bad_input_to_query_is_a_one_screen_error(other_model, built, media_template, tmp_path, capsys):
    bad(["query", str(built), "a ball", "--model", str(other_model)], capsys, "built by another model")
    bad(["query", str(built), "--video", str(media_template / "broken.mp4")], capsys, "broken.mp4: cannot open")
    bad(["query", str(built), "--video", str(media_template / "short.mp4")], capsys, "shorter than a clip")
    bad(["query", str(built), "  "], capsys, "must not be empty")
    bad(["query", str(built)], capsys, "give a text")
    bad(["query", str(built), "a ball", "-k", "0"], capsys, "k must be a whole number from 1 to 1000")
    bad(["query", str(built), "a ball", "-k", "100000"], capsys, "from 1 to 1000")
    bad(["query", str(tmp_path), "a ball"], capsys, "not an index")


def test_bad_input_to_classify_and_serve_is_a_one_screen_error(random_model, other_model, built, media_template,
                                                               tmp_path, capsys):
    video = str(media_template / "long.mp4")
    bad(["classify", str(random_model), video, "--labels", str(tmp_path / "labels.txt")], capsys,
        "not a file of labels")
    bad(["classify", str(random_model), str(media_template / "broken.mp4"), "--labels", "a, b"], capsys,
        "broken.mp4")
    bad(["classify", str(random_model), video, "--labels", "a, b", "--template", "a video"], capsys, "template")
    bad(["classify", str(tmp_path / "none"), video, "--labels", "a, b"], capsys, "no such model folder")
    bad(["serve", str(tmp_path)], capsys, "not an index")
    bad(["serve", str(built), "--model", str(other_model)], capsys, "built by another model")
    bad(["serve", str(built), "--port", "70000"], capsys, "--port")
