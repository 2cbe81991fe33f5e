"""A SQLite database whose statements all run on one thread of its own, off the event loop.

The shared shape of the global databases (dmarceval.db, dmarcrpt.db, tlsrpt.db,
mtasts.db): WAL mode, one connection, one worker thread. Subclasses set SCHEMA
(run at open) and THREAD_NAME, and add their queries using ``await self._run(fn)``
with ``self.conn`` inside fn. :class:`PerDataDir` keeps one open database per data
directory for the whole process.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

T = TypeVar("T")


class ThreadDB:
    SCHEMA = ""
    THREAD_NAME = "sqlite"
    # Seconds a statement waits for a lock held by another connection.
    BUSY_TIMEOUT = 5.0

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.THREAD_NAME)
        self._conn: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: Path) -> Self:
        """Open (creating) the database at path, its schema applied."""
        db = cls(path)
        await db._run(db._open_sync)
        return db

    def _connect(self) -> sqlite3.Connection:
        """A new connection in WAL mode with full syncs (on the database thread)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        c = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=self.BUSY_TIMEOUT)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=FULL")
        return c

    def _open_sync(self) -> None:
        c = self._connect()
        c.executescript(self.SCHEMA)
        self._conn = c

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def conn(self) -> sqlite3.Connection:
        assert self._conn is not None, "database not open"
        return self._conn

    async def close(self) -> None:
        def run() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._run(run)
        self._executor.shutdown(wait=True)


D = TypeVar("D", bound=ThreadDB)


class PerDataDir(Generic[D]):
    """The process's one open database of a kind per data directory (e.g. ``<data>/tlsrpt.db``),
    opened on first use and shared by the SMTP server, the queue and the reporters; closed at shutdown."""

    def __init__(self, cls: type[D], filename: str) -> None:
        self.cls = cls
        self.filename = filename
        self._dbs: dict[Path, D] = {}
        self._lock = asyncio.Lock()

    async def get(self, data_dir: Path) -> D:
        path = (data_dir / self.filename).resolve()
        async with self._lock:
            db = self._dbs.get(path)
            if db is None:
                db = await self.cls.open(path)
                self._dbs[path] = db
            return db

    async def close_all(self) -> None:
        async with self._lock:
            for db in self._dbs.values():
                await db.close()
            self._dbs.clear()
