"""禁牧休牧区 — grazing-ban areas by regime, each valid for a period until re-delineated."""

from layers.model import Choice, Field, Layer, Season, Style

LAYER = Layer(
    id="grazing_bans",
    zh="禁牧休牧区",
    en="Grazing-ban areas",
    geometry_type="MULTIPOLYGON",
    order=10,
    # re-delineated areas overlap their predecessors in space, not in time
    overlaps_allowed=True,
    description_zh="禁牧、休牧、划区轮牧和草畜平衡区域及其有效期",
    description_en="Full ban, seasonal rest, rotational grazing and balance areas, by validity",
    fields=(
        Field("name", "text", "名称", "Name", aliases=("名称", "区域名称", "MC", "NAME")),
        Field("regime", "text", "管控方式", "Regime", required=True,
              choices=(Choice("full_ban", "禁牧", "Full ban", "#d73027"),
                       Choice("seasonal_rest", "休牧", "Seasonal rest", "#e47a59"),
                       Choice("rotational", "划区轮牧", "Rotational grazing", "#fcb060"),
                       Choice("balance", "草畜平衡", "Grazing-livestock balance", "#0865ac")),
              aliases=("管控方式", "类型", "禁牧类型", "GKFS", "REGIME")),
        Field("season_start", "monthday", "休牧开始", "Rest season starts",
              aliases=("休牧开始", "开始日期", "休牧起", "XMKS", "SEASON_STA")),
        Field("season_end", "monthday", "休牧结束", "Rest season ends",
              aliases=("休牧结束", "结束日期", "休牧止", "XMJS", "SEASON_END")),
        Field("valid_from", "date", "生效日期", "Valid from",
              aliases=("生效日期", "划定日期", "起始日期", "SXRQ", "VALID_FROM")),
        Field("valid_to", "date", "失效日期", "Valid to",
              aliases=("失效日期", "截止日期", "SXRQ2", "VALID_TO")),
        Field("document_no", "text", "批准文号", "Document no.",
              aliases=("批准文号", "文号", "文件号", "PZWH", "DOC_NO")),
    ),
    checks=(
        ("valid_to_after_from", "valid_to IS NULL OR valid_from IS NULL OR valid_to >= valid_from"),
        ("season_only_for_rest",
         "regime = 'seasonal_rest' OR (season_start IS NULL AND season_end IS NULL)"),
        ("season_complete", "(season_start IS NULL) = (season_end IS NULL)"),
    ),
    temporal=("valid_from", "valid_to"),
    # re-delineated: a map, a statistic or a conflict on a date counts the areas then in force
    validity=("valid_from", "valid_to"),
    # seasonal rest: solid inside its season, dashed and pale outside it
    style=Style(color="#d73027", by="regime",
                rules=(Season("regime", "seasonal_rest", "season_start", "season_end"),)),
)
