"""PAGE-XML (PRImA's page content format, as Transkribus, eScriptorium, Kraken and OCR-D write it):
reading a page's text lines, writing transcriptions back into the file.

Format: Pletschacher and Antonacopoulos, "The PAGE (Page Analysis and Ground-Truth Elements)
Format Framework", ICPR 2010; schemas 2013-07-15 and 2019-07-15 (``schemas/``). Parsing and
writing go through lxml, so everything hwr does not touch stays as it was.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from lxml import etree

from hwr.data.pages.layout import Page, PageLine, Transcriptions, normalise_text, parse_points, points_text
from hwr.errors import BadInputError

NAMESPACE_PREFIX = "http://schema.primaresearch.org/PAGE/gts/pagecontent/"
SINGLE_TEXTEQUIV = ("2009-03-16", "2010-01-12", "2010-03-19", "2013-07-15")  # one TextEquiv per line
# TextLine children that come after TextEquiv in every PAGE schema
AFTER_TEXTEQUIV = ("TextStyle", "UserDefined", "Labels")
METADATA_CHILDREN = ("Creator", "Created", "LastChange", "Comments", "UserDefined", "MetadataItem")
PREVIOUS = "hwr: previous transcription: "


def namespace(tree: etree._ElementTree) -> str:
    """The PAGE namespace of a parsed file (``.../pagecontent/2019-07-15``).

    Raises:
        BadInputError: the root is not a PAGE ``PcGts`` element.
    """
    root = tree.getroot()
    qname = etree.QName(root)
    if qname.localname != "PcGts" or not (qname.namespace or "").startswith(NAMESPACE_PREFIX):
        raise BadInputError(f"{tree.docinfo.URL}: not a PAGE-XML file (root element {root.tag})")
    return qname.namespace


def version(tree: etree._ElementTree) -> str:
    """The schema date of a PAGE file, e.g. ``2013-07-15``."""
    return namespace(tree).rsplit("/", 1)[-1]


def read_page(xml_path: Path) -> Page:
    """Read a PAGE-XML file's text lines in reading order (regions by the ``ReadingOrder``'s
    indices, then those it omits in document order; lines in document order within a region).

    Each line's text is its first ``TextEquiv`` (lowest ``index``) ``Unicode``, NFC-normalised;
    a line without ``Coords`` points gets a ``problem``. The image is ``Page/@imageFilename``
    relative to the XML's folder (or, for Transkribus' ``page/`` subfolder, its parent).

    Raises:
        BadInputError: not well-formed XML, not PAGE, or no ``Page`` element.
    """
    tree = parse(xml_path)
    ns = {"p": namespace(tree)}
    page = tree.find("p:Page", ns)
    if page is None:
        raise BadInputError(f"{xml_path}: PAGE-XML file without a Page element")
    lines = [_line(line, ns) for region in _regions_in_order(page, ns) for line in region.findall("p:TextLine", ns)]
    return Page(xml_path, image_path(xml_path, page.get("imageFilename", "")), "pagexml",
                int(page.get("imageWidth", 0) or 0), int(page.get("imageHeight", 0) or 0), lines)


def parse(xml_path: Path) -> etree._ElementTree:
    """Parse an XML file, keeping its formatting.

    Raises:
        BadInputError: not well-formed, naming the file, line and problem.
    """
    try:
        return etree.parse(str(xml_path), etree.XMLParser(remove_blank_text=False, resolve_entities=False))
    except etree.XMLSyntaxError as exc:
        raise BadInputError(f"{xml_path}: not well-formed XML: {exc}") from exc


def image_path(xml_path: Path, name: str) -> Path:
    """Where a page file's image is: ``name`` beside the XML, else in the XML folder's parent
    (Transkribus exports put PAGE files in ``page/``), else a same-named JPEG/PNG/TIFF beside it."""
    folder = xml_path.parent
    candidates = [folder / name, folder.parent / name] if name else []
    candidates += [xml_path.with_suffix(s) for s in (".jpg", ".jpeg", ".png", ".tif", ".tiff")]
    return next((c for c in candidates if c.is_file()), candidates[0])


def _regions_in_order(page: etree._Element, ns: dict) -> list[etree._Element]:
    regions = page.findall(".//p:TextRegion", ns)
    order = {ref.get("regionRef"): int(ref.get("index", 0))
             for ref in page.findall("p:ReadingOrder//p:RegionRefIndexed", ns)}
    ranked = sorted(range(len(regions)), key=lambda i: (order.get(regions[i].get("id"), len(order) + i), i))
    return [regions[i] for i in ranked]


def _line(line: etree._Element, ns: dict) -> PageLine:
    line_id = line.get("id", "")
    coords = line.find("p:Coords", ns)
    polygon = parse_points(coords.get("points") if coords is not None else None)
    baseline = line.find("p:Baseline", ns)
    equivs = sorted(line.findall("p:TextEquiv", ns), key=lambda e: int(e.get("index", 0) or 0))
    text = next((e.findtext("p:Unicode", namespaces=ns) for e in equivs), None)
    return PageLine(line_id, polygon, parse_points(baseline.get("points") if baseline is not None else None),
                    normalise_text(text), "" if polygon is not None else "the line has no Coords points")


def write_transcriptions(xml_path: Path, texts: Transcriptions,
                         keep_existing: bool) -> tuple[bytes, list[str]]:
    """The PAGE file with each listed line's machine transcription added; everything else kept.

    Args:
        texts: ``{line id: (text, confidence in [0, 1] or NaN)}``.
        keep_existing: lines that already have a transcription are left untouched.

    The prediction becomes the line's first ``TextEquiv`` (``index="1"``, ``conf``). A line's
    earlier transcription is kept as a second ``TextEquiv`` (``index="2"``); schemas up to
    2013-07-15 allow a single ``TextEquiv`` per line, so there it is kept in the line's
    ``comments`` attribute instead. ``Metadata/LastChange`` is set to now. Three things Transkribus
    writes that the schema refuses are repaired, and returned as notes: an empty ``Relations``,
    negative coordinates (clipped to 0) and ``Metadata`` children unknown to PAGE
    (``TranskribusMetadata``, removed).

    Returns:
        ``(UTF-8 bytes of the file, repair notes)``.
    """
    tree = parse(xml_path)
    ns = {"p": namespace(tree)}
    single = version(tree) in SINGLE_TEXTEQUIV
    for line in tree.getroot().iterfind(".//p:TextLine", ns):
        if line.get("id") in texts:
            _set_text(line, ns, *texts[line.get("id")], keep_existing, single)
    repairs = _repair(tree, ns)
    _touch(tree, ns)
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8", standalone=True), repairs


def _set_text(line: etree._Element, ns: dict, text: str, conf: float, keep_existing: bool, single: bool) -> None:
    old = line.findall("p:TextEquiv", ns)
    old_text = normalise_text(next((e.findtext("p:Unicode", namespaces=ns) for e in old), None))
    if keep_existing and old_text:
        return
    new = etree.Element(f"{{{ns['p']}}}TextEquiv")
    if conf == conf:  # not NaN
        new.set("conf", f"{min(max(conf, 0.0), 1.0):.4f}")
    etree.SubElement(new, f"{{{ns['p']}}}Unicode").text = text
    if old:
        old[0].addprevious(new)
    else:
        _insert_before(line, new, [f"{{{ns['p']}}}{n}" for n in AFTER_TEXTEQUIV])
    new.tail = old[0].tail if old else line[0].tail if len(line) else None
    if single:
        for e in old:
            _remove(e)
        if old_text:
            comments = line.get("comments", "")
            line.set("comments", (comments + "; " if comments else "") + PREVIOUS + old_text)
    elif old:
        new.set("index", "1")
        for i, e in enumerate(old, start=2):
            e.set("index", str(i))


def _insert_before(parent: etree._Element, child: etree._Element, later: list[str]) -> None:
    after = next((c for c in parent if c.tag in later), None)
    if after is not None:
        after.addprevious(child)
    else:
        parent.append(child)


def _repair(tree: etree._ElementTree, ns: dict) -> list[str]:
    notes = []
    for relations in tree.getroot().iterfind(".//p:Relations", ns):
        if not len(relations):
            _remove(relations)
            notes.append("removed an empty Relations element")
    for element in tree.getroot().iter():
        points = element.get("points") if isinstance(element.tag, str) else None
        if points and "-" in points:
            element.set("points", points_text(parse_points(points).clip(min=0)))
            notes.append(f"clipped negative coordinates of {etree.QName(element.getparent()).localname} "
                         f"{element.getparent().get('id', '')} to 0")
    metadata = tree.find("p:Metadata", ns)
    for child in list(metadata) if metadata is not None else []:
        if isinstance(child.tag, str) and etree.QName(child).localname not in METADATA_CHILDREN:
            _remove(child)
            notes.append(f"removed Metadata/{etree.QName(child).localname} (not part of the PAGE schema)")
    return notes


def _remove(element: etree._Element) -> None:
    """Remove an element, keeping the indentation that followed it (lxml drops its tail)."""
    previous, parent = element.getprevious(), element.getparent()
    if previous is not None:
        previous.tail = element.tail
    else:
        parent.text = element.tail
    parent.remove(element)


def _touch(tree: etree._ElementTree, ns: dict) -> None:
    last = tree.find("p:Metadata/p:LastChange", ns)
    if last is not None:
        last.text = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
