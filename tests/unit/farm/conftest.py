"""Shared values for farm unit tests."""

from __future__ import annotations

import copy
from typing import Any

import pytest

BASE_RECIPE: dict[str, Any] = {
    "name": "demo",
    "version": "1.0.0",
    "source": {
        "type": "git",
        "url": "https://example.org/demo.git",
        "commit": "0123456789abcdef0123456789abcdef01234567",
    },
    "image": "sha256:" + "ab" * 32,
    "architectures": ["amd64"],
    "build": {
        "command": "echo hi > /out/hello.txt",
        "env": {"TZ": "UTC", "SOURCE_DATE_EPOCH": "1700000000"},
    },
    "outputs": [{"path": "hello.txt"}],
}


@pytest.fixture
def recipe_data() -> dict[str, Any]:
    """A fresh copy of a valid recipe's data."""
    return copy.deepcopy(BASE_RECIPE)
