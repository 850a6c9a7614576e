"""Values typed on the command line (``key=value`` lists, ratios, YAML scalars) and one-line disk errors.

Shared by ``gtsp``'s sub-commands (train, prune, import-pyg, sweep workers) without importing the
command line itself, so no command module imports another.
"""
from __future__ import annotations

import errno
from collections.abc import Sequence

from gtsp.errors import GtspError


def parse_pairs(text: str, kind: str) -> dict[str, str]:
    """``"a=1,b=2"`` -> ``{"a": "1", "b": "2"}``."""
    pairs = {}
    for item in filter(None, text.split(",")):
        if "=" not in item:
            raise GtspError(f"{kind} entry {item!r} is not key=value: write e.g. {kind} token=0.5,head=0.5")
        key, value = item.split("=", 1)
        if key.strip() in pairs:
            raise GtspError(f"{kind} names {key.strip()} twice ({text}): give each key once")
        pairs[key.strip()] = value.strip()
    return pairs


def yaml_value(text: str):
    import yaml

    return yaml.safe_load(text)


def prune_args(items: Sequence[str]) -> dict:
    """``["layer.drop_prob=0.1"]`` -> ``{"layer": {"drop_prob": 0.1}}`` (merged into the YAML's by ``merge``)."""
    options: dict = {}
    for item in items:
        for key, value in parse_pairs(item, "--prune-arg").items():
            dim, dot, option = key.partition(".")
            if not dot or not dim or not option:
                raise GtspError(f"--prune-arg {key}={value}: name the dimension and the option, "
                                f"e.g. --prune-arg layer.drop_prob=0.1")
            options.setdefault(dim, {})[option] = yaml_value(value)
    return options


def ratio(key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise GtspError(f"--prune {key}={value} is not a number: give a fraction in [0, 1)") from None


DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
               errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied"}


def disk_error_line(err: OSError) -> str:
    """One line for a write that the file system refused: what, where, and how to go on."""
    where = f" writing {err.filename}" if err.filename else ""
    return (f"{DISK_ERRORS[err.errno]}{where}: free space or make the folder writable (or choose another --out / "
            "--cache-root), then run the same command again (a run continues with --resume from its last "
            "checkpoint; gtsp writes each file whole or not at all)")
