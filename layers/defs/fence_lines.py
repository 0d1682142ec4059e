"""网围栏 — fences that close pasture for rest and restoration, reported in 万米 (10 km)."""

from layers.model import Choice, Field, Layer, Style

LAYER = Layer(
    id="fence_lines",
    zh="网围栏",
    en="Fence lines",
    geometry_type="MULTILINESTRING",  # measures by default: length in m (stored) and 万米
    order=60,
    description_zh="草原网围栏：所属项目、建设年份、围栏类型与施工单位，长度以米和万米计",
    description_en="Pasture fences: project, year built, fence type and contractor; length in m and 万米",
    fields=(
        Field("project", "text", "项目名称", "Project",
              aliases=("项目名称", "项目", "工程名称", "XMMC", "PROJECT")),
        Field("built_year", "integer", "建设年份", "Year built", required=True,
              minimum=1990, maximum=2100,
              aliases=("建设年份", "建设年度", "年份", "JSNF", "NF", "YEAR")),
        Field("fence_type", "text", "围栏类型", "Fence type", required=True,
              choices=(Choice("wire_mesh", "刺丝网围栏", "Barbed-wire mesh", "#8c510a"),
                       Choice("woven_mesh", "编结网围栏", "Woven mesh", "#01665e"),
                       Choice("welded_mesh", "焊接网围栏", "Welded mesh", "#5e3c99"),
                       Choice("rail", "钢管围栏", "Steel rail", "#969696")),
              aliases=("围栏类型", "类型", "网围栏类型", "WLLX", "FENCE_TYPE")),
        Field("contractor", "text", "施工单位", "Contractor",
              aliases=("施工单位", "承建单位", "SGDW", "CONTRACTOR")),
    ),
    style=Style(color="#8c510a", weight=3.0, by="fence_type"),
)
