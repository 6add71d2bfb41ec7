"""An in-memory index for the inference unit tests (a pure fake of IndexSource)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from packaging.utils import canonicalize_name

from farm.infer.errors import InferError
from farm.infer.index import IndexFile, ProjectIndex, parse_project
from tests.unit.farm.infer.helpers import file_entry


class FakeIndex:
    """Projects added with :meth:`add`; metadata served from memory."""

    def __init__(self) -> None:
        self.docs: dict[str, list[dict[str, object]]] = {}
        self.meta: dict[str, str] = {}

    def add(
        self,
        name: str,
        version: str,
        uploaded: str,
        requires: tuple[str, ...] = (),
        *,
        requires_python: str | None = None,
        tag: str = "py3-none-any",
    ) -> None:
        filename = f"{name.replace('-', '_')}-{version}-{tag}.whl"
        sha = hashlib.sha256(filename.encode()).hexdigest()
        self.docs.setdefault(canonicalize_name(name), []).append(
            file_entry(filename, sha=sha, uploaded=uploaded, requires_python=requires_python)
        )
        self.meta[filename] = "Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}".format(
            name, version, "".join(f"Requires-Dist: {r}\n" for r in requires)
        )

    def project(self, name: str) -> ProjectIndex:
        key = canonicalize_name(name)
        if key not in self.docs:
            raise InferError(f"{name}: no such project", "not-found")
        return parse_project({"name": key, "files": self.docs[key]}, f"https://x/simple/{key}/")

    def metadata(self, file: IndexFile) -> str:
        return self.meta[file.filename]


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)
