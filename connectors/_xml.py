"""XML from annotation tools, parsed safely (defusedxml: no entities, no DTDs, no external
references) and every failure turned into one :class:`~cvft_data.errors.MalformedFileError` that
names the file, the item and the document expected. CVAT, VOC and makesense all read through it.

Example:
    >>> parse_xml(b"<annotation><filename>a.jpg</filename></annotation>", file="a.xml", item="a.xml",
    ...           expected="a VOC <annotation>").findtext("filename")
    'a.jpg'
    >>> parse_xml(b'<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>', file="a.xml", item="a.xml", expected="VOC")
    Traceback (most recent call last):
    ...
    cvft_data.errors.MalformedFileError: unsafe XML refused (EntitiesForbidden); item: a.xml; file: a.xml; ...
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from cvft_data.errors import MalformedFileError


def parse_xml(data: bytes, *, file: str, item: str, expected: str) -> Element:
    """The root element of ``data``; a :class:`MalformedFileError` for invalid or unsafe XML."""
    try:
        return SafeET.fromstring(data)
    except SafeET.ParseError as exc:
        line, col = getattr(exc, "position", (0, 0))
        raise MalformedFileError(f"invalid XML at line {line}, column {col}", file=file, item=item,
                                 expected=expected) from None
    except DefusedXmlException as exc:
        raise MalformedFileError(f"unsafe XML refused ({type(exc).__name__})", file=file, item=item,
                                 expected="plain XML without entities or DTDs") from None
