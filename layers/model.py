"""How a layer is declared: its fields, their domains and labels, and its map style.

A layer is declared once, in its own module; the schema, the importer, the API and
the maps all read that declaration instead of repeating field lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CODE", "NOTE", "VILLAGE_CODE", "Choice", "Field", "Layer", "Style"]

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


@dataclass(frozen=True)
class Style:
    """How staff see a layer on a map: colour by a field, or one colour."""

    color: str
    fill_opacity: float = 0.5
    weight: float = 1.0
    by: str | None = None
    scale: tuple[str, ...] = ()


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
NOTE = Field("note", "text", "备注", "Note", aliases=("备注", "说明", "BZ", "REMARK", "NOTES"))
