import numpy as np

from deltainf.detect import delta_flags, delta_matrix, detection_metrics, drop_counts, score_scale


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
    assert m == {"tpr": 0.5, "precision": 0.5, "n_flagged": 2}
    assert detection_metrics(np.zeros(5, bool), is_poison)["precision"] == 0.0


def test_score_scale_is_robust_unit():
    s = np.array([[1e5, -1e5, 3e5], [0, 0, 0]])
    assert score_scale(s) == 1e5
    assert score_scale(np.zeros((2, 3))) == 1.0
