"""Where the bundles of a query live: a local runs root, or an fsspec URL (``s3://...``).

The local case needs nothing beyond the standard library; a URL is opened with fsspec
(``capa[s3]`` installs s3fs), so DuckDB reads the Parquet files through the same
filesystem object (``register_filesystem``) instead of its httpfs extension, which it would
have to download at run time.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from capa.errors import QueryError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["BundleStore", "is_url"]

_MANIFEST = "manifest.json"


def is_url(root: str | Path) -> bool:
    """Whether ``root`` names a remote store (``scheme://...``) rather than a directory."""
    return isinstance(root, str) and "://" in root and not root.startswith("file://")


class BundleStore:
    """Read access to the bundles under one root, local or remote.

    Paths handed out by this class are strings in the store's own form: absolute local
    paths, or ``bucket/prefix/run`` for fsspec (:meth:`uri` turns them into the
    ``s3://bucket/...`` form DuckDB reads).

    The root may contain ``*`` wildcards (``s3://lab/rigs/*/runs``: every rig's runs root
    in one query); its bundles are the directories one level below each match.

    Args:
        root: a runs root directory, or a URL such as ``s3://bucket/prefix``.
        storage_options: keyword arguments for the fsspec filesystem (``endpoint_url`` is
            passed to the S3 client); ``None`` uses the library's defaults (AWS
            environment variables, profile, ``AWS_ENDPOINT_URL``).
    """

    def __init__(self, root: str | Path, storage_options: Mapping[str, Any] | None = None) -> None:
        self.fs: Any = None
        self.wildcard = "*" in str(root)
        if is_url(root):
            self.fs, self.root = _open_fs(str(root), dict(storage_options or {}))
            self.display = str(root)
        else:
            local = Path(str(root).removeprefix("file://")).absolute()
            if not self.wildcard:
                local = local.resolve()
                if not local.is_dir():
                    raise QueryError(f"runs root {local} does not exist")
            self.root = str(local)
            self.display = str(local)

    @property
    def base(self) -> str:
        """The longest directory prefix of the root without a wildcard (what a query may read)."""
        parts = self.root.split("/")
        for i, part in enumerate(parts):
            if "*" in part:
                return "/".join(parts[:i])
        return self.root

    @property
    def remote(self) -> bool:
        """Whether the bundles are read through fsspec."""
        return self.fs is not None

    def uri(self, path: str) -> str:
        """``path`` as DuckDB must name it (local path, or ``protocol://`` form)."""
        return str(self.fs.unstrip_protocol(path)) if self.fs is not None else path

    def join(self, *parts: str) -> str:
        """Join path components in the store's own form."""
        return "/".join(p.rstrip("/") for p in parts if p)

    def glob(self, base: str, pattern: str) -> list[str]:
        """Sorted matches of the relative ``pattern`` under the directory ``base``."""
        if self.fs is None:
            if "*" in base:  # a wildcard root: Path.glob takes relative patterns only
                import glob

                return sorted(
                    glob.glob(f"{glob.escape(self.base)}{base[len(self.base) :]}/{pattern}")
                )
            return sorted(str(p) for p in Path(base).glob(pattern))
        where = self.join(base, pattern)
        return sorted(str(p) for p in self._remote("list", where, self.fs.glob, where))

    def _remote(self, action: str, path: str, call: Any, *args: Any) -> Any:
        """``call(*args)`` on the remote filesystem; any failure is one QueryError line.

        Client libraries raise their own exception types (botocore's
        ``EndpointConnectionError`` and ``ClientError`` are not ``OSError``), so every
        exception is turned into the store's error, naming the URL.
        """
        try:
            return call(*args)
        except Exception as exc:
            raise QueryError(
                f"cannot {action} {self.uri(path)}: {type(exc).__name__}: {exc}"
            ) from exc

    def bundle_dirs(self) -> list[str]:
        """Every directory directly under the root that holds a ``manifest.json``."""
        return [p.rsplit("/", 1)[0] for p in self.glob(self.root, f"*/{_MANIFEST}")]

    def read_manifest(self, bundle: str) -> dict[str, Any]:
        """The parsed ``manifest.json`` of ``bundle`` (any schema version, as plain JSON).

        Raises:
            QueryError: unreadable or not a JSON object.
        """
        path = self.join(bundle, _MANIFEST)
        try:
            if self.fs is None:
                text = Path(path).read_text(encoding="utf-8")
            else:
                text = self._remote("read", path, self.fs.cat_file, path).decode("utf-8")
            data = json.loads(text)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise QueryError(f"{self.uri(path)}: unreadable manifest ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("run_id"), str):
            raise QueryError(f"{self.uri(path)}: not a capa manifest (no run_id)")
        return data

    def exists(self, path: str) -> bool:
        """Whether the file ``path`` exists."""
        if self.fs is None:
            return Path(path).is_file()
        return bool(self._remote("check", path, self.fs.exists, path))

    def read_bytes(self, path: str) -> bytes:
        """The whole file ``path`` (small files only: configs)."""
        if self.fs is None:
            return Path(path).read_bytes()
        return bytes(self._remote("read", path, self.fs.cat_file, path))

    def parquet_schema(self, path: str) -> pa.Schema:
        """The Arrow schema of a Parquet file (reads its footer only).

        Raises:
            QueryError: not a complete Parquet file (an open bundle's part still being
                written has no footer yet).
        """
        import pyarrow.parquet as pq

        try:
            if self.fs is None:
                return pq.read_schema(path)
            with self.fs.open(path, "rb") as fh:
                return pq.read_schema(fh)
        except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
            raise QueryError(f"{self.uri(path)}: not a complete Parquet file ({exc})") from exc
        except Exception as exc:  # a client library's own transport error (see _remote)
            raise QueryError(f"cannot read {self.uri(path)}: {type(exc).__name__}: {exc}") from exc

    @contextmanager
    def sqlite(self, path: str, *, immutable: bool) -> Iterator[sqlite3.Connection]:
        """A read-only SQLite connection to ``path`` (a remote file is copied to a temp dir).

        ``immutable`` (sealed bundles: the file never changes again) opens it without
        locks or a ``-shm`` file, so reading never creates a file inside the bundle;
        otherwise it is opened ``mode=ro`` (a running writer's WAL is honoured).
        """
        with tempfile.TemporaryDirectory(prefix="capa-query-") as tmp:
            local = path
            if self.fs is not None:
                local = str(Path(tmp) / "events.sqlite")
                self._remote("download", path, self.fs.get, path, local)
                immutable = True  # our own private copy
            flag = "immutable=1" if immutable else "mode=ro"
            conn = sqlite3.connect(f"{Path(local).as_uri()}?{flag}", uri=True, timeout=5.0)
            try:
                yield conn
            finally:
                conn.close()


def _open_fs(url: str, options: dict[str, Any]) -> tuple[Any, str]:
    try:
        import fsspec  # type: ignore[import-untyped]
    except ImportError:
        raise QueryError(
            f"reading bundles from {url} needs fsspec and s3fs: pip install 'capa[s3]'"
        ) from None
    endpoint = options.pop("endpoint_url", None)
    if endpoint:
        options.setdefault("client_kwargs", {})["endpoint_url"] = endpoint
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:
        raise QueryError(f"no filesystem for {url}: {exc} (pip install 'capa[s3]')") from None
    except (ValueError, OSError) as exc:
        raise QueryError(f"cannot open {url}: {exc}") from exc
    return fs, str(path).rstrip("/")
