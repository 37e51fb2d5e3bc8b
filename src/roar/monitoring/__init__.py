"""ROAR's monitoring, as code: the series it exposes, its Prometheus rules and its dashboard.

``series`` names every series the rules and the dashboard read (taken from the metric objects in
:mod:`roar.metrics` and :mod:`roar.operator.metrics`, so a renamed metric renames them all);
``rules`` holds the recording rules and alerts; ``dashboard`` builds the Grafana dashboard (it
needs the ``monitoring`` extra); ``render`` writes every generated file under deploy/
(``python -m roar.monitoring``), and a test fails when a committed one drifts.
"""
