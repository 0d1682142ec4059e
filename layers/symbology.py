"""What a feature looks like on a map and in its popup, read from the layer declaration.

The colours come from each layer's :class:`~layers.model.Style` and its choices'
colours; on top of them the style rules a layer declares (:mod:`layers.model`):
an outline by a coded field (:class:`~layers.model.Outline`), dashed and pale outside a
season (:class:`~layers.model.Season`), an "expiring soon" outline for active features
(:class:`~layers.model.Expiring`), pale for ended ones (:class:`~layers.model.Pale`).
Frames (the villages) are outlines with their labels, not filled; lines are drawn as lines.

Pure functions of the declaration, the features' properties and a :class:`MapContext`:
no database here (see :mod:`layers.mapdata`), no Folium (see :mod:`gis.maps`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from gis.maps import LegendItem, LegendSection, TileStyle
from layers.errors import BadRequestError
from layers.model import Expiring, Field, Layer, Outline, Pale, Season

__all__ = [
    "EXPIRY_DAYS",
    "Categories",
    "InvalidStyleFieldError",
    "MapContext",
    "Ramp",
    "Symbology",
    "format_value",
    "in_season",
    "style_fields",
    "symbology",
    "unit_label",
]

#: Leases ending within this many days of the map date are marked (the usual declared window).
EXPIRY_DAYS = 90

_UNITS_EN = {"亩": "mu", "万亩": "10,000 mu", "万元": "10k yuan", "元": "yuan", "户": "households",
             "人": "people", "株": "plants", "m": "m", "万米": "10 km", "%": "%", "m²": "m²", "ha": "ha"}
_WORDS = {
    "area": ("面积", "Area"),
    "village": ("所属嘎查村", "Village"),
    "in_season": ("休牧期内", "in rest season"),
    "out_season": ("休牧期外", "outside rest season"),
    "expiring": ("{days} 天内到期或逾期未结", "Ends within {days} days or overdue"),
    "outline": ("边框：", "Outline: "),
    "none": ("未填", "Not given"),
    "frame": ("界线", "Boundary"),
}
# diverging red → green: low survival is what staff look for
_RATE_COLORS = ("#d7191c", "#fdae61", "#ffffbf", "#a6d96a", "#1a9641")
_RATE_BREAKS = (0.0, 0.5, 0.65, 0.8, 0.9, 1.0 + 1e-9)
_DEFAULT_COLORS = ("#edf8e9", "#bae4b3", "#74c476", "#31a354", "#006d2c")
_NONE_COLOR = "#bdbdbd"


def _word(key: str, lang: str) -> str:
    zh, en = _WORDS[key]
    return en if lang == "en" else zh


class InvalidStyleFieldError(BadRequestError):
    """The map was asked to colour a layer by a field it cannot be coloured by."""

    code = "invalid_style_field"
    title = "Invalid style field"

    def __init__(self, layer: Layer, by: str) -> None:
        super().__init__(f"layer {layer.id!r} cannot be coloured by {by!r}; "
                         f"choose one of {', '.join(style_fields(layer))}")
        self.layer_id, self.by, self.allowed = layer.id, by, style_fields(layer)

    def extra(self) -> dict[str, object]:
        """The layer and the fields it can be coloured by."""
        return {"layer": self.layer_id, "by": self.by, "allowed": list(self.allowed)}


@dataclass(frozen=True)
class MapContext:
    """For whom and when a map is drawn: language, map date, colouring field."""

    lang: str = "zh"
    on: date = field(default_factory=date.today)
    by: str | None = None
    #: the layers as they were then (their history), instead of as they are
    asof: datetime | None = None


def unit_label(unit: str | None, lang: str = "zh") -> str:
    """A unit as the reader's language writes it (``亩`` → ``mu`` in English)."""
    if not unit:
        return ""
    return _UNITS_EN.get(unit, unit) if lang == "en" else unit


def format_value(f: Field, value: Any, lang: str = "zh") -> str:
    """A field value as staff read it: choice labels, units, rates in percent.

    >>> from layers.model import Field
    >>> format_value(Field("r", "real", "成活率", "Rate", unit="%", maximum=1), 0.834)
    '83.4 %'
    >>> format_value(Field("c", "real", "资金", "Funds", unit="万元"), 12.5, "en")
    '12.50 10k yuan'
    """
    if value is None or value == "":
        return "—"
    if f.choices:
        choice = f.choice(str(value))
        return (choice.en if lang == "en" else choice.zh) if choice else str(value)
    unit = unit_label(f.unit, lang)
    if f.type == "real" and isinstance(value, int | float):
        text = f"{value * 100:.1f}" if f.unit == "%" else f"{value:,.2f}"
    elif f.type == "integer" and isinstance(value, int | float):
        # a count has a unit (株, 户, 人) and thousands separators; a year has neither
        text = f"{int(value):,}" if f.unit else str(int(value))
    else:
        text = str(value)
    return f"{text} {unit}" if unit else text


def in_season(start: str | None, end: str | None, on: date) -> bool:
    """Whether ``on`` falls in the rest season ``start``–``end`` (``MM-DD``, inclusive).

    >>> in_season("04-01", "06-30", date(2026, 5, 1)), in_season("04-01", "06-30", date(2026, 11, 1))
    (True, False)
    >>> in_season("11-15", "02-15", date(2026, 1, 3))
    True
    """
    if not start or not end:
        return False
    today = on.strftime("%m-%d")
    if start <= end:
        return start <= today <= end
    return today >= start or today <= end


@dataclass(frozen=True)
class Categories:
    """Colour by a coded field: one colour per choice."""

    field: Field
    colors: Mapping[str, str]
    labels: Mapping[str, str]

    def color(self, value: Any) -> str:
        """The colour of ``value`` (grey when unknown or empty)."""
        return self.colors.get(str(value), _NONE_COLOR) if value is not None else _NONE_COLOR


@dataclass(frozen=True)
class Ramp:
    """Colour by a number: classes bounded by ``breaks`` (one more than ``colors``)."""

    field: Field
    breaks: tuple[float, ...]
    colors: tuple[str, ...]

    def color(self, value: Any) -> str:
        """The colour of the class ``value`` falls in."""
        if value is None:
            return _NONE_COLOR
        for i, c in enumerate(self.colors):
            if value < self.breaks[i + 1]:
                return c
        return self.colors[-1]

    def labels(self, lang: str = "zh") -> list[str]:
        """One label per class: year spans for integers, percent bands for rates."""
        out = []
        n = len(self.colors)
        for i in range(n):
            lo, hi = self.breaks[i], self.breaks[i + 1]
            if self.field.unit == "%":
                lo_t, hi_t = f"{lo * 100:g}", f"{min(hi, 1.0) * 100:g}"
                out.append(f"< {hi_t} %" if i == 0 else f"≥ {lo_t} %" if i == n - 1 else f"{lo_t}–{hi_t} %")
            elif self.field.type == "integer":
                first, last = math.ceil(lo), math.ceil(hi) - 1
                out.append(str(first) if first >= last else f"{first}–{last}")
            else:
                out.append(f"{lo:,.2f}–{hi:,.2f}")
        return out


def style_fields(layer: Layer) -> tuple[str, ...]:
    """Fields a layer can be coloured by: coloured choices, and numbers for a scale."""
    names = [f.name for f in layer.fields if any(c.color for c in f.choices)]
    names += [f.name for f in layer.fields if f.type in ("integer", "real") and
              (f.name == layer.style.by or f.unit == "%")]
    if layer.style.by and layer.style.by not in names:
        names.insert(0, layer.style.by)
    return tuple(dict.fromkeys(names))


def _ramp(layer: Layer, f: Field, stats: tuple[float | None, float | None]) -> Ramp:
    if f.unit == "%":
        return Ramp(f, _RATE_BREAKS, _RATE_COLORS)
    colors = layer.style.scale if f.name == layer.style.by and layer.style.scale else _DEFAULT_COLORS
    lo, hi = stats
    lo = f.minimum if lo is None else lo
    hi = (f.maximum if f.maximum is not None else (lo or 0) + 1) if hi is None else hi
    lo = lo or 0.0
    if f.type == "integer":
        hi = hi + 1  # classes are [lo, hi): the last value belongs to the last class
        n = min(len(colors), max(1, int(hi - lo)))
        colors = colors[len(colors) - n:]
        step = (hi - lo) / n
        breaks = tuple(float(math.ceil(lo + i * step)) if 0 < i < n else lo + i * step for i in range(n + 1))
    else:
        n = len(colors)
        step = (hi - lo) / n if hi > lo else 1.0
        breaks = (*(lo + i * step for i in range(n)), hi + 1e-9)
    return Ramp(f, breaks, tuple(colors))


@dataclass(frozen=True)
class Symbology:
    """The look of one layer on one map: per-feature style, legend, tile style, popup."""

    layer: Layer
    ctx: MapContext
    rule: Categories | Ramp | None

    # -- features ---------------------------------------------------------------------
    def style(self, props: Mapping[str, Any]) -> dict[str, Any]:
        """Leaflet path options of the feature with raw properties ``props``."""
        s = self.layer.style
        if self.layer.is_frame or self.rule is None:
            return {"color": s.color, "weight": s.weight,
                    "fill": s.fill_opacity > 0 and not self.layer.is_linear,
                    "fillColor": s.color, "fillOpacity": s.fill_opacity}
        fill = self.rule.color(props.get(self.rule.field.name))
        if self.layer.is_linear:  # a line is its colour
            out: dict[str, Any] = {"color": fill, "weight": max(s.weight, 3), "fill": False}
        else:
            out = {"color": "#333333", "weight": s.weight, "fillColor": fill, "fillOpacity": s.fill_opacity}
        for rule in s.rules:
            if isinstance(rule, Outline):
                out.update(color=self._choice_color(rule.field, props.get(rule.field)), weight=rule.weight)
            elif isinstance(rule, Season) and props.get(rule.field) == rule.value:
                if not in_season(props.get(rule.start), props.get(rule.end), self.ctx.on):
                    out.update(fillOpacity=0.15, dashArray="6 4", weight=2, color=fill)
            elif isinstance(rule, Pale) and props.get(rule.field) in rule.values:
                out.update(fillOpacity=0.15, dashArray="2 4", color="#777777")
                break  # an ended feature is not also expiring
            elif isinstance(rule, Expiring) and self._expiring(props):
                out.update(color=rule.color, weight=3, dashArray="6 3")
        return out

    def _choice_color(self, name: str, value: Any) -> str:
        choice = self.layer.get_field(name).choice(str(value))
        return choice.color if choice and choice.color else "#333333"

    def _expiring(self, props: Mapping[str, Any]) -> bool:
        rule = self.layer.style.rule(Expiring)
        if rule is None:
            return False
        end = props.get(rule.end)
        if not end or (self.layer.active is not None and not self.layer.active.holds(props)):
            return False
        end = date.fromisoformat(end) if isinstance(end, str) else end
        return (end - self.ctx.on).days <= rule.days  # a difference: no overflow at 9999-12-31

    # -- legend -----------------------------------------------------------------------
    def legend(self) -> tuple[LegendSection, ...]:
        """The legend sections of this layer in the map's language."""
        lang, s = self.ctx.lang, self.layer.style
        line = self.layer.is_linear
        if self.layer.is_frame or self.rule is None:
            item = LegendItem(_word("frame", lang) if self.layer.is_frame else self.layer.title(lang),
                              stroke=s.color, weight=max(s.weight, 3) if line else s.weight,
                              fill=s.color if s.fill_opacity > 0 and not line else None,
                              fill_opacity=0 if line else s.fill_opacity, line=line)
            return (LegendSection("", (item,)),)
        f = self.rule.field
        if isinstance(self.rule, Ramp):
            title = f"{f.label(lang)}" + (f"（{unit_label(f.unit, lang)}）" if f.unit else "")
            items = tuple(self._swatch(label, c)
                          for label, c in zip(self.rule.labels(lang), self.rule.colors, strict=True))
            return (LegendSection(title, items),)
        season = s.rule(Season)
        items: list[LegendItem] = []
        for c in f.choices:
            label = c.en if lang == "en" else c.zh
            color = self.rule.color(c.value)
            if season is not None and season.field == f.name and c.value == season.value:
                items.append(LegendItem(f"{label}（{_word('in_season', lang)}）", "#333333", color,
                                        s.fill_opacity))
                items.append(LegendItem(f"{label}（{_word('out_season', lang)}）", color, color, 0.15,
                                        2, "6 4"))
            else:
                items.append(self._swatch(label, color))
        sections = [LegendSection(f.label(lang), tuple(items))]
        extra: list[LegendItem] = []
        for rule in s.rules:
            if isinstance(rule, Outline):
                of = self.layer.get_field(rule.field)
                sections.append(LegendSection(
                    _word("outline", lang) + of.label(lang),
                    tuple(LegendItem(c.en if lang == "en" else c.zh, c.color or "#333333", None, 0,
                                     rule.weight) for c in of.choices)))
            elif isinstance(rule, Expiring):
                extra.append(LegendItem(_word("expiring", lang).format(days=rule.days), rule.color,
                                        None, 0, 3, "6 3"))
            elif isinstance(rule, Pale):
                pf = self.layer.get_field(rule.field)
                words = [(c.en if lang == "en" else c.zh) for c in pf.choices if c.value in rule.values]
                extra.append(LegendItem(("/" if lang == "en" else "、").join(words) or ", ".join(rule.values),
                                        "#777777", "#bdbdbd", 0.15, 1, "2 4"))
        if extra:
            sections.append(LegendSection("", tuple(extra)))
        return tuple(sections)

    def _swatch(self, label: str, color: str) -> LegendItem:
        """A legend item: a filled square for areas, a line for lines."""
        if self.layer.is_linear:
            return LegendItem(label, color, None, 0, max(self.layer.style.weight, 3), line=True)
        return LegendItem(label, "#333333", color, self.layer.style.fill_opacity)

    # -- tiles ------------------------------------------------------------------------
    def tile_style(self) -> TileStyle:
        """The colouring rule for vector tiles (tiles carry the ``style.by`` field)."""
        s = self.layer.style
        line = {"line": True, "weight": max(s.weight, 3)} if self.layer.is_linear else {}
        if isinstance(self.rule, Ramp):
            return TileStyle(self.rule.field.name, breaks=self.rule.breaks, colors=self.rule.colors,
                             fill_opacity=max(s.fill_opacity, 0.6), **line)
        if isinstance(self.rule, Categories):
            return TileStyle(self.rule.field.name, categories=dict(self.rule.colors),
                             fill_opacity=max(s.fill_opacity, 0.6), **line)
        return TileStyle("id", default=s.color, stroke=s.color, weight=s.weight,
                         fill_opacity=s.fill_opacity, **line)

    def tile_labels(self, village_names: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        """Labels of the properties vector tiles carry, for the click popup."""
        lang = self.ctx.lang
        out: dict[str, dict[str, Any]] = {"code": {"label": self.layer.get_field("code").label(lang)}}
        if self.layer.has_village:
            out["village_code"] = {"label": _word("village", lang), "values": dict(village_names)}
        size = self.layer.size
        if size is not None:
            out[size.name] = {"label": size.en if lang == "en" else size.zh,
                              "unit": unit_label(size.unit, lang), "digits": 2}
        if self.rule is not None:
            f = self.rule.field
            entry: dict[str, Any] = {"label": f.label(lang), "unit": unit_label(f.unit, lang)}
            if f.choices:
                entry["values"] = {c.value: (c.en if lang == "en" else c.zh) for c in f.choices}
            elif f.unit == "%":
                entry.update(scale=100, digits=1)
            elif f.type == "real":
                entry["digits"] = 2
            out[f.name] = entry
        return out

    # -- popup ------------------------------------------------------------------------
    def popup_rows(self) -> tuple[tuple[str, str], ...]:
        """(property, label) rows of the click popup, in declaration order."""
        lang = self.ctx.lang
        rows = []
        for f in self.layer.all_fields:
            if f.name == "village_code":
                rows.append(("village_name", f.label(lang)))
            else:
                rows.append((f.name, f.label(lang)))
        size = self.layer.size
        if size is not None:
            rows.append((size.name, size.en if lang == "en" else size.zh))
        return tuple(rows)

    def display(self, props: Mapping[str, Any]) -> dict[str, Any]:
        """The popup values of a feature (formatted, with units) and its ``_style``."""
        lang = self.ctx.lang
        out: dict[str, Any] = {}
        for f in self.layer.all_fields:
            if f.name == "village_code":
                name = props.get("village_name")
                out["village_name"] = f"{name}（{props.get('village_code')}）" if name else "—"
            else:
                out[f.name] = format_value(f, props.get(f.name), lang)
        size = self.layer.size
        if size is not None:
            v = props.get(size.name)
            out[size.name] = f"{v:,.2f} {unit_label(size.unit, lang)}" if v is not None else "—"
        expiring = self.layer.style.rule(Expiring)
        if expiring is not None and self._expiring(props):
            shown = self.layer.active.field if self.layer.active else expiring.end
            out[shown] = f"{out[shown]}（{_word('expiring', lang).format(days=expiring.days)}）"
        out["_style"] = self.style(props)
        return out


def symbology(layer: Layer, ctx: MapContext,
              stats: Mapping[str, tuple[float | None, float | None]] | None = None) -> Symbology:
    """The symbology of ``layer`` for ``ctx``; ``stats`` gives (min, max) of numeric fields.

    Raises :class:`InvalidStyleFieldError` when ``ctx.by`` is not a field the layer can
    be coloured by.
    """
    by = ctx.by or layer.style.by
    if by is None:
        return Symbology(layer, ctx, None)
    if by not in style_fields(layer):
        raise InvalidStyleFieldError(layer, by)
    f = layer.get_field(by)
    if f.choices:
        colors = {c.value: c.color or layer.style.color for c in f.choices}
        labels = {c.value: (c.en if ctx.lang == "en" else c.zh) for c in f.choices}
        return Symbology(layer, ctx, Categories(f, colors, labels))
    return Symbology(layer, ctx, _ramp(layer, f, (stats or {}).get(by, (None, None))))
