"""``gtsp report``: compare many runs (e.g. a sweep) in tables, plots and one HTML page.

- :mod:`gtsp.report.collect` reads every ``results.json`` under a folder;
- :mod:`gtsp.report.groups` groups repeats of a setting and links each to its dense reference;
- :mod:`gtsp.report.paired` pairs each run with the dense run of its fold and seed, with
  :mod:`gtsp.report.estimate` (mean, std, t-based 95 % interval) and
  :mod:`gtsp.report.selection` (dense re-selected in a pruned run's epoch window);
- :mod:`gtsp.report.tables`, :mod:`gtsp.report.plots` and :mod:`gtsp.report.curves` make the
  tables and figures; :mod:`gtsp.report.html` assembles the self-contained page;
- :mod:`gtsp.report.output` guards the report folder; :mod:`gtsp.report.build` writes it all
  (``report.md``, ``report.json``, ``report.html``, PNGs).
"""
