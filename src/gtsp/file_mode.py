"""The mode of files gtsp writes through temporary files: what ``open`` would give, not ``mkstemp``'s 0600.

Run folders on a shared file system (workers of a sweep on several machines, colleagues reading
the results) must be readable as any file the user creates: ``0666`` minus the umask.
"""
from __future__ import annotations

import os


def umask() -> int:
    """The process's current umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def as_new_file(path: str | os.PathLike) -> None:
    """Give ``path`` (a ``mkstemp`` file about to be renamed into place) the mode of a newly created file."""
    os.chmod(path, 0o666 & ~umask())
