"""``gtsp report``: compare many runs (e.g. a sweep) in tables, plots and one HTML page.

- :mod:`gtsp.report.collect` reads every ``results.json`` under a folder;
- :mod:`gtsp.report.groups` groups repeats of a setting and compares them with dense;
- :mod:`gtsp.report.tables` and :mod:`gtsp.report.plots` make the tables and figures;
- :mod:`gtsp.report.html` assembles the self-contained page; :mod:`gtsp.report.build` writes
  it all (``report.md``, ``report.json``, ``report.html``, PNGs).
"""
