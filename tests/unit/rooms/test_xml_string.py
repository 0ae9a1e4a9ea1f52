"""`xml_string`: a Yjs XML type as well-formed XML, whatever its clients wrote into it."""

from __future__ import annotations

import re
from typing import Any
from xml.etree import ElementTree

from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Doc, Map, XmlElement, XmlFragment, XmlText

from collab.rooms.json_values import MAX_SHARED_DEPTH
from collab.rooms.snapshot import document_to_json
from collab.rooms.xml_string import INVALID_ELEMENT, xml_string

NOT_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def body(*children: XmlElement | XmlText) -> XmlFragment:
    fragment = Doc().get("body", type=XmlFragment)
    for child in children:
        fragment.children.append(child)
    return fragment


def parsed(fragment: XmlFragment) -> ElementTree.Element:
    """The fragment's XML, parsed (raises if it is not well-formed)."""
    return ElementTree.fromstring(f"<root>{xml_string(fragment)}</root>")


def test_text_that_looks_like_markup_stays_text() -> None:
    """A note reading `a < b & </p><script>` is text, not a script element."""
    typed = 'a < b & c > d </p><script>alert("x")</script>'
    fragment = body(XmlElement("paragraph", {}, [XmlText(typed)]))
    assert xml_string(fragment) == (
        '<paragraph>a &lt; b &amp; c &gt; d &lt;/p&gt;&lt;script&gt;alert("x")'
        "&lt;/script&gt;</paragraph>"
    )
    [paragraph] = parsed(fragment)
    assert paragraph.text == typed
    assert list(paragraph) == []


def test_attribute_values_cannot_add_attributes() -> None:
    """Quotes in a value are escaped; attributes come sorted by name, as Yjs writes them."""
    fragment = body(XmlElement("heading", {"level": "1", "class": 'x" onclick="y'}))
    assert xml_string(fragment) == ('<heading class="x&quot; onclick=&quot;y" level="1"></heading>')
    [heading] = parsed(fragment)
    assert heading.attrib == {"class": 'x" onclick="y', "level": "1"}


def test_an_element_name_that_is_not_an_xml_name_is_kept_in_an_attribute() -> None:
    fragment = body(XmlElement("p><script", {"k": "v"}, [XmlText("kept")]))
    assert xml_string(fragment) == (
        f'<{INVALID_ELEMENT} name="p&gt;&lt;script">kept</{INVALID_ELEMENT}>'
    )
    [element] = parsed(fragment)
    assert element.attrib == {"name": "p><script"}


def test_formatted_text_is_nested_tags_sorted_by_format() -> None:
    """As Yjs's `toString`: a run's formats become tags, sorted, a format's entries their
    attributes; a format whose name is not an XML name is left out and its text kept."""
    text = XmlText()
    paragraph = body(XmlElement("paragraph", {}, [text]))
    text.insert(0, "plain ")
    text.insert(6, "both", attrs={"italic": True, "bold": {}})
    text.insert(10, " link", attrs={"link": {"href": "https://x.test/?a=1&b=2"}, "a b": {}})
    assert xml_string(paragraph) == (
        "<paragraph>plain <bold><italic>both</italic></bold>"
        '<link href="https://x.test/?a=1&amp;b=2"> link</link></paragraph>'
    )


def test_values_that_are_not_strings_are_written_as_json() -> None:
    fragment = body(XmlElement("image", {"width": 3.0, "inline": True, "size": 2.5}))
    assert xml_string(fragment) == '<image inline="true" size="2.5" width="3"></image>'


def test_characters_xml_does_not_allow_become_the_replacement_character() -> None:
    fragment = body(XmlElement("p", {"v": "a\x00b"}, [XmlText("bell\x07 tab\t")]))
    assert xml_string(fragment) == '<p v="a\ufffdb">bell\ufffd tab\t</p>'


def test_the_json_snapshot_shows_the_body_and_xml_inside_meta_this_way() -> None:
    doc: Doc[Any] = Doc()
    doc.get("body", type=XmlFragment).children.append(
        XmlElement("paragraph", {}, [XmlText("Q&A <today>")])
    )
    doc.get("meta", type=Map)["note"] = XmlFragment([XmlText("1 < 2")])
    roots = document_to_json(doc.get_update())
    assert roots["body"] == "<paragraph>Q&amp;A &lt;today&gt;</paragraph>"
    assert roots["meta"]["note"] == "1 &lt; 2"


PLAIN_NAME = r"[A-Za-z_][A-Za-z0-9_.\-]*"
names = st.one_of(st.from_regex(PLAIN_NAME, fullmatch=True), st.text(max_size=12))
values = st.text(max_size=30)


@given(st.lists(st.tuples(names, st.dictionaries(names, values, max_size=3), values), max_size=4))
def test_whatever_clients_write_it_is_well_formed_and_keeps_the_text(
    elements: list[tuple[str, dict[str, str], str]],
) -> None:
    fragment = body(
        *(XmlElement(name, attributes, [XmlText(text)]) for name, attributes, text in elements)
    )
    root = parsed(fragment)
    assert "".join(root.itertext()) == "".join(readable(text) for _, _, text in elements)
    assert len(root) == len(elements)
    for element, (name, attributes, _) in zip(root, elements, strict=True):
        if element.tag == name:
            assert element.attrib == {
                key: readable(value)
                for key, value in attributes.items()
                if re.fullmatch(PLAIN_NAME, key)
            }
        else:
            assert element.tag == INVALID_ELEMENT
            assert element.attrib == {"name": readable(name)}


def readable(value: str) -> str:
    """What XML can carry of `value`."""
    return NOT_XML_CHARS.sub("\ufffd", value)


def test_elements_nested_thousands_deep_are_written_without_recursion() -> None:
    fragment = body()
    current: XmlFragment | XmlElement = fragment
    for _ in range(3000):
        current = current.children.append(XmlElement("div"))
    current.children.append(XmlText("inside"))

    assert xml_string(fragment) == "<div>" * 3000 + "inside" + "</div>" * 3000


def test_elements_embedded_in_texts_thousands_deep_stop_at_the_bound() -> None:
    """An element embedded in a text is written as escaped text, and one embedded in its text
    again inside that: past MAX_SHARED_DEPTH such levels nothing more is written."""
    fragment = body()
    text = fragment.children.append(XmlText())
    for _ in range(3000):
        text.insert_embed(0, XmlElement("a"))
        [(element, _)] = list(text.diff())
        text = element.children.append(XmlText())

    written = xml_string(fragment)
    assert written.startswith("&lt;a&gt;&amp;lt;a&amp;gt;")
    assert written.count("lt;a") == MAX_SHARED_DEPTH


def test_a_map_holding_xml_embedded_in_a_text_is_named_not_written() -> None:
    """Its JSON would escape the XML inside as a string, and again at every level."""
    fragment = body()
    text = fragment.children.append(XmlText())
    text.insert_embed(0, Map())
    [(holder, _)] = list(text.diff())
    holder["x"] = XmlFragment([XmlElement("p")])

    assert xml_string(fragment) == "&lt;Map&gt;"
