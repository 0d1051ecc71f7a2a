"""The acquisition plan of one synthetic year: which scenes exist and what traps each one sets."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ScenePlan:
    """One synthetic item.

    ``coverage`` is the covered share of the area's width, from the west (``"west"``) or east (``"east"``).
    ``offset_in_dn``: the DN carry +1000 (BOA_ADD_OFFSET not removed); ``boa_offset_applied`` is what the item
    claims, which real Earth Search items get wrong both ways (``misflagged``). ``clouds`` lists SCL classes painted
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
    def misflagged(self) -> bool:
        """The item's ``earthsearch:boa_offset_applied`` contradicts its DN (baselines >= 04.00 only)."""
        return self.baseline >= "04.00" and self.boa_offset_applied == self.offset_in_dn

    @property
    def item_id(self) -> str:
        return f"S2B_{self.tile}_{self.day:%Y%m%d}_{self.sequence}_L2A"


#: ``misflag`` values of :func:`year_plan`: every item from baseline 04.00 carries one kind of wrong flag.
MISFLAGS = ("clean-flagged-false", "offset-flagged-true")


def year_plan(year: int, all_cloud: bool = False, misflag: str | None = None) -> list[ScenePlan]:
    """Scenes of ``year``: before 2022 processing baseline 02.12 (no offset), from 2022 baseline 05.10 with
    Earth Search's two honest cases (offset removed and flagged ``true``; offset still in the DN and flagged
    ``false``) and both lies seen on real items (clean DN flagged ``false``, Element84/earth-search #66 and #71;
    DN with the offset flagged ``true``), a ``_0``/``_1`` pair, a day made of two partial tiles, cloud, shadow and
    cirrus patches, and one item too cloudy for the filter.

    ``misflag`` (one of :data:`MISFLAGS`) makes every item from baseline 04.00 carry that one lie instead.
    """
    if misflag is not None and misflag not in MISFLAGS:
        raise ValueError(f"misflag must be one of {', '.join(MISFLAGS)}, got {misflag!r}")
    new = year >= 2022

    def scene(month: int, day: int, *, tile: str = "32ULC", sequence: int = 0, applied: bool = True,
              in_dn: bool | None = None, **kw) -> ScenePlan:
        baseline = "05.10" if new else "02.12"
        in_dn = (not applied) if in_dn is None else in_dn
        if misflag is not None:
            applied = in_dn = misflag == "offset-flagged-true"
        return ScenePlan(
            day=dt.date(year, month, day), tile=tile, sequence=sequence, baseline=baseline,
            boa_offset_applied=applied if new else False,
            offset_in_dn=new and in_dn,
            raster_offset=-0.1 if new else 0.0,  # Earth Search says -0.1 even where it removed the offset
            all_cloud=all_cloud, **kw)

    return [
        scene(3, 10, cloud_cover=3.1, clouds=(9, 8), notes=("cloud patches",)),
        scene(5, 5, cloud_cover=1.2, clouds=(3,), applied=False, notes=("shadow", "offset in DN")),
        scene(5, 5, sequence=1, cloud_cover=1.2, clouds=(3,), applied=False, notes=("_1 duplicate",)),
        scene(6, 20, cloud_cover=0.5, coverage=0.6, side="west", applied=False, in_dn=False,
              notes=("partial tile", "clean DN flagged not applied (earth-search #66/#71)")),
        scene(6, 20, tile="32ULD", cloud_cover=0.7, coverage=0.55, side="east", applied=False,
              notes=("partial tile, other side, offset in DN",)),
        scene(7, 15, cloud_cover=4.0, clouds=(10,), in_dn=True, notes=("cirrus", "offset in DN flagged applied")),
        scene(8, 30, cloud_cover=42.0, clouds=(9, 9, 8), notes=("too cloudy for the filter",)),
        scene(9, 25, cloud_cover=0.1, applied=False, in_dn=False,
              notes=("clear", "clean DN flagged not applied (earth-search #66/#71)")),
    ]
