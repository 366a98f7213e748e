"""Which format a data folder is in, its page files, and validation of written page files against
the shipped XSDs (``schemas/``, see its README for sources and licences)."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from pathlib import Path

from lxml import etree

from hwr.data.pages import alto, pagexml
from hwr.data.pages.layout import Page, Transcriptions
from hwr.errors import BadInputError

PAGE_FORMATS = ("pagexml", "alto")
READERS = {"pagexml": pagexml.read_page, "alto": alto.read_page}
WRITERS = {"pagexml": pagexml.write_transcriptions, "alto": alto.write_transcriptions}
SCHEMA_DIR = Path(__file__).with_name("schemas")
SCHEMAS = {
    pagexml.NAMESPACE_PREFIX + "2013-07-15": "page-2013-07-15.xsd",
    pagexml.NAMESPACE_PREFIX + "2019-07-15": "page-2019-07-15.xsd",
    alto.NAMESPACE_PREFIX + "ns-v2#": "alto-2-1.xsd",
    alto.NAMESPACE_PREFIX + "ns-v3#": "alto-3-1.xsd",
    alto.NAMESPACE_PREFIX + "ns-v4#": "alto-4-4.xsd",
}
XLINK_URL = "http://www.loc.gov/standards/xlink/xlink.xsd"


def sniff(xml_path: Path) -> str | None:
    """``pagexml``, ``alto`` or None (another or a broken XML file), from the root element only."""
    try:
        _, root = next(etree.iterparse(str(xml_path), events=("start",)))
    except (etree.XMLSyntaxError, StopIteration, OSError):
        return None
    qname = etree.QName(root)
    if qname.localname == "PcGts" and (qname.namespace or "").startswith(pagexml.NAMESPACE_PREFIX):
        return "pagexml"
    if qname.localname == "alto" and (qname.namespace or "").startswith(alto.NAMESPACE_PREFIX):
        return "alto"
    return None


def detect(folder: Path, labels_csv: Path) -> str:
    """The format of a data folder: ``csv`` when its labels CSV exists, else the page format of
    its ``.xml`` files (searched recursively), else ``csv`` (so the usual missing-CSV error follows).

    Raises:
        BadInputError: the folder holds both PAGE-XML and ALTO files.
    """
    if labels_csv.is_file():
        return "csv"
    kinds = Counter(sniff(p) for p in folder.rglob("*.xml"))
    found = [k for k in PAGE_FORMATS if kinds[k]]
    if len(found) > 1:
        raise BadInputError(f"{folder} holds both PAGE-XML ({kinds['pagexml']}) and ALTO ({kinds['alto']}) "
                            "files: pass format=pagexml or format=alto")
    return found[0] if found else "csv"


def page_files(folder: Path, fmt: str) -> list[Path]:
    """Every ``fmt`` page file under ``folder`` (recursively), sorted.

    Raises:
        BadInputError: none found.
    """
    files = sorted(p for p in folder.rglob("*.xml") if sniff(p) == fmt)
    if not files:
        raise BadInputError(f"no {fmt} files (*.xml) under {folder} (parameter data)")
    return files


def read_page(xml_path: Path, fmt: str) -> Page:
    """Read one page file of format ``fmt`` (see :mod:`.pagexml`, :mod:`.alto`)."""
    return READERS[fmt](xml_path)


def write_transcriptions(page: Page, texts: Transcriptions,
                         keep_existing: bool) -> tuple[bytes, list[str]]:
    """The page's file with the machine transcriptions written in (see each format's writer)."""
    return WRITERS[page.format](page.xml_path, texts, keep_existing)


def validate(data: bytes) -> list[str]:
    """Schema errors of a PAGE-XML or ALTO document (empty: valid), each ``line N: message``.

    Raises:
        BadInputError: not XML, or a namespace with no shipped schema (see :data:`SCHEMAS`).
    """
    try:
        document = etree.fromstring(data)
    except etree.XMLSyntaxError as exc:
        raise BadInputError(f"not well-formed XML: {exc}") from exc
    name = SCHEMAS.get(etree.QName(document).namespace or "")
    if name is None:
        raise BadInputError(f"no schema shipped for namespace {etree.QName(document).namespace!r}; "
                            f"known: {', '.join(SCHEMAS)}")
    schema = _schema(name)
    schema.validate(document)
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


class _LocalXlink(etree.Resolver):
    def resolve(self, url, public_id, context):
        if url == XLINK_URL:
            return self.resolve_filename(str(SCHEMA_DIR / "xlink.xsd"), context)
        return None


@lru_cache(maxsize=None)
def _schema(name: str) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_LocalXlink())
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / name), parser))
