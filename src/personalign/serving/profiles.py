"""Users' profiles in SQLite (stdlib sqlite3): users, their API keys (only a hash is stored), the preference each
has stated, and their feedback events.

WAL journal, foreign keys on, synchronous FULL: every write is one transaction, committed before the call returns,
so an acknowledged write survives a kill -9 of the server. The schema carries its version (PRAGMA user_version)
and grows by the MIGRATIONS below, applied in order, each in its own transaction.
"""

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import PersonalignError
from ..models import personalign_home

# MIGRATIONS[i] takes the schema from version i to i + 1; a new version is a new entry, never an edit of one
MIGRATIONS = [
    """
    CREATE TABLE users (name TEXT PRIMARY KEY, admin INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
    CREATE TABLE api_keys (hash TEXT PRIMARY KEY,
                           user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE, created REAL NOT NULL);
    CREATE TABLE stated (user TEXT PRIMARY KEY REFERENCES users(name) ON DELETE CASCADE,
                         preference TEXT, dims TEXT, beta REAL, method TEXT);
    CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT,
                           user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE, created REAL NOT NULL,
                           kind TEXT NOT NULL, prompt TEXT NOT NULL, answer_a TEXT NOT NULL, answer_b TEXT,
                           choice TEXT NOT NULL);
    CREATE INDEX feedback_by_user ON feedback(user, id);
    """,
]
KEY_PREFIX = "pa-"  # personalign keys are told apart from others' at a glance (and in leaked-secret scanners)
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


def default_db() -> Path:
    return personalign_home() / "profiles.db"


@dataclass(frozen=True)
class User:
    name: str
    admin: bool
    created: float


@dataclass(frozen=True)
class Stated:
    """A user's saved preference: what a request of theirs decodes with unless it says otherwise."""
    preference: str | None = None
    dims: dict | None = None
    beta: float | None = None
    method: str | None = None

    def fields(self) -> dict:
        """As request extension fields (only those set)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Feedback:
    """A pairwise choice (kind "pair": answer_a against answer_b, choice "a", "b" or "tie") or a rating of one
    answer (kind "rating": choice "up" or "down")."""
    kind: str
    prompt: str
    answer_a: str
    answer_b: str | None
    choice: str


class ProfileStore:
    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # one connection shared by the server's threads, each use under the lock
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
        except (OSError, sqlite3.Error) as error:
            raise PersonalignError(f"cannot open the profile database {self.path}: {error}") from None
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._lock = threading.Lock()
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        version = self.version
        if version > len(MIGRATIONS):
            raise PersonalignError(f"the profile database {self.path} has schema version {version}, newer than this "
                                   f"personalign knows ({len(MIGRATIONS)}): upgrade personalign")
        for number in range(version, len(MIGRATIONS)):
            with self._transaction() as db:
                for statement in filter(str.strip, MIGRATIONS[number].split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number + 1}")

    def _transaction(self):
        return _Transaction(self._db, self._lock)

    # ---- users and keys -------------------------------------------------------------------------------------
    def add_user(self, name: str, admin: bool = False) -> str:
        """Create a user; returns their first API key (shown once: only its hash is kept)."""
        _check_name(name)
        key = new_key()
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise PersonalignError(f"user {name!r} exists already")
            db.execute("INSERT INTO users VALUES (?, ?, ?)", (name, int(admin), time.time()))
            db.execute("INSERT INTO api_keys VALUES (?, ?, ?)", (hash_key(key), name, time.time()))
        return key

    def remove_user(self, name: str) -> None:
        """Remove a user with their keys, stated preference and feedback."""
        with self._transaction() as db:
            if db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise PersonalignError(f"no user {name!r}")

    def users(self) -> list[User]:
        with self._lock:
            rows = self._db.execute("SELECT name, admin, created FROM users ORDER BY name").fetchall()
        return [User(name, bool(admin), created) for name, admin, created in rows]

    def user(self, name: str) -> User | None:
        with self._lock:
            row = self._db.execute("SELECT name, admin, created FROM users WHERE name = ?", (name,)).fetchone()
        return User(row[0], bool(row[1]), row[2]) if row else None

    def user_for_key(self, key: str) -> User | None:
        with self._lock:
            row = self._db.execute("SELECT u.name, u.admin, u.created FROM api_keys k JOIN users u ON u.name = k.user "
                                   "WHERE k.hash = ?", (hash_key(key),)).fetchone()
        return User(row[0], bool(row[1]), row[2]) if row else None

    # ---- stated preferences ---------------------------------------------------------------------------------
    def set_stated(self, name: str, stated: Stated) -> None:
        with self._transaction() as db:
            if not db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise PersonalignError(f"no user {name!r}")
            dims = json.dumps(stated.dims) if stated.dims is not None else None
            db.execute("INSERT OR REPLACE INTO stated VALUES (?, ?, ?, ?, ?)",
                       (name, stated.preference, dims, stated.beta, stated.method))

    def stated(self, name: str) -> Stated | None:
        with self._lock:
            row = self._db.execute("SELECT preference, dims, beta, method FROM stated WHERE user = ?",
                                   (name,)).fetchone()
        if row is None:
            return None
        return Stated(row[0], json.loads(row[1]) if row[1] is not None else None, row[2], row[3])

    # ---- feedback -------------------------------------------------------------------------------------------
    def add_feedback(self, name: str, event: "Feedback") -> int:
        """Store one event (committed when this returns); returns its id."""
        with self._transaction() as db:
            if not db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise PersonalignError(f"no user {name!r}")
            cursor = db.execute("INSERT INTO feedback (user, created, kind, prompt, answer_a, answer_b, choice) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?)", (name, time.time(), event.kind, event.prompt,
                                                                 event.answer_a, event.answer_b, event.choice))
            return cursor.lastrowid

    def feedback(self, name: str) -> list[tuple[int, "Feedback"]]:
        """A user's events, oldest first, with their ids."""
        with self._lock:
            rows = self._db.execute("SELECT id, kind, prompt, answer_a, answer_b, choice FROM feedback WHERE user = ? "
                                    "ORDER BY id", (name,)).fetchall()
        return [(row[0], Feedback(*row[1:])) for row in rows]

    def feedback_version(self, name: str) -> tuple[int, int | None]:
        """(number of events, newest id): changes whenever the user's feedback does, read without the events."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*), MAX(id) FROM feedback WHERE user = ?", (name,)).fetchone()

    def integrity(self) -> str:
        """SQLite's own check: 'ok' when the file is sound."""
        with self._lock:
            return self._db.execute("PRAGMA integrity_check").fetchone()[0]


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT under the store's lock; ROLLBACK when the body raises."""

    def __init__(self, db, lock):
        self.db, self.lock = db, lock

    def __enter__(self):
        self.lock.acquire()
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, error, trace):
        try:
            self.db.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self.lock.release()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """Keys are 256 random bits, so a plain SHA-256 is enough: no dictionary to guess them from."""
    return hashlib.sha256(key.encode()).hexdigest()


def _check_name(name: str) -> None:
    if not name or len(name) > 64 or not set(name) <= _NAME_CHARS:
        raise PersonalignError(f"a user name is 1-64 letters, digits, '.', '_', '-' or '@'; got {name!r}")
