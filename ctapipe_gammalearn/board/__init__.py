"""The experiment dashboard: any number of training runs and benchmark reports in one HTML page.

``runs`` finds what a RUN argument is (training output, benchmark report, DL2 file) and
reads its json lazily; ``methods`` turns a benchmark's ``metrics.json`` into per-method
curves; ``dl2`` computes the same on the fly from DL2 files; ``provenance`` matches
ctapipe provenance logs to runs; ``configdiff`` finds the settings that differ;
``figures`` (plotly), ``page`` (the HTML) and ``static`` (the matplotlib summary PNG)
draw them. plotly and matplotlib are imported only where a page or figure is drawn.
"""

from .runs import BoardInputError, Run, find_runs

__all__ = ["BoardInputError", "Run", "find_runs"]
