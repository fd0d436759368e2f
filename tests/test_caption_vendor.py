"""livekit-client, vendored for the caption page: pinned, checked, licensed, in the wheel.

No network: `tools/vendor_livekit_client.py` checked the npm tarball against the registry's
`dist.integrity` when it wrote the manifest; here the shipped files must be exactly the ones
that manifest vouches for, and the wheel must carry them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tools.vendor_livekit_client import FILES, MANIFEST, PACKAGE, VENDOR, sri_sha512

REPO = Path(__file__).resolve().parents[1]
CAPTIONS_HTML = REPO / "stt_agent" / "ui" / "captions.html"
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache"
)


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def test_the_pin_is_one_exact_version_with_the_registrys_sha512(manifest):
    assert manifest["package"] == PACKAGE
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"]), "an exact version, no range"
    assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", manifest["integrity"])
    assert set(manifest["tarball_files"]) == set(FILES.values())


@pytest.mark.parametrize("name", sorted(FILES.values()))
def test_shipped_file_is_the_one_in_the_pinned_tarball(manifest, name):
    data = (VENDOR / name).read_bytes()
    assert sri_sha512(data) == manifest["files"][name], (
        f"stt_agent/ui/vendor/{name} was changed by hand: run tools/vendor_livekit_client.py"
    )


def test_the_build_says_its_version_and_licence(manifest):
    build = (VENDOR / "livekit-client.umd.js").read_text()
    assert f'"{manifest["version"]}"' in build  # the SDK's own version constant
    assert "Apache License" in (VENDOR / "LICENSE").read_text()


def test_the_page_loads_the_sdk_from_the_kit_only():
    page = CAPTIONS_HTML.read_text()
    assert 'src="vendor/livekit-client.umd.js"' in page
    # nothing from the internet at run time: no absolute script, style or module URL
    assert not re.search(r"""(src|href|import)\s*=?\s*["']https?://""", page)


def test_the_wheel_carries_the_page_and_the_sdk(tmp_path):
    source = tmp_path / "source"  # built from a copy: no build/ or egg-info in the checkout
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path / "dist"),
            ".",
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("stt_agent-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    ui = "stt_agent/ui/"
    expected = {f"{ui}vendor/{name}" for name in [*FILES.values(), "manifest.json"]}
    expected |= {f"{ui}captions.html", f"{ui}captions.js", f"{ui}captions.css"}
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    with zipfile.ZipFile(wheel) as z:
        shipped = z.read(f"{ui}vendor/livekit-client.umd.js")
    assert sri_sha512(shipped) == json.loads(MANIFEST.read_text())["files"]["livekit-client.umd.js"]
