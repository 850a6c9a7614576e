"""Where Optuna studies live (a sweep's claims, a budget search's trials): a database or a journal file."""
from __future__ import annotations

from pathlib import Path

from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from gtsp.errors import GtspError


def open_storage(url: str) -> BaseStorage:
    """An RDB URL (``sqlite:///x.db``, ``postgresql://...``) or a journal file path."""
    try:
        if "://" in url:
            return RDBStorage(url)
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(url))
    except Exception as err:  # sqlalchemy / driver errors come in many types
        raise GtspError(f"cannot open sweep storage {url} ({type(err).__name__}: {err}): give a journal file "
                        "path or a database URL such as sqlite:///sweep.db or postgresql://user@host/db") from None
