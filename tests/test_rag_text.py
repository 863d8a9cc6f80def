"""The RAG worker's pure parts: parsing, chunking, fusion and grounding."""

from __future__ import annotations

import pytest

from aisdk.components.rag import chunking, fusion, grounding, parsing, tokens


def pdf(*pages: str) -> bytes:
    """A minimal, valid PDF with one line of Helvetica text per page."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        page_no = len(objects) + 1
        kids.append(f"{page_no} 0 R")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {page_no + 1} 0 R "
                       f"/Resources << /Font << /F1 {page_no + 2} 0 R >> >> >>")
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out = b"%PDF-1.4\n"
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


MARKDOWN = """# Store policies
Everything about buying from us,
across two lines.

## Refund policy
Refunds are **issued** within 30 days of purchase. See [the terms](https://example.com/terms).

- Items must be unused.
- Keep the receipt.

```
# not a heading
```
"""


def test_markdown_sections_follow_the_heading_path() -> None:
    sections = parsing.parse(parsing.MARKDOWN, MARKDOWN, b"")
    assert [s.heading for s in sections] == ["Store policies", "Store policies > Refund policy"]
    assert sections[0].paragraphs == ["Everything about buying from us, across two lines."]
    refund = sections[1].paragraphs
    assert refund[0] == "Refunds are issued within 30 days of purchase. See the terms."
    assert refund[1:3] == ["- Items must be unused.", "- Keep the receipt."]
    assert "# not a heading" in refund[3]


def test_html_keeps_headings_and_drops_scripts_and_navigation() -> None:
    html = ("<html><head><title>t</title><script>var secret = 1;</script></head><body><nav>Home</nav>"
            "<h1>Shop</h1><p>Welcome &amp; hello.</p><h2>Refunds</h2><p>Money back<br>within 30 days.</p>"
            "<ul><li>unused</li><li>receipt</li></ul></body></html>")
    sections = parsing.parse(parsing.HTML, html, b"")
    assert [(s.heading, s.paragraphs) for s in sections] == [
        ("Shop", ["Welcome & hello."]),
        ("Shop > Refunds", ["Money back", "within 30 days.", "unused", "receipt"]),
    ]


def test_pdf_pages_become_sections() -> None:
    sections = parsing.parse(parsing.PDF, "", pdf("Refunds within 30 days.", "Shipping takes a week."))
    assert [(s.heading, s.paragraphs) for s in sections] == [
        ("page 1", ["Refunds within 30 days."]), ("page 2", ["Shipping takes a week."])
    ]


@pytest.mark.parametrize(
    ("kind", "content", "data", "reason"),
    [
        (parsing.PDF, "", b"%PDF-1.4 then nothing", "the PDF cannot be read"),
        (parsing.TEXT, "", b"\xff\xfe\xfa", "not UTF-8"),
        (parsing.HTML, "<script>only()</script>", b"", "has no text"),
        (parsing.MARKDOWN, "   \n\n  ", b"", "has no text"),
    ],
)
def test_what_cannot_be_parsed_says_why(kind: str, content: str, data: bytes, reason: str) -> None:
    with pytest.raises(parsing.ParseError, match=reason):
        parsing.parse(kind, content, data)


def test_content_type_declared_then_extension_then_sniffed() -> None:
    assert parsing.content_type("text/markdown; charset=utf-8", "x.html", "", b"") == parsing.MARKDOWN
    assert parsing.content_type("", "https://example.com/a/Policy.PDF?x=1", "", b"") == parsing.PDF
    assert parsing.content_type("", "", "", b"%PDF-1.7") == parsing.PDF
    assert parsing.content_type("", "", "<!DOCTYPE html><p>x</p>", b"") == parsing.HTML
    assert parsing.content_type("", "", "# Title\ntext", b"") == parsing.MARKDOWN
    assert parsing.content_type("", "", "plain words", b"") == parsing.TEXT
    with pytest.raises(parsing.ParseError, match="unsupported content type 'image/png'"):
        parsing.content_type("image/png", "", "", b"")


def test_chunks_respect_the_token_budget_headings_and_overlap() -> None:
    body = " ".join(f"Sentence {i} explains one more detail of the refund rules." for i in range(40))
    sections = parsing.parse(parsing.MARKDOWN, f"# Refunds\n{body}\n# Shipping\nParcels ship daily.", b"")
    sizes = chunking.ChunkSizes(max_tokens=64, overlap_tokens=16)
    chunks = chunking.chunk(sections, sizes)
    refunds = [c for c in chunks if c.heading == "Refunds"]
    assert len(refunds) > 3
    assert all(c.token_count <= 64 and c.token_count == tokens.count(c.text) for c in chunks)
    # No chunk mixes sections; every chunk ends on a sentence.
    assert chunks[-1].heading == "Shipping" and chunks[-1].text == "Parcels ship daily."
    assert all(c.text.endswith(".") for c in chunks)
    # Each chunk after the first starts with the last sentence of the one before.
    for before, after in zip(refunds, refunds[1:]):
        last = before.text.rsplit(". ", 1)[-1]
        assert after.text.startswith(last.rstrip("."))
    # Together they hold every sentence, in order.
    seen = " ".join(c.text for c in refunds)
    assert all(f"Sentence {i} " in seen for i in range(40))
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_a_sentence_longer_than_a_chunk_is_cut_into_token_windows() -> None:
    long = " ".join(["refund"] * 300) + "."
    chunks = chunking.chunk(parsing.parse(parsing.TEXT, long, b""), chunking.ChunkSizes(64, 8))
    assert len(chunks) >= 5
    assert all(c.token_count <= 64 for c in chunks)


def test_chunk_sizes_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        chunking.ChunkSizes(8, 0)
    with pytest.raises(ValueError, match="below half"):
        chunking.ChunkSizes(64, 40)


def cand(chunk: str, similarity: float) -> fusion.Candidate:
    return fusion.Candidate("doc", chunk, "", f"text of {chunk}", "", similarity)


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    vector = [cand("a", 0.9), cand("b", 0.8), cand("c", 0.7)]
    text = [cand("b", 0.8), cand("c", 0.7), cand("d", 0.1)]
    fused = fusion.fuse(vector, text)
    assert [c.chunk_id for c in fused] == ["b", "c", "a", "d"]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert fused[2].score == pytest.approx(1 / 61)


def test_select_drops_weak_matches_absolutely_and_relative_to_the_best() -> None:
    fused = fusion.fuse([cand("refund", 0.8), cand("privacy", 0.3), cand("shipping", 0.1)])
    assert [c.chunk_id for c in fusion.select(fused, 5, 0.0, 0.5)] == ["refund"]
    assert [c.chunk_id for c in fusion.select(fused, 5, 0.2, 0.0)] == ["refund", "privacy"]
    assert [c.chunk_id for c in fusion.select(fused, 1, 0.0, 0.0)] == ["refund"]
    assert fusion.select([], 5, 0.0, 0.5) == []


def test_grounding_flags_the_sentences_no_source_supports() -> None:
    sources = ["Refunds are issued within 30 days of purchase.", "Items must be unused."]
    ok = grounding.check("Refunds are issued within 30 days of purchase. Items must be unused.", sources)
    assert ok.grounded and ok.unsupported == []
    bad = grounding.check("Refunds are issued within 30 days. Shipping to Mars costs nothing extra.", sources)
    assert not bad.grounded
    assert bad.unsupported == ["Shipping to Mars costs nothing extra."]
    assert not grounding.check("", sources).grounded
    assert not grounding.check("Refunds within 30 days.", []).grounded
