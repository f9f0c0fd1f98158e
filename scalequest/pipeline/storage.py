"""Where a run folder lives: a local path or any URI pyarrow's filesystems take (s3://bucket/prefix, gs://…,
hdfs://…). Code that writes or reads a run folder through `Folder` serves a laptop's disk, a shared mount and object
storage alike. Credentials come from the standard environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
AWS_PROFILE, AWS_ENDPOINT_URL, …); a URI carrying them is refused, so they never reach a log, the run folder or the
config hash.

  Folder(uri)                  a folder; `folder / "name"` a child; `.uri` what to print and store
  .write_text / .read_text / .write_bytes / .append_text / .exists / .is_file / .is_dir / .files() / .move_to
  .write_parquet(table, still_mine)   the whole file or nothing (local: temp + fsync + rename; object stores: one PUT)
  .read_parquet(columns) / .dataset()  pyarrow reads through the folder's filesystem (hive partitions)
  os.fspath(folder)            the local path (a folder on object storage has none: TypeError naming the URI)

The run folder (run_dir, shards, report, calibration, cost, card, plots) is read and written only through it.
Test: tests/pipeline/test_storage.py (local and a loopback S3 server), tests/pipeline/test_object_storage.py (a
run written to that server, read back and resumed).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from scalequest.errors import ConfigError


def is_uri(location: str) -> bool:
    return "://" in str(location) and not str(location).startswith("file://")


def as_folder(location: Folder | Path | str) -> Folder:
    """`location` as a Folder (a Folder stays itself, keeping its filesystem)."""
    return location if isinstance(location, Folder) else Folder(location)


class Folder:
    """A folder on a pyarrow filesystem. `location`: a local path or a URI (s3://bucket/prefix)."""

    def __init__(self, location: str | Path, _fs=None, _path: str | None = None):
        import pyarrow.fs as pafs

        self.uri = str(location)
        if _fs is not None:
            self.fs, self.path = _fs, _path
        elif is_uri(self.uri):
            parts = urlsplit(self.uri)
            if parts.username or parts.password or parts.query:
                raise ConfigError(f"output.dir: '{parts.scheme}://{parts.hostname}/…' carries credentials or options "
                                  "in the URI — give them through the standard environment (AWS_ACCESS_KEY_ID, "
                                  "AWS_PROFILE, AWS_ENDPOINT_URL, …) so they are never logged or stored")
            self.fs, self.path = pafs.FileSystem.from_uri(self.uri)
        else:
            self.fs, self.path = pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(self.uri))
            self.uri = self.path
        self.local = type(self.fs).__name__ == "LocalFileSystem"

    def __truediv__(self, name: str) -> Folder:
        return Folder(f"{self.uri.rstrip('/')}/{name}", self.fs, f"{self.path.rstrip('/')}/{name}")

    def __repr__(self) -> str:
        return f"Folder({self.uri!r})"

    def __str__(self) -> str:
        return self.uri

    def __fspath__(self) -> str:
        if not self.local:
            raise TypeError(f"{self.uri} is on object storage and has no local path — read it through "
                            "scalequest.pipeline.storage.Folder or pyarrow (filesystem=folder.fs)")
        return self.path

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def _info(self):
        return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        """A folder on disk, or a prefix with objects under it on an object store."""
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.Directory

    def make(self) -> Folder:
        """Create the folder (and parents) where the filesystem has folders; object stores need none."""
        self.fs.create_dir(self.path, recursive=True)
        return self

    def write_bytes(self, data: bytes) -> None:
        if self.local:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self.fs.open_output_stream(self.path) as f:
            f.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def append_text(self, text: str) -> None:
        """Add `text` at the end of this file (created when missing). Object stores cannot append: the file is read
        and written again whole, so keep such files small and their writer single (the driver)."""
        if self.local:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(text)
            return
        self.write_text((self.read_text() if self.is_file() else "") + text)

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as f:
            return f.read()

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def files(self, recursive: bool = True) -> list[Folder]:
        """The files under this folder (sorted by path); none when it does not exist."""
        import pyarrow.fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=recursive, allow_not_found=True))
        base = self.path.rstrip("/")
        return [self / info.path[len(base) + 1:] for info in sorted(infos, key=lambda i: i.path)
                if info.type == pafs.FileType.File]

    def read_parquet(self, columns: list[str] | None = None):
        """This Parquet file as a pyarrow Table (only `columns` when given)."""
        import pyarrow.parquet as pq

        return pq.read_table(self.path, columns=columns, filesystem=self.fs)

    def dataset(self):
        """The Parquet files under this folder as a pyarrow dataset, hive partitions (status=kept/…) as columns."""
        import pyarrow.dataset as pads

        return pads.dataset(self.path, format="parquet", partitioning="hive", filesystem=self.fs)

    def relative_to(self, other: Folder) -> str:
        return self.path[len(other.path.rstrip("/")) + 1:]

    def move_to(self, dest: Folder) -> None:
        """Move this file to `dest` (object stores: copy, then delete)."""
        if self.local:
            Path(dest.path).parent.mkdir(parents=True, exist_ok=True)
        self.fs.move(self.path, dest.path)

    def write_parquet(self, table, still_mine=lambda: True) -> bool:
        """Write `table` here so that the file either does not exist or is whole; nothing is put in place unless
        `still_mine()` holds just before. Local: a hidden temporary, fsync, rename. Object stores: the upload is
        buffered and made visible in one PUT (or a completed multipart upload) when `still_mine()` holds, so a
        reader never sees part of it. Returns whether it was written."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.local:
            path = Path(self.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
            with open(tmp, "wb") as f:
                pq.write_table(table, f)
                f.flush()
                os.fsync(f.fileno())
            if not still_mine():
                tmp.unlink(missing_ok=True)
                return False
            os.replace(tmp, path)
            return True
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        data = sink.getvalue()
        if not still_mine():
            return False
        with self.fs.open_output_stream(self.path) as f:
            f.write(data)
        return True
