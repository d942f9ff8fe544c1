"""The calibrated verdict's pieces on real data: scipy's K-S p-values equal Evidently's `ks` verdicts, and a
batch size between two calibrated sizes takes the stricter threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift

from monitoring.rule import ks_pvalues, rule_for
from musicgenre.config import resolve
from musicgenre.features import FeatureConfig, feature_names


def test_scipy_ks_equals_evidentlys_ks_verdicts(params, pipeline_artifacts):
    names = feature_names(FeatureConfig.from_params(params))[:20]
    whole = pd.read_parquet(resolve(params["paths"]["features"])).query("segment == -1").reset_index(drop=True)
    rng = np.random.default_rng(0)
    for size in (10, 50):
        batch = rng.choice(len(whole), size, replace=False)
        current, reference = whole.loc[batch, names], whole.drop(index=batch)[names]
        definition = DataDefinition(numerical_columns=names)
        snapshot = Report([ValueDrift(column=n, method="ks", threshold=0.05) for n in names]).run(
            current_data=Dataset.from_pandas(current.reset_index(drop=True), data_definition=definition),
            reference_data=Dataset.from_pandas(reference.reset_index(drop=True), data_definition=definition),
        )
        evidently = np.array([m["value"] for m in snapshot.dict()["metrics"]])
        ours = ks_pvalues(reference=reference.to_numpy(), current=current.to_numpy())
        assert np.allclose(ours, evidently, rtol=1e-9, atol=1e-12)
        assert ((ours < 0.05) == (evidently < 0.05)).all()


def test_a_size_between_calibrated_sizes_takes_the_stricter_threshold(params):
    settings = params["monitoring"]["drift_rule"]
    assert rule_for(batch_size=20, params=params).share_threshold == settings["share_thresholds"][1]
    between = rule_for(batch_size=32, params=params)
    assert between.calibrated_sizes == (20, 50) and between.share_threshold == max(settings["share_thresholds"][1:3])
    assert rule_for(batch_size=500, params=params).calibrated_sizes == (100,)
    assert max(settings["false_alarm"]) <= params["monitoring"]["study"]["max_false_alarm"]
