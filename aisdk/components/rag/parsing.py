"""Documents to sections: the heading path and the paragraphs under it.

Text, Markdown and HTML are parsed with the standard library; PDF with pypdf
(pure Python). Whatever cannot be parsed raises ParseError with the reason: a
document that fails here can never succeed on redelivery.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePosixPath
from urllib.parse import urlparse

TEXT = "text/plain"
MARKDOWN = "text/markdown"
HTML = "text/html"
PDF = "application/pdf"
CONTENT_TYPES = (TEXT, MARKDOWN, HTML, PDF)
_EXTENSIONS = {
    ".txt": TEXT, ".text": TEXT, ".md": MARKDOWN, ".markdown": MARKDOWN,
    ".html": HTML, ".htm": HTML, ".pdf": PDF,
}


class ParseError(ValueError):
    """The document cannot be turned into text."""


@dataclass(slots=True)
class Section:
    headings: tuple[str, ...]
    paragraphs: list[str] = field(default_factory=list)

    @property
    def heading(self) -> str:
        return " > ".join(self.headings)


def content_type(declared: str, source_uri: str, content: str, data: bytes) -> str:
    """The declared type, else the source's extension, else a sniff."""
    if declared:
        base = declared.split(";")[0].strip().lower()
        if base not in CONTENT_TYPES:
            raise ParseError(f"unsupported content type {declared!r}; supported: {', '.join(CONTENT_TYPES)}")
        return base
    suffix = PurePosixPath(urlparse(source_uri).path).suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    if data.startswith(b"%PDF"):
        return PDF
    head = content.lstrip()[:512].lower()
    if head.startswith(("<!doctype html", "<html")) or re.search(r"<(p|h[1-6]|div|body)\b", head):
        return HTML
    if re.search(r"^#{1,6} \S", content, re.MULTILINE):
        return MARKDOWN
    return TEXT


def parse(kind: str, content: str, data: bytes) -> list[Section]:
    """Sections of non-empty paragraphs; an empty result is a ParseError."""
    if kind == PDF:
        sections = _pdf(data or content.encode("latin-1", "replace"))
    else:
        text = content or _decode(data)
        sections = {TEXT: _text, MARKDOWN: _markdown, HTML: _html}[kind](text)
    sections = [s for s in sections if s.paragraphs]
    if not sections:
        raise ParseError(f"the {kind} document has no text")
    return sections


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"the document is not UTF-8 text: {e}") from e


def _paragraphs(text: str) -> list[str]:
    # Soft line breaks inside a paragraph are joined; list items stay apart.
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
        merged: list[str] = []
        for ln in lines:
            if merged and not _LIST_ITEM.match(ln):
                merged[-1] += " " + ln
            else:
                merged.append(ln)
        out.extend(" ".join(m.split()) for m in merged)
    return out


_LIST_ITEM = re.compile(r"^([-*+]|\d+[.)])\s+")


def _text(text: str) -> list[Section]:
    return [Section((), _paragraphs(text))]


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_MD_INLINE = (
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # images: alt text
    (re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),  # links: their text
    (re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1"), r"\2"),  # emphasis, code
)


def _markdown(text: str) -> list[Section]:
    sections = [Section(())]
    block: list[str] = []
    fenced = False

    def flush() -> None:
        sections[-1].paragraphs.extend(_paragraphs("\n".join(block)))
        block.clear()

    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            block.append("")
            continue
        m = None if fenced else _MD_HEADING.match(line)
        if m is None:
            for pattern, repl in () if fenced else _MD_INLINE:
                line = pattern.sub(repl, line)
            block.append(line.lstrip("> ") if not fenced else line)
            continue
        flush()
        level, title = len(m.group(1)), m.group(2)
        sections.append(Section(sections[-1].headings[: level - 1] + (title,)))
    flush()
    return sections


# Site furniture marked by class or role rather than by tag (a manual's
# "Prev / Up / Next" bars, breadcrumbs, menus): it names other pages, so
# indexed it would make every page seem to mention them.
_BOILERPLATE = re.compile(r"nav|navbar|navheader|navfooter|navigation|breadcrumbs?|menu|sidebar|site-?nav")


def _boilerplate(attrs: list[tuple[str, str | None]]) -> bool:
    values = dict(attrs)
    if (values.get("role") or "") == "navigation":
        return True
    return any(_BOILERPLATE.fullmatch(c) for c in (values.get("class") or "").lower().split())


class _HtmlSections(HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template", "head", "nav", "footer"})
    _BLOCK = frozenset({"p", "div", "li", "br", "tr", "section", "article", "blockquote", "pre", "dd", "dt", "td"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections = [Section(())]
        self._skip = 0
        # The element that began a boilerplate skip, and how deep in it we are.
        self._furniture: tuple[str, int] | None = None
        self._heading: tuple[int, list[str]] | None = None
        self._text: list[str] = []

    def _flush(self) -> None:
        text = " ".join("".join(self._text).split())
        if text:
            self.sections[-1].paragraphs.append(text)
        self._text.clear()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._furniture is not None:
            name, depth = self._furniture
            self._furniture = (name, depth + 1) if tag == name else self._furniture
        elif tag not in self._SKIP and _boilerplate(attrs):
            self._furniture = (tag, 1)
            self._skip += 1
        elif tag in self._SKIP:
            self._skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self._heading = (int(tag[1]), [])
        elif tag in self._BLOCK:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if self._furniture is not None:
            name, depth = self._furniture
            if tag == name and depth > 1:
                self._furniture = (name, depth - 1)
            elif tag == name:
                self._furniture = None
                self._skip -= 1
        elif tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif re.fullmatch(r"h[1-6]", tag) and self._heading is not None:
            level, parts = self._heading
            self._heading = None
            title = " ".join("".join(parts).split())
            if title:
                self.sections.append(Section(self.sections[-1].headings[: level - 1] + (title,)))
        elif tag in self._BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        (self._heading[1] if self._heading is not None else self._text).append(data)


def _html(text: str) -> list[Section]:
    parser = _HtmlSections()
    parser.feed(text)
    parser.close()
    parser._flush()
    return parser.sections


def _pdf(data: bytes) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, TypeError) as e:
        raise ParseError(f"the PDF cannot be read: {type(e).__name__}: {e}") from e
    # A page is a section of its own, so a source can be cited by page.
    return [Section((f"page {n}",), _paragraphs(text)) for n, text in enumerate(pages, 1)]
