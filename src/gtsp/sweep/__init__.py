"""``gtsp sweep``: run a grid of ``gtsp train`` points, resumably, on one or many workers.

- :mod:`gtsp.sweep.spec` reads and checks the sweep file (``base:``, ``grid:``, ``out:``);
- :mod:`gtsp.sweep.grid` expands the grid into named points, each a full run configuration;
- :mod:`gtsp.sweep.study` keeps the grid in an Optuna study (``GridSampler`` over point
  indices) on shared storage and derives each point's state from its trials;
- :mod:`gtsp.sweep.journal` opens journal files with a lock that never hangs on a stale one;
- :mod:`gtsp.sweep.claim` makes sure one process at a time runs a point (a file lock);
- :mod:`gtsp.sweep.runner` runs one point as a ``gtsp train`` subprocess;
- :mod:`gtsp.sweep.worker` is the loop a worker runs until every point is settled;
- :mod:`gtsp.sweep.cli` is the command line.
"""
