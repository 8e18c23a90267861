"""gridcast.store against a real (isolated) BentoML model store.

Seasonal-naive forecasters keep these fast; the LSTM goes through the store in
``test_train_cli.py``.
"""

from __future__ import annotations

import bentoml
import pandas as pd
import pytest
from pathlib import Path

from gridcast import store
from gridcast.errors import ModelNotFoundError, UserInputError
from gridcast.models.base import SeasonalNaive


@pytest.fixture
def naive(region_history: pd.DataFrame) -> SeasonalNaive:
    return SeasonalNaive().fit(region_history)


def _meta(mape: float) -> dict:
    return {"validation": {"mape": mape, "mae": 10.0}, "train_start": "2023-01-01T00:00:00+00:00"}


def test_model_names_are_valid_tags() -> None:
    assert store.model_name("lstm", "ES") == "gridcast-lstm-es"
    assert store.model_name("sarimax", "Region 1/North") == "gridcast-sarimax-region-1-north"
    with pytest.raises(UserInputError):
        store.model_name("lstm", "///")


def test_first_model_is_promoted_and_served(bento_home, naive: SeasonalNaive) -> None:
    assert store.served_models() == []
    result = store.save_model(naive, region="region-1", metadata=_meta(5.0))
    assert result.promoted and "nothing served" in result.reason
    [served] = store.served_models()
    assert (served.tag, served.alias, served.region) == (result.tag, "naive", "region-1")
    assert served.metadata["validation"]["mape"] == 5.0
    # the model and the pointer are ordinary BentoML models under the isolated home
    names = {m.tag.name for m in bentoml.models.list(_model_store=store.model_store())}
    assert names == {"gridcast-naive-region-1", "gridcast-served"}
    assert str(store.model_store()._path).startswith(str(bento_home))


def test_promotion_only_when_validation_mape_improves(bento_home, naive: SeasonalNaive) -> None:
    first = store.save_model(naive, region="region-1", metadata=_meta(5.0))
    worse = store.save_model(naive, region="region-1", metadata=_meta(6.0))
    assert not worse.promoted and "does not beat" in worse.reason
    assert [m.tag for m in store.served_models()] == [first.tag]
    better = store.save_model(naive, region="region-1", metadata=_meta(4.0))
    assert better.promoted and "beats" in better.reason
    assert [m.tag for m in store.served_models()] == [better.tag]
    # every version stays in the store for audit; one pointer version per promotion
    versions = bentoml.models.list("gridcast-naive-region-1", _model_store=store.model_store())
    assert len(versions) == 3
    pointers = bentoml.models.list(store.SERVED_NAME, _model_store=store.model_store())
    assert len(pointers) == 2


def test_one_served_model_per_region_and_alias(bento_home, naive: SeasonalNaive) -> None:
    a = store.save_model(naive, region="region-1", metadata=_meta(5.0))
    b = store.save_model(naive, region="region-2", metadata=_meta(9.0))
    served = {(m.region, m.alias): m.tag for m in store.served_models()}
    assert served == {("region-1", "naive"): a.tag, ("region-2", "naive"): b.tag}
    tags = store.served_tags()
    assert tags[0].startswith(f"{store.SERVED_NAME}:") and set(tags[1:]) == {a.tag, b.tag}


def test_load_forecaster_round_trip(bento_home, naive: SeasonalNaive) -> None:
    result = store.save_model(naive, region="region-1", metadata=_meta(5.0))
    loaded = store.load_forecaster(result.tag)
    # (SeasonalNaive restores its index at a different datetime unit; values and times match)
    pd.testing.assert_frame_equal(loaded.predict(48), naive.predict(48), check_index_type=False)
    with pytest.raises(ModelNotFoundError):
        store.load_forecaster("gridcast-naive-nowhere:latest")


def test_model_without_metrics_is_served_only_when_nothing_is(bento_home, naive: SeasonalNaive) -> None:
    assert store.save_model(naive, region="r", metadata={}).promoted
    assert not store.save_model(naive, region="r", metadata={}).promoted


def test_stale_served_model_is_retrained_by_ensure_quick_models(bento_home, monkeypatch):
    """A served model saved in an older layout is refused on load and replaced."""
    import json as _json

    from gridcast.errors import IncompatibleModelError
    from gridcast.models.base import SeasonalNaive
    from training.data.synthetic import generate
    from gridcast.schema import region_frame
    from gridcast.settings import Settings
    from gridcast import store

    df, _ = generate(days=21, regions=1, seed=3)
    model = SeasonalNaive().fit(region_frame(df, "region-1"))
    result = store.save_model(model, region="region-1", metadata={"validation": {"mape": 1.0}})
    # simulate a model written by an older gridcast: no format version in its files
    path = store.model_store().get(result.tag).path
    meta_file = next(Path(path).rglob("forecaster.json"))
    meta = _json.loads(meta_file.read_text())
    meta.pop("format_version")
    meta_file.write_text(_json.dumps(meta))
    with pytest.raises(IncompatibleModelError, match="retrain"):
        store.load_forecaster(result.tag)

    # skip the minutes of real quick training: what is under test is the store's state
    monkeypatch.setattr("training.train_cli.train_models", lambda *a, **k: [])
    from training.train_cli import ensure_quick_models

    ensure_quick_models(Settings())
    assert result.tag not in {m.tag for m in store.served_models()}
