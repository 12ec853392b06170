"""The live area's packed Δ: the browser's counts at every τ on the slider's grid are the engine's."""
import base64

import numpy as np

from deltainf.figures.influence import DeltaView
from deltainf.figures.live import MAX_POSITIONS, STEP, live_payload, near_cut, tau_grid
from deltainf.influence.delta import delta_flags


def unpack(s: str, n: int, t: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), np.uint8).reshape(n, t)


def test_browser_counts_equal_the_engine_on_every_grid_tau(demo):
    inv = demo.investigation
    view = DeltaView.build(inv.scores(), demo.truth, [f"c{t}" for t in range(inv.config.transforms)],
                           demo.data.y_train.numpy())
    tau0, k0, _ = inv.tau_k()
    grid = tau_grid(tau0 / view.scale)
    assert abs(grid.value(grid.index(tau0 / view.scale)) - tau0 / view.scale) < 1e-9  # the grid passes through it
    p = live_payload(view, grid, "v")
    n, T = p["N"], p["T"]
    below = unpack(p["below"], n, T)
    for i in range(0, grid.n + 1, 7):
        tau = grid.value(i) * view.scale
        counts = (below <= i).sum(axis=1)  # what the browser computes
        np.testing.assert_array_equal(counts, view.counts(tau))
        for k in (0, 4):
            np.testing.assert_array_equal(counts >= T - k, delta_flags(view.delta, tau, k))
    bins = unpack(p["bin"], n, T)
    np.testing.assert_array_equal(np.bincount(bins[:, 0], minlength=p["edges"]["bins"]),
                                  np.histogram(np.clip(view.srel[0], view.edges[0], view.edges[-1]), view.edges)[0])
    assert np.frombuffer(base64.b64decode(p["truth"]), np.uint8).sum() == demo.truth.sum()
    assert len(p["names"]) == T and p["groups"] == ["clean", "poisons"]

    counts = view.counts(tau0)
    inside, outside = near_cut(view, counts, k0)
    assert (counts[inside] >= T - k0).all() and (counts[outside] < T - k0).all()
    assert counts[inside].min() == counts[counts >= T - k0].min()  # the fewest drops still flagged come first
    assert counts[outside].max() == counts[counts < T - k0].max()


def test_grid_covers_the_suggestion_with_room_and_fits_a_byte():
    g = tau_grid(-3.37)
    assert g.lo <= -4.37 + 1e-9 and g.value(g.n) >= 2.0 and g.n <= MAX_POSITIONS
    assert abs(g.value(g.index(-3.37)) + 3.37) < 1e-9  # through the anchor exactly
    far = tau_grid(-40.0, 1.0)
    assert far.n <= MAX_POSITIONS and abs(far.value(far.index(-40.0)) + 40.0) < 1e-9
    assert round(tau_grid(0.0).step, 6) == STEP
