"""Published files are written under a unique temporary name and renamed; a full disk names the file and the
free space, keeps the previous file and leaves no temporary file (a real tmpfs, as root)."""

from __future__ import annotations

import os
import subprocess

import pytest

from ingestion.atomic import OutputWriteError, temp_name, write_text
from ingestion.export.breaks import write_breaks

BREAKS = {"scheme": "FisherJenks", "k": 2, "bins": [0.2, 0.6], "min": 0.1, "max": 0.6, "colors": ["#a", "#b"]}


def test_temp_names_are_unique_beside_the_target_and_keep_the_suffix(tmp_path):
    target = tmp_path / "latest" / "aoi_boundary.gpkg"
    names = {temp_name(target) for _ in range(50)}
    assert len(names) == 50
    assert all(n.parent == target.parent and n.suffix == ".gpkg" and n.name.startswith(".aoi_boundary.tmp-")
               for n in names)
    fixed = tmp_path / "latest" / "breaks.json.tmp"  # the fixed name the old writer used is left alone
    fixed.parent.mkdir()
    fixed.write_text("another writer's")
    write_breaks(BREAKS, tmp_path / "latest" / "breaks.json")
    assert fixed.read_text() == "another writer's"
    assert sorted(p.name for p in fixed.parent.iterdir()) == ["breaks.json", "breaks.json.tmp"]


@pytest.fixture
def full_tmpfs(tmp_path):
    """A 1 MB tmpfs, filled up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs the tests as root)")
    mount = tmp_path / "full"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        (mount / "latest").mkdir()
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_full_disk_names_the_file_and_free_space_and_keeps_the_previous_file(full_tmpfs):
    breaks = full_tmpfs / "latest" / "breaks.json"
    write_breaks(BREAKS, breaks)
    before = breaks.read_text()
    fd = os.open(full_tmpfs / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass  # full
    finally:
        os.close(fd)
    with pytest.raises(OutputWriteError) as raised:
        write_text(full_tmpfs / "latest" / "ndvi_map.html", "<html>" + "x" * 200_000)
    message = str(raised.value)
    assert message.startswith(f"writing {full_tmpfs / 'latest' / 'ndvi_map.html'} failed: No space left on device")
    assert f"free in {full_tmpfs / 'latest'})" in message and "(0 bytes free" in message
    with pytest.raises(OutputWriteError, match=f"writing {breaks} failed: No space left on device"):
        write_breaks({**BREAKS, "bins": [0.1] * 100_000}, breaks)
    assert breaks.read_text() == before
    assert sorted(p.name for p in (full_tmpfs / "latest").iterdir()) == ["breaks.json"]  # no temporary file
