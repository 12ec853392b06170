"""Figures a person reads side by side: every series told apart by marker and colour, names in a legend."""
from __future__ import annotations

from deltainf.detectors import DETECTORS
from deltainf.figures.unlearning import compare_figure


def test_compare_gives_every_detector_its_own_marker_and_a_legend_entry():
    rows = [{"detector": name, "TPR": 0.9, "precision": 0.9, "flagged": 50} for name in DETECTORS]
    fig = compare_figure(rows)
    looks = [(t.marker.symbol, t.marker.color) for t in fig.data]
    assert len(set(s for s, _ in looks)) == len(rows)  # one shape per detector, even where they coincide
    assert [t.name for t in fig.data] == list(DETECTORS)
    assert all(t.mode == "markers" for t in fig.data)  # no labels drawn over each other on the points
    assert fig.layout.legend.x > 1  # the legend beside the plot, not over it
