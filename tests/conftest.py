import pytest
import torch
from PIL import Image

from globeflow.data.exif import write_gps_exif


@pytest.fixture
def float64():
    """Run a test with float64 as the default dtype, restoring the previous default afterwards."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def photos(tmp_path):
    """A folder of photos: three plain JPEGs, one with EXIF GPS (Sydney), one truncated file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, colour in enumerate([(200, 180, 120), (20, 90, 30), (240, 240, 250)]):
        Image.new("RGB", (40, 30), colour).save(folder / f"img{i}.jpg")
    (folder / "gps.jpg").write_bytes(write_gps_exif(Image.new("RGB", (40, 30), (90, 90, 200)), -33.86, 151.21))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return folder
