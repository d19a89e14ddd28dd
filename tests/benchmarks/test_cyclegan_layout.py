"""cyclegan-folder refuses a folder in the pix2pix layout (#21): its A|B files are pix2pix-folder's input."""

import pytest

import gansurvey as gs
from gansurvey.checks import GanSurveyError
from gansurvey.config import display_path
from tests.benchmarks.test_folder import SIZE, make_cyclegan, make_paired, make_pix2pix


def test_cyclegan_folder_refuses_a_pix2pix_layout_naming_the_layouts(tmp_path, artifacts):
    root = make_pix2pix(tmp_path / "facades")
    with pytest.raises(GanSurveyError) as error:
        gs.get_benchmark("cyclegan-folder", data_root=root, size=SIZE)
    message = str(error.value)
    assert message.startswith(f"{display_path(root)}: pix2pix layout (train/, test/ with A|B images side by side); ")
    assert "cyclegan-folder needs the CycleGAN layout (trainA/, trainB/, testA/, testB/)" in message
    assert "use pix2pix-folder for this folder" in message
    assert str(tmp_path) not in message  # no machine path
    assert not artifacts.exists()  # refused before anything trained or was cached


@pytest.mark.parametrize("make", [make_cyclegan, make_paired])
def test_cyclegan_folder_takes_the_cyclegan_layout_and_paired_folders(tmp_path, make):
    bench = gs.get_benchmark("cyclegan-folder", data_root=make(tmp_path / "data"), size=SIZE)
    assert bench.data.layout in ("cyclegan", "paired-folders")
