"""The one user-facing error type of gtsp.

A :class:`GtspError` carries a single line that names the problem and the fix.
The command line prints it without a traceback and exits with status 2.
"""


class GtspError(Exception):
    """A problem the user can fix: bad input, missing files, impossible options."""


class RelayedError(GtspError):
    """Under torchrun: rank 0's refusal, raised on the other ranks too (printed by rank 0 alone)."""
