"""What a batch of area-years warns about once per scene, instead of once per scene and area-year.

A scene covering a province is read by every area of it: 96 areas of 3 km read the same three mis-flagged
scenes 261 times, and a scene with an unreadable asset would be dropped, with the same warning, by every area
it covers. A batch's composite step has its area-years log these at info (``warn=False`` of
:func:`ingestion.pipeline.composite_year`) and then calls these functions with the area-years it computed:
one warning per scene, naming the first area-years and counting the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

from ingestion.imagery.offset_check import OffsetDecision
from ingestion.sources.base import DropReason, SceneSelection

log = logging.getLogger(__name__)

#: Area-years named in a warning about one scene; the rest are counted.
NAMED_AREA_YEARS = 3
#: Drops that are warned about: broken items (the selection rules' drops, such as cloud cover, are expected).
WARNED_DROPS = (DropReason.BAD_METADATA, DropReason.UNREADABLE_ASSET)


def _named(names: Sequence[str]) -> str:
    """``"GM0001 2022, GM0002 2022, GM0003 2022 and 93 more"``."""
    more = len(names) - NAMED_AREA_YEARS
    return ", ".join(names[:NAMED_AREA_YEARS]) + (f" and {more} more" if more > 0 else "")


def report_contradictions(checked: Iterable[tuple[str, Mapping[str, OffsetDecision]]]) -> list[str]:
    """One warning per item whose pixels contradicted its metadata in any of ``checked`` (per area-year: its
    label and its offset decisions by item id). The warning counts the area-years where the pixels contradicted
    the metadata among those that read the item (elsewhere the sample was inconclusive, e.g. too few vegetation
    pixels, and the metadata stood), names the first few, and gives the metadata's claim, the verdict and the
    offset applied (the same in every contradicting area-year: the verdict has one other side). Returns the
    lines logged, in item order."""
    read: dict[str, int] = {}
    contradicted: dict[str, list[tuple[str, OffsetDecision]]] = {}
    for name, decisions in checked:
        for item_id, decision in decisions.items():
            read[item_id] = read.get(item_id, 0) + 1
            if decision.contradicts_metadata:
                contradicted.setdefault(item_id, []).append((name, decision))
    lines = []
    for item_id, found in sorted(contradicted.items()):
        pixels = sorted(decision.evidence.vegetation_pixels for _, decision in found)
        first = found[0][1]
        line = (f"scene {item_id}: offset metadata contradicted by its pixels in {len(found)} of the "
                f"{read[item_id]} area-years that read it ({_named([name for name, _ in found])}): metadata says "
                f"{first.metadata_text}, pixels say {first.evidence.verdict.value} ({pixels[0]:,} to {pixels[-1]:,} "
                f"vegetation px per area-year); applying offset {first.red.offset:g}")
        log.warning(line)
        lines.append(line)
    return lines


def report_drops(selected: Iterable[tuple[str, SceneSelection]]) -> list[str]:
    """One warning per item and reason that any of ``selected`` (per area-year: its label and its scenes)
    dropped as broken (:data:`WARNED_DROPS`: metadata or an asset that cannot be read), counting the
    area-years that dropped it among those whose search found it. Returns the lines logged, in item order."""
    found: dict[str, int] = {}
    dropped: dict[tuple[str, str], list[str]] = {}
    for name, selection in selected:
        for decision in selection.decisions:
            found[decision.item_id] = found.get(decision.item_id, 0) + 1
            if decision.cause in WARNED_DROPS:
                dropped.setdefault((decision.item_id, decision.reason), []).append(name)
    lines = []
    for (item_id, reason), names in sorted(dropped.items()):
        line = (f"scene {item_id}: dropped in {len(names)} of the {found[item_id]} area-years that found it "
                f"({_named(names)}): {reason}")
        log.warning(line)
        lines.append(line)
    return lines
