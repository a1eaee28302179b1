"""The web page's server: searches, media and thumbnails of indexed files only, local assets only, and a clean
4xx for every bad request (Starlette's TestClient; the page itself is driven in test_browser.py)."""
import os
import re

import pytest
from starlette.testclient import TestClient

from vatt.search import cli, server
from vatt.search.indexer import build_index
from vatt.search.model import SearchModel
from vatt.search.query import Searcher
from vatt.search.sources import media_files


@pytest.fixture(scope="module")
def client(random_model, media_template, tmp_path_factory):
    model = SearchModel.load(random_model)
    _, index = build_index(model, media_files(media_template), tmp_path_factory.mktemp("server") / "index",
                           num_workers=1, progress=False)
    return TestClient(server.create_app(Searcher(index, model)), raise_server_exceptions=False)


def test_the_page_and_its_assets_are_all_local(client):
    page = client.get("/")
    assert page.status_code == 200 and "<main id=\"results\"" in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/static/") for a in assets)
    for asset in assets:
        body = client.get(asset)
        assert body.status_code == 200 and not re.search(r"https?://", body.text), asset


def test_a_text_search_gives_windows_with_their_media_and_thumbnails(client):
    answer = client.get("/api/search", params={"q": "a red ball rises", "k": 4})
    assert answer.status_code == 200
    hits = answer.json()["results"]
    assert len(hits) == 4 and all(h["kind"] == "video" for h in hits)
    first = hits[0]
    assert first["media"] == f"/media/{first['file']}" and first["name"] in ("long.mp4", "clip.mp4")
    media = client.get(first["media"], headers={"Range": "bytes=0-99"})  # the player seeks with ranges
    assert media.status_code == 206 and len(media.content) == 100
    assert media.headers["content-range"] == f"bytes 0-99/{os.path.getsize(first['path'])}"
    thumbnail = client.get(first["thumbnail"])
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    assert thumbnail.content[:2] == b"\xff\xd8"
    assert client.get("/api/info").json()["files"] == 3


def test_an_uploaded_sound_or_video_searches_s_va(client, media_template):
    with open(media_template / "sound.wav", "rb") as sound:
        answer = client.post("/api/search", files={"file": ("query.wav", sound)}, data={"k": "3", "per_file": "1"})
    assert answer.status_code == 200
    hits = answer.json()["results"]
    assert len(hits) == 2 and len({h["file"] for h in hits}) == 2  # one per file: two video files
    with open(media_template / "long.mp4", "rb") as video:
        hits = client.post("/api/search", files={"file": ("q.mp4", video)}, data={"k": "1"}).json()["results"]
    assert hits[0]["name"] == "long.mp4"  # a video is nearest to its own windows


@pytest.mark.parametrize("url, status, message", [
    ("/api/search?q=", 400, "empty"),
    ("/api/search?q=%20%20", 400, "empty"),
    ("/api/search?q=ball&k=100000", 400, "from 1 to 1000"),
    ("/api/search?q=ball&k=-3", 400, "from 1 to 1000"),
    ("/api/search?q=ball&k=ten", 400, "whole number"),
    ("/media/999", 404, "no indexed file"),
    ("/media/-1", 404, ""),
    ("/media/..%2F..%2F..%2Fetc%2Fpasswd", 404, ""),
    ("/media/%2Fetc%2Fpasswd", 404, ""),
    ("/static/..%2Fserver.py", 404, ""),
    ("/static/../server.py", 404, ""),
    ("/thumbnail/999", 404, "no video window"),
    ("/nothing/here", 404, ""),
])
def test_bad_requests_get_a_clean_4xx(client, url, status, message):
    answer = client.get(url)
    assert answer.status_code == status, answer.text
    assert "Traceback" not in answer.text and message in answer.json()["error"]


def test_a_path_outside_the_index_is_never_served(client, tmp_path):
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"secret")
    for url in (f"/media/{outside}", f"/media/..{outside}", f"/static/{outside}"):
        answer = client.get(url)
        assert answer.status_code == 404 and b"secret" not in answer.content


def test_bad_uploads_get_a_clean_4xx(client, media_template, monkeypatch):
    assert client.post("/api/search", files={"file": ("notes.txt", b"hello")}).status_code == 415
    assert client.post("/api/search", data={"k": "3"}).status_code == 400
    corrupt = client.post("/api/search", files={"file": ("clip.mp4", b"not really a video")})
    assert corrupt.status_code == 400 and "clip.mp4" in corrupt.json()["error"]
    assert "vatt-query" not in corrupt.json()["error"]  # the user's file name, not the temporary one
    with open(media_template / "sound.wav", "rb") as sound:
        assert client.post("/api/search", files={"file": ("q.wav", sound)}, data={"k": "0"}).status_code == 400
    monkeypatch.setattr(server, "MAX_UPLOAD_BYTES", 1000)
    with open(media_template / "long.mp4", "rb") as video:
        assert client.post("/api/search", files={"file": ("q.mp4", video)}).status_code == 413


def test_serve_binds_to_this_machine_unless_told_otherwise(random_model, media_template, tmp_path, monkeypatch):
    assert cli.main(["index", str(random_model), str(media_template), str(tmp_path / "i"), "--no-progress"]) == 0
    bound = []
    monkeypatch.setattr("uvicorn.run", lambda app, host, port, **kw: bound.append((host, port)))
    assert cli.main(["serve", str(tmp_path / "i")]) == 0
    assert cli.main(["serve", str(tmp_path / "i"), "--port", "9123", "--host", "0.0.0.0"]) == 0
    assert bound == [("127.0.0.1", 8000), ("0.0.0.0", 9123)]
