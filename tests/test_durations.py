from datetime import timedelta

import pytest

from signoff.engine.durations import format_duration, parse_duration


@pytest.mark.parametrize("text, expected", [
    ("PT1H", timedelta(hours=1)),
    ("PT30M", timedelta(minutes=30)),
    ("PT0.5S", timedelta(seconds=0.5)),
    ("PT1,5S", timedelta(seconds=1.5)),
    ("PT1.000001S", timedelta(seconds=1, microseconds=1)),
    ("P1D", timedelta(days=1)),
    ("P2DT3H4M", timedelta(days=2, hours=3, minutes=4)),
    ("P1W", timedelta(weeks=1)),
    ("P1W2D", timedelta(days=9)),
    ("-PT5M", timedelta(minutes=-5)),
    ("PT-6H3M", timedelta(hours=-6, minutes=3)),
    ("PT0S", timedelta(0)),
    ("pt1h", timedelta(hours=1)),
    ("  PT1H  ", timedelta(hours=1)),
    ("PT36H", timedelta(hours=36)),
])
def test_parse(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["1h", "P", "PT", "P1DT", "", "PT1.5M", "P1.5D", "T1H", "PT1H30", "1", "PT1S2M"])
def test_parse_refuses(text):
    with pytest.raises(ValueError) as exc:
        parse_duration(text)
    assert str(exc.value).startswith(
        f"invalid duration `{text}`: write an ISO-8601 duration such as PT1H, PT30M or P1D")


def test_message_exact():
    with pytest.raises(ValueError, match=r"^invalid duration `1h`: write an ISO-8601 duration such as "
                                         r"PT1H, PT30M or P1D$"):
        parse_duration("1h")


def test_years_and_months_get_a_hint():
    with pytest.raises(ValueError, match=r"years and months have no fixed length: write days, e\.g\. P30D"):
        parse_duration("P1M")
    with pytest.raises(ValueError, match=r"years and months"):
        parse_duration("P1Y2DT1H")


def test_too_long():
    with pytest.raises(ValueError, match=r"it is too long"):
        parse_duration("P99999999999D")


def test_not_text():
    with pytest.raises(ValueError, match="invalid duration `5`"):
        parse_duration(5)  # type: ignore[arg-type]


def test_negative_refused_when_asked():
    assert parse_duration("-PT5M", allow_negative=True) == timedelta(minutes=-5)
    with pytest.raises(ValueError, match=r"^invalid duration `-PT5M`: it must not be negative; write e\.g\. PT5M$"):
        parse_duration("-PT5M", allow_negative=False)
    assert parse_duration("PT0S", allow_negative=False) == timedelta(0)


@pytest.mark.parametrize("td, text", [
    (timedelta(0), "PT0S"),
    (timedelta(hours=1, minutes=30), "PT1H30M"),
    (timedelta(days=1, hours=2), "P1DT2H"),
    (timedelta(seconds=0.5), "PT0.5S"),
    (timedelta(minutes=-5), "-PT5M"),
    (timedelta(weeks=1), "P7D"),
    (timedelta(days=2, hours=3, minutes=4, seconds=5, microseconds=120000), "P2DT3H4M5.12S"),
    (timedelta(seconds=59), "PT59S"),
])
def test_format(td, text):
    assert format_duration(td) == text
    assert parse_duration(text) == td


def test_round_trip_many():
    for seconds in range(-100_000, 200_000, 977):
        td = timedelta(seconds=seconds, microseconds=seconds % 7 * 1000)
        assert parse_duration(format_duration(td)) == td
