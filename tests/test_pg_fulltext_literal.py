"""The flat tsvector literal (each word at its position, engine.audit.fulltext) is the same
tsvector, once PostgreSQL has read it, as the grouped literal the reference writes: the server
merges a repeated word's positions, keeps its first 256 and clamps positions past 16383."""
from __future__ import annotations

import psycopg

from signoff.engine.audit.fulltext import tsvector_literal
from tests.test_hot_paths import EDGE_FIELDS, reference_tsvector, varied_fields


def test_the_server_reads_the_flat_literal_as_the_reference_tsvector(pg_url: str) -> None:
    cases = [*varied_fields(3000, seed=11), *EDGE_FIELDS, [None, "", "   ", "?!"], ["Request.Approved", "ann", "ops"]]
    flat = [fields for fields in cases if all((f or "").isascii() for f in fields)]
    assert len(flat) > 1500  # most cases take the flat form
    compared = 0
    with psycopg.connect(pg_url) as conn:
        for fields in flat:
            literal = tsvector_literal(fields)
            reference = reference_tsvector(fields)
            if literal != reference:  # (texts without repeats give the same text: no query needed)
                got, want = conn.execute("SELECT CAST(%s AS tsvector)::text, CAST(%s AS tsvector)::text",
                                         (literal, reference)).fetchone()
                assert got == want, fields
                compared += 1
    assert compared > 500  # many have repeated words, so the two texts differ before the server reads them


def test_a_text_past_the_flat_bound_gets_the_grouped_literal(pg_url: str) -> None:
    """PostgreSQL refuses a literal whose words, before merging, pass 1 MiB: a long text with
    many repeats is written grouped, and the server takes it."""
    fields = ["word " * 120_000]
    literal = tsvector_literal(fields)
    assert literal.count("'word'") == 1
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT length(CAST(%s AS tsvector))", (literal,)).fetchone()[0] == 1
