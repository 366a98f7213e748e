"""ALTO (Analyzed Layout and Text Object, Library of Congress), versions 2 to 4: reading a page's
text lines, writing transcriptions back into the file.

Only pixel coordinates are read (``MeasurementUnit`` ``pixel``; ``mm10`` and ``inch1200`` need the
scan's resolution, which ALTO does not carry). A line's outline is its ``Shape/Polygon`` when
there is one (ALTO 3+), else its ``HPOS``/``VPOS``/``WIDTH``/``HEIGHT`` rectangle; its baseline is
``BASELINE`` as points (ALTO 4.2+) or as a height (older files: a horizontal baseline).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lxml import etree

from hwr.data.pages.layout import Page, PageLine, Transcriptions, normalise_text, parse_points
from hwr.data.pages.pagexml import image_path, parse
from hwr.errors import BadInputError

NAMESPACE_PREFIX = "http://www.loc.gov/standards/alto/"
WORD_PARTS = ("String", "SP", "HYP")
PREVIOUS_PURPOSE = "previous transcription"


def namespace(tree: etree._ElementTree) -> str:
    """The ALTO namespace of a parsed file (``http://www.loc.gov/standards/alto/ns-v4#``).

    Raises:
        BadInputError: the root is not an ALTO ``alto`` element.
    """
    qname = etree.QName(tree.getroot())
    if qname.localname != "alto" or not (qname.namespace or "").startswith(NAMESPACE_PREFIX):
        raise BadInputError(f"{tree.docinfo.URL}: not an ALTO file (root element {tree.getroot().tag})")
    return qname.namespace


def read_page(xml_path: Path) -> Page:
    """Read an ALTO file's text lines in document order (ALTO's reading order).

    A line's text is its ``String/@CONTENT`` values joined by single spaces (``SP``), NFC-normalised.
    The image is ``Description/sourceImageInformation/fileName`` (see
    :func:`hwr.data.pages.pagexml.image_path`).

    Raises:
        BadInputError: not well-formed XML, not ALTO, no ``Page``, or a unit other than pixel.
    """
    tree = parse(xml_path)
    ns = {"a": namespace(tree)}
    unit = (tree.findtext("a:Description/a:MeasurementUnit", namespaces=ns) or "pixel").strip()
    if unit != "pixel":
        raise BadInputError(f"{xml_path}: MeasurementUnit is {unit!r}; hwr reads ALTO in pixel units only")
    page = tree.find("a:Layout/a:Page", ns)
    if page is None:
        raise BadInputError(f"{xml_path}: ALTO file without a Layout/Page element")
    name = (tree.findtext("a:Description/a:sourceImageInformation/a:fileName", namespaces=ns) or "").strip()
    lines = [_line(line, ns) for line in page.iterfind(".//a:TextLine", ns)]
    return Page(xml_path, image_path(xml_path, name), "alto", int(float(page.get("WIDTH", 0) or 0)),
                int(float(page.get("HEIGHT", 0) or 0)), lines)


def _line(line: etree._Element, ns: dict) -> PageLine:
    shape = line.find("a:Shape/a:Polygon", ns)
    polygon = parse_points(shape.get("POINTS")) if shape is not None else None
    box = _box(line)
    if polygon is None and box is not None:
        x, y, w, h = box
        polygon = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.int32)
    words = [s.get("CONTENT", "") for s in line.iterfind("a:String", ns)]
    return PageLine(line.get("ID", ""), polygon, _baseline(line.get("BASELINE"), box),
                    normalise_text(" ".join(words)) if words else None,
                    "" if polygon is not None else "the line has neither a Shape polygon nor HPOS/VPOS/WIDTH/HEIGHT")


def _box(element: etree._Element) -> tuple[int, int, int, int] | None:
    try:
        return tuple(round(float(element.get(k))) for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))
    except (TypeError, ValueError):
        return None


def _baseline(value: str | None, box) -> np.ndarray | None:
    points = parse_points(value)
    if points is not None and len(points) >= 2:
        return points
    try:  # ALTO < 4.2: one number, the baseline's height on the page
        y = round(float(value))
    except (TypeError, ValueError):
        return None
    return None if box is None else np.array([[box[0], y], [box[0] + box[2], y]], np.int32)


def write_transcriptions(xml_path: Path, texts: Transcriptions,
                         keep_existing: bool) -> tuple[bytes, list[str]]:
    """The ALTO file with each listed line's words replaced by the machine transcription.

    Args:
        texts: ``{TextLine ID: (text, confidence in [0, 1] or NaN)}``.
        keep_existing: lines that already have words are left untouched.

    Each word becomes a ``String`` (``CONTENT``, ``WC`` = the line's confidence, a box that splits
    the line's box in proportion to the word's length), separated by ``SP``. A line's earlier text is
    kept as an ``ALTERNATIVE`` (``PURPOSE="previous transcription"``) of its first new ``String``.

    Returns:
        ``(UTF-8 bytes of the file, repair notes)`` (ALTO needs no repairs: always empty).
    """
    tree = parse(xml_path)
    ns = {"a": namespace(tree)}
    for line in tree.getroot().iterfind(".//a:TextLine", ns):
        if line.get("ID") in texts:
            _set_text(line, ns, *texts[line.get("ID")], keep_existing)
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8", standalone=True), []


def _set_text(line: etree._Element, ns: dict, text: str, conf: float, keep_existing: bool) -> None:
    old = [c for c in line if isinstance(c.tag, str) and etree.QName(c).localname in WORD_PARTS]
    old_text = normalise_text(" ".join(s.get("CONTENT", "") for s in old if etree.QName(s).localname == "String"))
    if keep_existing and old_text:
        return
    for element in old:
        line.remove(element)
    words = text.split() or [""]
    boxes = _word_boxes(_box(line), words)
    for i, (word, box) in enumerate(zip(words, boxes)):
        if i:
            line.append(_element(ns, "SP", box and {"HPOS": box[0] - 1, "VPOS": box[1], "WIDTH": 1}))
        string = _element(ns, "String", box and dict(zip(("HPOS", "VPOS", "WIDTH", "HEIGHT"), box)))
        string.set("CONTENT", word)
        if conf == conf:  # not NaN
            string.set("WC", f"{min(max(conf, 0.0), 1.0):.4f}")
        if i == 0 and old_text:
            etree.SubElement(string, f"{{{ns['a']}}}ALTERNATIVE", PURPOSE=PREVIOUS_PURPOSE).text = old_text
        line.append(string)


def _element(ns: dict, name: str, attributes: dict | None) -> etree._Element:
    return etree.Element(f"{{{ns['a']}}}{name}", {k: str(v) for k, v in (attributes or {}).items()})


def _word_boxes(box, words: list[str]) -> list[tuple[int, int, int, int] | None]:
    """Split a line's box into one box per word, in proportion to the words' lengths plus a space."""
    if box is None:
        return [None] * len(words)
    x, y, w, h = box
    weights = np.array([len(word) + 1 for word in words], np.float64)
    edges = np.round(x + w * np.concatenate([[0], np.cumsum(weights)]) / weights.sum()).astype(int)
    return [(int(a), y, max(int(b - a) - 1, 1), h) for a, b in zip(edges[:-1], edges[1:])]
