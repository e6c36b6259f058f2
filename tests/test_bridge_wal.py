"""Unit tests of the Event fast path's pieces that need no server: message parsing, LSNs and
the verdict setting's format (the end-to-end behaviour is in test_bridge.py)."""

from __future__ import annotations

import json
import threading

import pytest
from rdslab import bridge_wal


def message(fields: list, payload: bytes = b'{"a": 1}') -> str:  # type: ignore[type-arg]
    return (json.dumps(fields).encode() + b"\n" + payload).hex(" ").upper()


HEADER = ["UTF8", "to-queue", None, None, "None", None, "course", "labadmin", 4242, 1000, None]


def test_a_message_becomes_an_outbox_row() -> None:
    row = bridge_wal.parse_message("0/1A2B3C", message(HEADER, '{"name": "Zoë"}'.encode()))
    assert row == (
        "0/1A2B3C",
        "to-queue",
        None,
        None,
        "None",
        None,
        "course",
        "labadmin",
        4242,
        1000,
        None,
        '{"name": "Zoë"}',
        "Event",
        False,
    )


def test_the_payload_is_decoded_with_its_databases_encoding() -> None:
    latin1 = ["LATIN1", *HEADER[1:]]
    row = bridge_wal.parse_message("0/10", message(latin1, '{"name": "Zoë"}'.encode("latin-1")))
    assert row is not None and row[11] == '{"name": "Zoë"}'


@pytest.mark.parametrize(
    "hexdump",
    [
        "7B 22",  # truncated JSON
        b"no header at all".hex(" "),
        message(HEADER[:5]),  # too few fields
        message([*HEADER[:8], "not a pid", 1000, None]),
        message(["UTF8", "", *HEADER[2:]]),  # no function name
        json.dumps(HEADER).encode().hex(" "),  # no newline before the payload
        "ZZ",  # not hex
    ],
)
def test_anything_else_is_skipped_not_raised(hexdump: str) -> None:
    assert bridge_wal.parse_message("0/10", hexdump) is None


def test_lsn_round_trip() -> None:
    for text in ("0/0", "0/C0FFF8", "1A/2B3C4D5E"):
        assert bridge_wal.lsn_text(bridge_wal.lsn(text)) == text
    assert bridge_wal.lsn("1/0") > bridge_wal.lsn("0/FFFFFFFF")
    assert bridge_wal.lsn(None) == 0


class FakeCursor:
    def __init__(self, log: list[tuple]) -> None:  # type: ignore[type-arg]
        self.log = log
        self.value: str | None = None

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str, params: tuple = ()) -> None:  # type: ignore[type-arg]
        self.log.append((sql, params))
        if sql.startswith("ALTER SYSTEM"):
            FakeConn.setting = params[0]

    def fetchone(self) -> tuple:  # type: ignore[type-arg]
        return (FakeConn.setting,)


class FakeConn:
    setting: str | None = None

    def __init__(self) -> None:
        self.log: list[tuple] = []  # type: ignore[type-arg]

    def cursor(self) -> FakeCursor:
        return FakeCursor(self.log)


def test_verdicts_publish_one_entry_per_function_and_forget_on_change() -> None:
    conn = FakeConn()
    verdicts = bridge_wal.Verdicts(conn, threading.Lock(), "wal")
    assert FakeConn.setting == "|"  # a (re)started server forgets what it knew
    generation = verdicts.generation
    verdicts.add(("to-queue", "", ""), generation)
    verdicts.add(("welcome-email", "us-east-1", "live"), generation)
    assert FakeConn.setting == "|wal\tto-queue\t\t|wal\twelcome-email\tus-east-1\tlive|"
    verdicts.clear()
    assert FakeConn.setting == "|"
    # a check that began before the change may not publish its verdict afterwards
    verdicts.add(("to-queue", "", ""), generation)
    assert FakeConn.setting == "|"
    assert any(sql == "SELECT pg_reload_conf()" for sql, _ in conn.log)
