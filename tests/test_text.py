"""The text folding shared by the answer judge and the grounding signals (hguard._text)."""

from __future__ import annotations

from hguard._text import fold_accents, join_digit_groups
from hguard.calibrate.judge import normalize
from hguard.signals.grounding import tokens


def test_fold_accents_and_digit_groups():
    assert fold_accents("São Paulo, Zürich, ﬁsh") == "Sao Paulo, Zurich, fish"
    assert join_digit_groups("1,000,000 and 12,345.6 and 1,000km") == "1000000 and 12345.6 and 1000km"
    assert join_digit_groups("1,2 and 1,0000 and a,bcd") == "1,2 and 1,0000 and a,bcd"


def test_the_judge_and_the_grounding_tokens_share_the_folding_and_keep_their_own_forms():
    # shared: accents folded, digit groups joined
    assert normalize("São Paulo had 1,000 people") == "sao paulo had 1000 people"
    assert tokens("São Paulo had 1,000 people") == ["sao", "paulo", "had", "1000", "people"]
    # their own: the judge drops periods and apostrophes into one word, the tokens split and drop "'s"
    assert normalize("The U.S.A.'s O'Brien") == "usas obrien"
    assert tokens("The U.S.A.'s O'Brien") == ["the", "u", "s", "a", "o", "brien"]



def test_a_question_asks_yes_or_no_when_it_opens_with_an_auxiliary_verb():
    from hguard._text import asks_yes_no

    assert asks_yes_no("Does the clause allow assignment?") and asks_yes_no("is it legal?")
    assert not asks_yes_no("What is needed before either party can assign the agreement?") and not asks_yes_no("")


def test_a_question_asks_only_yes_or_no_unless_it_asks_for_content_or_a_choice():
    from hguard._text import asks_only_yes_no

    for question in ("Does the policy allow children under 13 to sign up?", "Can you cancel at any time?",
                     "Is it free or not?", "Does the policy say whether my data is shared with advertisers?"):
        assert asks_only_yes_no(question), question
    for question in ("Can you tell me who wrote Hamlet?", "Do you know the capital of Australia?",
                     "Could you say when it opens?", "Does the policy say which providers get my data?",
                     "Is the capital of Australia Sydney or Canberra?", "What is the capital?", ""):
        assert not asks_only_yes_no(question), question


def test_a_joiner_is_spelling_in_a_persian_or_indic_name_and_hidden_in_a_latin_one():
    from hguard._text import hidden_characters_in

    assert hidden_characters_in("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645") is None  # Persian, with its ZWNJ
    assert hidden_characters_in("\u0915\u094d\u200d\u0937") is None  # Devanagari, with its ZWJ
    assert hidden_characters_in("Ann\u200ca") == "U+200C" and hidden_characters_in("\u0410\u043d\u200d\u043d\u0430") == "U+200D"


def test_the_matching_form_reads_text_as_shown_and_leaves_other_scripts_words_as_they_are():
    """One form for every keyword check (hguard._text.matching_form): invisible characters out, every line break "\n",
    look-alike letters folded only in a word otherwise Latin or made of them; ``offsets`` lead back to the text."""
    from hguard._text import matching_form

    assert matching_form("Ig\u200bnore\u00ad \u0456gnore SYST\u0415M\uff1a a\u2028b\r\nc\rd\x85e") == "Ignore ignore SYSTEM: a\nb\nc\nd\ne"
    russian = "\u041c\u043e\u0441\u043a\u0432\u0430 \u2014 \u0441\u0442\u043e\u043b\u0438\u0446\u0430"  # "Москва — столица"
    assert matching_form(russian) == russian and matching_form("\u041a\u03b1\u03bb\u03ae") == "\u041a\u03b1\u03bb\u03ae"
    at: list[int] = []
    text = "a\u200b\u200bb\r\nSYST\u0415M"
    read = matching_form(text, offsets=at)
    assert read == "ab\nSYSTEM" and [text[i] for i in at] == ["a", "b", "\r", "S", "Y", "S", "T", "\u0415", "M"]
