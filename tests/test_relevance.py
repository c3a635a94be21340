"""Relevance signals for answers given with context (hguard.signals.relevance)."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from hguard.errors import InputError
from hguard.signals.relevance import RELEVANCE_FEATURES, add_relevance, relevance_scores, repeats_question


class BagEmbedder:
    """A deterministic bag-of-words embedder: texts sharing words have a positive cosine."""

    def encode(self, texts):
        out = np.zeros((len(texts), 64))
        for i, t in enumerate(texts):
            for w in t.lower().replace("?", " ").replace(".", " ").split():
                out[i, zlib.crc32(w.encode()) % 64] += 1.0  # hash() is salted per process
        return out


KENYA = "Kenya is a country in East Africa. Nairobi is the capital of Kenya and its largest city."
AUSTRALIA = "Australia is a country in Oceania. Canberra is the capital of Australia. Sydney is its largest city."
Q = "What is the capital of Australia?"


def test_a_grounded_answer_from_an_offtopic_passage_is_marked_off_question():
    e = BagEmbedder()
    off = relevance_scores(Q, "Nairobi is the capital of Kenya.", KENYA, 0.77, embedder=e)
    on = relevance_scores(Q, "Canberra is the capital of Australia.", AUSTRALIA, 0.77, embedder=e)
    assert set(off) == set(RELEVANCE_FEATURES) == set(on)
    assert off["answer_off_question"] == 1.0 and on["answer_off_question"] == 0.0
    assert off["context_relevance"] < 0.5 < on["context_relevance"] == 1.0
    assert off["context_relevance_embedding"] < on["context_relevance_embedding"]
    assert off["answer_relevance"] < on["answer_relevance"]
    # the interaction discounts grounding on a passage that does not address the question
    assert off["grounding_x_relevance"] < on["grounding_x_relevance"] == pytest.approx(0.77)


def test_a_declining_answer_is_never_marked_off_question():
    s = relevance_scores(Q, "The context does not say.", KENYA, 0.2, embedder=BagEmbedder())
    assert s["answer_off_question"] == 0.0
    assert relevance_scores(Q, "Nairobi.", KENYA, 0.2, embedder=BagEmbedder())["answer_off_question"] == 1.0


def test_the_grounding_scorers_embedded_context_is_reused_not_encoded_again():
    from hguard.signals.grounding import GroundingScorer

    class Counting(BagEmbedder):
        texts: list = []

        def encode(self, texts):
            Counting.texts += list(texts)
            return super().encode(texts)

    scorer = GroundingScorer(embedder=Counting())
    g = scorer.score(Q, "Canberra is the capital.", AUSTRALIA)["grounding"]
    before = len(Counting.texts)
    shared = relevance_scores(Q, "Canberra is the capital.", AUSTRALIA, g, grounding_scorer=scorer)
    assert Counting.texts[before:] == [Q, "Canberra is the capital."]  # the passage's sentences are cached
    alone = relevance_scores(Q, "Canberra is the capital.", AUSTRALIA, g, embedder=BagEmbedder())
    assert shared == pytest.approx(alone)


def test_missing_grounding_makes_the_interactions_nan_so_the_merger_fails_closed():
    from hguard.policy import merge_risk

    s = relevance_scores(Q, "Canberra.", AUSTRALIA, None, embedder=BagEmbedder())
    assert math.isnan(s["grounding_x_relevance"]) and math.isnan(s["grounding_if_open"])
    merger = {"features": ["grounding_x_relevance"], "mean": [0.0], "scale": [1.0], "coef": [1.0], "intercept": 0.0}
    with pytest.raises(InputError):
        merge_risk(s, merger)


def test_relevance_needs_text_and_a_context():
    with pytest.raises(InputError, match="question must be a str"):
        relevance_scores(None, "a", "b", 0.5, embedder=BagEmbedder())
    with pytest.raises(InputError, match="need the context"):
        add_relevance({"grounding": 0.5}, Q, "Canberra.", None)


def test_yes_no_questions_and_answers_are_marked_and_kept_out_of_the_open_grounding():
    e = BagEmbedder()
    s = relevance_scores("Does the policy share my data?", "Yes.", "We share data with partners.", 0.1, embedder=e)
    assert s["yes_no"] == 1.0 and s["grounding_if_open"] == 0.0
    s = relevance_scores("Who shares the data?", "True, partners do.", "We share data with partners.", 0.6, embedder=e)
    assert s["yes_no"] == 1.0
    s = relevance_scores(Q, "Canberra.", AUSTRALIA, 0.9, embedder=e)
    assert s["yes_no"] == 0.0 and s["grounding_if_open"] == pytest.approx(0.9)


# a yes/no question of another language and its answer, as a multilingual user's trial asked them (the passage: the
# fee schedule in the question's language)
_YES_NO_ANSWERS = [
    ("Ist die Gebühr erstattungsfähig?", "Ja, die Gebühr ist erstattungsfähig."),
    ("Ist die Gebühr erstattungsfähig?", "Nein."),
    ("Les frais sont-ils remboursables ?", "Oui, les frais sont remboursables."),
    ("Les frais sont-ils remboursables ?", "Non, ils ne le sont pas."),
    ("¿Es reembolsable la tarifa?", "Sí, la tarifa es reembolsable."),
    ("¿Es reembolsable la tarifa?", "¡No!"),
    ("La tassa è rimborsabile?", "Sì, è rimborsabile."),
    ("A taxa é reembolsável?", "Não, a taxa não é reembolsável."),
    ("Is de vergoeding terugbetaalbaar?", "Nee, dat is ze niet."),
    ("Czy opłata jest zwrotna?", "Tak, opłata jest zwrotna."),
    ("Возвращается ли плата?", "Да, плата возвращается."),
    ("Возвращается ли плата?", "Нет."),
    ("Ücret iade edilir mi?", "Evet, iade edilir."),
    ("Är avgiften återbetalningsbar?", "Nej."),
    ("手数料は返金されますか？", "はい、返金されます。"),
    ("手数料は返金されますか？", "いいえ、返金されません。"),
    ("费用可以退还吗？", "是的，可以退还。"),
    ("费用可以退还吗？", "不是。"),
    ("수수료는 환불됩니까?", "예, 환불됩니다."),
    ("수수료는 환불됩니까?", "아니요, 환불되지 않습니다."),
    ("هل الرسوم قابلة للاسترداد؟", "نعم، الرسوم قابلة للاسترداد."),
]


@pytest.mark.parametrize("question, answer", _YES_NO_ANSWERS)
def test_a_yes_no_answer_in_another_language_is_marked_yes_no(question, answer):
    """A multilingual user's trial: "Ja, ...", "Oui, ...", "Да", "はい" were read as no yes/no answer (the question opens
    with no English auxiliary, the answer with no English yes or no), so the knowledge-conflict check, which cannot
    assess a yes/no answer, cleared them and they could be accepted."""
    s = relevance_scores(question, answer, "Die Gebühr ist erstattungsfähig.", 0.4, embedder=BagEmbedder())
    assert s["yes_no"] == 1.0 and s["grounding_if_open"] == 0.0


@pytest.mark.parametrize("question, answer", [
    ("Ist die Gebühr erstattungsfähig?", "Die Gebühr ist erstattungsfähig."),
    ("Les frais sont-ils remboursables ?", "Les frais sont remboursables."),
    ("Плата возвращается?", "Плата возвращается."),
    ("手数料は返金されますか？", "返金されます。"),
    ("Var avgiften återbetalningsbar?", "Avgiften var återbetalningsbar."),  # Swedish "var": "where", and "was" here
    ("Geldt de regel ook voor mij?", "De regel geldt voor iedereen."),
    # read as English before (the English list holds "la" and "es"), so as no yes/no question: cleared
    ("¿Es reembolsable la tarifa?", "La tarifa es reembolsable."),
    ("La tarifa es reembolsable?", "La tarifa es reembolsable."),
    ("Er gebyret refunderbart?", "Gebyret er refunderbart."),
    # "como" / "come" is "as" before a comma: no question word ("¿" marks where the Spanish question starts)
    ("Como cliente, ¿puedo cancelar el contrato?", "Puede cancelar el contrato."),
    ("Come cliente, posso annullare il contratto?", "Può annullare il contratto."),
    # a review: as many of another language's function words as of English's is no English ("a" and "e")
    ("A taxa é reembolsável?", "A taxa não é reembolsável."),
    ("De rekening is gratis?", "De rekening is niet gratis."),
])
def test_a_question_in_another_language_without_a_question_word_leaves_yes_no_unread(question, answer):
    """Whether such a question asks for yes or no is not read (the auxiliary rule is English's): unread, so the
    merger cannot score the answer and the knowledge-conflict check cannot clear it, never "not yes/no"."""
    s = relevance_scores(question, answer, "Die Gebühr ist erstattungsfähig.", 0.4, embedder=BagEmbedder())
    assert s["yes_no"] is None and math.isnan(s["grounding_if_open"])


@pytest.mark.parametrize("question", [
    "Est-ce que les frais sont remboursables ?", "Czy opłata jest zwrotna?", "Чи повертається плата?",
    "Возвращается ли плата?", "费用可以退还吗？", "Ne zaman açık mı?",
])
def test_a_word_that_makes_a_question_ask_yes_or_no_reads_as_yes_no(question):
    """Polish "czy", Ukrainian "чи", Russian "ли", French "est-ce que", Chinese "吗", Turkish "mi" make a question ask
    yes or no: read as such (it was left unread, so held even where the domain trusts its passages)."""
    from hguard._text import yes_no_question

    assert yes_no_question(question) is True
    assert yes_no_question("Qu'est-ce que la franchise ?") is False and yes_no_question("Ile kosztuje karta?") is False


@pytest.mark.parametrize("question, answer", [
    ("Wie hoch ist die Gebühr?", "Die Gebühr beträgt 25 Euro."),
    ("In welchem Jahr wurde der Vertrag geschlossen?", "Im Jahr 2019."),
    ("Quel est le montant des frais ?", "Les frais sont de 25 euros."),
    ("À quelle heure ouvre le guichet ?", "À neuf heures."),
    ("¿Cuánto cuesta la tarjeta?", "La tarjeta cuesta 25 euros."),
    ("Quanto costa la carta?", "La carta costa 25 euro."),
    ("Quanto custa o cartão?", "O cartão custa 25 euros."),
    ("Wat kost de kaart?", "De kaart kost 25 euro."),
    ("Ile kosztuje karta?", "Karta kosztuje 25 euro."),
    ("Сколько стоит карта?", "Карта стоит 25 евро."),
    ("Kartın ücreti ne kadar?", "Kartın ücreti 25 avro."),
    ("Vad kostar kortet?", "Kortet kostar 25 euro."),
    ("カードはいくらですか？", "カードは25ユーロです。"),
    ("卡的费用是多少？", "卡的费用是25欧元。"),
    ("카드는 얼마입니까?", "카드는 25유로입니다."),
    ("كم تكلفة البطاقة؟", "تكلفة البطاقة 25 يورو."),
])
def test_a_question_in_another_language_that_asks_for_content_is_read_as_not_yes_no(question, answer):
    s = relevance_scores(question, answer, "Die Karte kostet 25 Euro.", 0.4, embedder=BagEmbedder())
    assert s["yes_no"] == 0.0 and s["grounding_if_open"] == pytest.approx(0.4)


@pytest.mark.parametrize("question, answer, yes_no", [
    # English as before: an auxiliary opens a yes/no question, a question without one is read as open
    ("Does the policy share my data?", "The policy shares it.", 1.0),
    ("Capital of Australia?", "Canberra.", 0.0),
    ("Name the capital of Australia.", "Canberra.", 0.0),
    ("Who painted the Mona Lisa?", "Da Vinci painted it.", 0.0),  # "da" says yes in Romanian: not read in English
    ("Who founded the company?", "Non-executive directors did.", 0.0),  # "non" of a hyphenated word is no "non"
    ("Who wrote it?", "Ya Tseng wrote it.", 0.0),
    # misread as Vietnamese and Polish by their function words ("the", "cap"; "do", "4"): English's rule still reads them
    ("is the nba salary cap a hard cap", "x", 1.0), ("how much is the nba salary cap", "x", 0.0),
    ("do playstation 2 games play on playstation 4", "x", 1.0),
    ("Was kostet die Karte?", "Die Karte kostet 25 Euro.", 1.0),  # German "was" reads as English's auxiliary, as before
])
def test_english_questions_and_answers_are_read_for_yes_no_as_before(question, answer, yes_no):
    assert relevance_scores(question, answer, AUSTRALIA, 0.4, embedder=BagEmbedder())["yes_no"] == yes_no


def test_the_knowledge_conflict_check_holds_an_answer_whose_yes_no_reading_is_unread():
    """The check cannot assess a yes/no answer; a question whose yes/no reading is unread is held as one (under
    knowledge_conflict = 'review'), never cleared as an open question."""
    from hguard._guard_scoring import YES_NO_UNASSESSED, knowledge_conflict_check
    from hguard.signals.conflict import CONFLICT_FEATURES

    n = len(CONFLICT_FEATURES)
    detector = {"detector": {"features": list(CONFLICT_FEATURES), "mean": [0.0] * n, "scale": [1.0] * n,
                             "coef": [0.0] * n, "intercept": 0.0}, "threshold": 0.9}  # scores 0.5: never flags
    for question, answer, held in (("Ist die Gebühr erstattungsfähig?", "Die Gebühr ist erstattungsfähig.", True),
                                   ("Wie hoch ist die Gebühr?", "Die Gebühr beträgt 25 Euro.", False)):
        signals = {**dict.fromkeys(CONFLICT_FEATURES, 0.0),
                   **relevance_scores(question, answer, "Die Gebühr beträgt 25 Euro.", 0.4, embedder=BagEmbedder())}
        hold, _ = knowledge_conflict_check(signals, detector, "review", "policy")
        assert (hold is not None) is held and (hold is None or YES_NO_UNASSESSED in hold), (question, hold)


def test_denying_a_premise_is_a_claim_not_an_abstention():
    from hguard.calibrate.judge import abstains, declines, is_refusal

    denial = "The answer is no, there is no such thing as a floating island."
    assert is_refusal(denial) and not abstains(denial) and declines(denial) is None
    assert abstains("The context does not say.") and abstains("  ")


@pytest.mark.parametrize("question, answer, held", [
    # the slot filled with the question's own words (answers the model gave in the RAG benchmark)
    ("Mackenzie Davis appeared in the 2013 Canadian romantic comedy film directed by whom?",
     "Mackenzie Davis appeared in the 2013 Canadian romantic comedy film directed by Mackenzie Davis.", True),
    ("Who was the director of the 2001 film written by Marc Klein in which Lucy Gordon starred?",
     "The director of the 2001 film written by Marc Klein was Lucy Gordon.", True),
    ("How many moons does Mars have?", "Mars has moons.", True),
    ("What is the capital of Luxembourg?", "Luxembourg.", True),  # right, and still held: the words cannot tell
    # a word the question lacks answers it
    ("What is the capital of France?", "Paris is the capital of France.", False),
    ("How many moons does Mars have?", "Mars has two moons.", False),
    ("What does the policy say about retention?", "It says nothing about it.", False),
    ("Which symbol stands for oxygen in the periodic table?", "The symbol for oxygen is O.", False),
    ("What is the chemical symbol of the element sulfur?", "Sulfur is a chemical element with the chemical symbol S.", False),
    ("Which chemical element has the symbol Cd?", "Cd is a chemical element with the symbol Cd.", True),
    # picking one of the question's alternatives, or repeating a yes/no question, answers it
    ("What is the capital of France, Paris or Lyon?", "Paris.", False),
    ("Is the information encrypted?", "The information is encrypted.", False),
    ("Who wrote it?", "It.", False),  # no content word at all: not this rule's to read
    # a yes/no question in another language answered with its yes or no and the question's words (a multilingual
    # user's trial: held, though "Yes, the fee is refundable." to "Is the fee refundable?" is not)
    ("Возвращается ли плата?", "Да, плата возвращается.", False),
    ("手数料は返金されますか？", "はい、返金されます。", False),
    ("Ist die Gebühr erstattungsfähig?", "Ja, die Gebühr ist erstattungsfähig.", False),
    # ... but with no yes or no, whether it was asked for is not read: held, as an open question's echo is
    ("Ist die Gebühr erstattungsfähig?", "Die Gebühr ist erstattungsfähig.", True),
    ("Wie hoch ist die Gebühr?", "Die Gebühr ist hoch.", True),
    ("Сколько стоит карта?", "Да, карта стоит.", True),  # asks for content: a yes adds nothing
])
def test_an_answer_that_adds_no_word_to_an_open_question_repeats_it(question, answer, held):
    assert repeats_question(question, answer) is held


@pytest.mark.parametrize("question, passage, shares", [
    # English: as before
    ("What is the amount of the contractual penalty?", "The canteen is open from Monday to Friday.", False),
    ("What is the amount of the contractual penalty?", "The contractual penalty is 500 euros.", True),
    # French and German function words ("le", "est", "die", "ist", "für") matched any passage in the same language
    ("Quel est le montant de la pénalité contractuelle?",
     "La cantine est ouverte du lundi au vendredi de 11 à 14 heures et un menu coûte 5 euros.", False),
    ("Quel est le montant de la pénalité contractuelle?", "La pénalité contractuelle est de 500 euros par jour.", True),
    ("Wie lang ist die Kündigungsfrist für den Vertrag?", "Die Kantine ist von Montag bis Freitag geöffnet.", False),
    ("Wie lang ist die Kündigungsfrist für den Vertrag?", "Die Kündigungsfrist für den Vertrag beträgt drei Monate.", True),
    # another script: a Cyrillic question had no word the check could read, and so passed
    ("Какова столица Франции?", "Кантина открыта с понедельника.", False),
    ("Какова столица Франции?", "Столица Франции — Париж.", True),
    # a question in one language, a passage in another: none shared, held as the README says
    ("Quel est le montant de la pénalité?", "The penalty is 500 euros.", False),
    # an English question with a word that is German's article keeps it as a content word
    ("Who wrote Die Hard?", "Die Hard was written by Roderick Thorp.", True),
    # ... but a foreign function word it holds does not match a passage in that language ("de" in "contrat de vente")
    ("What is the penalty under the contrat de vente?", "La cantine est ouverte du lundi au vendredi de 11 à 14 heures.",
     False),
    ("What is the penalty under the Vertrag für Müller?", "Die Kantine ist für alle von Montag bis Freitag geöffnet.", False),
    # a compound of the question that its passage writes as a phrase (a multilingual trial: held as off the question)
    ("Wie lang ist die Kündigungsfrist?", "Die Frist für eine Kündigung beträgt drei Monate.", True),
    ("Wie hoch ist die Bearbeitungsgebühr?", "Für die Bearbeitung wird eine Gebühr von 20 Euro erhoben.", True),
    ("Hoe lang is de opzegtermijn?", "De termijn voor opzegging is een maand.", True),
    ("Wie lang ist die Kündigungsfrist?", "Die Garantie gilt zwei Jahre ab dem Kaufdatum.", False),
    ("Wie hoch ist der Beitrag zum Beirat?", "Der Rat tagt monatlich.", False),  # "Rat": too short a part
    ("Wie lang ist die Frist für die Kündigung?", "Die Kündigungsfrist beträgt drei Monate.", True),  # the reverse
    # a review: one part is not enough, nor a passage in another language ("Jahre" of "Jahresgebühr")
    ("Wie hoch ist die Jahresgebühr?", "Die Garantie gilt zwei Jahre ab dem Kaufdatum.", False),
    ("Wo ist der Standort der Filiale?", "Stand: Januar 2024. Die Garantie gilt ab Kaufdatum.", False),
    ("Brauche ich einen Personalausweis?", "Each person may open one savings account online.", False),
    ("Wie hoch ist die Servicegebühr?", "Das Service-Team ist montags erreichbar.", False),
    ("Hoe lang is de opzegtermijn?", "De termijn voor betaling is dertig dagen.", False),
])
def test_the_off_topic_check_reads_content_words_in_the_questions_own_language(question, passage, shares):
    from hguard.signals.relevance import shares_content_word

    assert shares_content_word(question, passage) is shares


def test_a_soft_hyphen_or_zero_width_space_inside_a_passage_word_is_no_break():
    """A PDF's soft hyphen ("Gdań\u00adsk") split the word in two, so a passage naming the question's city held
    "none of the question's content words" and a right answer went to review (a multilingual agency's trial)."""
    from hguard.signals.relevance import off_question, shares_content_word

    for hidden in ("\u00ad", "\u200b"):
        passage = f"The company has its registered office in Gdań{hidden}sk, Poland."
        assert shares_content_word("Where is the registered office in Gdańsk?", passage)
        assert off_question("Where is the office in Gdańsk?", f"Our seat is in Gdań{hidden}sk.", 0.0) is None


def test_the_off_topic_hold_of_an_english_question_is_not_gated_by_a_foreign_passages_function_words():
    """context_relevance counts "de" of "contrat de vente" as a word the French passage shares: the hold never fired
    and an answer from a canteen menu was accepted for a contract penalty."""
    from hguard.signals.relevance import off_question

    canteen = "La cantine est ouverte du lundi au vendredi de 11 à 14 heures. Un menu coûte 5 euros."
    why = off_question("What is the penalty under the contrat de vente?", canteen, 0.25)
    assert why and "the passage read without the function words of French" in why
    assert off_question("What is the penalty under the contract?", "The penalty is 5 euros.", 0.5) is None
    assert off_question("What is the penalty?", "The canteen opens at noon.", 0.0).startswith(
        "the passage holds none of the question's content words (context_relevance 0)")
    assert off_question("Quel est le montant de la pénalité ?", canteen, 0.4).startswith(
        "the passage holds none of the question's content words (read without the function words of French)")
    assert off_question("What is the penalty?", None, 0.0) is None


def test_a_passage_in_another_language_than_its_question_is_held_though_it_shares_cognates():
    """A red team's French "La capitale de l'Australie est Sydney ..." to "What is the capital of Australia?" was
    accepted (risk 0.614, context_relevance 0): "Australie" matched "Australia" by the fuzzy spelling rule, and
    context_relevance gates English passages only. English passages naming foreign things are not held, nor a passage
    in the question's own language."""
    from hguard.signals.relevance import off_question

    qa = "What is the capital of Australia?"
    for passage, named in (("La capitale de l'Australie est Sydney, la plus grande ville du pays.", "French"),
                           ("Die Hauptstadt von Australia ist Sydney, die größte Stadt des Landes.", "German"),
                           ):
        why = off_question(qa, passage, 0.0)
        assert why and why.startswith(f"the passage is in {named} and the question in English"), (passage, why)
    assert off_question(qa, "Столица Австралии — Сидней.", 0.0)  # no word shared: held as off the question
    for question, passage in (("Who directed Die Hard?", "Die Hard is a 1988 film directed by John McTiernan."),
                              ("Who is Pedro de la Cruz?", "Pedro de la Cruz y los Santos was a painter."),
                              ("Where is Der Spiegel published?", "Der Spiegel is published in Hamburg."),
                              ("What does the Académie française do?", "The Académie française (French: l'Académie "
                               "française) is the council for the French language; Le Monde called it la vieille dame."),
                              ("Quelle est la capitale de l'Australie ?", "La capitale de l'Australie est Canberra, une "
                               "ville du pays."),
                              (qa, "Canberra is the capital of Australia.")):
        assert off_question(question, passage, 0.5) is None, (question, off_question(question, passage, 0.5))


def test_a_list_of_passages_is_read_passage_by_passage_for_the_language_hold():
    """A LangChain trial: a German question with a German and a Spanish passage was held as "the passage is in Spanish"
    (the list read joined), though the German passage answers it; and one French passage among English ones was read
    as English, never held. Each passage is read on its own now; a string is read whole, as before."""
    from hguard.signals.relevance import off_question

    q = "Wie lange ist die Kündigungsfrist bei Siemens?"
    de = "Die Kündigungsfrist bei Siemens beträgt drei Monate zum Ende des Quartals."
    es = "El plazo de preaviso en Siemens es de tres meses y se aplica a todos los contratos de la empresa."
    fr = "Le délai de préavis chez Siemens est de trois mois et il est valable pour tous les contrats."
    assert off_question(q, [de, es], 0.0) is None  # the guard compares the grounding with and without passage 1

    from hguard.signals.relevance import passage_languages

    read = passage_languages(q, [de, "", es])
    assert (read.apart, read.same, read.unread, read.scored) == ({2: "Spanish"}, (0,), (), True)
    assert off_question(q, de + "\n\n" + es, 0.0).startswith("the passage is in Spanish and the question in German")
    assert off_question(q, [es], 0.0).startswith("the passage is in Spanish and the question in German")
    assert off_question(q, [es, "  ", fr, es], 0.0).startswith(
        "passages 0 and 3 of the 4 retrieved (counting from 0) are in Spanish, passage 2 in French; the question is in "
        "German (each passage read by its function words and script): an answer from a passage in another language")
    canteen = "Die Kantine ist von Montag bis Freitag geöffnet."  # in German, but not about the question
    assert off_question(q, [canteen, es], 0.0).startswith(
        "passage 1 of the 2 retrieved (counting from 0) is in Spanish; the question is in German (each passage read by "
        "its function words and script), and the passage in its language holds none of the question's content words")
    qa, french = "What is the capital of Australia?", "La capitale de l'Australie est Sydney, la plus grande ville du pays."
    assert off_question(qa, ["Canberra is the capital of Australia.", french], 0.5) is None
    assert passage_languages(qa, ["Canberra is the capital of Australia.", french]).apart == {1: "French"}
    assert off_question(qa, ["The canteen opens at noon.", french], 0.5).startswith("passage 1 of the 2 retrieved")
    # no passage in another language on its own: read together, as a string is
    assert off_question(qa, ["Canberra is the capital of Australia.", "Die Hard is a film."], 0.5) is None


def test_other_language_passages_hold_an_answer_whose_grounding_they_raise_and_never_fail_open():
    """Beside a passage in the question's language, one in another language is not held for unless it raises a
    grounding signal of the answer (it may rest on it: a shared name, a number); a signal that is not a number on
    either side, or a failed scoring, holds it. Held or not, the note says which passages the answer was scored
    against."""
    from hguard.signals.relevance import PassageLanguages, other_language_support

    q, read = "Wie lange ist die Kündigungsfrist?", PassageLanguages(3, {1: "Spanish"}, (0, 2), (), None)
    named = "passage 1 of the 3 retrieved (counting from 0) is in Spanish; the question is in German"
    scored = ("the answer was scored against passages 0 and 2 alone (read as in the question's language): every "
              "signal read from the context (grounding, relevance) and the merged risk leave out passage 1 as if it "
              "were not retrieved")
    same = {"grounding": 0.8, "grounding_lexical": 0.75}
    signals = {**same, "context_relevance": 0.5, "neuron_logit": 1.0}  # the guard's: the others are not compared
    hold, note = other_language_support(q, read, dict(same), signals)
    assert hold is None and note.startswith(named) and scored in note and note.endswith(
        "read with it too, none of the answer's grounding signals is higher"), note
    hold, note = other_language_support(q, read, {"grounding": 0.9, "grounding_lexical": 1.0}, signals)
    assert note.startswith(named) and scored in note and hold.startswith(named) and "(grounding 0.900 against 0.800, " \
        "grounding_lexical 1.000 against 0.750)" in hold and hold.endswith("held for review")
    lower = {"grounding": 0.7, "grounding_lexical": 0.75}  # a passage that lowers a signal raises none
    assert other_language_support(q, read, lower, signals)[0] is None
    for with_all, without in (({"grounding": None, "grounding_lexical": 0.75}, same), (same, {**same, "grounding": "0.8"}),
                              ({}, same), (same, {"grounding": float("nan")}), (same, {"grounding": 0.8})):
        hold, note = other_language_support(q, read, with_all, without)
        assert hold.startswith(named) and "could not be compared" in hold and scored in note, (with_all, without)
    two = PassageLanguages(3, {0: "Spanish", 2: "French"}, (1,), (), "Spanish")
    hold, note = other_language_support(q, two, RuntimeError("embedder gone"), same)
    assert hold.startswith("passage 0 of the 3 retrieved (counting from 0) is in Spanish, passage 2 in French") and \
        "could not be scored (RuntimeError: embedder gone)" in hold and "leave out passages 0 and 2 as if they" in note


def test_a_short_passage_in_another_language_is_never_read_as_the_questions_beside_a_clearly_foreign_one():
    """A review (F1): once one passage of a list was read as in another language, the others were only checked for
    sharing a word with the question, never for their language; "La capitale de l'Australie est Sydney." holds one
    French word English's list lacks, so it was not read as French alone, and beside a clearly French passage it was
    scored as the question's: "The capital of Australia is Sydney." from it was accepted, where the list read as one
    text (and before, as a string) held it. A passage is the question's only where it reads so; those that read as
    no language alone are read together, and the list read whole still holds them."""
    from hguard.signals.relevance import off_question, passage_languages

    q = "What is the capital of Australia?"
    weak = "La capitale de l'Australie est Sydney."  # "est" alone: not read as French on its own
    weak2 = "Le port de Sydney."  # "le" alone
    french = "Le musée est ouvert du mardi au dimanche, et il est fermé le lundi."
    spanish = "El horario de la biblioteca es de lunes a viernes, y los sábados por la mañana hasta las dos."
    english = "Canberra is the capital of Australia."
    assert off_question(q, weak, 0.5) is None and off_question(q, [weak, english], 0.5) is None  # as before: no list
    assert off_question(q, weak + "\n\n" + french, 0.5).startswith("the passage is in French")  # of them is foreign alone

    read = passage_languages(q, [weak, french])
    assert (read.apart, read.same, read.unread, read.joined, read.scored) == ({1: "French"}, (), (0,), "French", False)
    why = off_question(q, [weak, french], 0.5)
    assert why == ("passage 1 of the 2 retrieved (counting from 0) is in French, passage 0 not read as in the question's "
                   "language; the question is in English (each passage read by its function words and script): an answer "
                   "from a passage in another language than its question may rest on a word the two happen to share "
                   "(\"Australie\" for \"Australia\"), so it is held for review"), why
    # read together, the two short French passages are French (two of its words English's list lacks)
    read = passage_languages(q, [spanish, weak, weak2])
    assert (read.apart, read.same, read.unread) == ({0: "Spanish", 1: "French", 2: "French"}, (), ())
    assert off_question(q, [spanish, weak, weak2], 0.5).startswith(
        "passage 0 of the 3 retrieved (counting from 0) is in Spanish, passages 1 and 2 in French; the question is in "
        "English")
    # beside one in the question's language: the list read as one text is French, and the short passage may be
    read = passage_languages(q, [english, french, weak])
    assert (read.apart, read.same, read.unread, read.joined) == ({1: "French"}, (0,), (2,), "French")
    assert off_question(q, [english, french, weak], 0.5).startswith(
        "passage 1 of the 3 retrieved (counting from 0) is in French, passage 2 not read as in the question's language; "
        "the question is in English (each passage read by its function words and script); read as one text, the "
        "passages are in French, as a string of them is held")
    # one in the question's language and the others in another: scored against it alone (the guard compares)
    assert off_question(q, [english, french], 0.5) is None and passage_languages(q, [english, french]).scored
    # a passage of no function words is not the question's either ("Canberra, 1913."): never scored as it
    assert passage_languages(q, ["Canberra, 1913.", french]).unread == (0,)
    assert off_question(q, ["Canberra, 1913.", spanish], 0.5) is not None


def test_a_list_of_passages_is_read_for_its_language_in_time_linear_in_its_words(within_cpu_seconds, monkeypatch):
    """A review (F3): reading each passage of a list for its language looked each passage's words up in each of the
    30-odd function-word lists: 500 passages of 300 words read 6 times slower as a list (348 ms) than as one string
    (60 ms), and a list with a passage in another language was read twice. Each distinct word of a passage is looked up
    once (the languages whose lists hold it), and each passage read once."""
    import random

    import hguard._text as text
    from hguard.signals.relevance import off_question, passage_languages

    class Counted(dict):
        looked_up = 0

        def get(self, word, default=None):
            Counted.looked_up += 1
            return super().get(word, default)

    counted = Counted(text._languages_of_words())
    monkeypatch.setattr(text, "_languages_of_words", lambda: counted)
    rng = random.Random(0)
    vocab = "the capital of australia is canberra city river population government parliament house built year".split()
    passages = [" ".join(rng.choice(vocab) for _ in range(300)) + "." for _ in range(1_000)]
    q = "What is the capital of Australia?"
    distinct = sum(len(set(text.words_of(p))) for p in passages)
    with within_cpu_seconds(1.5):  # about 0.1 s here (0.45 s before)
        read = passage_languages(q, passages)
    assert not read.apart and len(read.same) == len(passages)
    assert Counted.looked_up <= distinct + 2 * len(text.words_of(q)), (Counted.looked_up, distinct)
    passages[7] = "Le musée est ouvert du mardi au dimanche, et il est fermé le lundi."
    with within_cpu_seconds(3):
        assert off_question(q, passages, 0.5) is None  # the others are English and address it


def test_the_grounding_of_all_passages_takes_the_embeddings_of_those_scored_before():
    """A review (F3): scoring an answer against a list's passages in its question's language, then against them all,
    embedded each of their sentences twice. :meth:`GroundingScorer.embed_from` embeds only the sentences (and pairs of
    neighbouring ones) the first context lacks, and the answer scores as it does against the whole embedded afresh."""
    from hguard.signals.grounding import GroundingScorer

    class Counted(BagEmbedder):
        texts: list[str] = []

        def encode(self, texts):
            Counted.texts += texts
            return super().encode(texts)

    same = ["Canberra is the capital of Australia. It was founded in 1913.", "Parliament House opened in 1988."]
    other = "La capitale de l'Australie est Sydney. Elle est la plus grande ville du pays."
    whole = "\n\n".join([same[0], other, same[1]])
    q, a = "What is the capital of Australia?", "Canberra, since 1913."
    gs = GroundingScorer(embedder=Counted())
    alone = gs.score(q, a, "\n\n".join(same))
    Counted.texts.clear()
    gs.embed_from(whole, "\n\n".join(same))
    assert Counted.texts == [  # the other passage's sentences, and the pairs across it
        "La capitale de l'Australie est Sydney.", "Elle est la plus grande ville du pays.",
        "It was founded in 1913. La capitale de l'Australie est Sydney.",
        "La capitale de l'Australie est Sydney. Elle est la plus grande ville du pays.",
        "Elle est la plus grande ville du pays. Parliament House opened in 1988."], Counted.texts
    assert gs.score(q, a, whole) == GroundingScorer(embedder=BagEmbedder()).score(q, a, whole)
    assert alone == GroundingScorer(embedder=BagEmbedder()).score(q, a, "\n\n".join(same))


def test_a_long_question_against_a_long_passage_is_read_without_pairing_every_word(within_cpu_seconds):
    """A review: the off-question check paired each question word with each passage word for a close spelling (2,000
    words against 20,000 took 83 s); only words of the same first letter can be close, and the close spelling's cheap
    bounds come first. 300 invented words against 20,000 took 12 s, and now under 2."""
    import random

    from hguard.signals.relevance import off_question

    rng = random.Random(1)

    def word(n: int) -> str:
        return "".join(rng.choice("bcdfghklmnprstvwxz") + rng.choice("aeiou") for _ in range(n // 2))

    question = "Wie ist die " + " ".join(word(9) + "q" for _ in range(300)) + "?"
    passage = "Die " + " ".join(word(10) + "j" for _ in range(20_000)) + " ist und der."
    with within_cpu_seconds(6):
        assert off_question(question, passage, 0.0) is not None  # shares none: held
