"""Report periods: parsed strictly, and the period before each."""

from datetime import date

import pytest

from layers.periods import InvalidPeriodError, parse_period, period_between


@pytest.mark.parametrize(
    ("text", "start", "end", "previous"),
    [
        ("2022", date(2022, 1, 1), date(2022, 12, 31), "2021"),
        ("2022H1", date(2022, 1, 1), date(2022, 6, 30), "2021H2"),
        ("2022H2", date(2022, 7, 1), date(2022, 12, 31), "2022H1"),
        ("2022Q1", date(2022, 1, 1), date(2022, 3, 31), "2021Q4"),
        ("2022Q3", date(2022, 7, 1), date(2022, 9, 30), "2022Q2"),
        ("2024Q1", date(2024, 1, 1), date(2024, 3, 31), "2023Q4"),
        ("2022Q4", date(2022, 10, 1), date(2022, 12, 31), "2022Q3"),
        ("2022-03-01..2022-03-31", date(2022, 3, 1), date(2022, 3, 31), "2022-01-29..2022-02-28"),
    ],
)
def test_periods_and_the_one_before(text, start, end, previous):
    p = parse_period(text)
    assert (p.start, p.end) == (start, end)
    before = p.previous()
    assert before.key == previous
    # the period before ends the day before this one starts, and is as long for a range
    assert before.end.toordinal() == p.start.toordinal() - 1
    if p.kind == "range":
        assert (before.end - before.start) == (p.end - p.start)


def test_labels_in_chinese_and_english():
    assert parse_period("2022H1").label() == "2022年上半年"
    assert parse_period("2022H2").label("en") == "2022 H2"
    assert parse_period("2022Q3").label() == "2022年第三季度"


@pytest.mark.parametrize(
    "text",
    [
        "2022H3",
        "2022Q5",
        "2022Q0",
        "22H1",
        "2022h1",
        " 2022H1",
        "2022H1 ",
        "2022-1",
        "1989",
        "2101",
        "2022-02-30..2022-03-01",
        "2022-06-30..2022-01-01",
        "2000-01-01..2022-01-01",
        "２０２２",
        "٢٠٢٢H1",
        "",
        "H1",
        "2022-01-01..",
        "2022-01-01",
        "x" * 500,
        "2022H1\x00",
        "NaN",
        "-2022",
    ],
)
def test_bad_periods_are_refused_with_a_stable_code(text):
    with pytest.raises(InvalidPeriodError) as err:
        parse_period(text)
    assert err.value.code == "invalid_period" and err.value.status == 400


def test_from_to():
    p = period_between(date(2022, 1, 1), date(2022, 6, 30))
    assert p.key == "2022-01-01..2022-06-30" and not p.whole_years
    assert period_between(date(2021, 1, 1), date(2022, 12, 31)).whole_years
    with pytest.raises(InvalidPeriodError):
        period_between(date(2022, 7, 1), date(2022, 6, 30))


def test_the_first_years_have_a_period_before_them():
    """1990 is the first year a request may name; the period it is compared with is 1989."""
    assert parse_period("1990").previous().key == "1989"
    assert parse_period("1990H1").previous().key == "1989H2"
    assert parse_period("1990Q1").previous().key == "1989Q4"
    assert parse_period("1990-01-01..1990-01-10").previous().key == "1989-12-22..1989-12-31"


def test_the_last_half_year():
    from layers.periods import last_half_year

    assert last_half_year(date(2022, 7, 15)).key == "2022H1"
    assert last_half_year(date(2023, 1, 2)).key == "2022H2"
    assert last_half_year(date(2022, 6, 30)).key == "2021H2"
