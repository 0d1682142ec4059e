"""柠条地块 — caragana shrub planted to fix sand, by year, method and survival."""

from layers.model import Choice, Field, Layer, Overlay, Style

LAYER = Layer(
    id="caragana_plots",
    zh="柠条地块",
    en="Caragana plots",
    geometry_type="MULTIPOLYGON",
    order=40,
    overlaps_allowed=False,
    description_zh="柠条种植地块：种植年份、方式、苗木数量与成活率",
    description_en="Caragana planting plots: year, method, seedlings and survival rate",
    fields=(
        Field("planted_year", "integer", "种植年份", "Year planted", required=True,
              minimum=1990, maximum=2100,
              aliases=("种植年份", "年份", "种植年度", "造林年度", "ZZNF", "NF", "YEAR")),
        Field("method", "text", "种植方式", "Method", required=True,
              choices=(Choice("enclosure", "划区围封", "Enclosure", "#1b9e77"),
                       Choice("restoration", "划区恢复", "Restoration", "#d95f02"),
                       Choice("replacement", "蒿草换柠条", "Artemisia replaced", "#7570b3")),
              aliases=("种植方式", "方式", "治理方式", "ZZFS", "METHOD")),
        Field("seedlings", "integer", "苗木数量", "Seedlings", unit="株", minimum=0,
              aliases=("苗木数量", "苗木株数", "株数", "MMSL", "SEEDLINGS")),
        Field("survival_rate", "real", "苗木成活率", "Survival rate", unit="%",
              minimum=0, maximum=1,
              aliases=("苗木成活率", "成活率", "CHL", "SURVIVAL")),
        Field("contractor", "text", "施工单位", "Contractor",
              aliases=("施工单位", "承包单位", "承包人", "SGDW", "CONTRACTOR")),
        Field("inspected_on", "date", "验收日期", "Inspected on",
              aliases=("验收日期", "检查日期", "YSRQ", "INSPECTED")),
    ),
    temporal=("inspected_on", None),
    overlays=(Overlay("caragana_in_leases", "柠条地块位于租赁用地内", "Caragana plots inside active leases",
                      "land_leases", ("planted_year", "method"), ("lessee", "purpose"), group="purpose"),),
    style=Style(color="#1a9850", by="planted_year",
                scale=("#edf8e9", "#bae4b3", "#74c476", "#31a354", "#006d2c")),
)
