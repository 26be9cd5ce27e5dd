"""The hot paths made faster for the high-availability benchmark give what their plain versions
gave: the PostgreSQL full-text column, a decision's outcome as a dict, canonical JSON."""
from __future__ import annotations

import json
import random
from dataclasses import asdict

from signoff.engine import jsonutil
from signoff.engine.approvals.outcome import Outcome
from signoff.engine.audit.fulltext import tokens, tsvector_literal
from signoff.engine.clock import parse_time


def reference_tsvector(fields: list[str | None]) -> str:
    """The tsvector as first written: a position per token, clamped, a gap after each field."""
    positions: dict[str, list[int]] = {}
    pos = 1
    for text in fields:
        if not text:
            continue
        for token in tokens(text):
            positions.setdefault(token, []).append(min(pos, 16383))
            pos += 1
        pos += 1
    return " ".join(f"'{t}':{','.join(map(str, p[:256]))}" for t, p in positions.items())


def test_tsvector_literal_matches_the_reference_on_varied_text() -> None:
    rnd = random.Random(7)
    words = ["alpha", "Beta", "café", "x", "CHG-12", "a.b@c", "", "ü", "naïve", "_", "1", "Ærø", "api"]
    for _ in range(3000):
        fields = [rnd.choice([None, "", " ".join(rnd.choice(words) for _ in range(rnd.randint(0, 40)))])
                  for _ in range(rnd.randint(0, 8))]
        assert tsvector_literal(fields) == reference_tsvector(fields), fields


def test_tsvector_literal_past_the_position_limit_and_with_many_repeats() -> None:
    for fields in (["a b " * 9000], ["x " * 300, "y " * 16000, "z"], ["w " * 16380, "v u"],
                   ["w " * 16381, "", "v u"], ["same " * 400]):
        assert tsvector_literal(fields) == reference_tsvector(fields)


def test_a_long_word_is_left_out_as_before() -> None:
    long_word = "a" * 3000
    assert tokens(f"short {long_word} end") == ["short", "end"]
    assert tsvector_literal([f"short {long_word}"]) == "'short':1"


def test_outcome_to_dict_is_asdict() -> None:
    full = Outcome("r1", "decided", "done", "APPROVED", ["ann"], {"note": "bad"}, "e1",
                   {"fingerprint": "SHA256:x", "key_type": "ssh-ed25519"})
    for outcome in (full, Outcome("r2", "not_found", "no such request")):
        as_dict = outcome.to_dict()
        assert as_dict == asdict(outcome) and list(as_dict) == list(asdict(outcome))
    copied = full.to_dict()
    copied["by"].append("bob")
    assert full.by == ["ann"]  # a copy, as asdict made


def test_canonical_json_is_unchanged() -> None:
    value = {"b": [1, 2.5, None, True], "a": "é €", "c": {"z": 1, "y": parse_time("2026-01-01T00:00:00.000000Z")}}
    assert jsonutil.dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                                               default=str)


def test_parse_time_gives_the_same_moment_cached_or_not() -> None:
    text = "2026-03-04T05:06:07.123456Z"
    assert parse_time(text) == parse_time(text) and parse_time(text).isoformat() == "2026-03-04T05:06:07.123456+00:00"
