"""Make the surveyor pre-check notebook's sample file: ``caragana_2022.shp`` (run from the checkout root).

``python tests/data/precheck/make.py`` writes the same bytes every time. Eight caragana plots
as a county surveyor delivers them: CGCS2000 / 3-degree GK CM 108E (EPSG:4545), a GBK DBF
without ``.cpg``, Chinese column names, a column landeco does not know (负责人), and four
mistakes the upload check must find: a method not in the list, a survival rate of 120 %,
a bow-tie polygon and a code given twice.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent.parent.parent))

from tests.data.fixtures.make import caragana_frame, self_intersecting, write_shapefile  # noqa: E402


def main() -> Path:
    frame = caragana_frame(8)
    frame["地块编号"] = [f"NT-2022-S{i:03d}" for i in range(8)]
    frame["种植年份"] = 2022
    frame["验收日期"] = "2023-09-15"
    frame.loc[2, "种植方式"] = "飞播"  # aerial seeding: not one of the layer's methods
    frame.loc[4, "成活率"] = 1.2  # 120 %: out of range
    frame.loc[5, "geometry"] = self_intersecting(5, repairable=False)  # a bow tie
    frame.loc[7, "地块编号"] = frame.loc[6, "地块编号"]  # the same code twice
    return write_shapefile(frame, HERE, name="caragana_2022")


if __name__ == "__main__":
    print(main())
