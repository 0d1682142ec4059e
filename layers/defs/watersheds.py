"""清洁小流域 — small watersheds under soil-and-water treatment (哈沙图, 特布德)."""

from layers.model import Field, Layer, Style

LAYER = Layer(
    id="watersheds",
    zh="清洁小流域",
    en="Clean small watersheds",
    geometry_type="MULTIPOLYGON",
    order=5,
    overlaps_allowed=False,
    description_zh="清洁小流域水土保持综合治理：流域名称、治理方案与实施年份",
    description_en="Clean small watersheds under soil-and-water treatment: name, plan and year",
    fields=(
        Field("name", "text", "流域名称", "Name", required=True,
              aliases=("流域名称", "小流域名称", "名称", "LYMC", "NAME")),
        Field("treatment_plan", "text", "治理方案", "Treatment plan",
              aliases=("治理方案", "治理措施", "方案", "ZLFA", "PLAN")),
        Field("year", "integer", "实施年份", "Year", minimum=1990, maximum=2100,
              aliases=("实施年份", "年份", "年度", "SSNF", "NF", "YEAR")),
    ),
    style=Style(color="#018cc1", fill_opacity=0.25, weight=2.0),
)
