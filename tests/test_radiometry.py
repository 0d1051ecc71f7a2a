"""Offsets from item metadata, NDVI and the SCL mask."""

from __future__ import annotations

import numpy as np
import pystac
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ingestion.imagery.masking import DEFAULT_MASKED_CLASSES, clear_mask, validate_classes
from ingestion.imagery.radiometry import ItemMetadataError, ndvi, radiometry, reflectance


def _real_item(shared_data, name: str) -> pystac.Item:
    path = shared_data / "s2" / name
    return pystac.Item.from_file(str(path))


def test_real_baseline_0214_item_gets_no_offset(shared_data):
    item = _real_item(shared_data, "S2A_29RKH_20200219_0_L2A/S2A_29RKH_20200219_0_L2A.json")
    for band in ("red", "nir"):
        r = radiometry(item, band)
        assert (r.scale, r.offset) == (0.0001, 0.0)


def test_real_baseline_0509_item_flagged_applied_ignores_raster_bands_offset(shared_data):
    item = _real_item(shared_data, "S2A_39QTA_20230628_0_L2A.earthsearch-v1.json")
    assert item.assets["red"].extra_fields["raster:bands"][0]["offset"] == -0.1  # the documented trap
    r = radiometry(item, "red")
    assert r.offset == 0.0
    assert "boa_offset_applied=true" in r.rule


def _item(props: dict, band: dict | None = None) -> pystac.Item:
    item = pystac.Item("x", None, None, __import__("datetime").datetime(2024, 5, 1), props)
    item.add_asset("red", pystac.Asset("red.tif", extra_fields={"raster:bands": [band]} if band else {}))
    return item


@pytest.mark.parametrize(("props", "band", "offset"), [
    ({"s2:processing_baseline": "05.10", "earthsearch:boa_offset_applied": False}, {"offset": -0.1}, -0.1),
    ({"s2:processing_baseline": "03.01", "earthsearch:boa_offset_applied": False}, {"offset": 0}, 0.0),
    ({"s2:processing_baseline": "05.10"}, {"scale": 0.0001, "offset": -0.1}, -0.1),  # c1-l2a style
    ({"s2:processing_baseline": "05.10"}, None, -0.1),
    ({"s2:processing_baseline": "02.14"}, None, 0.0),
    ({}, {"offset": -0.2}, -0.2),
])
def test_offset_rules(props, band, offset):
    assert radiometry(_item(props, band), "red").offset == pytest.approx(offset)


def test_unparseable_metadata_names_item_and_field():
    with pytest.raises(ItemMetadataError, match="item x: s2:processing_baseline 'five'"):
        radiometry(_item({"s2:processing_baseline": "five"}), "red")
    with pytest.raises(ItemMetadataError, match="earthsearch:boa_offset_applied is 'yes'"):
        radiometry(_item({"earthsearch:boa_offset_applied": "yes"}), "red")
    with pytest.raises(ItemMetadataError, match="no asset 'nir'"):
        radiometry(_item({}), "nir")


def test_reflectance_and_ndvi_values():
    radio = radiometry(_item({}, {"offset": -0.1}), "red")
    red = reflectance(np.array([0, 1800, 1500, 1000], dtype=np.uint16), radio)
    nir = reflectance(np.array([5000, 5800, 1000, 900], dtype=np.uint16), radio)
    assert np.isnan(red[0])  # DN 0 is Sentinel-2 nodata
    np.testing.assert_allclose(red[1:], [0.08, 0.05, 0.0], atol=1e-6)
    out = ndvi(red, nir)
    assert np.isnan(out[0])
    assert out[1] == pytest.approx((0.48 - 0.08) / (0.48 + 0.08), abs=1e-6)
    assert out[2] == pytest.approx(-1.0)
    assert np.isnan(out[3])  # denominator -0.01: nodata, not a number


_floats = st.floats(-2, 2, width=32) | st.sampled_from([np.nan, np.inf, -np.inf, 0.0])


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # CI machines may be loaded
@given(hnp.arrays(np.float32, 50, elements=_floats), hnp.arrays(np.float32, 50, elements=_floats))
def test_ndvi_never_lets_nan_inf_or_out_of_range_escape_as_a_value(red, nir):
    out = ndvi(red, nir)
    finite = np.isfinite(out)
    assert not np.isinf(out).any()
    assert ((out[finite] >= -1) & (out[finite] <= 1)).all()
    # zero or negative denominators become nodata (NaN), never a number
    assert np.isnan(out[~((red + nir) > 0)]).all()


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hnp.arrays(np.uint8, 100, elements=st.integers(0, 11)))
def test_default_mask_drops_exactly_the_design_classes(scl):
    mask = clear_mask(scl)
    assert (mask == ~np.isin(scl, [0, 1, 3, 8, 9, 10, 11])).all()


def test_scl_classes_by_name_or_id_and_unknown_rejected():
    assert validate_classes(["cloud_high_probability", 3]) == {9, 3}
    assert DEFAULT_MASKED_CLASSES == {0, 1, 3, 8, 9, 10, 11}
    with pytest.raises(ValueError, match="unknown SCL class 12"):
        validate_classes([12])
    with pytest.raises(ValueError, match="unknown SCL class 'clouds'"):
        validate_classes(["clouds"])


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hnp.arrays(np.float32, (6, 3, 4), elements=st.floats(-1, 1, width=32) | st.just(np.nan)),
       st.lists(st.integers(0, 3), min_size=6, max_size=6))
def test_composite_pixels_one_observation_per_day_and_no_nan_escape(stack, days):
    from ingestion.imagery.composite import composite_pixels

    day_index = np.array(sorted(days))
    median, count = composite_pixels(stack, day_index)
    assert not np.isinf(median).any()
    for y in range(3):
        for x in range(4):
            per_day = []
            for day in np.unique(day_index):
                values = [v for v in stack[day_index == day, y, x] if not np.isnan(v)]
                if values:
                    per_day.append(values[0])  # the first clear product of the day
            assert count[y, x] == len(per_day)
            if per_day:
                assert median[y, x] == pytest.approx(np.median(per_day), abs=1e-6)
            else:
                assert np.isnan(median[y, x])


@given(hnp.arrays(np.uint16, 40), st.sampled_from([0.0, -0.1]))
def test_reflectance_is_finite_except_nodata(dn, offset):
    from ingestion.imagery.radiometry import Radiometry

    refl = reflectance(dn, Radiometry(0.0001, offset, "test"))
    assert np.isnan(refl[dn == 0]).all()
    assert np.isfinite(refl[dn != 0]).all()
    np.testing.assert_allclose(refl[dn != 0], dn[dn != 0] * 0.0001 + offset, rtol=1e-5, atol=1e-6)
