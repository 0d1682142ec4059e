# ruff: noqa: E501 - a catalogue of sentences reads best one entry a line
"""One catalogue of what landeco tells people: a stable code → Chinese and English text.

Problems (of a file, of a feature, of a request) keep their English ``code`` and their
named parameters; the words are rendered here, in the language asked for (Chinese by
default). Upload reports, problem+json responses and ``landeco import`` all use it:

- :func:`message` ``(code, lang, **params)``: a problem's text;
- :func:`hint` ``(code, lang, **params)``: what to do about it, or None;
- :func:`title` ``(code, lang, status)``: a problem document's title;
- :func:`localise_report` ``(report, lang)``: an upload report's words (a copy);
- :func:`quote`: file content made safe to show (no control or direction characters, cut short).

Text quoted from a file is passed through :func:`quote` when the problem is made; pages
still escape everything they render (Jinja autoescaping), the CLI escapes Rich markup.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["LANGS", "MESSAGES", "area_text", "hint", "language", "localise_report", "message", "quote",
           "title"]

LANGS = ("zh", "en")
M2_PER_MU = 10_000 / 15
#: control characters and the Unicode direction marks that could reorder a message on screen
_HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")

Text = str | Callable[[dict[str, Any]], str]


def quote(value: object, limit: int = 80) -> str:
    r"""``value`` as text safe to show in a message: hidden characters escaped, cut to ``limit``.

    Examples
    --------
    >>> quote("a\u202eb\x00c")
    'a\\u202eb\\x00c'
    >>> len(quote("x" * 10_000))
    81
    """
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
    text = text[:limit * 2]
    text = _HIDDEN.sub(lambda m: f"\\u{ord(m.group()):04x}" if ord(m.group()) > 0xFF
                       else f"\\x{ord(m.group()):02x}", text)
    return text if len(text) <= limit else text[:limit] + "…"


def area_text(m2: float, lang: str) -> str:
    """An area in 亩 with m² in brackets: ``0.03 亩（18 m²）``."""
    mu = m2 / M2_PER_MU
    mu_text = f"{mu:,.2f}" if mu >= 0.01 else f"{mu:.4f}"
    return f"{mu_text} 亩（{m2:,.0f} m²）" if lang == "zh" else f"{mu_text} mu ({m2:,.0f} m²)"


def _where(p: dict[str, Any], lang: str) -> str:
    zh = {"option": "您选择的编码", "cpg": ".cpg 文件所写的编码", "format": "该文件格式规定的编码"}
    en = {"option": "the encoding option", "cpg": "the .cpg file", "format": "the format"}
    return (zh if lang == "zh" else en).get(str(p.get("where")), str(p.get("where", "")))


def _at(p: dict[str, Any], lang: str) -> str:
    if p.get("field_name"):
        return f"（字段名 {p['field_name']}）" if lang == "zh" else f" (field name {p['field_name']})"
    if p.get("feature") is not None and p.get("column"):
        return (f"（第 {p['feature']} 个要素，列「{p['column']}」）" if lang == "zh"
                else f" (feature {p['feature']}, column '{p['column']}')")
    return ""


def _overlap(lang: str, existing: bool) -> Callable[[dict[str, Any]], str]:
    def text(p: dict[str, Any]) -> str:
        area = area_text(float(p["area_m2"]), lang)
        if existing:
            return (f"与图层中已有的要素 {p['other_code']} 重叠 {area}" if lang == "zh"
                    else f"overlaps '{p['other_code']}', already in the layer, by {area}")
        return (f"与文件中的第 {p['other']} 个要素（{p['other_code']}）重叠 {area}" if lang == "zh"
                else f"overlaps feature {p['other']} ('{p['other_code']}') of the file by {area}")
    return text


def _outside(lang: str) -> Callable[[dict[str, Any]], str]:
    def text(p: dict[str, Any]) -> str:
        if "lon" in p:
            return (f"要素位于本旗之外（约 {p['lon']:.4f}, {p['lat']:.4f}）" if lang == "zh"
                    else f"the feature lies outside the township (near {p['lon']:.4f}, {p['lat']:.4f})")
        return ("按所选坐标系，文件中的要素都远离本旗" if lang == "zh"
                else "in the coordinate system chosen, the file's features lie far from the township")
    return text


_TYPES = {"integer": ("整数", "a whole number"), "real": ("数值", "a number"),
          "date": ("日期（如 2022-05-01）", "a date (e.g. 2022-05-01)"),
          "monthday": ("月日（如 05-01）", "a month and day (e.g. 05-01)"), "text": ("文字", "text")}


def _both(zh: Text, en: Text) -> dict[str, Text]:
    return {"zh": zh, "en": en}


#: code → language → text with named parameters (``str.format``) or a function of them.
def _status(value: object, lang: str) -> str:
    """A change patch's status in words (待核查, Pending)."""
    from layers.defs.change_patches import LAYER

    choice = LAYER.get_field("status").choice(str(value))
    return (choice.en if lang == "en" else choice.zh) if choice else str(value)


def _next(p: dict[str, Any], lang: str) -> str:
    allowed = [_status(s, lang) for s in p.get("allowed") or []]
    if lang == "en":
        return f"it can become {', '.join(allowed)}" if allowed else "that status is final"
    return f"只能改为：{'、'.join(allowed)}" if allowed else "已是最终状态，不能再改"


MESSAGES: dict[str, dict[str, Text]] = {
    # --- change patches' workflow (layers.change_patches) ---
    "illegal_transition": _both(
        lambda p: (f"图斑当前为「{_status(p['current_status'], 'zh')}」，不能改为「{_status(p['requested_status'], 'zh')}」；{_next(p, 'zh')}"
                   if p.get("current_status") else f"新图斑须为「{_status('pending', 'zh')}」，不能为「{_status(p['requested_status'], 'zh')}」"),
        lambda p: (f"the patch is {_status(p['current_status'], 'en')}: it cannot become {_status(p['requested_status'], 'en')}; {_next(p, 'en')}"
                   if p.get("current_status") else f"a new patch is {_status('pending', 'en')}, not {_status(p['requested_status'], 'en')}")),
    # --- change detection between two rasters (gis.change) ---
    "threshold_invalid": _both("阈值须为大于 0 的变化量", "the threshold is an absolute change greater than 0"),
    "direction_invalid": _both("变化方向须为 loss（减少）、gain（增加）或 both（两者）",
                               "direction is loss, gain or both"),
    "min_mu_invalid": _both("最小面积须为 0 亩或以上", "the minimum size is 0 mu or more"),
    "raster_unreadable": _both("影像文件无法打开", "a raster cannot be opened"),
    "raster_without_crs": _both("两期影像都须有坐标系", "both rasters need a coordinate reference system"),
    "rasters_disjoint": _both("两期影像没有重叠的范围，无法比较", "the two rasters do not overlap: nothing to compare"),
    # --- a whole file refused (gis.errors.InputError codes) ---
    "encoding_mismatch": _both(
        lambda p: f"{_where(p, 'zh')}是 {p['encoding']}，但文件的文字不是 {p['encoding']} 编码{_at(p, 'zh')}",
        lambda p: f"the text of the file is not {p['encoding']}, as {_where(p, 'en')} says{_at(p, 'en')}"),
    "encoding_undetermined": _both(
        lambda p: f"无法确定文件文字的编码：既不是 UTF-8，也不是 GB18030（GBK）{_at(p, 'zh')}",
        lambda p: f"the text of the file is neither UTF-8 nor GB18030 (GBK){_at(p, 'en')}"),
    "unknown_encoding": _both("不认识的文字编码「{encoding}」", "unknown text encoding '{encoding}'"),
    "corrupt_file": _both("文件无法打开或读取，可能已损坏", "the file cannot be opened or read; it may be damaged"),
    "corrupt_zip": _both("zip 压缩包无法解压，可能已损坏", "the zip archive cannot be unpacked; it may be damaged"),
    "corrupt_shp": _both(".shp 文件已损坏或不完整", "the .shp file is damaged or cut short"),
    "corrupt_dbf": _both(".dbf 文件已损坏或不完整", "the .dbf file is damaged or cut short"),
    "count_mismatch": _both("图形（.shp）与属性（.dbf）的要素数不一致",
                            "the shapes (.shp) and the records (.dbf) differ in number"),
    "shapefile_incomplete": _both(
        lambda p: f"{p['dataset']}：缺少 {'、'.join('.' + m for m in p['missing'])} 文件",
        lambda p: f"{p['dataset']}: the {' and '.join('.' + m for m in p['missing'])} file is missing"),
    "no_dataset": _both("压缩包中没有 shapefile、GeoPackage、GeoJSON、KML 或 CSV 文件",
                        "the zip holds no shapefile, GeoPackage, GeoJSON, KML or CSV"),
    "empty_file": _both("文件中没有要素", "the file holds no features"),
    "dataset_not_found": _both("上传的文件中没有这个数据集", "the upload holds no dataset of that name"),
    "dataset_ambiguous": _both(lambda p: f"上传的文件包含 {len(p['candidates'])} 个数据集，请选择要导入的一个",
                               lambda p: f"the upload holds {len(p['candidates'])} datasets; say which to import"),
    "unsupported_format": _both("不支持这种文件：请上传 zip（shapefile）、GeoPackage、GeoJSON、KML 或 CSV",
                                "the file is not a zip, GeoPackage, GeoJSON, KML or CSV file"),
    "too_large": _both("文件太大", "the file is too large"),
    "zip_bomb": _both("压缩包解压后异常巨大，已拒绝", "the archive would inflate far beyond its size; refused"),
    "unsafe_path": _both("压缩包中含有不安全的路径", "the archive holds an unsafe path"),
    "unknown_format": _both("没有这种导出格式", "no such export format"),
    "unsupported_crs": _both("不提供这个坐标系", "that coordinate system is not offered"),
    "invalid_option": _both("选项「{option}」的值无效", "the value of the option '{option}' is not valid"),
    "crs_missing": _both("文件没有说明坐标系（缺少 .prj）", "the file does not say which coordinate system it is "
                         "in (no .prj)"),
    "crs_unrecognised": _both(".prj 中的坐标系无法识别", "the coordinate system of the .prj is not recognised"),
    "crs_invalid": _both("无法识别所填的坐标系", "the coordinate system named is not one pyproj knows"),
    "lonlat_swapped": _both("经度和纬度似乎颠倒了", "longitude and latitude seem swapped"),
    "coordinates_not_degrees": _both("坐标不是经纬度（度），但坐标系是地理坐标系",
                                     "the coordinates are not degrees, but the coordinate system is geographic"),
    "coordinates_look_like_degrees": _both("坐标看起来是经纬度，但坐标系是投影坐标系",
                                           "the coordinates look like degrees, but the coordinate system is "
                                           "projected"),
    "easting_has_zone_number": _both("横坐标带有带号，与所选坐标系不符",
                                     "the eastings carry the zone number, which the coordinate system does not"),
    "outside_township": _both(_outside("zh"), _outside("en")),
    # --- a raster refused (gis.raster, layers.rasters) ---
    "invalid_raster_parameter": _both("栅格参数「{parameter}」的值无效（类型为 ndvi、fvc、dem 或 other，日期如 "
                                      "2022-07-15）", "the raster's {parameter} is not valid (kind: ndvi, fvc, "
                                      "dem or other; a date like 2022-07-15)"),
    "raster_not_tiff": _both("文件不是 TIFF（GeoTIFF）栅格", "the file is not a TIFF (GeoTIFF)"),
    "raster_corrupt": _both("栅格文件无法读取，可能已损坏或不完整", "the raster cannot be read; it may be damaged or "
                            "cut short"),
    "raster_too_large": _both("栅格文件太大（{size_bytes:,} 字节，上限 {max_bytes:,}）",
                              "the raster file is too large ({size_bytes:,} bytes; at most {max_bytes:,})"),
    "raster_dimensions_too_large": _both(
        "栅格声称有 {width:,} × {height:,} 像元 × {bands} 个波段（未压缩 {pixel_bytes:,} 字节），超过上限 "
        "{max_pixel_bytes:,} 字节", "the raster claims {width:,} × {height:,} pixels × {bands} bands "
        "({pixel_bytes:,} bytes uncompressed); at most {max_pixel_bytes:,} are accepted"),
    "raster_too_many_bands": _both("栅格有 {bands} 个波段，最多接受 {max_bands} 个",
                                   "the raster has {bands} bands; at most {max_bands} are accepted"),
    "raster_dtype_unsupported": _both("不接受这种像元类型（复数或 1 位）", "this sample type (complex or 1-bit) "
                                      "is not accepted"),
    "raster_no_crs": _both("栅格没有说明坐标系", "the raster names no coordinate system"),
    "raster_not_georeferenced": _both("栅格没有地理参考（仿射变换）", "the raster has no geotransform"),
    "raster_rotated": _both("栅格格网是旋转或倾斜的", "the raster's grid is rotated or sheared"),
    "raster_outside_township": _both("栅格不在本镇范围内（请检查坐标系）", "the raster lies far from the township "
                                     "(check its coordinate system)"),
    # --- one feature (warnings and errors in an upload report) ---
    "zm_dropped": _both("文件含有 Z（高程）或 M（量测）值，已舍去：图层为二维",
                        "the file has Z (height) or M (measure) values; they were dropped, as layers are 2D"),
    "encoding_cpg_contradicted": _both(
        "文件的 .cpg 写着 {declared}，但文字实际是 {encoding}：已按 {encoding} 读取",
        "the .cpg says {declared} but the text is {encoding}: read as {encoding}"),
    "totals_row_left_out": _both("文件最后一行是合计行（{label}），不是要素，未导入",
                                 "the file's last row is a totals row ({label}), not a feature: left out"),
    "text_cut": _both("{count} 个文字值的最后一个字被字段宽度截断了一半，已去掉这半个字",
                      "{count} text values ended in half a character, cut by the field width; it was dropped"),
    "geometry_unsupported": _both("无法保存这种图形（如 MultiPatch）",
                                  "this shape type (e.g. a MultiPatch) cannot be stored"),
    "geometry_missing": _both("要素没有图形", "the feature has no geometry"),
    "geometry_type_mismatch": _both(
        lambda p: f"{p['geom_type']} 不能放入{ {'polygon': '面', 'line': '线', 'point': '点'}.get(p['kind'], '')}图层",
        "a {geom_type} cannot go into a layer of {kind}s"),
    "geometry_invalid": _both("图形无效（{reason}），无法自动修复", "the geometry is invalid ({reason}) and "
                              "cannot be repaired"),
    "geometry_repaired": _both("图形无效（{reason}），已修复，面积变化 {change:.4%}",
                               "the polygon was invalid ({reason}); repaired, area changed by {change:.4%}"),
    "value_invalid": _both(lambda p: f"「{p['value']}」不是{_TYPES.get(p['type'], (p['type'],))[0]}",
                           lambda p: f"'{p['value']}' is not {_TYPES.get(p['type'], ('', p['type']))[1]}"),
    "value_not_allowed": _both("「{value}」不是可选的值：{choices}", "'{value}' is not one of {choices}"),
    "value_out_of_range": _both("{value} 超出范围 {minimum}–{maximum}", "{value} is outside {minimum}–{maximum}"),
    "value_missing": _both(lambda p: f"{p['field_label']}必须填写" + ("；文件中没有对应的列" if p.get("no_column")
                                                                   else ""),
                           lambda p: f"{p['field_label']} is required" + ("; no column of the file maps to it"
                                                                         if p.get("no_column") else "")),
    "code_duplicate": _both("编号「{code}」在文件中的第 {first} 个要素中也用过",
                            "code '{code}' is also used by feature {first} of the file"),
    "code_exists": _both("编号「{code}」已在图层中（要替换它，请用“更新或新增”模式）",
                         "code '{code}' is already in the layer (use mode upsert to replace it)"),
    "code_not_in_layer": _both("图层中没有编号为「{code}」的要素：没有图形的文件只能修改已有要素的属性",
                               "no feature of the layer has code '{code}': a file without geometries can only "
                               "change existing features"),
    "geometry_absent": _both("文件中没有图形：只能以“更新或新增”（upsert）模式修改图层中已有要素的属性",
                             "the file has no geometries: it can only change the attributes of features already "
                             "in the layer (mode upsert)"),
    "township_changed": _both("要素属于嘎查村「{village}」所在的苏木乡镇，不能改到其他苏木乡镇的嘎查村「{new}」"
                              "（请删除后重新新增）",
                              "the feature lies in the township of village '{village}': it cannot move to "
                              "'{new}' of another township (delete it and add it anew)"),
    "village_unknown": _both("没有编号为「{village}」的嘎查村", "no village has code '{village}'"),
    "rule_broken": _both("属性值违反了规则「{rule}」", "the values break the rule '{rule}'"),
    "workflow_step_needed": _both("状态只能按流程逐步变更：此处应为「{expected_zh}」，文件中为「{value_zh}」",
                                  "the status changes only by a step of its workflow: "
                                  "expected '{expected}', the file has '{value}'"),
    "overlap": _both(_overlap("zh", False), _overlap("en", False)),
    "overlap_existing": _both(_overlap("zh", True), _overlap("en", True)),
}

#: code → what to do, where there is something to say
HINTS: dict[str, dict[str, Text]] = {
    "encoding_mismatch": _both(
        lambda p: "请选择文件保存时用的编码（utf-8、gbk 或 gb18030），或留空让系统检测；也可以把文件另存为 UTF-8"
        + (f"。文件的文字看来是 {p['suggested']}" if p.get("suggested") else ""),
        lambda p: "choose the encoding the file was saved in (utf-8, gbk or gb18030), or leave it empty to be "
        "detected; or save the file again as UTF-8" + (f". The text looks like {p['suggested']}" if p.get("suggested")
                                                       else "")),
    "encoding_undetermined": _both("请选择文件保存时用的编码（utf-8、gbk 或 gb18030），或把文件另存为 UTF-8",
                                   "choose the encoding the file was saved in (utf-8, gbk or gb18030), or save "
                                   "the file again as UTF-8"),
    "unknown_encoding": _both("请用 utf-8、gbk 或 gb18030", "use utf-8, gbk or gb18030"),
    "crs_missing": _both("请选择坐标系，如 EPSG:4545（CGCS2000 3 度带 中央经线 108°E）或 EPSG:4490（CGCS2000 经纬度）",
                         "name the CRS, e.g. EPSG:4545 (CGCS2000 3-degree GK CM 108E) or EPSG:4490 "
                         "(CGCS2000 geographic)"),
    "crs_unrecognised": _both("请明确选择坐标系", "name the CRS explicitly"),
    "shapefile_incomplete": _both("请把 shapefile 的全部文件（.shp .shx .dbf .prj .cpg）一起压缩",
                                  "zip every file of the shapefile (.shp .shx .dbf .prj .cpg)"),
    "no_dataset": _both("请把 .shp 和 .shx、.dbf、.prj 一起压缩", "zip the .shp with its .shx, .dbf and .prj"),
    "unsupported_format": _both("请把 shapefile 的各个文件（.shp .shx .dbf .prj .cpg）压缩成 zip 再上传",
                                "zip the shapefile's files (.shp .shx .dbf .prj .cpg) and upload the zip"),
    "dataset_ambiguous": _both("请在“数据集”选项中选择一个", "choose one with the dataset option"),
    "corrupt_shp": _both("请从调查员的电脑重新复制文件", "copy the file again from the surveyor's computer"),
    "corrupt_dbf": _both("请从调查员的电脑重新复制文件", "copy the file again from the surveyor's computer"),
    "outside_township": _both("请检查坐标系是否为调查员所用的；若 .prj 有误，请选择正确的坐标系",
                              "check that the coordinate system is the surveyor's; name it if the .prj is wrong"),
}

#: code → a problem document's title; others get a title by HTTP status
TITLES: dict[str, tuple[str, str]] = {
    "illegal_transition": ("不允许的状态变更", "Illegal status change"),
    "workflow_field": ("状态只能按核查整改流程修改", "Changed only through the workflow"),
    "step_forbidden": ("没有权限执行此步骤", "Not allowed to take this step"),
    "invalid_step": ("核查整改步骤无效", "Invalid status step"),
    "invalid_detection": ("变化检测参数无效", "Invalid change detection"),
    "raster_pair_mismatch": ("两期影像无法比较", "Rasters cannot be compared"),
    "upload_refused": ("文件被拒绝", "Upload refused"),
    "upload_not_found": ("找不到上传的文件", "Upload not found"),
    "upload_not_committable": ("无法写入", "Upload cannot be committed"),
    "upload_quota_exceeded": ("上传空间已满", "Upload storage full"),
    "unknown_layer": ("没有这个图层", "Unknown layer"),
    "unknown_village": ("没有这个嘎查村", "Unknown village"),
    "invalid_parameter": ("参数无效", "Invalid parameter"),
    "database_unavailable": ("数据库暂不可用", "Database unavailable"),
    "query_timeout": ("查询时间太长", "Query took too long"),
    "internal_error": ("内部错误", "Internal error"),
    "raster_not_found": ("找不到栅格", "Raster not found"),
    "invalid_raster_parameter": ("栅格参数无效", "Invalid raster parameter"),
    "raster_not_tiff": ("不是 GeoTIFF", "Not a GeoTIFF"),
    "raster_corrupt": ("栅格已损坏或不完整", "Raster damaged or truncated"),
    "raster_too_large": ("栅格文件太大", "Raster file too large"),
    "raster_dimensions_too_large": ("栅格像元太多", "Raster has too many pixels"),
    "raster_too_many_bands": ("栅格波段太多", "Raster has too many bands"),
    "raster_dtype_unsupported": ("不接受的像元类型", "Raster sample type not accepted"),
    "raster_no_crs": ("栅格没有坐标系", "Raster has no coordinate system"),
    "raster_not_georeferenced": ("栅格没有地理参考", "Raster not georeferenced"),
    "raster_rotated": ("栅格格网旋转", "Raster grid rotated"),
    "raster_outside_township": ("栅格不在本镇", "Raster far from the township"),
    "raster_storage_failed": ("栅格无法保存", "Raster storage failed"),
}
_STATUS_TITLES = {400: ("请求有误", "Bad request"), 401: ("需要登录", "Sign-in required"),
                  403: ("没有权限", "Forbidden"), 404: ("未找到", "Not found"),
                  405: ("不允许的请求方法", "Method not allowed"), 409: ("冲突", "Conflict"),
                  413: ("文件太大", "Too large"), 415: ("不支持的格式", "Unsupported format"),
                  422: ("文件无法接受", "Unprocessable content"), 429: ("请求太频繁", "Too many requests"),
                  500: ("内部错误", "Internal error"), 503: ("服务暂不可用", "Service unavailable"),
                  507: ("存储空间已满", "Storage full")}

#: words of an upload report
_HOW = {"name": ("按字段名", "by name"), "alias": ("按别名", "by alias"), "label": ("按字段标题", "by label"),
        "truncated": ("按截短的名称（DBF 字段名最多 10 字节）", "by its truncated name (a DBF name holds 10 bytes)"),
        "extra": ("未匹配：存入附加属性", "no field: kept in extra"),
        "duplicate": ("该字段已由另一列填写：存入附加属性", "field filled by another column: kept in extra"),
        "chosen": ("按您的选择", "as you chose"),
        "computed": ("系统计算的值（如面积），不导入", "computed by landeco (e.g. areas): not imported")}
_ENCODING_SOURCE = {"override": ("您选择的", "as you chose"), "cpg": ("文件的 .cpg 所写，已核对", "the .cpg, verified"),
                    "detected": ("根据文件内容检测", "detected from the text"),
                    "ldid": ("DBF 文件头所写，已核对", "the DBF header, verified"),
                    "fallback": ("文字中没有中文，按西文编码读取", "no Chinese in the text: read as Western"),
                    "format": ("格式规定", "as the format defines")}
_CRS_SOURCE = {"prj": ("文件所写", "from the file"), "user": ("您选择的", "as you chose"),
               "coordinates": ("按坐标范围判断为经纬度", "degrees, judged from the coordinates")}
_WRITTEN = {"inserted": ("新增", "inserted"), "updated": ("更新", "updated"), "deleted": ("删除", "deleted")}
_GEOMETRY = ("图形", "geometry")


def language(lang: str | None = None, accept_language: str | None = None) -> str:
    """``zh`` or ``en``: the ``lang`` asked for, else the first of ``Accept-Language`` we speak, else zh.

    Examples
    --------
    >>> language(None, "en-GB,en;q=0.9"), language("zh", "en"), language(None, None)
    ('en', 'zh', 'zh')
    """
    if lang in LANGS:
        return lang
    ranked = []
    for i, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            weight = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGS and weight > 0:
            ranked.append((-weight, i, primary))
    return min(ranked)[2] if ranked else "zh"


def _render(entry: Text, params: Mapping[str, Any]) -> str:
    if callable(entry):
        return entry(dict(params))
    return entry.format_map(dict(params))


def message(code: str, lang: str = "zh", /, *, default: str | None = None, **params: Any) -> str:
    """The text of ``code`` in ``lang`` with ``params``; ``default`` (else the code) if it cannot be said."""
    lang = lang if lang in LANGS else "zh"
    params = {k: quote(v, 200) if isinstance(v, str) else v for k, v in params.items()}
    if "area_m2" in params and "area" not in params:
        params["area"] = area_text(float(params["area_m2"]), lang)
    entry = MESSAGES.get(code, {}).get(lang)
    if entry is None:
        return default if default is not None else code
    try:
        return _render(entry, params)
    except (KeyError, IndexError, TypeError, ValueError):
        return default if default is not None else code


def hint(code: str, lang: str = "zh", /, *, default: str | None = None, **params: Any) -> str | None:
    """What to do about ``code`` in ``lang``, or ``default``."""
    entry = HINTS.get(code, {}).get(lang if lang in LANGS else "zh")
    if entry is None:
        return default
    params = {k: quote(v, 200) if isinstance(v, str) else v for k, v in params.items()}
    try:
        return _render(entry, params)
    except (KeyError, IndexError, TypeError, ValueError):
        return default


def title(code: str, lang: str = "zh", status: int = 400, default: str | None = None) -> str:
    """A problem document's title: by code, else by status (``default`` for English)."""
    i = 0 if lang == "zh" else 1
    if code in TITLES:
        return TITLES[code][i]
    if lang == "en" and default:
        return default
    by_english = {en: zh for zh, en in TITLES.values()}
    if default in by_english:
        return by_english[default]
    return _STATUS_TITLES.get(status, _STATUS_TITLES[400 if status < 500 else 500])[i]


def _field_label(layer_id: str | None, name: str | None, lang: str) -> str | None:
    if name is None:
        return None
    if name == "geometry":
        return _GEOMETRY[0 if lang == "zh" else 1]
    try:
        from layers.registry import get_layer

        return get_layer(layer_id).get_field(name).label(lang) if layer_id else name
    except (KeyError, LookupError, Exception):  # an unknown layer or field: its id
        return name


def localise_report(report: Mapping[str, Any], lang: str = "zh") -> dict[str, Any]:
    """A copy of an upload report (``Report.as_dict()``) with its words in ``lang``.

    Adds ``lang``; each problem's ``message`` rendered from its code and ``params`` and its
    ``field_label``; each column's ``column_text`` (its name made safe to show, see
    :func:`quote`), ``field_label`` and ``how_text``; ``encoding.text``,
    ``crs.text`` and ``written_text``. Codes and parameters are left as they are.
    """
    i = 0 if lang == "zh" else 1
    out = copy.deepcopy(dict(report))
    out["lang"] = "zh" if i == 0 else "en"
    layer = out.get("layer")
    for p in out.get("problems") or []:
        params = dict(p.get("params") or {})
        if p.get("field"):
            params["field_label"] = _field_label(layer, p.get("field"), out["lang"]) or ""
        p["message"] = message(p["code"], out["lang"], default=p.get("message"), **params)
        p["field_label"] = _field_label(layer, p.get("field"), out["lang"])
    for m in out.get("mapping") or []:
        m["column_text"] = quote(m.get("column", ""))
        m["field_label"] = _field_label(layer, m.get("field"), out["lang"])
        m["how_text"] = _HOW.get(m.get("how"), (m.get("how"), m.get("how")))[i]
    enc = out.get("encoding")
    if isinstance(enc, dict) and enc.get("encoding"):
        source = _ENCODING_SOURCE.get(enc.get("source"), (enc.get("source"), enc.get("source")))[i]
        enc["text"] = f"{enc['encoding'].upper()}（{source}）" if i == 0 else f"{enc['encoding'].upper()} ({source})"
    crs = out.get("crs")
    if isinstance(crs, dict) and crs.get("name"):
        source = _CRS_SOURCE.get(crs.get("source"), (crs.get("source"), crs.get("source")))[i]
        epsg = f"EPSG:{crs['epsg']} " if crs.get("epsg") else ""
        crs["text"] = f"{epsg}{crs['name']}（{source}）" if i == 0 else f"{epsg}{crs['name']} ({source})"
    written = out.get("written") or {}
    sep = "、" if i == 0 else ", "
    out["written_text"] = sep.join(f"{_WRITTEN[k][i]} {written.get(k, 0):,}" for k in _WRITTEN) \
        if written else ""
    return out
