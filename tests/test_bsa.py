from __future__ import annotations

import pytest
from vascalc.core.bsa import FORMULAS, body_surface_area
from vascalc.errors import AnthropometryError

# published values for 170 cm / 70 kg (issue #2; each formula's paper)
EXPECTED = {"dubois": 1.810, "mosteller": 1.818, "haycock": 1.826, "gehan_george": 1.831,
            "boyd": 1.835}


def test_registry_is_complete_and_cited():
    assert set(FORMULAS) == set(EXPECTED)
    for f in FORMULAS.values():
        assert f.func.__doc__ and any(str(y) in f.func.__doc__ for y in range(1900, 2000))


@pytest.mark.parametrize("name,value", sorted(EXPECTED.items()))
def test_170_cm_70_kg(name, value):
    assert round(body_surface_area(170, 70, formula=name), 3) == value


def test_mosteller_by_hand():
    assert body_surface_area(180, 80, formula="mosteller") == pytest.approx((180 * 80 / 3600) ** 0.5)


@pytest.mark.parametrize("h,w,match", [(1.7, 70, "metres"), (170, 0, "weight_kg=0"),
                                       (170, -5, "weight_kg"), (float("nan"), 70, "height")])
def test_implausible_values_are_refused(h, w, match):
    with pytest.raises(AnthropometryError, match=match):
        body_surface_area(h, w)


def test_unknown_formula():
    with pytest.raises(ValueError, match="allowed"):
        body_surface_area(170, 70, formula="nope")
