"""poll: the first truthy value, or a TimeoutError naming what was awaited."""

from __future__ import annotations

import itertools

import pytest

from farm.poll import poll


def test_returns_the_first_truthy_value() -> None:
    answers = iter([None, 0, "", "ready", "later"])
    assert poll("ready", lambda: next(answers), 5, first=0.001) == "ready"


def test_times_out_naming_what_it_waited_for() -> None:
    calls = itertools.count()
    with pytest.raises(TimeoutError, match=r"timed out after 0\.05 s waiting for the node"):
        poll("the node", lambda: next(calls) < 0, 0.05, first=0.01)
    assert next(calls) > 1  # it kept asking until the deadline
