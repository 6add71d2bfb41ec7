"""The host image's lock pins every runtime dependency of pyproject.toml, by hash."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "deploy" / "host-image" / "requirements.lock"
LINE = re.compile(r"^([a-z0-9][a-z0-9._-]*)==(\S+) --hash=sha256:[0-9a-f]{64}$")


def _locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, f"not name==version --hash=sha256:...: {line!r}"
        pins[canonicalize_name(m[1])] = m[2]
    return pins


def test_every_dependency_is_pinned_by_hash() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = _locked()
    missing = []
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        if name not in locked or not req.specifier.contains(locked[name], prereleases=True):
            missing.append(spec)
    assert not missing, (
        f"requirements.lock does not satisfy {missing}: run python3 deploy/host-image/relock.py"
    )
