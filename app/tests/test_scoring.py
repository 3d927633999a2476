import time

import pytest

from salience.models import FeatureItem
from salience.scoring import salience, score_features, score_pairs


def test_salience_is_product() -> None:
    assert salience(0.5, 0.3) == pytest.approx(0.15)
    assert salience(0.0, 1.0) == 0.0
    assert salience(1.0, 1.0) == 1.0


def test_score_pairs_and_features_agree() -> None:
    pairs = [(0.5, 0.3), (0.5, 0.5), (1.0, 0.0)]
    items = [FeatureItem(task_risk=r, failure_severity=s) for r, s in pairs]
    assert score_pairs(pairs) == pytest.approx([0.15, 0.25, 0.0])
    assert score_features(items) == score_pairs(pairs)


def test_feature_defaults_are_half() -> None:
    assert score_features([FeatureItem()]) == pytest.approx([0.25])


def test_ten_thousand_items_is_fast() -> None:
    items = [FeatureItem(task_risk=(i % 100) / 100, failure_severity=0.5) for i in range(10_000)]
    start = time.perf_counter()
    scores = score_features(items)
    elapsed = time.perf_counter() - start
    assert len(scores) == 10_000
    assert scores[1] == pytest.approx(0.005)
    assert elapsed < 0.25, elapsed  # ~1 ms in practice; generous for loaded CI hosts
