"""嘎查村 — the administrative units below the township; every parcel belongs to one."""

from layers.model import Choice, Field, Layer, Style

LAYER = Layer(
    id="villages",
    zh="嘎查村",
    en="Villages",
    geometry_type="MULTIPOLYGON",
    role="frame",
    order=0,
    has_village=False,
    overlaps_allowed=False,
    description_zh="镇辖嘎查、村和社区的界线",
    description_en="Boundaries of the township's gachas, villages and communities",
    fields=(
        Field("name", "text", "名称", "Name", required=True,
              aliases=("名称", "嘎查村名称", "村名", "MC", "NAME", "CJMC")),
        Field("kind", "text", "类型", "Kind", required=True,
              choices=(Choice("gacha", "嘎查", "Gacha"),
                       Choice("village", "村", "Village"),
                       Choice("community", "社区", "Community")),
              aliases=("类型", "类别", "LX", "TYPE")),
        Field("population", "integer", "人口", "Population", unit="人", minimum=0,
              aliases=("人口", "户籍人口", "总人口", "RK", "POP")),
    ),
    style=Style(color="#444444", fill_opacity=0.0, weight=2.0, label="name"),
)
