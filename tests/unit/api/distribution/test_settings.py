"""Settings of a node from the environment, and URLs refused with a clear message."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.distribution.settings import DistSettings


def test_urls_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARM_DIST_LEDGER_URLS", "http://a:1, http://b:2/")
    monkeypatch.setenv("FARM_DIST_GENESIS", "g.json")
    monkeypatch.setenv("FARM_DIST_COORDINATOR_URL", "http://c:3/")
    monkeypatch.setenv("FARM_DIST_DATA_DIR", "d")
    s = DistSettings()
    assert s.ledger_urls == ("http://a:1", "http://b:2")
    assert s.coordinator_url == "http://c:3"


@pytest.mark.parametrize(
    ("field", "value"), [("ledger_urls", "ftp://x"), ("coordinator_url", "localhost:1")]
)
def test_a_url_that_is_not_http_is_refused(field: str, value: str) -> None:
    values = {"genesis": "g", "coordinator_url": "http://c", "data_dir": "d", field: value}
    with pytest.raises(ValidationError, match="is not an http"):
        DistSettings.model_validate(values)
