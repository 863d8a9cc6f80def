"""What an answer is made of: grounding that can fail, the offline extractive
answerer reading the request's structure, the abstention decision's inputs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aisdk.components.gateway import local
from aisdk.components.gateway.providers import litellm
from aisdk.components.rag import evidence, grounding
from aisdk.components.rag.fusion import Candidate
from aisdk.components.rag.store import TermStatistics

REFUNDS = ("You can return any unused item within 30 days of delivery for a full refund. "
           "Refunds are paid to the original payment method within 5 business days.")
SHIPPING = "Orders ship within two business days. Standard delivery takes three to five days."


def test_a_fabricated_sentence_is_caught_and_the_answer_is_not_grounded() -> None:
    honest = grounding.check("Refunds are paid to the original payment method within 5 business days.",
                             [SHIPPING, REFUNDS])
    assert honest.grounded and honest.unsupported == [] and honest.used == [1]

    made_up = "You can return any unused item within 30 days. Refunds are paid out in gold bars by a courier."
    checked = grounding.check(made_up, [SHIPPING, REFUNDS])
    assert not checked.grounded
    assert checked.unsupported == ["Refunds are paid out in gold bars by a courier."]
    assert checked.used == [1]


def test_sources_are_the_chunks_used_in_the_order_used() -> None:
    answer = "Standard delivery takes three to five days. Refunds are paid to the original payment method."
    checked = grounding.check(answer, [REFUNDS, "An unrelated chunk about warranties.", SHIPPING])
    assert checked.grounded and checked.used == [2, 0]


def test_no_sources_or_no_answer_is_never_grounded() -> None:
    assert not grounding.check("Anything at all.", []).grounded
    assert not grounding.check("", [REFUNDS]).grounded


@pytest.fixture(scope="module")
def extractive() -> None:
    litellm()  # the tokenizer and the local provider, once
    local.wordllama()


def _documents(*snippets: str) -> str:
    numbered = "\n\n".join(f"[{i}] {s}" for i, s in enumerate(snippets, 1))
    return f"Answer from the documents below only.\n\n<documents>\n{numbered}\n</documents>"


def test_the_question_is_the_user_turn_never_a_question_inside_a_document(extractive: None) -> None:
    trap = "Do you ship abroad? We do not. What is the capital of Peru? Lima."
    messages = [{"role": "system", "content": _documents(trap, REFUNDS)},
                {"role": "user", "content": "What is the refund policy?"}]
    question, sources = local.split_question(messages)
    assert question == "What is the refund policy?"
    assert sources == [trap, REFUNDS]
    answer = local.extract(messages)
    assert "30 days" in answer and "Peru" not in answer and "Lima" not in answer


def test_no_instruction_or_label_reaches_an_answer(extractive: None) -> None:
    messages = [{"role": "system", "content": "Context:\n" + _documents(REFUNDS)},
                {"role": "user", "content": "How fast are refunds paid?"}]
    answer = local.extract(messages)
    assert "Context" not in answer and "Answer from the documents" not in answer and "[1]" not in answer
    assert "5 business days" in answer
    lone = local.extract([{"role": "user", "content": f"Context:\n{REFUNDS}\n\nQuestion: How fast are refunds paid?"}])
    assert not lone.startswith("Context") and "5 business days" in lone


def test_the_answer_comes_from_the_best_supported_source_alone(extractive: None) -> None:
    messages = [{"role": "system", "content": _documents(SHIPPING, REFUNDS)},
                {"role": "user", "content": "How many days do I have to return an item for a refund?"}]
    answer = local.extract(messages)
    assert all(s in REFUNDS for s in grounding_sentences(answer)), answer
    assert "delivery takes" not in answer


def grounding_sentences(text: str) -> list[str]:
    from aisdk.components.rag import sentences

    return sentences.split(text)


def test_truncation_keeps_whole_words_within_the_limit(extractive: None) -> None:
    text = " ".join(f"word{i} is here." for i in range(1500))
    cut, was_cut = local.truncate_words(text, 100, local.CHAT_MODEL)
    assert was_cut and local.count_text(local.CHAT_MODEL, cut) <= 100
    assert text.startswith(cut) and text[len(cut)] == " "
    assert local.truncate_words("short answer", 100, local.CHAT_MODEL) == ("short answer", False)


def _stats(frequency: dict[str, int], holders: dict[str, set[str]], chunks: int = 1000) -> TermStatistics:
    return TermStatistics(chunks, frequency, {t: frozenset(h) for t, h in holders.items()})


def _chunk(chunk_id: str, similarity: float = 0.5, exact: bool = False) -> Candidate:
    return Candidate("doc", chunk_id, "", "text", "", similarity, 0.0, exact)


def _found(chosen: list[Candidate], agree: bool = True) -> evidence.Retrieved:
    """Both rankings led by the chosen chunks (agree), or the text side
    finding other documents."""
    scored = [replace(c, score=2 / (61 + i)) for i, c in enumerate(chosen)]
    other = [Candidate(f"other{i}", f"o{i}", "", "text", "", 0.1) for i in range(5)]
    return evidence.Retrieved(scored, scored if agree else other, scored, scored)


def test_evidence_features_weigh_what_the_chunks_hold() -> None:
    # "capital" is common and held, "peru" is held by no chunk at all.
    stats = _stats({"capit": 30, "peru": 0}, {"capit": {"c1"}, "peru": set()})
    f = evidence.features(stats, _found([_chunk("c1", 0.4), _chunk("c2", 0.3)]))
    assert f["coverage"] == 0.5 and f["unknown_terms"] == 0.5 and f["missing_rarity"] == 1.0
    assert 0 < f["weighted_coverage"] < 0.5 and f["similarity"] == 0.4 and f["exact"] == 0.0

    held = evidence.features(_stats({"refund": 3, "polici": 20}, {"refund": {"c1"}, "polici": {"c1"}}),
                             _found([_chunk("c1", 0.8, exact=True)]))
    assert held["coverage"] == held["weighted_coverage"] == 1.0 and held["missing_rarity"] == 0.0
    assert held["exact"] == 1.0 and held["fused_top"] == 1.0 and held["agreement"] == 0.2


def test_names_are_identifiers_and_capitalised_phrases_not_sentence_starts_or_numbers() -> None:
    assert evidence.names("How do I configure an Always On availability group in SQL Server?") == [
        "Always On", "SQL Server"]
    assert evidence.names("My server refuses writes. Which setting is it? Can I fix it in 30 seconds?") == []
    assert evidence.names("How do I write a trigger in PL/Perl with $_TD and pg_hba.conf, e.g. with --jobs?") == [
        "PL/Perl", "$_TD", "pg_hba.conf", "--jobs"]
    assert evidence.names("How do I query a parent/child hierarchy?") == []


def test_a_name_only_mentioned_in_passing_is_unfocused_and_a_headed_one_is_not() -> None:
    stats = _stats({"ldap": 2}, {"ldap": {"c1"}})
    passing = Candidate("doc", "c1", "Client Applications", "Methods: password, LDAP, radius.", "", 0.5, 0.03)
    headed = Candidate("doc", "c1", "LDAP Authentication", "Configure LDAP with a server name.", "", 0.5, 0.03)
    asked = "How do I configure LDAP authentication?"
    mentioned = evidence.features(stats, evidence.Retrieved([passing], [passing], [passing], [passing]), asked)
    explained = evidence.features(stats, evidence.Retrieved([headed], [headed], [headed], [headed]), asked)
    assert mentioned["has_names"] == explained["has_names"] == 1.0
    assert mentioned["names_missing"] == explained["names_missing"] == 0.0
    assert mentioned["names_unfocused"] == 1.0 and explained["names_unfocused"] == 0.0


def test_the_rarest_terms_held_apart_are_not_a_rare_pair() -> None:
    frequency = {"logic": 40, "replic": 30, "subscript": 3}
    apart = _stats(frequency, {"logic": {"c1"}, "replic": {"c1"}, "subscript": {"c2"}})
    together = _stats(frequency, {"logic": set(), "replic": {"c1"}, "subscript": {"c1"}})
    chosen = _found([_chunk("c1"), _chunk("c2")])
    assert evidence.features(apart, chosen)["rare_pair"] == 0.0
    assert evidence.features(together, chosen)["rare_pair"] == 1.0
    # One term the documents use: it alone is the pair.
    assert evidence.features(_stats({"refund": 3, "peru": 0}, {"refund": {"c1"}}), chosen)["rare_pair"] == 1.0


def test_a_word_missing_from_a_few_chunks_counts_less_than_from_thousands() -> None:
    frequency, holders = {"tablet": 0, "screen": 1, "stop": 1}, {"screen": {"c1"}, "stop": {"c2"}}
    chosen = _found([_chunk("c1"), _chunk("c2")])
    small = evidence.features(_stats(frequency, holders, chunks=4), chosen)
    large = evidence.features(_stats(frequency, holders, chunks=4000), chosen)
    assert large["unknown_terms"] == pytest.approx(1 / 3) and large["missing_rarity"] == 1.0
    assert 0 < small["unknown_terms"] < large["unknown_terms"] and 0 < small["missing_rarity"] < 1.0
    # The rarest pair is apart: that counts in full at 4,000 chunks, little at 4.
    assert large["rare_pair"] == 0.0 and small["rare_pair"] > 0.5
    assert evidence.absence_weight(0) == 0.0 and evidence.absence_weight(evidence.EVIDENCE_CHUNKS) == 1.0


def test_the_shipped_calibration_answers_held_evidence_and_refuses_missing_evidence() -> None:
    model = evidence.calibration()
    held = evidence.decide(_stats({"refund": 3, "polici": 20}, {"refund": {"c1"}, "polici": {"c1"}}),
                           _found([_chunk("c1", 0.8, exact=True)]), model)
    missing = evidence.decide(_stats({"capit": 30, "peru": 0}, {"capit": set(), "peru": set()}),
                              _found([_chunk("c1", 0.2)], agree=False), model)
    assert held.answers and not missing.answers
    assert not evidence.decide(_stats({}, {}), _found([]), model).answers
    assert evidence.decide(_stats({"peru": 0}, {"peru": set()}), _found([_chunk("c1")]), model, threshold=0.0).answers


def test_a_calibration_file_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown features nonsense"):
        evidence.Calibration.from_json({"weights": {"nonsense": 1.0}, "bias": 0, "threshold": 0.5})
    with pytest.raises(ValueError, match="not a calibration"):
        evidence.Calibration.from_json({"weights": {}})
