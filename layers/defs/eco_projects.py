"""林草重点工程 — forestry and grassland projects: restoration, soil and water, sand control."""

from layers.model import Choice, Field, Layer, Overlay, Pale, Style

LAYER = Layer(
    id="eco_projects",
    zh="林草重点工程",
    en="Forestry and grassland projects",
    geometry_type="MULTIPOLYGON",
    order=15,
    overlaps_allowed=False,
    description_zh="林草重点工程：工程类型、实施年份、投资、计划面积与实施状态",
    description_en="Key forestry and grassland projects: type, year, investment, target area, status",
    fields=(
        Field("name", "text", "工程名称", "Name",
              aliases=("工程名称", "项目名称", "名称", "GCMC", "NAME")),
        Field("project_type", "text", "工程类型", "Project type", required=True,
              choices=(Choice("grassland_restoration", "退化草原修复", "Degraded grassland restoration",
                              "#568c00"),
                       Choice("soil_water", "水土保持", "Soil and water conservation", "#08306b"),
                       Choice("sand_control", "防沙治沙", "Sand prevention and control", "#8c510a"),
                       Choice("afforestation", "人工造林", "Afforestation", "#00441b"),
                       Choice("other", "其他", "Other", "#c1f5ff")),
              aliases=("工程类型", "类型", "项目类型", "GCLX", "TYPE")),
        Field("year", "integer", "实施年份", "Year", required=True, minimum=1990, maximum=2100,
              aliases=("实施年份", "年份", "年度", "SSNF", "NF", "YEAR")),
        Field("investment_wan_yuan", "real", "投资", "Investment", unit="万元", minimum=0,
              aliases=("投资", "总投资", "投资额", "TZ", "INVEST_WAN")),
        Field("target_area_mu", "real", "计划面积", "Target area", unit="亩", minimum=0,
              aliases=("计划面积", "任务面积", "计划任务", "JHMJ", "TARGET_MU")),
        Field("status", "text", "实施状态", "Status", required=True,
              choices=(Choice("planned", "计划", "Planned"),
                       Choice("in_progress", "实施中", "In progress"),
                       Choice("completed", "已完成", "Completed"),
                       Choice("accepted", "已验收", "Accepted")),
              aliases=("实施状态", "状态", "ZT", "STATUS")),
    ),
    # restoration on land leased out to solar, mining or railways is a conflict to settle
    overlays=(Overlay("eco_projects_in_leases", "林草重点工程位于租赁用地内",
                      "Forestry and grassland projects on leased land", "land_leases",
                      ("name", "project_type", "status"), ("lessee", "purpose"), group="purpose"),),
    style=Style(color="#66bd63", by="project_type", fill_opacity=0.4,
                rules=(Pale("status", ("planned",)),)),
)
