"""Files that are not tables (models, checkpoints, reports, scratch), on a local folder or a URI.

One small API over pyarrow's file systems, usable on the driver and in training ranks alike: a local
path (or file: URI) uses the local file system; hdfs://, s3a:// (read as s3://), gs://, abfs[s]://
use pyarrow's own. Writes are atomic: a temporary file in the same folder, then a rename.
"""
from __future__ import annotations

import posixpath
from urllib.parse import urlparse

import pyarrow.fs as pafs

_SCHEMES = {"s3a": "s3", "s3n": "s3", "abfss": "abfs"}


def filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """(file system, path within it) for a local path or a URI."""
    if location.startswith("file:"):
        return pafs.LocalFileSystem(), urlparse(location).path
    if "://" not in location:
        return pafs.LocalFileSystem(), location
    scheme, rest = location.split("://", 1)
    return pafs.FileSystem.from_uri(f"{_SCHEMES.get(scheme, scheme)}://{rest}")


def join(location: str, *parts: str) -> str:
    return "/".join([location.rstrip("/"), *parts])


def makedirs(location: str) -> None:
    fs, path = filesystem(location)
    fs.create_dir(path, recursive=True)


def exists(location: str) -> bool:
    fs, path = filesystem(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def listdir(location: str) -> list[str]:
    """Names of the entries of a folder (empty when it does not exist)."""
    fs, path = filesystem(location)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return []
    return sorted(posixpath.basename(info.path) for info in fs.get_file_info(pafs.FileSelector(path)))


def read_bytes(location: str) -> bytes:
    fs, path = filesystem(location)
    with fs.open_input_stream(path) as stream:
        return stream.read()


def write_bytes(location: str, data: bytes) -> str:
    """Write a whole file atomically (temporary file, then rename). Returns the location."""
    fs, path = filesystem(location)
    folder, name = posixpath.split(path)
    fs.create_dir(folder, recursive=True)
    tmp = posixpath.join(folder, f".{name}.tmp")
    with fs.open_output_stream(tmp) as out:
        out.write(data)
    fs.move(tmp, path)
    return location
