"""变化图斑 — where vegetation rose or fell between two rasters, each checked and rectified (整改).

Patches are found by detection (:mod:`layers.change_patches`), born ``pending``; their status
moves only along the workflow, each step recorded in ``change_patch_steps`` by the database.
"""

from layers.model import Choice, Field, Layer, Pale, Style, Workflow

#: pending → verified → rectified; pending or verified → false_alarm. Rectified and false alarm are final.
TRANSITIONS = (("pending", "verified"), ("pending", "false_alarm"),
               ("verified", "rectified"), ("verified", "false_alarm"))

LAYER = Layer(
    id="change_patches",
    zh="变化图斑",
    en="Change patches",
    geometry_type="MULTIPOLYGON",
    order=60,
    overlaps_allowed=True,
    description_zh="森林草原变化图斑：遥感对比发现的植被减少或增加，逐个核查、整改",
    description_en="Forest and grassland change patches found by comparing rasters, checked and rectified",
    fields=(
        Field("kind", "text", "变化类型", "Change", required=True,
              choices=(Choice("loss", "减少", "Loss"), Choice("gain", "增加", "Gain")),
              aliases=("变化类型", "类型", "BHLX", "KIND")),
        Field("mean_change", "real", "平均变化值", "Mean change",
              aliases=("平均变化值", "变化值", "PJBH", "MEAN_CHG")),
        Field("threshold", "real", "检测阈值", "Threshold", minimum=0,
              aliases=("检测阈值", "阈值", "YZ", "THRESHOLD")),
        Field("before_raster_id", "integer", "前期影像", "Raster before", minimum=1,
              aliases=("前期影像", "BEFORE_ID")),
        Field("after_raster_id", "integer", "后期影像", "Raster after", minimum=1,
              aliases=("后期影像", "AFTER_ID")),
        Field("before_date", "date", "前期日期", "Date before",
              aliases=("前期日期", "QQRQ", "BEFORE_DT")),
        Field("after_date", "date", "后期日期", "Date after",
              aliases=("后期日期", "HQRQ", "AFTER_DT")),
        Field("detected_on", "date", "发现日期", "Detected on", required=True,
              aliases=("发现日期", "检测日期", "FXRQ", "DETECTED")),
        Field("status", "text", "核查整改状态", "Status", required=True,
              choices=(Choice("pending", "待核查", "Pending", "#ff0033"),
                       Choice("verified", "已核实", "Verified", "#ff9966"),
                       Choice("rectified", "已整改", "Rectified", "#33cccc"),
                       Choice("false_alarm", "误报", "False alarm", "#cc99ff")),
              aliases=("核查整改状态", "状态", "ZT", "STATUS")),
        Field("status_note", "text", "核查整改说明", "Status note",
              aliases=("核查整改说明", "核查说明", "STATUS_NOTE")),
        Field("status_by", "text", "核查整改人", "Status by", aliases=("核查整改人", "STATUS_BY")),
        Field("status_at", "date", "核查整改日期", "Status date", aliases=("核查整改日期", "STATUS_AT")),
    ),
    checks=(("after_not_before", "after_date IS NULL OR before_date IS NULL OR after_date >= before_date"),),
    temporal=("detected_on", None),
    workflow=Workflow("status", "pending", TRANSITIONS, ("status_note", "status_by", "status_at"),
                      "change_patch_steps"),
    # outlined by status (patches lie over the other layers); false alarms pale and dashed
    style=Style(color="#ff0033", by="status", fill_opacity=0.35, weight=2.5,
                rules=(Pale("status", ("false_alarm",)),)),
)
