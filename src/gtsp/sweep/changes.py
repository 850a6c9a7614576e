"""Finished points whose configuration the sweep file has changed since: found, and settled only by the user.

A point's resolved configuration is written to ``POINT/point.yaml`` (with its SHA-256 in a comment
line) before it trains. A finished point (``results.json``) whose ``point.yaml`` differs from what
the sweep file resolves to now holds results of another configuration; counting it as done would
mix both in the report. So the sweep stops and names those points, until the user chooses:

- ``--rerun-changed``: their run files are removed and they train again with the new configuration;
- ``--accept-changed``: their results are kept as they are; the new configuration's digest is
  written to ``POINT/point.accepted``, so the question is not asked again for that configuration.

The configurations themselves are compared (not only digests), so ``point.yaml`` files written
before digests existed still count as done when they hold the same configuration; a field missing
from an older ``point.yaml`` counts as equal when the current value is the field's default.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gtsp.config import RunConfig
from gtsp.errors import GtspError
from gtsp.sweep.grid import Point

log = logging.getLogger("gtsp.sweep")
POINT_CONFIG = "point.yaml"
ACCEPTED = "point.accepted"
BUDGET_DIR = "budget"  # a budget run's search folder: its choice belongs to the old configuration


@dataclass(frozen=True)
class Changed:
    """A finished point and how its stored configuration differs from the current one."""

    point: Point
    differences: tuple[str, ...]  # "epochs: 100 -> 2"


def config_digest(config: dict[str, Any]) -> str:
    """SHA-256 of a resolved configuration (keys sorted, so the same settings give the same digest)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def point_yaml(config: dict[str, Any]) -> str:
    """The text of ``point.yaml``: the digest as a comment, then the configuration ``gtsp train --config`` reads."""
    return f"# config sha256 {config_digest(config)}\n" + yaml.safe_dump(config, sort_keys=False)


def changed_points(out: Path, points: list[Point]) -> list[Changed]:
    """The finished points under ``out`` whose stored configuration differs from theirs now (and was not accepted)."""
    changed = []
    for point in points:
        run_dir = out / point.name
        if not (run_dir / "results.json").is_file() or not (run_dir / POINT_CONFIG).is_file():
            continue
        differences = _differences(_stored(run_dir / POINT_CONFIG), point.config)
        if differences and _accepted(run_dir) != config_digest(point.config):
            changed.append(Changed(point, differences))
    return changed


def settle(out: Path, changed: list[Changed], *, rerun: bool, accept: bool) -> list[Point]:
    """Apply the user's choice for ``changed`` points; the points to train again (empty unless ``rerun``)."""
    if not changed:
        return []
    if rerun and accept:
        raise GtspError("--rerun-changed and --accept-changed contradict each other: choose one")
    names = ", ".join(f"{c.point.name} ({'; '.join(c.differences[:3])})" for c in changed[:3])
    more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
    if not (rerun or accept):
        raise GtspError(f"{len(changed)} finished point(s) were trained with another configuration than the sweep "
                        f"file gives now: {names}{more}; run again with --rerun-changed to train them with the "
                        "new configuration (their run files are replaced), or --accept-changed to keep their results")
    for c in changed:
        run_dir = out / c.point.name
        if accept:
            (run_dir / ACCEPTED).write_text(config_digest(c.point.config) + "\n")
        else:
            _clear(run_dir)
    verb = "kept with their earlier results" if accept else "will train again"
    log.warning("%d changed point(s) %s: %s%s", len(changed), verb, names, more)
    return [] if accept else [c.point for c in changed]


def _stored(path: Path) -> dict[str, Any]:
    try:
        stored = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise GtspError(f"{path} is not valid YAML ({err}): restore it, or remove that point's folder to "
                        "train it again") from None
    return stored if isinstance(stored, dict) else {}


def _differences(stored: dict[str, Any], current: dict[str, Any]) -> tuple[str, ...]:
    defaults = RunConfig().to_dict()
    differences = []
    for key in dict.fromkeys([*current, *stored]):
        if key not in stored and current.get(key) == defaults.get(key):
            continue  # a field gtsp gained after this point was written, at its default
        if stored.get(key) != current.get(key):
            differences.append(f"{key}: {json.dumps(stored.get(key))} -> {json.dumps(current.get(key))}")
    return tuple(differences)


def _accepted(run_dir: Path) -> str | None:
    path = run_dir / ACCEPTED
    return path.read_text().strip() if path.is_file() else None


def _clear(run_dir: Path) -> None:
    """Remove the point's run files (what ``gtsp train --overwrite`` removes) and its budget search."""
    from gtsp.train.run_folder import RunFolder  # torch-heavy; the CLI's help must not pay for it

    with RunFolder(run_dir, overwrite=True):
        pass
    shutil.rmtree(run_dir / BUDGET_DIR, ignore_errors=True)
    (run_dir / ACCEPTED).unlink(missing_ok=True)


__all__ = ["ACCEPTED", "POINT_CONFIG", "Changed", "changed_points", "config_digest", "point_yaml", "settle"]
