"""The acquisition plan of one synthetic year: which scenes exist and what traps each one sets."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ScenePlan:
    """One synthetic item.

    ``coverage`` is the covered share of the area's width, from the west (``"west"``) or east (``"east"``).
    ``offset_in_dn``: the DN carry +1000 (BOA_ADD_OFFSET not removed). ``clouds`` lists SCL classes painted
    as patches. ``cloud_cover`` is the item's ``eo:cloud_cover`` (>= 5 means the filter drops it).
    """

    day: dt.date
    tile: str
    sequence: int
    baseline: str
    boa_offset_applied: bool
    offset_in_dn: bool
    raster_offset: float
    cloud_cover: float
    coverage: float = 1.0
    side: str = "west"
    clouds: tuple[int, ...] = ()
    all_cloud: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def item_id(self) -> str:
        return f"S2B_{self.tile}_{self.day:%Y%m%d}_{self.sequence}_L2A"


def year_plan(year: int, all_cloud: bool = False) -> list[ScenePlan]:
    """Scenes of ``year``: before 2022 processing baseline 02.12 (no offset), from 2022 baseline 05.10 with
    Earth Search's two cases (offset removed and flagged; offset still in the DN), a ``_0``/``_1`` pair, a day
    made of two partial tiles, cloud, shadow and cirrus patches, and one item too cloudy for the filter."""
    new = year >= 2022

    def scene(month: int, day: int, *, tile: str = "32ULC", sequence: int = 0, applied: bool = True,
              **kw) -> ScenePlan:
        baseline = "05.10" if new else "02.12"
        return ScenePlan(
            day=dt.date(year, month, day), tile=tile, sequence=sequence, baseline=baseline,
            boa_offset_applied=applied if new else False,
            offset_in_dn=new and not applied,
            raster_offset=-0.1 if new else 0.0,  # Earth Search says -0.1 even where it removed the offset
            all_cloud=all_cloud, **kw)

    return [
        scene(3, 10, cloud_cover=3.1, clouds=(9, 8), notes=("cloud patches",)),
        scene(5, 5, cloud_cover=1.2, clouds=(3,), applied=False, notes=("shadow", "offset in DN")),
        scene(5, 5, sequence=1, cloud_cover=1.2, clouds=(3,), applied=False, notes=("_1 duplicate",)),
        scene(6, 20, cloud_cover=0.5, coverage=0.6, side="west", notes=("partial tile",)),
        scene(6, 20, tile="32ULD", cloud_cover=0.7, coverage=0.55, side="east", applied=False,
              notes=("partial tile, other side, offset in DN",)),
        scene(7, 15, cloud_cover=4.0, clouds=(10,), notes=("cirrus",)),
        scene(8, 30, cloud_cover=42.0, clouds=(9, 9, 8), notes=("too cloudy for the filter",)),
        scene(9, 25, cloud_cover=0.1, applied=False, notes=("clear", "offset in DN")),
    ]
