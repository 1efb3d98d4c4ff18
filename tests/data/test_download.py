"""Download, cache, mirror, offline and corrupt cases, served from a loopback HTTP server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlscratch.data import download
from dlscratch.data.download import DataFile, fetch

PAYLOAD = b"emma\nolivia\nava\n" * 100


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "good.txt").write_bytes(PAYLOAD)
    (root / "bad.txt").write_bytes(PAYLOAD[:-5])

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: str) -> dict[str, DataFile]:
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    reg = {
        "good.txt": DataFile("good.txt", f"{server}/good.txt", sha, len(PAYLOAD)),
        "bad.txt": DataFile("bad.txt", f"{server}/bad.txt", sha, len(PAYLOAD)),
        "gone.txt": DataFile("gone.txt", "http://127.0.0.1:9/gone.txt", sha, len(PAYLOAD)),
    }
    monkeypatch.setattr(download, "REGISTRY", reg)
    monkeypatch.setenv("DLSCRATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DLSCRATCH_DATA", raising=False)
    return reg


def test_download_then_cache(registry: dict[str, DataFile], tmp_path: Path) -> None:
    path = fetch("good.txt")
    assert path == tmp_path / "cache" / "good.txt"
    assert path.read_bytes() == PAYLOAD
    assert [p.name for p in path.parent.iterdir()] == ["good.txt"]  # no temp file left behind
    # second call: served from the cache even when the server is gone
    object.__setattr__(registry["good.txt"], "url", "http://127.0.0.1:9/nowhere")
    assert fetch("good.txt") == path


def test_mirror_is_used_first(registry: dict[str, DataFile], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "gone.txt").write_bytes(PAYLOAD)
    monkeypatch.setenv("DLSCRATCH_DATA", str(mirror))
    assert fetch("gone.txt") == mirror / "gone.txt"
    assert not (tmp_path / "cache" / "gone.txt").exists()


def test_corrupt_mirror_is_reported_not_deleted(registry: dict[str, DataFile], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "good.txt").write_bytes(b"tampered")
    monkeypatch.setenv("DLSCRATCH_DATA", str(mirror))
    with pytest.raises(ValueError, match="corrupt.*good.txt"):
        fetch("good.txt")
    assert (mirror / "good.txt").exists()


def test_corrupt_download_is_not_kept(registry: dict[str, DataFile], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=registry["bad.txt"].sha256):
        fetch("bad.txt")
    cache = tmp_path / "cache"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_corrupt_cache_is_deleted(registry: dict[str, DataFile], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "good.txt").write_bytes(b"half a fi")
    with pytest.raises(ValueError, match="corrupt"):
        fetch("good.txt")
    assert not (cache / "good.txt").exists()
    assert fetch("good.txt").read_bytes() == PAYLOAD  # the next call downloads a good copy


def test_offline_error_names_file_url_and_variable(registry: dict[str, DataFile]) -> None:
    with pytest.raises(FileNotFoundError) as err:
        fetch("gone.txt", timeout=2)
    msg = str(err.value)
    assert "gone.txt" in msg and registry["gone.txt"].url in msg and "DLSCRATCH_DATA" in msg


def test_unknown_name(registry: dict[str, DataFile]) -> None:
    with pytest.raises(ValueError, match="unknown data file 'nope.txt'"):
        fetch("nope.txt")


def test_registry_matches_the_shared_mirror() -> None:
    """The real corpora: checksums as published, loaded through the mirror when CI has one."""
    import os

    mirror = os.environ.get("DLSCRATCH_DATA")
    if not mirror or not Path(mirror, "names.txt").is_file():
        pytest.skip("no local data mirror (DLSCRATCH_DATA) on this machine")
    from dlscratch.data import load_names, load_shakespeare

    names = load_names()
    assert len(names) == 32_033 and names[0] == "emma"
    text = load_shakespeare()
    assert len(text) == 1_115_394 and len(set(text)) == 65
