"""How a layer is declared: its fields, their domains and labels, and its map style.

A layer is declared once, in its own module; the schema, the importer, the API and
the maps all read that declaration instead of repeating field lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "AREA",
    "AREA_M2_SQL",
    "CODE",
    "COUNT",
    "LENGTH",
    "LENGTH_M_SQL",
    "M2_PER_MU",
    "NOTE",
    "TOWNSHIP_CODE",
    "TOWNSHIP_DIGITS",
    "TOWNSHIP_SQL",
    "VILLAGE_CODE",
    "Active",
    "Choice",
    "Expiring",
    "Field",
    "Layer",
    "Measure",
    "Outline",
    "Overlay",
    "Pale",
    "Season",
    "Style",
    "Workflow",
    "township_of",
]

#: Units whose figures add up (money, households, plants, people, target areas).
_SUMMED_UNITS = ("元", "万元", "户", "株", "人", "亩")

FieldType = Literal["text", "integer", "real", "date", "monthday"]
GeometryType = Literal["MULTIPOLYGON", "MULTILINESTRING", "MULTIPOINT"]


@dataclass(frozen=True)
class Choice:
    """One allowed value of a coded field, with the words staff read for it."""

    value: str
    zh: str
    en: str
    color: str | None = None


@dataclass(frozen=True)
class Field:
    """An attribute of a layer: stored type, unit, domain, labels and file aliases.

    ``aliases`` are the column names surveyors' files use for this field (Chinese
    names, pinyin, abbreviations); their 10-character DBF truncations are derived,
    not listed.
    """

    name: str
    type: FieldType
    zh: str
    en: str
    unit: str | None = None
    choices: tuple[Choice, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def values(self) -> tuple[str, ...]:
        """The allowed codes of a coded field (empty when the field is free)."""
        return tuple(c.value for c in self.choices)

    def file_names(self) -> frozenset[str]:
        """Every column name a surveyor's file may use for this field, upper-cased.

        The name and aliases, plus their DBF truncations: a DBF field name holds 10 bytes,
        so ArcGIS and QGIS cut ``SEASON_START`` to ``SEASON_STA`` and a Chinese name to
        5 characters in GBK or 3 in UTF-8.
        """
        names = set()
        for name in (self.name, *self.aliases):
            names.add(name.upper())
            for encoding in ("gbk", "utf-8"):
                cut = name.upper().encode(encoding)[:10].decode(encoding, errors="ignore")
                if cut:
                    names.add(cut)
        return frozenset(names)

    def label(self, lang: str = "zh") -> str:
        """The field's label in ``lang`` (``zh`` or ``en``)."""
        return self.en if lang == "en" else self.zh

    def choice(self, value: str) -> Choice | None:
        """The choice declared for ``value``, if any."""
        return next((c for c in self.choices if c.value == value), None)


#: 1 亩 = 10 000 / 15 m².
M2_PER_MU = 10_000 / 15
#: Geodesic area and length on the ellipsoid (PostGIS geography uses GeographicLib).
AREA_M2_SQL = "ST_Area(geom::geography, true)"
LENGTH_M_SQL = "ST_Length(geom::geography, true)"

Aggregate = Literal["sum", "weighted", "max"]


@dataclass(frozen=True)
class Measure:
    """A figure a layer's features carry or sum to: area, length, a count, rent, households.

    ``sql`` is the per-feature expression on table alias ``t``; ``how`` how groups total
    it (``weighted``: the mean weighted by the layer's size). ``generated`` is the stored
    column's expression when the database keeps it (read-only, like ``area_m2``);
    ``headline`` marks the size staff read in popups, tiles and query filters;
    ``report`` whether statistics show it; ``digits`` how they round it.
    """

    name: str
    zh: str
    en: str
    unit: str | None
    sql: str
    how: Aggregate = "sum"
    generated: str | None = None
    indexed: bool = False
    headline: bool = False
    report: bool = True
    digits: int = 4


#: Polygons: area in m², 亩 (stored), 万亩 and hectares.
AREA = (
    Measure("area_m2", "面积", "Area", "m²", "t.area_m2", generated=AREA_M2_SQL, report=False),
    Measure("area_mu", "面积", "Area", "亩", "t.area_mu",
            generated=f"{AREA_M2_SQL} / {M2_PER_MU!r}", indexed=True, headline=True),
    Measure("area_wan_mu", "面积", "Area", "万亩", "t.area_mu / 10000", digits=6),
    Measure("area_ha", "面积", "Area", "ha", "t.area_mu / 15"),
)
#: Lines: length in metres (stored) and 万米 (10 km), as fence projects are reported.
LENGTH = (
    Measure("length_m", "长度", "Length", "m", "t.length_m", generated=LENGTH_M_SQL, indexed=True,
            headline=True, digits=2),
    Measure("length_wan_m", "长度", "Length", "万米", "t.length_m / 10000", digits=6),
)
#: Points: the count says it all.
COUNT: tuple[Measure, ...] = ()


@dataclass(frozen=True)
class Active:
    """What "active" means for a layer: ``field`` in ``values`` and the date within start–end.

    Leases: status ``active`` and the map date not past the end date.
    """

    field: str
    values: tuple[str, ...]
    start: str | None = None
    end: str | None = None

    def sql(self, t: str = "t", on: str = ":on") -> str:
        """The condition on table alias ``t`` for the date parameter ``on``."""
        values = ", ".join(f"'{v}'" for v in self.values)
        out = [f"{t}.{self.field} IN ({values})"]
        if self.start:
            out.append(f"({t}.{self.start} IS NULL OR {t}.{self.start} <= {on})")
        if self.end:
            out.append(f"({t}.{self.end} IS NULL OR {t}.{self.end} >= {on})")
        return " AND ".join(out)

    def holds(self, props: Mapping[str, Any]) -> bool:
        """Whether a feature's status is an active one (dates aside: overdue is still active)."""
        return props.get(self.field) in self.values


@dataclass(frozen=True)
class Outline:
    """Outline features in the colours of a coded field's choices (the fill shows another)."""

    field: str
    weight: float = 3.0


@dataclass(frozen=True)
class Season:
    """Features with ``field`` = ``value`` are dashed and pale outside the season ``start``–``end``.

    ``start`` and ``end`` are ``monthday`` fields (a season may span New Year).
    """

    field: str
    value: str
    start: str
    end: str


@dataclass(frozen=True)
class Expiring:
    """Active features whose ``end`` date is within ``days`` of the map date (or past) outlined red."""

    end: str
    days: int = 90
    color: str = "#e31a1c"


@dataclass(frozen=True)
class Pale:
    """Features whose ``field`` has one of ``values`` drawn pale and dashed (ended, withdrawn)."""

    field: str
    values: tuple[str, ...]


StyleRule = Outline | Season | Expiring | Pale


@dataclass(frozen=True)
class Overlay:
    """A conflict check on this layer: its features overlapping those of ``other``.

    ``props`` and ``other_props`` are the fields each piece reports; ``group`` an ``other``
    field the summary totals by. Both sides take the features that count on the date
    (:meth:`Layer.current_sql`); ``other`` may be the layer itself (leases overlapping).
    """

    id: str
    zh: str
    en: str
    other: str
    props: tuple[str, ...] = ()
    other_props: tuple[str, ...] = ()
    group: str | None = None


@dataclass(frozen=True)
class Workflow:
    """A coded field changed only by steps along allowed transitions (change patches' status).

    The database enforces it (a trigger refuses any other change of ``field`` and records each
    step, who, when and a note, in ``steps_table``); edits never touch ``field`` or the
    ``recorded`` fields the steps write, which only the workflow's route changes.
    """

    field: str
    start: str
    transitions: tuple[tuple[str, str], ...]
    recorded: tuple[str, ...]
    steps_table: str

    def allowed(self, status: str | None) -> tuple[str, ...]:
        """The states a feature in ``status`` may move to (none from a final one)."""
        return tuple(b for a, b in self.transitions if a == status)

    @property
    def managed(self) -> tuple[str, ...]:
        """The fields only the workflow writes."""
        return (self.field, *self.recorded)


@dataclass(frozen=True)
class Style:
    """How staff see a layer on a map: colour by a field, or one colour, and its rules."""

    color: str
    fill_opacity: float = 0.5
    weight: float = 1.0
    by: str | None = None
    scale: tuple[str, ...] = ()
    rules: tuple[StyleRule, ...] = ()
    #: the property a map writes on each feature (villages: their names)
    label: str | None = None

    def rule(self, kind: type) -> Any:
        """The style's rule of type ``kind``, if any."""
        return next((r for r in self.rules if isinstance(r, kind)), None)


@dataclass(frozen=True)
class Layer:
    """A thematic layer: one table of features of one geometry type.

    ``checks`` are extra row rules as SQL boolean expressions (named); ``temporal``
    names the start and end date fields that a ``datetime`` query compares with.
    """

    id: str
    zh: str
    en: str
    geometry_type: GeometryType
    fields: tuple[Field, ...]
    style: Style
    has_village: bool = True
    overlaps_allowed: bool = True
    checks: tuple[tuple[str, str], ...] = ()
    temporal: tuple[str | None, str | None] | None = None
    description_zh: str = ""
    description_en: str = ""
    #: ``frame``: drawn on every map for orientation (the villages); ``theme``: a thematic layer.
    role: Literal["frame", "theme"] = "theme"
    #: Drawing order: lower is drawn first (below), so large areas lie under small parcels.
    order: int = 50
    #: Sizes and figures (None: by geometry type - :data:`AREA`, :data:`LENGTH`, :data:`COUNT`).
    measures: tuple[Measure, ...] | None = None
    #: The start and end date fields of the period a feature is in force (re-delineated areas).
    validity: tuple[str | None, str | None] | None = None
    #: What makes a feature active (leases in force), if the layer has such a notion.
    active: Active | None = None
    #: The conflict checks that put this layer's features over another layer's.
    overlays: tuple[Overlay, ...] = ()
    #: The steps a coded field moves by, when only a workflow changes it (change patches).
    workflow: Workflow | None = None

    def __post_init__(self) -> None:
        if self.measures is None:
            default = {"MULTIPOLYGON": AREA, "MULTILINESTRING": LENGTH, "MULTIPOINT": COUNT}
            object.__setattr__(self, "measures", default[self.geometry_type])

    @property
    def is_frame(self) -> bool:
        """Whether the layer is a frame: always drawn whole, never generalised or region-checked."""
        return self.role == "frame"

    @property
    def is_linear(self) -> bool:
        """Whether features are lines (carry a length, not an area)."""
        return self.geometry_type == "MULTILINESTRING"

    @property
    def stored_measures(self) -> tuple[Measure, ...]:
        """The measures the database keeps as generated columns (read-only properties)."""
        return tuple(m for m in self.measures or () if m.generated)

    @property
    def size(self) -> Measure | None:
        """The headline size (``area_mu``, ``length_m``); None for points."""
        return next((m for m in self.measures or () if m.headline), None)

    @property
    def inside_name(self) -> str:
        """The property of a place query giving the part of a feature's size inside the place."""
        return "length_inside_m" if self.is_linear else "area_inside_mu"

    def weight_sql(self) -> str:
        """The per-feature weight of area-weighted means: its first stored size, else 1."""
        stored = self.stored_measures
        return stored[0].sql if stored else "1"

    def field_measures(self) -> tuple[Measure, ...]:
        """The layer's numeric fields with units as measures.

        Counts and money are summed, rates weighted by size, the rest their maximum.
        """
        out = []
        area = self.is_polygonal
        for f in self.fields:
            if f.type not in ("integer", "real") or f.unit is None:
                continue
            if f.unit == "%":
                out.append(Measure(f.name, f"{f.zh}（面积加权）" if area else f"{f.zh}（加权）",
                                   f"{f.en} (area-weighted)" if area else f"{f.en} (weighted)",
                                   f.unit, f"t.{f.name}", "weighted", digits=6))
            elif f.unit in _SUMMED_UNITS:
                out.append(Measure(f.name, f"{f.zh}合计", f"{f.en}, total", f.unit, f"t.{f.name}", "sum"))
            else:
                out.append(Measure(f.name, f"{f.zh}（最大）", f"{f.en} (max)", f.unit, f"t.{f.name}", "max"))
        return tuple(out)

    def in_force_sql(self, t: str = "t", on: str = ":on") -> str:
        """Features in force on the date ``on`` (TRUE for a layer without validity)."""
        if self.validity is None:
            return "TRUE"
        start, end = self.validity
        out = []
        if start:
            out.append(f"({t}.{start} IS NULL OR {t}.{start} <= {on})")
        if end:
            out.append(f"({t}.{end} IS NULL OR {t}.{end} >= {on})")
        return " AND ".join(out) or "TRUE"

    def current_sql(self, t: str = "t", on: str = ":on") -> str:
        """Features that count on ``on``: active (when declared) and in force (when declared)."""
        parts = [self.active.sql(t, on)] if self.active else []
        if self.validity is not None:
            parts.append(self.in_force_sql(t, on))
        return " AND ".join(parts) or "TRUE"

    @property
    def table(self) -> str:
        """The table name, which is the layer id."""
        return self.id

    @property
    def is_polygonal(self) -> bool:
        """Whether features carry an area (``area_m2``, ``area_mu``)."""
        return self.geometry_type == "MULTIPOLYGON"

    def title(self, lang: str = "zh") -> str:
        """The layer's title in ``lang``."""
        return self.en if lang == "en" else self.zh

    @property
    def all_fields(self) -> tuple[Field, ...]:
        """Every attribute a feature carries: code, village, the layer's own, note."""
        village = (VILLAGE_CODE,) if self.has_village else ()
        return (CODE, *village, *self.fields, NOTE)

    @property
    def by_township(self) -> bool:
        """Whether the table carries ``township_code``: every layer with a village.

        What Citus distributes by (docs/scale.md); the frame (the villages) does not.
        """
        return self.has_village

    def file_columns(self) -> dict[str, Field]:
        """Upper-cased file column name → field, for reading surveyors' files.

        Explicit names and aliases win; a DBF truncation that two fields share
        (``HOUSEHOLDS`` from both ``households_total`` and ``households_relocated``)
        is ambiguous and left out, so such a column stays unmapped rather than guessed.
        """
        explicit = {n.upper(): f for f in self.all_fields for n in (f.name, *f.aliases)}
        derived: dict[str, set[str]] = {}
        for f in self.all_fields:
            for n in f.file_names() - explicit.keys():
                derived.setdefault(n, set()).add(f.name)
        by_name = {f.name: f for f in self.all_fields}
        unique = {n: by_name[next(iter(fs))] for n, fs in derived.items() if len(fs) == 1}
        return {**unique, **explicit}

    def get_field(self, name: str) -> Field:
        """The attribute called ``name``; ``KeyError`` if the layer has none."""
        for f in self.all_fields:
            if f.name == name:
                return f
        raise KeyError(name)


CODE = Field(
    "code", "text", "编号", "Code", required=True,
    aliases=("编号", "代码", "编码", "地块编号", "图斑编号", "图斑号", "BH", "DKBH", "TBBH", "CODE"),
)
VILLAGE_CODE = Field(
    "village_code", "text", "所属嘎查村", "Village",
    aliases=("嘎查村代码", "村代码", "村级代码", "行政村代码", "所属村", "CDM", "CJDM", "XZQDM"),
)
#: The column a layer table is distributed by on Citus (docs/scale.md): its village's township,
#: the first :data:`TOWNSHIP_DIGITS` digits of ``village_code``, '' for a feature without a village.
TOWNSHIP_CODE = "township_code"
TOWNSHIP_DIGITS = 9
#: What the database checks the column against (a CHECK on each layer table, migration 0016).
TOWNSHIP_SQL = f"coalesce(left(village_code, {TOWNSHIP_DIGITS}), '')"


def township_of(village_code: object) -> str:
    """The township of a village code, as :data:`TOWNSHIP_SQL` computes it ('' for none).

    Writers send it with the village (Citus routes a row by the value in the statement; a
    trigger filling it would run too late), so the importer's hot path pays a slice, no trigger.
    """
    return "" if village_code is None else str(village_code)[:TOWNSHIP_DIGITS]


NOTE = Field("note", "text", "备注", "Note", aliases=("备注", "说明", "BZ", "REMARK", "NOTES"))
