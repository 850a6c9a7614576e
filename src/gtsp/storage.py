"""Where Optuna studies live (a sweep's claims, a budget search's trials): a database or a journal file."""
from __future__ import annotations

from optuna.storages import BaseStorage, JournalStorage, RDBStorage

from gtsp.errors import GtspError
from gtsp.sweep.journal import damaged_journal, journal_backend


def open_storage(url: str) -> BaseStorage:
    """An RDB URL (``sqlite:///x.db``, ``postgresql://...``) or a journal file (:mod:`gtsp.sweep.journal`)."""
    try:
        if "://" in url:
            return RDBStorage(url)
        backend = journal_backend(url)
    except GtspError:
        raise
    except Exception as err:  # sqlalchemy / driver errors come in many types
        raise GtspError(f"cannot open sweep storage {url} ({type(err).__name__}: {err}): give a journal file "
                        "path or a database URL such as sqlite:///sweep.db or postgresql://user@host/db") from None
    try:
        return JournalStorage(backend)
    except (AssertionError, KeyError, ValueError, AttributeError, TypeError) as err:  # Optuna's replay failing
        raise damaged_journal(url, err) from None
