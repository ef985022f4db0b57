"""The inline SVG charts: well-formed, proportional, labelled, escaped."""

import xml.etree.ElementTree as ET

import pytest

from apps.dashboard import charts
from apps.dashboard.charts import Bar

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg) -> ET.Element:
    return ET.fromstring(str(svg))


def bars_of(root) -> list[ET.Element]:
    return [r for r in root.iter(f"{SVG}rect") if "data-value" in r.attrib]


def test_bar_lengths_are_proportional_to_the_values():
    root = parse(
        charts.bar_chart(
            "Devices by state", [Bar("a", 40), Bar("b", 10), Bar("c", 0), Bar("d", 20)]
        )
    )
    widths = [float(r.get("width")) for r in bars_of(root)]
    assert widths[1] == pytest.approx(widths[0] / 4) and widths[3] == pytest.approx(widths[0] / 2)
    assert widths[2] == 0 and widths[0] > 100


def test_every_bar_shows_its_number_and_the_chart_is_titled():
    root = parse(
        charts.bar_chart(
            "Devices by state", [Bar("active", 1234), Bar("retired", 7)], unit="devices"
        )
    )
    assert root.get("role") == "img"
    title = root.find(f"{SVG}title")
    assert title.text == "Devices by state" and title.get("id") in root.get("aria-labelledby")
    assert root.find(f"{SVG}desc").text == "active: 1234 devices; retired: 7 devices"
    values = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "value"]
    assert values == ["1234", "7"]


def test_labels_and_titles_are_escaped():
    svg = str(
        charts.bar_chart(
            '<script>alert("x")</script> & co', [Bar("<b>v1</b>", 3, href="/x?a=1&b=<2>")]
        )
    )
    assert "<script>" not in svg and "<b>" not in svg
    root = parse(svg)  # still well-formed XML
    assert root.find(f"{SVG}title").text == '<script>alert("x")</script> & co'
    link = root.find(f"{SVG}a")
    assert link.get("href") == "/x?a=1&b=<2>"


def test_long_labels_are_shortened_but_kept_whole_in_the_tooltip():
    label = "a very long trusted component name indeed"
    root = parse(charts.bar_chart("t", [Bar(label, 1)]))
    shown = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "label"][0]
    assert shown.endswith("…") and len(shown) <= charts.LABEL_CHARS
    assert bars_of(root)[0].find(f"{SVG}title").text.startswith(label)


def test_stacked_segments_share_the_width_by_value():
    root = parse(
        charts.stacked_bar("Attestation", [Bar("ok", 30, "ok"), Bar("bad", 10, "bad")], width=400)
    )
    first, second = bars_of(root)
    assert float(first.get("width")) == 300 and float(second.get("width")) == 100
    assert float(second.get("x")) == 300
    assert "bar-bad" in second.get("class")


def test_histogram_heights_are_proportional_and_in_bucket_order():
    root = parse(
        charts.histogram("Last contact", [Bar("< 1 h", 5), Bar("< 24 h", 10), Bar("never", 0)])
    )
    columns = bars_of(root)
    heights = [float(c.get("height")) for c in columns]
    assert heights[0] == pytest.approx(heights[1] / 2) and heights[2] == 0
    xs = [float(c.get("x")) for c in columns]
    assert xs == sorted(xs)
    # Taller columns start higher (SVG y grows downwards); all end on the same baseline.
    bottoms = {float(c.get("y")) + float(c.get("height")) for c in columns}
    assert len(bottoms) == 1


@pytest.mark.parametrize("draw", [charts.bar_chart, charts.stacked_bar, charts.histogram])
def test_an_empty_or_all_zero_chart_draws_without_dividing_by_zero(draw):
    assert parse(draw("nothing", [])).find(f"{SVG}desc").text == "no data"
    assert all(
        float(r.get("width")) == 0 or float(r.get("height", 1)) == 0
        for r in bars_of(parse(draw("zeros", [Bar("a", 0), Bar("b", 0)])))
    )


def test_tones_and_values_are_checked():
    with pytest.raises(ValueError):
        Bar("a", 1, tone="pink")
    with pytest.raises(ValueError):
        Bar("a", -1)
