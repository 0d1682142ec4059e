"""The layer registry: complete declarations, unambiguous aliases."""

import pytest

from layers.errors import UnknownLayerError
from layers.registry import LAYERS, get_layer


def test_the_layers_of_the_design_are_found_frames_first_then_in_drawing_order():
    assert {"villages", "subsidence_zones", "grazing_bans", "caragana_plots", "land_leases"} <= set(LAYERS)
    layers = list(LAYERS.values())
    assert layers[0].id == "villages" and layers[0].role == "frame"
    assert [la.order for la in layers[1:]] == sorted(la.order for la in layers[1:])
    with pytest.raises(UnknownLayerError):
        get_layer("parks")


@pytest.mark.parametrize("layer", LAYERS.values(), ids=list(LAYERS))
def test_every_field_is_labelled_in_both_languages(layer):
    assert layer.zh and layer.en
    for field in layer.all_fields:
        assert field.zh and field.en, field.name
        for choice in field.choices:
            assert choice.zh and choice.en, (field.name, choice.value)


@pytest.mark.parametrize("layer", LAYERS.values(), ids=list(LAYERS))
def test_no_declared_name_or_alias_maps_to_two_fields(layer):
    seen: dict[str, str] = {}
    for field in layer.all_fields:
        for name in (field.name, *field.aliases):
            assert seen.setdefault(name.upper(), field.name) == field.name, \
                f"{name!r} would map to both {seen[name.upper()]} and {field.name}"


def test_ambiguous_truncations_stay_unmapped():
    columns = get_layer("subsidence_zones").file_columns()
    assert "HOUSEHOLDS" not in columns  # households_total or households_relocated?
    assert columns["HH_TOTAL"].name == "households_total"
    assert columns["涉及户数"].name == "households_total"
    assert columns["COMPENSATI"].name == "compensation_wan_yuan"


def test_dbf_truncations_are_derived():
    season = get_layer("grazing_bans").get_field("season_start")
    assert "SEASON_STA" in season.file_names()  # 10 bytes
    depth = get_layer("subsidence_zones").get_field("max_depth_m")
    assert "最大沉陷深" in depth.file_names()  # 5 characters = 10 bytes in GBK
    assert "最大沉" in depth.file_names()  # 3 characters = 9 bytes in UTF-8


@pytest.mark.parametrize("layer", LAYERS.values(), ids=list(LAYERS))
def test_the_style_names_a_declared_field(layer):
    if layer.style.by:
        field = layer.get_field(layer.style.by)
        assert field.choices or layer.style.scale, field.name
