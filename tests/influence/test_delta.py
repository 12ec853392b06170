import numpy as np

from deltainf.evaluation.metrics import detection_metrics
from deltainf.influence.delta import delta_flags, delta_matrix, drop_counts, score_scale
from deltainf.influence.suggest import suggest_tau_k


def test_delta_is_copy_minus_original():
    scores = np.array([[1.0, 5.0, -2.0], [0.0, 6.0, -3.0], [2.0, 1.0, -1.0]])
    np.testing.assert_array_equal(delta_matrix(scores), [[-1.0, 1.0, -1.0], [1.0, -4.0, 1.0]])


def test_count_rule_at_T_minus_k():
    delta = np.array([[-1.0, -1.0, 2.0, -5.0],
                      [-2.0, 3.0, 1.0, -0.5],
                      [-3.0, -1.0, 1.0, -0.1]])
    np.testing.assert_array_equal(drop_counts(delta, 0.0), [3, 2, 0, 3])
    np.testing.assert_array_equal(delta_flags(delta, 0.0, 0), [True, False, False, True])
    np.testing.assert_array_equal(delta_flags(delta, 0.0, 1), [True, True, False, True])
    np.testing.assert_array_equal(delta_flags(delta, -1.0, 0), [False, False, False, False])  # strict <
    np.testing.assert_array_equal(delta_flags(delta, -1.0, 1), [True, False, False, False])


def test_metrics():
    is_poison = np.array([True, True, False, False, False])
    m = detection_metrics(np.array([True, False, True, False, False]), is_poison)
    assert m == {"tpr": 0.5, "precision": 0.5, "f1": 0.5, "n_flagged": 2}
    assert detection_metrics(np.zeros(5, bool), is_poison)["precision"] == 0.0


def test_score_scale_is_robust_unit():
    s = np.array([[1e5, -1e5, 3e5], [0, 0, 0]])
    assert score_scale(s) == 1e5
    assert score_scale(np.zeros((2, 3))) == 1.0


def test_suggestion_finds_the_valley_without_ground_truth():
    rng = np.random.default_rng(0)
    T, n_clean, n_poison = 20, 500, 20
    clean = rng.normal(0.0, 1.0, size=(T, n_clean))  # Δ of either sign
    poison = rng.normal(-5.0, 1.0, size=(T, n_poison))  # collapse: nearly always negative
    poison[0, :5] = 1.0  # a few poisons miss one copy: k = 1 catches them
    delta = np.concatenate([poison, clean], axis=1)
    tau, k = suggest_tau_k(delta, scale=1.0)  # the poisons one bin below T are part of the pile: k = 1
    flagged = delta_flags(delta, tau, k)
    assert k == 1 and flagged[:n_poison].all() and flagged[n_poison:].sum() <= 5
    tau, k = suggest_tau_k(delta, scale=1.0, k_max=0)  # every copy must drop
    flagged = delta_flags(delta, tau, k)
    assert k == 0 and flagged[5:n_poison].all() and not flagged[:5].any()
    assert suggest_tau_k(delta, 1.0, tau=0.0)[0] == 0.0 and suggest_tau_k(delta, 1.0, k=2)[1] == 2


def test_suggestion_prefers_a_tall_pile_to_a_sparse_tail():
    """A τ so low that few points remain can show a 'cleaner' ratio by chance; the suggestion weighs counts."""
    h_tall = {50: 160, 49: 60, 48: 58, 47: 57}  # τ = 0: 160 at T over a background of ~58
    h_tail = {50: 36, 49: 9, 48: 14, 47: 11}   # τ = −2: a higher ratio, far fewer points
    delta = np.zeros((50, 0))
    for counts_by_tau in (h_tall, h_tail):
        cols = []
        for count, n in counts_by_tau.items():
            col = np.ones(50)
            col[:count] = -3.0 if counts_by_tau is h_tail else -1.0
            cols += [col] * n
        delta = np.concatenate([delta, np.stack(cols, 1)], 1)
    # with τ = 0 both groups drop; with τ = −2 only the second group does
    assert suggest_tau_k(delta, scale=1.0)[0] == 0.0


def test_demo_suggestion_reaches_most_of_the_best_grid_f1(demo):
    from deltainf.influence.suggest import TAU_GRID

    def f1(fl):
        return detection_metrics(fl, demo.is_poison)["f1"]

    scores = demo.investigation.scores()
    delta, scale = delta_matrix(scores), score_scale(scores)
    best = max(f1(delta_flags(delta, t * scale, k)) for t in TAU_GRID for k in range(4))
    tau, k = suggest_tau_k(delta, scale)
    assert f1(delta_flags(delta, tau, k)) >= 0.8 * best
