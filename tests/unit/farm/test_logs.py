"""farm.logs: one JSON object per line with service, host and the bound ids."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from farm.logs import JsonFormatter, LogFormat, Service, bind, setup_logging

REQUIRED = {"ts", "level", "logger", "message", "service", "host"}


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("builder", host="h1"))
    logger = logging.getLogger("farm.test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, out
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_the_required_keys(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = captured
    logger.info("built %s in %d s", "demo", 3)
    [line] = lines(out)
    assert set(line) == REQUIRED
    assert line["message"] == "built demo in 3 s"
    assert line["level"] == "INFO"
    assert line["logger"] == "farm.test.logs"
    assert line["service"] == "builder"
    assert line["host"] == "h1"
    assert str(line["ts"]).endswith("Z")


def test_bound_ids_are_on_every_line_of_the_context_only(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = captured
    with bind(build_id="b-1", builder_id="k-9"):
        logger.info("one")
        with bind(build_id="b-2"):
            logger.warning("two")
        logger.info("three")
    logger.info("after")
    got = [(x.get("build_id"), x.get("builder_id")) for x in lines(out)]
    assert got == [("b-1", "k-9"), ("b-2", "k-9"), ("b-1", "k-9"), (None, None)]


def test_extra_gives_the_build_id_of_one_line(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = captured
    logger.error("build failed", extra={"build_id": "b-7"})
    [line] = lines(out)
    assert line["build_id"] == "b-7"
    assert "builder_id" not in line


def test_a_traceback_stays_inside_its_line(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = captured
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logger.exception("it broke")
    assert len(out.getvalue().splitlines()) == 1
    [line] = lines(out)
    assert "ValueError: bad" in str(line["exc_info"])


def test_setup_logging_json_sends_uvicorn_through_the_one_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.addHandler(logging.StreamHandler())  # what uvicorn's own config does
    try:
        setup_logging(Service.coordinator, LogFormat.json, "info")
        logging.getLogger("farm.somewhere").info("hello")
        uvicorn_error.info("Started server process")
        logging.getLogger("farm.somewhere").debug("not at info")
        err = capsys.readouterr().err.splitlines()
        parsed = [json.loads(x) for x in err]
        assert [p["message"] for p in parsed] == ["hello", "Started server process"]
        assert all(set(p) >= REQUIRED and p["service"] == "coordinator" for p in parsed)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.captureWarnings(False)


def test_setup_logging_text_appends_bound_ids(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging(Service.validator, "text", "INFO")
        with bind(build_id="b-3"):
            logging.getLogger("ledger.x").info("hi")
        [line] = capsys.readouterr().err.splitlines()
        assert line.endswith("INFO ledger.x: hi [build_id=b-3]")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.captureWarnings(False)


def test_setup_logging_refuses_unknown_values() -> None:
    with pytest.raises(ValueError, match="xml"):
        setup_logging(Service.builder, "xml")
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        setup_logging(Service.builder, "json", "loud")
