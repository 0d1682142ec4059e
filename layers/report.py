"""The township's half-year work report, its figures written from the layers.

The work report (``一、2022年上半年工作总结`` … ``三、下半年工作安排``) leaves its figures as X.
Every X is declared here once, as data (:data:`FIGURES`): its section, the report's own
wording, its unit, and either how the layers answer it (layer, filter, measure, the period
rule) or, when no layer holds it, what data would. :func:`build_report` computes each
answerable figure for a period and the period before, per village, with the CQL2 filter and
the map that show the features behind it, so that an official can defend every number.
Unanswerable figures are listed as such: never a made-up number, never a zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from layers.periods import Period
from layers.registry import LAYERS
from layers.settings import Settings

__all__ = ["FIGURES", "SECTIONS", "Figure", "Section", "build_report", "figure_sql", "table_exists"]

Precision = Literal["day", "year"]


@dataclass(frozen=True)
class Section:
    """A section of the work report: its number and heading as the report writes them."""

    id: str
    zh: str
    en: str


SECTIONS = (
    Section("1.1", "一（一）工业经济发展", "1.1 Industrial economy"),
    Section("1.2", "一（二）产业发展基础", "1.2 Industry and farming"),
    Section("1.3", "一（三）民生与生态建设", "1.3 Livelihoods and ecology"),
    Section("1.4", "一（四）政府自身建设", "1.4 Government"),
    Section("3.1", "三（一）绿色低碳提升工程", "3.1 Green, low-carbon programme"),
    Section("3.2", "三（二）产业转型提升工程", "3.2 Industrial transformation"),
    Section("3.3", "三（三）宜居乡村提升工程", "3.3 Liveable villages"),
)


@dataclass(frozen=True)
class Figure:
    """One X of the work report.

    Answerable ones name ``layer``; ``where`` is the SQL condition on table alias ``t`` and
    ``cql`` the same condition in CQL2 text (the link to the features); ``measure`` the SQL
    aggregate (``sum(t.area_mu) / 10000``); ``date_field`` and ``precision`` the period rule:
    ``day`` (a date field within the period), ``year`` (an integer year field: year precision,
    so a period shorter than a year is widened to its calendar year). The others carry
    ``needs``: the data that would answer them.
    """

    id: str
    section: str
    zh: str
    en: str
    unit: str
    layer: str | None = None
    where: str = "TRUE"
    cql: str = ""
    measure: str = "count(*)"
    measure_zh: str = ""
    measure_en: str = ""
    date_field: str | None = None
    precision: Precision = "day"
    rule_zh: str = ""
    rule_en: str = ""
    by_village: bool = True
    digits: int = 2
    needs_zh: str = ""
    needs_en: str = ""
    #: answered only when this table exists in the database (a layer other branches add)

    @property
    def answerable(self) -> bool:
        """Whether a layer holds this figure."""
        return self.layer is not None

    def wording(self, lang: str) -> str:
        """The report's own words (Chinese) or their English."""
        return self.en if lang == "en" else self.zh


def _no(id_: str, section: str, zh: str, en: str, unit: str, needs_zh: str, needs_en: str) -> Figure:
    return Figure(id_, section, zh, en, unit, needs_zh=needs_zh, needs_en=needs_en)


_LEASE_RULE = (
    "按起始日期计：一宗用地计入其起始日期所在的期间",
    "a lease counts in the period in which it starts (start_date)",
)
_SURVEY_RULE = (
    "按调查日期计：沉陷区的户数和资金计入其调查（清点）日期所在的期间；数值为该次调查记录的累计数",
    "a zone's households and money count in the period of its survey (surveyed_on); the "
    "figure is what that survey recorded",
)
_YEAR_RULE = (
    "按{field}计：只记到年，半年或季度按所在年份全年统计，与上一年比较",
    "by {field}: known to the year only, so a half-year or quarter counts its whole calendar "
    "year and is compared with the year before",
)

FIGURES: tuple[Figure, ...] = (
    # 一（一）工业经济发展
    Figure(
        "land_acquired",
        "1.1",
        "收储土地X亩",
        "Land acquired (X mu)",
        "亩",
        "land_leases",
        "t.kind = 'acquisition'",
        "kind = 'acquisition'",
        "sum(t.area_mu)",
        "面积（亩，椭球面积）",
        "area (mu, on the ellipsoid)",
        "start_date",
        "day",
        *_LEASE_RULE,
    ),
    Figure(
        "land_temporary",
        "1.1",
        "协调临时用地X亩",
        "Temporary land use arranged (X mu)",
        "亩",
        "land_leases",
        "t.kind = 'temporary_use'",
        "kind = 'temporary_use'",
        "sum(t.area_mu)",
        "面积（亩，椭球面积）",
        "area (mu, on the ellipsoid)",
        "start_date",
        "day",
        *_LEASE_RULE,
    ),
    Figure(
        "land_leased",
        "1.1",
        "租赁土地X万亩",
        "Land leased (X 10,000 mu)",
        "万亩",
        "land_leases",
        "t.kind = 'lease'",
        "kind = 'lease'",
        "sum(t.area_mu) / 10000",
        "面积（万亩）",
        "area (10,000 mu)",
        "start_date",
        "day",
        *_LEASE_RULE,
        digits=4,
    ),
    _no(
        "disputes",
        "1.1",
        "解决企地矛盾X余起",
        "Company–village disputes settled (X)",
        "起",
        "企地矛盾（纠纷）登记：受理与办结日期、涉及嘎查村",
        "a register of company–village disputes with dates received and settled",
    ),
    Figure(
        "households_inventoried",
        "1.1",
        "完成X户农牧民的财产清点工作",
        "Households whose property was inventoried (X)",
        "户",
        "subsidence_zones",
        "TRUE",
        "",
        "sum(t.households_total)",
        "涉及户数合计",
        "households in the zone, total",
        "surveyed_on",
        "day",
        *_SURVEY_RULE,
        digits=0,
    ),
    Figure(
        "households_relocated",
        "1.1",
        "搬迁转移矿区塌陷区农牧民X户",
        "Herder households moved out of subsidence zones (X)",
        "户",
        "subsidence_zones",
        "TRUE",
        "",
        "sum(t.households_relocated)",
        "已搬迁户数合计",
        "households relocated, total",
        "surveyed_on",
        "day",
        *_SURVEY_RULE,
        digits=0,
    ),
    Figure(
        "compensation",
        "1.1",
        "兑付补偿安置资金X万元",
        "Compensation paid (X 10,000 yuan)",
        "万元",
        "subsidence_zones",
        "TRUE",
        "",
        "sum(t.compensation_wan_yuan)",
        "补偿安置资金合计",
        "compensation, total",
        "surveyed_on",
        "day",
        *_SURVEY_RULE,
    ),
    _no(
        "coal",
        "1.1",
        "发放平价煤X吨",
        "Low-price coal handed out (X t)",
        "吨",
        "企业发放平价煤台账（日期、吨数、嘎查村）",
        "a ledger of low-price coal handed out",
    ),
    _no(
        "fodder_aid",
        "1.1",
        "抗旱饲草料X吨",
        "Drought fodder handed out (X t)",
        "吨",
        "抗旱饲草料发放台账",
        "a ledger of drought fodder handed out",
    ),
    # 一（二）产业发展基础
    _no(
        "bonds",
        "1.2",
        "争取政府债券资金X万元",
        "Government bond money obtained (X 10,000 yuan)",
        "万元",
        "项目资金台账",
        "a ledger of project funding",
    ),
    _no(
        "rams",
        "1.2",
        "发放超细绒型绒山羊种公羊X只",
        "Breeding bucks handed out (X)",
        "只",
        "良种发放台账",
        "a ledger of breeding stock handed out",
    ),
    _no(
        "vet_branches",
        "1.2",
        "成立兽医分院X家",
        "Veterinary branches set up (X)",
        "家",
        "兽医机构名录（成立日期）",
        "a list of veterinary branches with dates",
    ),
    _no(
        "fattening_coops",
        "1.2",
        "羔羊短期育肥合作社X家",
        "Lamb-fattening cooperatives (X)",
        "家",
        "合作社名录（成立日期、类型）",
        "a list of cooperatives with dates and type",
    ),
    _no(
        "demo_households",
        "1.2",
        "培育羔羊短期育肥示范户X户、绒山羊示范户X户、肉牛养殖示范户X户",
        "Model households: lamb fattening, cashmere goats, beef cattle (X each)",
        "户",
        "示范户名录（类型、认定日期、嘎查村）",
        "a list of model households by type, date and village",
    ),
    _no(
        "offtake",
        "1.2",
        "全镇牲畜出栏量突破X万头（只）",
        "Livestock sold for slaughter (X 10,000 head)",
        "万头（只）",
        "牲畜出栏统计（按年、嘎查村）；本系统的牲畜数量表只记存栏",
        "offtake statistics by year and village (landeco's livestock table holds stock, not offtake)",
    ),
    _no(
        "crops",
        "1.2",
        "种植粮食作物X万亩、经济作物X万亩、饲草料X万亩、经济林X万亩",
        "Grain, cash crops, fodder, orchards planted (X 10,000 mu each)",
        "万亩",
        "种植结构图层（地块、作物、年份）",
        "a crop layer: plots with crop and year",
    ),
    _no(
        "cattle_bases",
        "1.2",
        "打造肉牛养殖基地X处",
        "Beef-cattle bases built (X)",
        "处",
        "养殖基地点位图层",
        "a point layer of livestock bases",
    ),
    # 一（三）民生与生态建设
    _no(
        "granite",
        "1.3",
        "更换长城花园西门广场花岗岩X㎡",
        "Granite paving replaced (X m²)",
        "㎡",
        "市政工程台账",
        "a ledger of town works",
    ),
    _no(
        "heating",
        "1.3",
        "供暖管网X米",
        "Heating pipes laid (X m)",
        "米",
        "管网线图层（建设年份）",
        "a pipe-network line layer with year built",
    ),
    _no(
        "roofs",
        "1.3",
        "屋顶防水维修X㎡",
        "Roofs waterproofed (X m²)",
        "㎡",
        "市政工程台账",
        "a ledger of town works",
    ),
    _no(
        "gravel_roads",
        "1.3",
        "修建乡村砂石路X公里",
        "Gravel roads built (X km)",
        "公里",
        "道路线图层（路面类型、建设年份）",
        "a road line layer with surface and year built",
    ),
    _no(
        "base_stations",
        "1.3",
        "新建通讯基站X座",
        "Mobile base stations built (X)",
        "座",
        "通讯基站点位图层",
        "a point layer of base stations",
    ),
    _no(
        "toilets",
        "1.3",
        "完成户厕改造X户，整改问题户厕X户",
        "Toilets rebuilt, faulty ones fixed (X)",
        "户",
        "户厕改造台账（户、日期）",
        "a ledger of rebuilt toilets by household and date",
    ),
    _no(
        "coal_to_power",
        "1.3",
        "实施“煤改电”项目X户",
        "Households switched from coal to power (X)",
        "户",
        "煤改电台账",
        "a ledger of coal-to-power households",
    ),
    _no(
        "welfare",
        "1.3",
        "发放低保、临时救助等各类资金X万元",
        "Welfare paid (X 10,000 yuan)",
        "万元",
        "民政资金发放台账",
        "the civil-affairs payment ledger",
    ),
    _no(
        "jobs",
        "1.3",
        "协调就业X人",
        "People helped into work (X)",
        "人",
        "就业登记（人、日期）",
        "an employment register",
    ),
    _no(
        "petitions",
        "1.3",
        "化解信访积案X件，办理市长热线X件，公开政务信息X条",
        "Petitions settled, hotline cases, notices published (X each)",
        "件",
        "信访、热线与政务公开台账",
        "petition, hotline and publication ledgers",
    ),
    Figure(
        "patches_rectified",
        "1.3",
        "完成森林草原变化图斑整改任务（整改图斑X个）",
        "Forest and grassland change patches rectified (X patches)",
        "个",
        "change_patches",
        "t.status = 'rectified'",
        "status = 'rectified'",
        "count(*)",
        "图斑个数",
        "number of patches",
        "status_at",
        "day",
        "按整改日期计：图斑计入其状态变为“已整改”的日期所在的期间",
        "a patch counts in the period in which its status became rectified (status_at)",
        digits=0,
        needs_zh="变化图斑图层（change_patches，含整改状态与日期）",
        needs_en="the change-patch layer (change_patches) with its rectification status and date",
    ),
    Figure(
        "patches_rectified_area",
        "1.3",
        "森林草原变化图斑整改面积X亩",
        "Area of change patches rectified (X mu)",
        "亩",
        "change_patches",
        "t.status = 'rectified'",
        "status = 'rectified'",
        "sum(t.area_mu)",
        "面积（亩）",
        "area (mu)",
        "status_at",
        "day",
        "按整改日期计：图斑计入其状态变为“已整改”的日期所在的期间",
        "a patch counts in the period in which its status became rectified (status_at)",
        needs_zh="变化图斑图层（change_patches，含整改状态与日期）",
        needs_en="the change-patch layer (change_patches) with its rectification status and date",
    ),
    Figure(
        "caragana_planted",
        "1.3",
        "分区分片种植柠条X万亩",
        "Caragana planted (X 10,000 mu)",
        "万亩",
        "caragana_plots",
        "TRUE",
        "",
        "sum(t.area_mu) / 10000",
        "面积（万亩）",
        "area (10,000 mu)",
        "planted_year",
        "year",
        _YEAR_RULE[0].format(field="种植年份"),
        _YEAR_RULE[1].format(field="planted_year"),
        digits=4,
    ),
    # 一（四）政府自身建设
    _no(
        "deputies",
        "1.4",
        "办理人大代表建议X件",
        "Deputies' proposals handled (X)",
        "件",
        "人大代表建议办理台账",
        "the ledger of deputies' proposals",
    ),
    _no(
        "approvals",
        "1.4",
        "承接审批事项X项、其他公共服务事项X项，帮办代办X余件",
        "Approvals taken over, services, errands done (X each)",
        "项",
        "便民服务大厅办件系统",
        "the service hall's case system",
    ),
    # 三（一）绿色低碳提升工程
    Figure(
        "fences",
        "3.1",
        "实施黄土高原水土流失综合治理工程网围栏项目X万米",
        "Fences built (X 10 km)",
        "万米",
        "fence_lines",
        "TRUE",
        "",
        "sum(t.length_m) / 10000",
        "长度（万米，椭球长度）",
        "length (10 km, on the ellipsoid)",
        "built_year",
        "year",
        _YEAR_RULE[0].format(field="建设年份") + "；含各项目的网围栏",
        _YEAR_RULE[1].format(field="built_year") + "; fences of every project",
        digits=4,
    ),
    Figure(
        "eco_projects",
        "3.1",
        "实施林草重点工程X万亩",
        "Key forestry and grassland projects (X 10,000 mu)",
        "万亩",
        "eco_projects",
        "TRUE",
        "",
        "sum(t.area_mu) / 10000",
        "面积（万亩）",
        "area (10,000 mu)",
        "year",
        "year",
        _YEAR_RULE[0].format(field="实施年份") + "；含计划、实施中、已完成和已验收",
        _YEAR_RULE[1].format(field="year") + "; planned, in progress, completed and accepted",
        digits=4,
    ),
    Figure(
        "bans_redrawn",
        "3.1",
        "重新划定禁牧区X万亩",
        "Full grazing bans newly delineated (X 10,000 mu)",
        "万亩",
        "grazing_bans",
        "t.regime = 'full_ban'",
        "regime = 'full_ban'",
        "sum(t.area_mu) / 10000",
        "面积（万亩）",
        "area (10,000 mu)",
        "valid_from",
        "day",
        "按生效日期计：禁牧区计入其生效日期所在的期间（管控方式为禁牧）",
        "a ban counts in the period in which it takes effect (valid_from; regime full ban)",
        digits=4,
    ),
    Figure(
        "watersheds",
        "3.1",
        "启动实施哈沙图和特布德清洁小流域水土保持综合治理项目（X万亩）",
        "Clean small watersheds under treatment (X 10,000 mu)",
        "万亩",
        "watersheds",
        "TRUE",
        "",
        "sum(t.area_mu) / 10000",
        "面积（万亩）",
        "area (10,000 mu)",
        "year",
        "year",
        _YEAR_RULE[0].format(field="实施年份"),
        _YEAR_RULE[1].format(field="year"),
        digits=4,
    ),
    # 三（二）产业转型提升工程
    _no(
        "model_households_plan",
        "3.2",
        "培育绒山羊养殖示范户X户、蒙古羊保种示范户X户、肉牛养殖示范户X户",
        "Model households to train (X each)",
        "户",
        "示范户名录（类型、认定日期）",
        "a list of model households by type and date",
    ),
    _no(
        "strip_cropping",
        "3.2",
        "推广大豆玉米带状复合种植X亩",
        "Soybean–maize strip cropping (X mu)",
        "亩",
        "种植结构图层（地块、作物、种植方式）",
        "a crop layer with planting pattern",
    ),
    # 三（三）宜居乡村提升工程
    _no(
        "sewers",
        "3.3",
        "新修布拉格社区排污管网X公里",
        "Sewers laid (X km)",
        "公里",
        "管网线图层",
        "a pipe-network line layer",
    ),
    _no(
        "gas_stations",
        "3.3",
        "建设天然气撬装站X座",
        "Skid-mounted gas stations (X)",
        "座",
        "设施点位图层",
        "a point layer of facilities",
    ),
    _no(
        "roads_plan",
        "3.3",
        "新修柏油路X公里、乡村砂石路X公里",
        "Asphalt and gravel roads (X km each)",
        "公里",
        "道路线图层（路面类型、建设年份）",
        "a road line layer with surface and year built",
    ),
    _no(
        "power_lines",
        "3.3",
        "架设高低压输电线X公里",
        "Power lines strung (X km)",
        "公里",
        "输电线图层",
        "a power-line layer",
    ),
    _no(
        "base_stations_plan",
        "3.3",
        "布设通讯基站X处",
        "Base stations to set up (X)",
        "处",
        "通讯基站点位图层",
        "a point layer of base stations",
    ),
)

#: Most feature ids one map link carries (the maps route takes at most 5000).
MAP_IDS = 5000


def table_exists(conn: sa.Connection, table: str) -> bool:
    """Whether ``table`` exists in the database's search path (a layer another branch adds)."""
    return bool(conn.scalar(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}))


def _years(period: Period) -> tuple[int, int, bool]:
    """The years a year-precise figure counts for ``period`` and whether it was widened."""
    first, last = period.years
    return first, last, not period.whole_years


def figure_sql(fig: Figure, conn: sa.Connection) -> tuple[str, str]:
    """The SQL condition of the period rule (on ``:start``/``:end`` or ``:y0``/``:y1``) and its CQL2 form."""
    if fig.precision == "year":
        return (
            f"t.{fig.date_field} BETWEEN :y0 AND :y1",
            f"{fig.date_field} >= {{y0}} AND {fig.date_field} <= {{y1}}",
        )
    return (
        f"t.{fig.date_field} BETWEEN :start AND :end",
        f"{fig.date_field} >= DATE('{{start}}') AND {fig.date_field} <= DATE('{{end}}')",
    )


def _params(fig: Figure, period: Period, tz: str) -> tuple[dict[str, Any], dict[str, str], str]:
    """Bind parameters, CQL2 placeholders and the label of the days counted for ``period``."""
    if fig.precision == "year":
        y0, y1, _ = _years(period)
        label = str(y0) if y0 == y1 else f"{y0}–{y1}"
        return {"y0": y0, "y1": y1}, {"y0": str(y0), "y1": str(y1)}, label
    return (
        {"start": period.start, "end": period.end},
        {"start": period.start.isoformat(), "end": period.end.isoformat()},
        f"{period.start.isoformat()}..{period.end.isoformat()}",
    )


def _previous_for(fig: Figure, period: Period) -> Period:
    """The period a figure is compared with: the one before, or the year before for year-precise ones."""
    if fig.precision == "year" and not period.whole_years:
        y0, y1 = period.years
        span = y1 - y0 + 1
        start, end = date(y0 - span, 1, 1), date(y1 - span, 12, 31)
        return Period(f"{start.isoformat()}..{end.isoformat()}", "range", start, end)
    return period.previous()


def _round(value: Any, digits: int) -> float | int | None:
    if value is None:
        return None
    return round(float(value)) if digits == 0 else round(float(value), digits)


def _compute(conn: sa.Connection, fig: Figure, period: Period, tz: str) -> dict[str, Any]:
    """The figure's total, count, per-village values, feature ids and the CQL2 of one period."""
    cond, cql_date = figure_sql(fig, conn)
    params, holes, label = _params(fig, period, tz)
    where = f"({fig.where}) AND {cond}"
    rows = conn.execute(
        sa.text(
            f"SELECT t.village_code AS code, v.name AS name, count(*) AS n, {fig.measure} AS value "
            f"FROM {fig.layer} t LEFT JOIN villages v ON v.code = t.village_code "
            f"WHERE {where} GROUP BY t.village_code, v.name ORDER BY t.village_code"
        ),
        params,
    ).all()
    ids = list(
        conn.scalars(
            sa.text(f"SELECT t.id FROM {fig.layer} t WHERE {where} ORDER BY t.id LIMIT {MAP_IDS + 1}"), params
        )
    )
    count = sum(r.n for r in rows)
    value = sum(float(r.value or 0) for r in rows) if rows else 0.0
    cql = cql_date.format(**holes)
    if fig.cql:
        cql = f"{fig.cql} AND {cql}"
    return {
        "value": _round(value, fig.digits),
        "count": count,
        "days": label,
        "cql": cql,
        "ids": ids,
        "villages": {r.code: (r.name, _round(r.value or 0, fig.digits), r.n) for r in rows},
    }


def _links(
    base: str, fig: Figure, cur: dict[str, Any], period: Period, lang: str, asof: datetime | None = None
) -> dict[str, str | None]:
    """The map of the features behind the figure and the query that lists them (CQL2 ``filter``).

    With ``asof`` (when the report was computed) both show the layer as it was then, so that a
    later edit does not change what a figure's link shows.
    """
    registered = fig.layer in LAYERS
    suffix = ("&asof=" + quote(asof.isoformat(timespec="seconds"), safe="") if asof else "") + (
        "&lang=en" if lang == "en" else ""
    )
    query = (
        (
            f"{base}/collections/{fig.layer}/items?"
            + urlencode({"filter": cur["cql"], "filter-lang": "cql2-text"}, quote_via=quote)
            + suffix
        )
        if registered
        else None
    )
    ids = cur["ids"]
    if not registered or not ids:
        the_map = None
    elif len(ids) <= MAP_IDS:
        the_map = f"{base}/maps/{fig.layer}?ids={','.join(map(str, ids))}&on={period.end.isoformat()}{suffix}"
    else:
        the_map = f"{base}/maps/{fig.layer}?on={period.end.isoformat()}{suffix}"
    return {"map": the_map, "query": query}


def _change(now: float | int | None, before: float | int | None, digits: int) -> dict[str, Any]:
    if now is None or before is None:
        return {"change": None, "change_pct": None}
    change = _round(float(now) - float(before), digits)
    pct = round((float(now) - float(before)) / float(before) * 100, 1) if before else None
    return {"change": change, "change_pct": pct}


def compute_figure(
    conn: sa.Connection,
    fig: Figure,
    period: Period,
    *,
    base: str = "",
    lang: str = "zh",
    tz: str = "Asia/Shanghai",
    asof: datetime | None = None,
) -> dict[str, Any]:
    """One figure for ``period`` and the period before, per village, with how and where from."""
    en = lang == "en"
    out: dict[str, Any] = {
        "id": fig.id,
        "section": fig.section,
        "wording": fig.wording(lang),
        "wording_zh": fig.zh,
        "unit": fig.unit,
        "answerable": fig.answerable,
    }
    if not fig.answerable:
        out.update(
            answerable=False,
            value=None,
            reason=("no layer holds it" if en else "系统中没有记录该数据的图层")
            if not fig.answerable
            else ("the layer does not exist in this database yet" if en else "数据库中尚无该图层"),
            needs=fig.needs_en if en else fig.needs_zh,
        )
        return out
    previous = _previous_for(fig, period)
    cur = _compute(conn, fig, period, tz)
    prev = _compute(conn, fig, previous, tz)
    layer = LAYERS.get(fig.layer)
    villages = []
    if fig.by_village:
        for code in sorted(set(cur["villages"]) | set(prev["villages"]), key=lambda c: (c is None, c or "")):
            name, value, n = cur["villages"].get(code, (None, 0 if fig.digits == 0 else 0.0, 0))
            pname, pvalue, _ = prev["villages"].get(code, (None, 0 if fig.digits == 0 else 0.0, 0))
            villages.append(
                {
                    "code": code,
                    "name": name or pname,
                    "value": value,
                    "count": n,
                    "previous": pvalue,
                    **_change(value, pvalue, fig.digits),
                }
            )
    widened = fig.precision == "year" and not period.whole_years
    out.update(
        value=cur["value"],
        count=cur["count"],
        previous=prev["value"],
        previous_count=prev["count"],
        **_change(cur["value"], prev["value"], fig.digits),
        counted=cur["days"],
        previous_counted=prev["days"],
        widened=widened,
        villages=villages,
        feature_ids=cur["ids"][:MAP_IDS],
        how={
            "layer": fig.layer,
            "layer_title": layer.title(lang) if layer else fig.layer,
            "filter": fig.cql or ("all features" if en else "全部要素"),
            "measure": fig.measure_en if en else fig.measure_zh,
            "measure_sql": fig.measure,
            "period_rule": fig.rule_en if en else fig.rule_zh,
            "cql2": cur["cql"],
            "previous_cql2": prev["cql"],
        },
        links=_links(base, fig, cur, period, lang, asof),
        previous_links=_links(base, fig, prev, previous, lang, asof),
    )
    return out


def data_as_of(conn: sa.Connection, tables: list[str]) -> date | None:
    """The day the newest feature of these tables was written: "data as of"."""
    parts = [
        f"SELECT max(updated_at) AS t FROM {t}"
        for t in dict.fromkeys(tables)
        if conn.scalar(
            sa.text(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = :t AND column_name = 'updated_at'"
            ),
            {"t": t},
        )
    ]
    if not parts:
        return None
    newest = conn.scalar(sa.text(f"SELECT max(t) FROM ({' UNION ALL '.join(parts)}) x"))
    return newest.date() if newest is not None else None


def build_report(
    conn: sa.Connection,
    settings: Settings,
    period: Period,
    *,
    base: str = "",
    lang: str = "zh",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Every figure of the work report for ``period`` (and the one before), by section.

    ``base`` prefixes the links (the server's address; empty: links relative to it).
    """
    from layers.carrying import carrying_capacity

    en = lang == "en"
    tz = settings.timezone
    now = now or datetime.now(ZoneInfo(tz))
    # to the next whole second: the links' ``asof`` must not fall before what was just counted
    if now.microsecond:
        now = now.replace(microsecond=0) + timedelta(seconds=1)
    figures = [compute_figure(conn, f, period, base=base, lang=lang, tz=tz, asof=now) for f in FIGURES]
    capacity = carrying_capacity(conn, settings, period, lang=lang)
    sections = []
    for s in SECTIONS:
        sections.append(
            {
                "id": s.id,
                "title": s.en if en else s.zh,
                "figures": [f for f in figures if f["section"] == s.id],
            }
        )
    tables = [f.layer for f in FIGURES if f.layer and table_exists(conn, f.layer)] + ["grazing_bans"]
    answered = [f["id"] for f in figures if f["answerable"]]
    as_of = data_as_of(conn, tables)
    previous = period.previous()
    return {
        "title": (
            f"{settings.township_en} · work report figures · {period.label('en')}"
            if en
            else f"{settings.township} · {period.label('zh')}工作报告数据"
        ),
        "township": settings.township_en if en else settings.township,
        "lang": lang,
        "period": {
            "key": period.key,
            "label": period.label(lang),
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
        },
        "previous": {
            "key": previous.key,
            "label": previous.label(lang),
            "start": previous.start.isoformat(),
            "end": previous.end.isoformat(),
        },
        "generated_at": now.isoformat(timespec="seconds"),
        "data_as_of": as_of.isoformat() if as_of else None,
        "answered": answered,
        "not_answerable": [f["id"] for f in figures if not f["answerable"]],
        "sections": sections,
        "carrying_capacity": capacity,
    }
