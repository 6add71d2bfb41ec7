"""farm.hosts.broker_acl: each builder host's Redis user reaches its own builder's keys."""

from __future__ import annotations

import hashlib

import pytest

from farm.hosts.broker_acl import acl_file, builder_rules

ID = "ab" * 32


def test_an_approved_builder_reaches_its_keyspace_heartbeat_and_results_only() -> None:
    rules = builder_rules(ID).split()
    keys = [r for r in rules if r.startswith("~")]
    assert keys == [
        f"~farm:b:{ID}:*",
        f"~farm:builders:{ID}",
        f"~farm:result:*:{ID}",
        f"~farm:completions:*:{ID}",
    ]
    assert [r for r in rules if r.startswith("&")] == [f"&farm:b:{ID}:*"]
    # Patterns are reset first, and every command starts denied; dangerous ones stay so.
    assert rules.index("resetkeys") < rules.index(keys[0])
    assert rules.index("-@all") < rules.index("-@dangerous")
    assert "-@admin" in rules and "~*" not in rules and "&*" not in rules


def test_before_approval_a_builder_host_may_only_ping() -> None:
    assert builder_rules(None) == "resetkeys resetchannels -@all +ping"


@pytest.mark.parametrize("bad", ["*", "ab* ~*", "AB" * 32, ""])
def test_a_builder_id_that_could_widen_the_patterns_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a builder id"):
        builder_rules(bad)


def test_the_file_hashes_every_password_and_names_no_host_twice() -> None:
    text = acl_file("adm", "coord", {"b2": ("pw2", None), "b1": ("pw1", ID)})
    lines = text.splitlines()
    assert [line.split()[1] for line in lines] == ["default", "admin", "coordinator", "b1", "b2"]
    for password in ("adm", "coord", "pw1", "pw2"):
        assert f"#{hashlib.sha256(password.encode()).hexdigest()}" in text
        assert f">{password}" not in text
    with pytest.raises(ValueError, match="not a builder host name"):
        acl_file("a", "c", {"coordinator": ("x", None)})
