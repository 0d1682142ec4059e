"""The work report's figures as an A4 PDF: tables, charts and a map per section, in Chinese.

Drawn with matplotlib, text as TrueType (``pdf.fonttype`` 42, Noto Sans CJK subset and
embedded), so that the PDF prints anywhere and its text can be searched and extracted.
Every page carries its number, the township, the period and the date of the data. Pure:
the report (a dict, :func:`layers.report.build_report`) and the geometries come in, bytes go out.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
from matplotlib import rc_context
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from gis.printing import cjk_font

__all__ = ["MapPart", "report_pdf", "report_png"]

A4 = (8.27, 11.69)
_OVER = "#d7301f"


@dataclass
class MapPart:
    """Features drawn on a section's map: a label for the legend, a colour and shapely geometries."""

    label: str
    color: str
    geoms: Sequence[Any] = field(default_factory=list)


def _wrap(text: str, width: int) -> str:
    """Wrap mixed Chinese/English text at about ``width`` Chinese characters."""
    return "\n".join(textwrap.wrap(str(text), width=width, break_long_words=True)) or ""


def _fmt(value: Any, digits: int | None = None) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if digits is None else f"{value:,.{digits}f}"
    return str(value)


def _footer(fig: Figure, report: dict[str, Any], page: int, pages: int, en: bool) -> None:
    data = report.get("data_as_of") or "—"
    left = (
        f"{report['township']} · {report['period']['label']} · data as of {data} · landeco"
        if en
        else f"{report['township']} · {report['period']['label']} · 数据日期 {data} · landeco"
    )
    fig.text(0.06, 0.025, left, fontsize=7, color="#555555")
    fig.text(
        0.94,
        0.025,
        f"Page {page} of {pages}" if en else f"第 {page} 页 / 共 {pages} 页",
        fontsize=8,
        ha="right",
        color="#333333",
    )


def _table(
    fig: Figure,
    rect: tuple[float, float, float, float],
    header: list[str],
    rows: list[list[str]],
    widths: list[float],
    font: float = 7.5,
    highlight: Sequence[int] = (),
) -> None:
    ax = fig.add_axes(rect)
    ax.axis("off")
    if not rows:
        return
    table = ax.table(cellText=rows, colLabels=header, colWidths=widths, loc="upper left", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(font)
    for (r, _), cell in table.get_celld().items():
        cell.set_edgecolor("#bbbbbb")
        lines = max(str(cell.get_text().get_text()).count("\n") + 1, 1)
        cell.set_height(0.0125 * lines * font / 7.5 / rect[3] + 0.004 / rect[3])
        if r == 0:
            cell.set_facecolor("#eeeeee")
            cell.get_text().set_fontweight("bold")
        elif r - 1 in highlight:
            cell.set_facecolor("#fde0dd")
            cell.get_text().set_color(_OVER)


def _figure_rows(figures: list[dict[str, Any]], en: bool) -> list[list[str]]:
    rows = []
    for f in figures:
        if not f["answerable"]:
            continue
        change = f.get("change")
        sign = "+" if isinstance(change, (int, float)) and change > 0 else ""
        rows.append(
            [
                _wrap(f["wording"], 24 if not en else 40),
                f"{_fmt(f['value'])} {f['unit']}",
                f"{_fmt(f['previous'])}",
                f"{sign}{_fmt(change)}",
                str(f.get("count", "")),
                str(f["counted"]).replace("..", " – "),
            ]
        )
    return rows


def _chart(
    fig: Figure,
    rect: tuple[float, float, float, float],
    fig_data: dict[str, Any],
    report: dict[str, Any],
    en: bool,
) -> None:
    villages = [v for v in fig_data.get("villages", []) if v.get("name") or v.get("code")]
    ax = fig.add_axes(rect)
    names = [v.get("name") or v.get("code") or "—" for v in villages]
    now = [float(v.get("value") or 0) for v in villages]
    before = [float(v.get("previous") or 0) for v in villages]
    xs = range(len(villages))
    ax.bar([x - 0.2 for x in xs], now, width=0.4, color="#2b8cbe", label=report["period"]["label"])
    ax.bar(
        [x + 0.2 for x in xs],
        before,
        width=0.4,
        color="#a6bddb",
        label=(
            f"previous ({fig_data['previous_counted']})" if en else f"上期（{fig_data['previous_counted']}）"
        ),
    )
    ax.set_xticks(list(xs), names, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(fig_data["unit"], fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(_wrap(("By village: " if en else "按嘎查村：") + fig_data["wording"], 40), fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _map(
    fig: Figure,
    rect: tuple[float, float, float, float],
    parts: list[MapPart],
    villages: list[tuple[str, Any]],
    en: bool,
) -> None:
    ax = fig.add_axes(rect)
    ax.set_axis_off()
    if not villages:
        return
    frame = gpd.GeoDataFrame(
        {"name": [n for n, _ in villages]}, geometry=[g for _, g in villages], crs="EPSG:4326"
    )
    crs = frame.estimate_utm_crs()
    frame = frame.to_crs(crs)
    frame.boundary.plot(ax=ax, color="#555555", linewidth=0.5)
    for point, name in zip(frame.representative_point(), frame["name"], strict=True):
        ax.annotate(str(name), (point.x, point.y), ha="center", va="center", fontsize=5.5, color="#444444")
    handles = []
    for part in parts:
        if not part.geoms:
            continue
        g = gpd.GeoSeries(list(part.geoms), crs="EPSG:4326").to_crs(crs)
        lines = all(t in ("LineString", "MultiLineString") for t in g.geom_type)
        if lines:
            g.plot(ax=ax, color=part.color, linewidth=1.2)
        else:
            g.plot(ax=ax, color=part.color, alpha=0.6, edgecolor=part.color, linewidth=0.3)
        handles.append(Patch(facecolor=part.color, edgecolor=part.color, label=part.label))
    ax.set_aspect("equal")
    if handles:
        fig.legend(
            handles=handles,
            fontsize=6.5,
            loc="lower right",
            bbox_to_anchor=(rect[0] + rect[2], rect[1]),
            frameon=True,
            title="Features counted in the period" if en else "本期计入的要素",
            title_fontsize=7,
        )
    else:
        ax.text(
            0.5,
            0.02,
            "No feature counted in the period" if en else "本期没有计入的要素",
            transform=ax.transAxes,
            ha="center",
            fontsize=7,
            color="#777777",
        )


def _pages(
    report: dict[str, Any],
    maps: dict[str, list[MapPart]],
    villages: list[tuple[str, Any]],
) -> list[Callable[[Figure], None]]:
    en = report["lang"] == "en"
    header = (
        ["Figure (the report's words)", "This period", "Previous", "Change", "Features", "Counted"]
        if en
        else ["指标（报告原文）", "本期", "上期", "变化", "要素数", "统计口径"]
    )
    widths = [0.34, 0.13, 0.1, 0.1, 0.07, 0.26]
    out: list[Callable[[Figure], None]] = []

    def cover(fig: Figure) -> None:
        fig.text(0.06, 0.94, _wrap(report["title"], 30), fontsize=17, fontweight="bold", va="top")
        lines = [
            (
                f"Period: {report['period']['label']} ({report['period']['start']} – "
                f"{report['period']['end']})"
                if en
                else f"统计期间：{report['period']['label']}（{report['period']['start']} 至 "
                f"{report['period']['end']}）"
            ),
            (
                f"Compared with: {report['previous']['label']}"
                if en
                else f"比较期间：{report['previous']['label']}"
            ),
            (
                f"Data as of: {report.get('data_as_of') or '—'} · generated {report['generated_at']}"
                if en
                else f"数据日期：{report.get('data_as_of') or '—'} · 生成时间 {report['generated_at']}"
            ),
            (
                f"{len(report['answered'])} figures answered from the layers, "
                f"{len(report['not_answerable'])} "
                "not answerable from the data (listed at the end)."
                if en
                else f"由图层数据计算的指标 {len(report['answered'])} 项；"
                f"数据无法回答的指标 {len(report['not_answerable'])} 项"
                "（列于文末，不作估算）。"
            ),
        ]
        fig.text(0.06, 0.86, "\n".join(lines), fontsize=9, va="top", linespacing=1.7)
        rows = []
        for s in report["sections"]:
            for r in _figure_rows(s["figures"], en):
                rows.append([_wrap(s["title"], 8), *r[:4]])
        _table(
            fig,
            (0.06, 0.1, 0.88, 0.62),
            ["Section" if en else "部分", *header[:4]],
            rows,
            [0.14, 0.44, 0.18, 0.12, 0.12],
            font=7.5,
        )

    out.append(cover)

    for s in report["sections"]:
        answered = [f for f in s["figures"] if f["answerable"]]
        if not answered:
            continue

        def section_page(
            fig: Figure, s: dict[str, Any] = s, answered: list[dict[str, Any]] = answered
        ) -> None:
            fig.text(0.06, 0.955, s["title"], fontsize=15, fontweight="bold", va="top")
            _table(fig, (0.06, 0.72, 0.88, 0.2), header, _figure_rows(answered, en), widths, font=7)
            how = []
            for f in answered:
                h = f["how"]
                how.append(
                    _wrap(
                        f"· {f['wording']}：{h['layer_title']}；{'filter' if en else '筛选'} {h['filter']}；"
                        f"{'measure' if en else '量算'} {h['measure']}；{h['period_rule']}",
                        72 if not en else 120,
                    )
                )
            fig.text(0.06, 0.765, "\n".join(how), fontsize=6.5, va="top", linespacing=1.4, color="#333333")
            main = max(answered, key=lambda f: len(f.get("villages", [])))
            _chart(fig, (0.1, 0.44, 0.82, 0.14), main, report, en)
            _map(fig, (0.06, 0.05, 0.88, 0.33), maps.get(s["id"], []), villages, en)

        out.append(section_page)

    cap = report.get("carrying_capacity") or {}
    if cap.get("villages"):

        def capacity_page(fig: Figure) -> None:
            fig.text(
                0.06,
                0.955,
                "Carrying capacity (grazing–livestock balance)" if en else "以草定畜：草畜平衡",
                fontsize=15,
                fontweight="bold",
                va="top",
            )
            fig.text(
                0.06,
                0.915,
                _wrap(cap["formula"], 64 if not en else 110),
                fontsize=6.8,
                va="top",
                linespacing=1.4,
                color="#333333",
            )
            rows, over = [], []
            for i, v in enumerate(cap["villages"]):
                rows.append(
                    [
                        v["name"] or v["code"],
                        _fmt(v["pasture_mu"], 0),
                        _fmt(v["capacity_su"], 0),
                        _fmt(v["livestock_su"], 0),
                        _fmt(v["excess_su"], 0),
                        v["status_label"],
                    ]
                )
                if v["over"]:
                    over.append(i)
            head = (
                ["Village", "Pasture (mu)", "Capacity (SU)", "Stock (SU)", "Excess (SU)", "Status"]
                if en
                else [
                    "嘎查村",
                    "草场面积（亩）",
                    "理论载畜量（羊单位）",
                    "实际载畜量（羊单位）",
                    "超载（羊单位）",
                    "状态",
                ]
            )
            _table(
                fig,
                (0.06, 0.48, 0.88, 0.36),
                head,
                rows,
                [0.18, 0.15, 0.18, 0.18, 0.14, 0.17],
                font=7.5,
                highlight=over,
            )
            ax = fig.add_axes((0.1, 0.26, 0.82, 0.28))
            names = [v["name"] or v["code"] for v in cap["villages"]]
            xs = range(len(names))
            ax.bar(
                [x - 0.2 for x in xs],
                [v["capacity_su"] or 0 for v in cap["villages"]],
                width=0.4,
                color="#74c476",
                label="Capacity" if en else "理论载畜量",
            )
            ax.bar(
                [x + 0.2 for x in xs],
                [v["livestock_su"] or 0 for v in cap["villages"]],
                width=0.4,
                color=[_OVER if v["over"] else "#6baed6" for v in cap["villages"]],
                label="Stock (red: over capacity)" if en else "实际载畜量（红色：超载）",
            )
            ax.set_xticks(list(xs), names, rotation=30, ha="right", fontsize=7)
            ax.set_ylabel("Sheep units" if en else "羊单位", fontsize=8)
            ax.legend(fontsize=7, frameon=False)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)

        out.append(capacity_page)

    missing = [f for s in report["sections"] for f in s["figures"] if not f["answerable"]]
    for start in range(0, len(missing), 22):
        chunk = missing[start : start + 22]

        def missing_page(fig: Figure, chunk: list[dict[str, Any]] = chunk) -> None:
            fig.text(
                0.06,
                0.955,
                "Figures the data cannot answer" if en else "数据无法回答的指标",
                fontsize=15,
                fontweight="bold",
                va="top",
            )
            fig.text(
                0.06,
                0.92,
                "Listed, not estimated: what data would answer each."
                if en
                else "仅列出，不作估算；右栏为能够回答该指标所需的数据。",
                fontsize=8,
                va="top",
                color="#555555",
            )
            rows = [
                [
                    _wrap(f["wording"], 28 if not en else 40),
                    _wrap(f.get("reason", ""), 14 if not en else 24),
                    _wrap(f.get("needs", ""), 22 if not en else 34),
                ]
                for f in chunk
            ]
            _table(
                fig,
                (0.06, 0.06, 0.88, 0.83),
                [
                    "Figure" if en else "指标（报告原文）",
                    "Why" if en else "原因",
                    "Data needed" if en else "所需数据",
                ],
                rows,
                [0.42, 0.2, 0.38],
                font=7,
            )

        out.append(missing_page)
    return out


def report_pdf(
    report: dict[str, Any], maps: dict[str, list[MapPart]], villages: list[tuple[str, Any]]
) -> bytes:
    """The report as an A4 PDF: cover and summary, a page per section, carrying capacity, the unanswerable."""
    family = cjk_font()
    en = report["lang"] == "en"
    pages = _pages(report, maps, villages)
    buf = io.BytesIO()
    with (rc_context({"pdf.fonttype": 42, "font.family": family, "axes.unicode_minus": False}),
          PdfPages(buf, metadata={"Title": report["title"], "Creator": "landeco"}) as pdf):
            for i, draw in enumerate(pages, start=1):
                fig = Figure(figsize=A4)
                fig.set_facecolor("white")
                draw(fig)
                _footer(fig, report, i, len(pages), en)
                pdf.savefig(fig)
    return buf.getvalue()


def report_png(
    report: dict[str, Any],
    maps: dict[str, list[MapPart]],
    villages: list[tuple[str, Any]],
    page: int = 2,
    dpi: int = 60,
) -> bytes:
    """One page of the report as PNG (the README's picture)."""
    family = cjk_font()
    en = report["lang"] == "en"
    pages = _pages(report, maps, villages)
    with rc_context({"font.family": family, "axes.unicode_minus": False}):
        fig = Figure(figsize=A4)
        fig.set_facecolor("white")
        pages[page - 1](fig)
        _footer(fig, report, page, len(pages), en)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()
