"""Vendor LiveKit's JavaScript SDK (`livekit-client` from npm) for the caption page.

    python tools/vendor_livekit_client.py            # the version pinned in the manifest
    python tools/vendor_livekit_client.py 2.23.0     # move the pin to another version

The caption page (`stt_agent/ui/captions.html`) loads the SDK from the kit itself, never from a
CDN, so it works in a room with no internet. This tool is the only way the files in
`stt_agent/ui/vendor/` change:

1. asks the registry (`npm view`) for the version's `dist.integrity` (sha512 of the tarball);
2. fetches the tarball with `npm pack` and checks its sha512 against that integrity itself;
3. copies the UMD build and the package's LICENSE out of the checked tarball;
4. writes `manifest.json`: version, the registry's integrity, and the sha512 of each copied file.

tests/test_caption_vendor.py then checks, with no network, that the shipped files are the ones
the manifest vouches for and that the wheel carries them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENDOR = REPO / "stt_agent" / "ui" / "vendor"
MANIFEST = VENDOR / "manifest.json"
PACKAGE = "livekit-client"
# tarball member -> file name in VENDOR. The UMD build is one self-contained, minified file
# (window.LivekitClient); the ESM build is twice its size and unminified.
FILES = {
    "package/dist/livekit-client.umd.js": "livekit-client.umd.js",
    "package/LICENSE": "LICENSE",
}


def sri_sha512(data: bytes) -> str:
    """Subresource-integrity form, as npm writes `dist.integrity`."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _npm(*args: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(
            ["npm", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=300
        )
    except FileNotFoundError:
        sys.exit("vendor_livekit_client: npm is not installed (it is only needed to re-vendor)")
    except subprocess.CalledProcessError as e:
        last = (e.stderr.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"vendor_livekit_client: `npm {' '.join(args)}` failed: {last}")
    return done.stdout


def vendor(version: str) -> dict[str, object]:
    spec = f"{PACKAGE}@{version}"
    integrity = json.loads(_npm("view", spec, "dist.integrity", "--json"))
    if not isinstance(integrity, str) or not integrity.startswith("sha512-"):
        sys.exit(f"vendor_livekit_client: the registry gave no sha512 integrity for {spec}")
    with tempfile.TemporaryDirectory() as tmp:
        _npm("pack", spec, "--pack-destination", tmp, "--silent", cwd=Path(tmp))
        (tarball,) = Path(tmp).glob("*.tgz")
        data = tarball.read_bytes()
        if sri_sha512(data) != integrity:
            sys.exit(
                f"vendor_livekit_client: {tarball.name} does not match the registry's integrity"
            )
        files: dict[str, str] = {}
        with tarfile.open(tarball) as tar:
            for member, name in FILES.items():
                extracted = tar.extractfile(member)
                if extracted is None:
                    sys.exit(f"vendor_livekit_client: {spec} has no {member}")
                content = extracted.read()
                (VENDOR / name).write_bytes(content)
                files[name] = sri_sha512(content)
    manifest: dict[str, object] = {
        "package": PACKAGE,
        "version": version,
        "integrity": integrity,  # the registry's dist.integrity: sha512 of the tarball
        "tarball_files": {name: member for member, name in FILES.items()},
        "files": files,  # sha512 of each file as copied out of that tarball
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str]) -> None:
    if argv:
        version = argv[0]
    elif MANIFEST.exists():
        version = json.loads(MANIFEST.read_text())["version"]
    else:
        sys.exit("vendor_livekit_client: give a version, e.g. 2.23.0 (`npm view livekit-client`)")
    VENDOR.mkdir(parents=True, exist_ok=True)
    manifest = vendor(version)
    print(f"vendored {PACKAGE} {manifest['version']} ({manifest['integrity']}) into {VENDOR}")


if __name__ == "__main__":
    main(sys.argv[1:])
