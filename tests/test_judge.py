"""The judge decides every calibration label, so its edge cases are pinned here one by one."""

from __future__ import annotations

import pytest

from hguard.calibrate.judge import Judgement, declines, is_refusal, judge, judge_yesno, normalize, refusal_phrase, yes_no_taken
from hguard.errors import InputError


def label(answer: str, aliases: list[str], kind: str = "qa") -> str:
    return judge(answer, aliases, kind).label


# --- normalize ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("São Paulo", "sao paulo"),
        ("  The   Capital\tis\nPARIS!  ", "capital is paris"),
        ("An apple, a pear; the end.", "apple pear end"),
        ("U.S.A.", "usa"),
        ("N'Djamena", "ndjamena"),
        ("Nukuʻalofa", "nukualofa"),
        ("Guinea-Bissau", "guinea bissau"),
        ("1,000,000 people", "1000000 people"),
        ("pi is 3.14.", "pi is 3.14"),
        ("Straße", "strasse"),
        ("Ångström", "angstrom"),
        ("", ""),
        ("?!...", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_normalize_keeps_article_letters_inside_words() -> None:
    assert normalize("Thea and Anna") == "thea and anna"


def test_normalize_keeps_a_capital_letter_a_but_drops_the_article() -> None:
    assert normalize("A vitamin: vitamin A, Plan A.") == "vitamin vitamin a plan a"


def test_normalize_rejects_non_str() -> None:
    with pytest.raises(InputError, match="text must be a str"):
        normalize(None)  # type: ignore[arg-type]


# --- whole-word matching -------------------------------------------------------------------------


def test_plain_match_returns_alias_and_reason() -> None:
    j = judge("The capital of France is Paris.", ["Paris"])
    assert j == Judgement("correct", "Paris", "answer contains accepted alias 'Paris'")


@pytest.mark.parametrize(
    ("answer", "aliases", "expected"),
    [
        # alias inside a longer word never matches (Parisian is not Paris)
        ("The food is Parisian.", ["Paris"], "hallucinated"),
        ("Romania is nice.", ["Rome"], "hallucinated"),
        ("It is in Rome.", ["Rome"], "correct"),
        # the classic broken judge: a one-letter alias found inside every sentence
        ("The answer is Helium.", ["H"], "hallucinated"),
        ("The symbol is H.", ["H"], "correct"),
        ("Its symbol is t.", ["t"], "correct"),
        ("That is not true at all.", ["t"], "hallucinated"),
        ("It is W (from wolfram).", ["W"], "correct"),
        # case, accents and punctuation are ignored on both sides
        ("sao paulo", ["São Paulo"], "correct"),
        ("SÃO PAULO!!!", ["Sao Paulo"], "correct"),
        ("It's Reykjavik.", ["Reykjavík"], "correct"),
        ("The Hague", ["the hague"], "correct"),
        ("Washington DC", ["Washington, D.C."], "correct"),
        ("It was written by J.R.R. Tolkien.", ["J. R. R. Tolkien"], "correct"),
        ("H.G. Wells wrote it.", ["H. G. Wells"], "correct"),
        # articles are dropped, so they neither help nor hurt
        ("Hague", ["The Hague"], "correct"),
        ("It is the Netherlands.", ["Netherlands"], "correct"),
        # multi-word aliases need every word, in order
        ("New York is big.", ["New Delhi"], "hallucinated"),
        ("It is Delhi.", ["New Delhi"], "hallucinated"),
        ("It is New Delhi.", ["New Delhi"], "correct"),
        ("It is New Delhi.", ["Delhi"], "correct"),
        ("Kuala is a word, Lumpur another.", ["Kuala Lumpur"], "hallucinated"),
        # a capital "A" inside a sentence is a letter, not an article
        ("Vitamin D is the one.", ["vitamin A"], "hallucinated"),
        ("It is vitamin A.", ["Vitamin A"], "correct"),
        ("It is a vitamin.", ["vitamin A"], "hallucinated"),
        # any alias may match
        ("Peking, of course.", ["Beijing", "Peking"], "correct"),
    ],
)
def test_whole_word_matching(answer: str, aliases: list[str], expected: str) -> None:
    assert label(answer, aliases) == expected


# --- numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "aliases", "expected"),
    [
        ("It happened in 1984.", ["1"], "hallucinated"),
        ("It happened in 1984.", ["1984"], "correct"),
        ("About 1,000 km.", ["1000"], "correct"),
        ("About 1000 km.", ["1,000"], "correct"),
        ("It is 3.0 metres.", ["3"], "correct"),
        ("It is 3.5 metres.", ["3"], "hallucinated"),
        ("It has 79 protons.", ["seventy-nine"], "correct"),
        ("It has seventy-nine protons.", ["79"], "correct"),
        ("It has one hundred and eighteen protons.", ["118"], "correct"),
        ("It has twelve protons.", ["12"], "correct"),
        ("It has 12 protons.", ["2"], "hallucinated"),
        ("It has 007 licences.", ["7"], "correct"),
    ],
)
def test_numbers_compare_by_value(answer: str, aliases: list[str], expected: str) -> None:
    assert label(answer, aliases) == expected


# --- hedges and negations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "It is either Paris or Lyon.",
        "Paris or Lyon.",
        "It could be Lyon or Paris.",
        "Either Paris, Lyon, or Marseille.",
    ],
)
def test_hedging_between_candidates_is_hallucinated(answer: str) -> None:
    j = judge(answer, ["Paris"])
    assert j.label == "hallucinated"
    assert j.matched is None
    assert "hedged" in j.reason


def test_hedge_with_abstaining_wording_is_a_refusal() -> None:
    assert label("I'm not sure, either Paris or Lyon.", ["Paris"]) == "refusal"


def test_hedge_followed_by_a_commitment_is_correct() -> None:
    assert label("Is it Lyon or Marseille? No: the capital is Paris.", ["Paris"]) == "correct"


def test_or_elsewhere_in_the_reply_does_not_spoil_a_match() -> None:
    assert label("The capital is Paris, home to the Louvre or the Eiffel Tower.", ["Paris"]) == "correct"


def test_negated_mention_does_not_count() -> None:
    j = judge("The capital of Australia is not Canberra but Sydney.", ["Canberra"])
    assert j.label == "hallucinated"
    assert "negated" in j.reason


@pytest.mark.parametrize(
    "answer, aliases, question",
    [
        # a negation earlier in the alias's clause, not only right before it
        ("Budgets are never approved by the CFO.", ["CFO"], "Who approves budgets?"),
        ("Neither Deloitte nor KPMG audits the firm.", ["KPMG"], "Who audits the firm?"),
        ("Rabies is caused by a bacterium, not by a virus.", ["virus"], None),
        ("The capital of Australia isn't Canberra.", ["Canberra"], None),
        # the alias's clause goes on to deny what the question asks
        ("The CFO does not approve budgets; the board does.", ["CFO"], "Who approves budgets?"),
        ("The CFO never approves budgets.", ["CFO"], "Who approves budgets?"),
        ("Shakespeare did not write Hamlet.", ["Shakespeare"], "Who wrote Hamlet?"),
    ],
)
def test_an_alias_denied_in_its_clause_does_not_count(answer: str, aliases: list[str], question: str | None) -> None:
    j = judge(answer, aliases, question=question)
    assert (j.label, j.matched) == ("hallucinated", None)
    assert "negated" in j.reason


@pytest.mark.parametrize(
    "answer, aliases, question",
    [
        ("The board does; the CFO does not approve budgets.", ["board"], "Who approves budgets?"),
        ("It is not Sydney but Canberra.", ["Canberra"], "What is the capital of Australia?"),
        ("Canberra, not Sydney.", ["Canberra"], None),
        # a denial about something else than what was asked
        ("Canberra is not the largest city, but it is the capital.", ["Canberra"], "What is the capital of Australia?"),
        ("Canberra is not in New South Wales.", ["Canberra"], "What is the capital of Australia?"),
        ("It was Shakespeare and not Marlowe.", ["Shakespeare"], "Who wrote Hamlet?"),
        # a question that asks for what is not so
        ("Mars is not a gas giant.", ["Mars"], "Which planet is not a gas giant?"),
        # a negation in another sentence, even after an abbreviation's full stop
        ("Mr. Smith does not run it. Jones does.", ["Jones"], "Who runs the company?"),
        ("J. R. R. Tolkien wrote it; Lewis did not.", ["J.R.R. Tolkien"], "Who wrote The Hobbit?"),
    ],
)
def test_a_negation_outside_the_alias_and_what_was_asked_leaves_it_correct(answer: str, aliases: list[str],
                                                                            question: str | None) -> None:
    assert judge(answer, aliases, question=question).label == "correct"


@pytest.mark.parametrize(
    "answer, aliases, expected",
    [
        ("The deadline is 20 days.", ["20%"], "hallucinated"),
        ("The rate is 20%.", ["20%"], "correct"),
        ("The rate is 20 percent.", ["20%"], "correct"),
        ("The rate is 20%.", ["20 per cent", "20 percent"], "correct"),
        ("The fee is $5,000.", ["5,000 dollars"], "correct"),
        ("The fee is 5,000 USD.", ["$5,000"], "correct"),
        ("The fee is 5,000 EUR.", ["$5,000"], "hallucinated"),
        ("The fee is \u20ac5,000.", ["5000 euros"], "correct"),
        ("The fee is $5,000.", ["5000"], "correct"),  # an alias without a unit takes the number with any
        ("The fee is 5,000.", ["$5,000"], "hallucinated"),  # list "5000" too if a bare number counts
    ],
)
def test_percent_and_currency_are_part_of_a_number(answer: str, aliases: list[str], expected: str) -> None:
    assert label(answer, aliases) == expected


def test_unknown_is_declining() -> None:
    for reply in ("The author is unknown.", "Its population is not known.", "The cause remains largely unknown."):
        assert judge(reply, ["Tolkien"]).label == "refusal", reply
        assert declines(reply)
    for reply in ("Paris is not known for its beaches.", "Tolkien is known for The Hobbit.", "He was unknown to most."):
        assert declines(reply) is None, reply


def test_not_mentioned_in_the_provided_information_declines() -> None:
    """A trial's invented insurer: "not explicitly mentioned in the provided information" was labelled hallucinated."""
    reply = "The founder of Castermere General is not explicitly mentioned in the provided information."
    assert judge(reply, ["John Doe"], question="Who founded Castermere General?").label == "refusal"
    assert declines("It is not mentioned in the available sources.")
    # to a question about a document, "not provided in the given context" stays a plain no (the yes/no judge's)
    assert declines('The answer to the question "how are my contacts stored?" is not provided in the given context.',
                    'Does the policy text answer the question "how are my contacts stored"?') is None


def test_a_yes_no_reply_that_names_both_says_neither_and_a_first_word_reads_in_other_languages() -> None:
    # a calibration's "right" answer was 'The answer is not "yes" or "no."': it says neither
    for reply in ('The answer is not "yes" or "no."', "The answer is neither yes nor no.", "Yes or no: it depends."):
        assert judge_yesno(reply, "yes").label == "refusal", reply
    # "Nein." was read as an affirmative statement: yes; only a whole first word counts ("non-compete" is no "non")
    assert judge_yesno("Nein.", "no").label == "correct" and judge_yesno("Oui, elle est payable.", "yes").label == "correct"
    assert judge_yesno("Não.", "no").label == "correct" and judge_yesno("Ja", "no").label == "hallucinated"
    # decomposed (NFD, as macOS and some editors write it): the combining tilde cut the word to "Na", read as yes
    import unicodedata

    nfd = unicodedata.normalize("NFD", "Não, a cláusula não é válida.")
    assert judge_yesno(nfd, "no").label == "correct", judge_yesno(nfd, "no").reason
    assert yes_no_taken(nfd, "Is the clause valid?") == "no"
    assert judge_yesno("The non-compete clause applies.", "yes").label == "correct"
    assert judge_yesno("Non-compete clauses are not included.", "no").reason.startswith("negated statement")
    # the first-word table is the guard's (`hguard._text.yes_or_no_opening`): "Нет, плата не возвращается." was
    # judged "yes" (an affirmative statement), and so a calibration of one's own yes/no rows labelled it wrongly
    for reply, said in (("Нет, плата не возвращается.", "no"), ("Да, плата возвращается.", "yes"), ("不是，不能退还。", "no"),
                        ("是的，可以退还。", "yes"), ("Nee, dat mag niet.", "no"), ("Tak, opłata jest zwrotna.", "yes"),
                        ("いいえ、返金されません。", "no"), ("Evet.", "yes"), ("Hayır.", "no")):
        assert judge_yesno(reply, said).label == "correct", (reply, judge_yesno(reply, said).reason)
        assert judge_yesno(reply, "yes" if said == "no" else "no").label == "hallucinated", reply
    assert judge_yesno("No problem, you can approve it.", "yes").label == "correct"  # English's "no" idiom, as before


def test_yes_no_taken_is_a_plain_yes_or_no_only() -> None:
    """What the review export makes a yes/no row of: a reply that opens with yes or no, or says the question's own
    claim back (negated or not), to a question that asks for yes or no and nothing else."""
    kids = "Does the policy allow children under 13 to sign up?"
    assert yes_no_taken("The policy does not allow children under 13 to sign up.", kids) == "no"
    assert yes_no_taken("Children under 13 aren't allowed to sign up.", kids) == "no"
    assert yes_no_taken("No.", kids) == "no" and yes_no_taken("Yes, with a parent's consent.", kids) == "yes"
    assert yes_no_taken("Paris is the capital of France.", "Is Paris the capital of France?") == "yes"
    for reply, question in (("William Shakespeare wrote Hamlet.", "Can you tell me who wrote Hamlet?"),
                            ("Yes.", "Do you know the capital of Australia?"),
                            ("Canberra.", "Is the capital of Australia Sydney or Canberra?"),
                            ("Lyon is the capital of France.", "Is Paris the capital of France?"),
                            ("The fee is 20 dollars.", "Is the fee 10 dollars?"),
                            ("It has no side effects in children.", "Is the medicine safe for children?"),
                            ("No problem, they can.", kids), ("I don't know.", kids)):
        assert yes_no_taken(reply, question) is None, (reply, question)
    with pytest.raises(InputError):
        yes_no_taken("No.", None)  # type: ignore[arg-type]


def test_no_in_an_idiom_is_not_a_no() -> None:
    j = judge_yesno("No problem, you can approve it.", "no")
    assert j.label == "hallucinated" and "affirmative" in j.reason
    assert judge_yesno("No problem: you cannot approve it.", "no").label == "correct"
    assert judge_yesno("No, you cannot.", "no").label == "correct"


def test_a_hedged_yes_or_no_takes_its_side_an_even_odds_hedge_none() -> None:
    """"Probably.", "I'd say so.", "I believe so." lean to yes and "Probably not.", "I don't think so." to no: each
    takes its side everywhere a reply is read (the judge, a reviewed reply's side, the number hold's affirmation), as
    "I believe so." already did for the number hold; "Maybe." still declines. A review found "Probably." to "Is the fee
    $30?" passed over a passage of $25 (no yes read, so no figure affirmed) where "I believe so." was held."""
    from hguard.calibrate.judge import affirms_question, hedged_side, unstated_numbers

    q = "Does the policy allow refunds?"
    for reply, side in (("I'd say so.", "yes"), ("Probably.", "yes"), ("I believe so.", "yes"), ("Most likely.", "yes"),
                        ("Probably not.", "no"), ("I don't think so.", "no"), ("I doubt it.", "no"), ("Unlikely.", "no")):
        assert hedged_side(reply) == side, reply
        j = judge_yesno(reply, side, q)
        assert j.label == "correct" and j.reason.startswith(f"hedged {side}"), (reply, j)
        assert judge_yesno(reply, "no" if side == "yes" else "yes", q).label == "hallucinated", reply
        assert yes_no_taken(reply, q) == side, reply  # a reviewed hedge makes a yes/no row of its side
    for reply in ("Maybe.", "Perhaps not.", "It depends on the plan."):  # even odds: no side, as before
        assert hedged_side(reply) is None and judge_yesno(reply, "yes", q).label == "refusal", reply
        assert yes_no_taken(reply, q) is None, reply
    for reply in ("Probably the fee is waived.", "Likely to be approved next year.", "I think so many fees apply."):
        assert hedged_side(reply) is None, reply  # a hedge word inside a statement, not a clause of its own
    fee = "Is the fee $30?"
    for reply in ("Probably.", "I'd say so.", "I believe so."):
        assert affirms_question(reply, fee), reply
        assert unstated_numbers(reply, "The fee is $25.", fee) == ["30 dollar"], reply
        assert unstated_numbers(reply, "The fee is $30.", fee) == [], reply
    assert not affirms_question("Probably not.", fee) and unstated_numbers("Probably not.", "The fee is $25.", fee) == []


def test_a_date_in_an_affirmation_is_a_date_not_a_figure_of_its_own() -> None:
    """"Yes, from 1 January 2024." to "Is the fee $30?" affirms $30, as "It is, as of 2024." does: its day "1" was
    read as a figure of the answer's own, so nothing was affirmed and it passed over a passage of $25 from that date;
    where the passage writes no date it was shown as "1, 2024" instead of the date."""
    from hguard._guard_scoring import answer_holds
    from hguard.calibrate.judge import affirms_question, unstated_numbers

    fee = "Is the fee $30?"
    for reply in ("Yes, from 1 January 2024.", "Yes, from January 1, 2024.", "It is, since 2024-01-01.",
                  "Yes, from 1 January."):
        assert affirms_question(reply, fee), reply
        assert unstated_numbers(reply, "The fee is $25 from 1 January 2024.", fee) == ["30 dollar"], reply
        assert unstated_numbers(reply, "The fee is $30 from 1 January 2024.", fee) == [], reply
    assert not affirms_question("Yes, it is $30 from 1 January 2024.", fee)  # a figure of its own besides the date
    # the date compared whole, named as one: not its day and its year as two figures
    assert unstated_numbers("Yes, from 1 January 2024.", "The fee is $30.", fee) == ["date 1 January 2024"]
    assert unstated_numbers("Yes, from 1 January 2024.", "The fee is $30 from 5 February 2024.", fee) == [
        "date 1 January 2024"]
    assert unstated_numbers("It starts on 1 January 2024.", "The fee of $1 applies from 2024.") == []  # its numbers
    held = answer_holds(fee, "Yes, from 1 January 2024.", "The fee is $25 from 1 January 2024.", None)
    assert len(held) == 1 and held[0].startswith("the answer affirms the yes/no question's"), held


def test_a_leading_no_that_is_a_determiner_is_no_reply_word() -> None:
    """"No refunds are given after 30 days." opens with the determiner of its subject, not the reply "No,": its side
    is its sentence's (negated), it restates the question's claim only where it says it back ("after 30 days" is not
    "within 30 days"), and the reversed-claim check reads it whole (its "No" was cut, so it reversed a passage saying
    the same, and a reversed "No refunds ..." of a passage granting them passed)."""
    from hguard._text import opening_no_is_determiner
    from hguard.signals.grounding import reversed_claims

    for reply in ("No refunds are given after 30 days.", "No fee applies.", "No one may sign.", "No refunds"):
        assert opening_no_is_determiner(reply), reply
    for reply in ("No.", "No, refunds are given.", "No - refunds are given.", "No it isn't.", "No the fee is $5.",
                  "No there is none.", "Nope.", "No-fee accounts are free.", "No hay reembolsos después de 30 días."):
        assert not opening_no_is_determiner(reply), reply
    refund = "No refunds are given after 30 days."
    j = judge_yesno(refund, "no", "Can I get a refund after 30 days?")
    assert j.label == "correct" and j.reason.startswith("negated statement ('no refunds'"), j
    assert judge_yesno("No fee is charged.", "no", "Is there a fee?").label == "correct"
    assert yes_no_taken(refund, "Are refunds given within 30 days?") is None  # not a "No," to that question
    assert yes_no_taken(refund, "Are refunds given after 30 days?") == "no"  # the question's claim, negated
    assert yes_no_taken("No, refunds are given within 30 days.", "Are refunds given within 30 days?") is None
    assert yes_no_taken("No.", "Are refunds given within 30 days?") == "no"
    assert reversed_claims(refund, "No refunds are given after 30 days of purchase.") == []
    assert reversed_claims(refund, "Refunds are given after 30 days of purchase.")  # reversed: held
    assert reversed_claims("No, refunds are given after 30 days.", "No refunds are given after 30 days of purchase.")


def test_a_no_contradicted_by_its_own_restatement_is_right_neither_way() -> None:
    """"No, the fee is $5." to "Is the fee $5?": its "No" and its claim disagree. The judge labels it hallucinated
    whatever the truth, a reviewed reply takes no side, and the guard holds it (it passed over a passage of $5, its
    opener left aside)."""
    from hguard._guard_scoring import answer_holds
    from hguard.calibrate.judge import contradicts_own_no

    fee, kids = "Is the fee $5?", "Does the policy allow children under 13 to sign up?"
    for reply, question in (("No, the fee is $5.", fee), ("No the fee is $5.", fee),
                            ("No, the policy allows children under 13 to sign up.", kids)):
        assert contradicts_own_no(reply, question), reply
        for truth in ("yes", "no"):
            j = judge_yesno(reply, truth, question)
            assert j.label == "hallucinated" and j.reason.startswith("contradicts itself"), (reply, truth, j)
        assert yes_no_taken(reply, question) is None, reply
    for reply, question in (("No, the fee is not $5.", fee), ("No, the fee is $10.", fee), ("No.", fee),
                            ("No, only the first month's fee is $5.", fee), ("No fee is $5.", fee),
                            ("No, the fee is $5.", "Isn't the fee $5?"), ("Yes, the fee is $5.", fee),
                            ("No, children under 13 cannot sign up.", kids)):
        assert not contradicts_own_no(reply, question), (reply, question)
    assert judge_yesno("No, the fee is not $5.", "no", fee).label == "correct"
    held = answer_holds(fee, "No, the fee is $5.", "The fee is $5 per month.", None)
    assert held and held[0].startswith("the answer opens with no and then says"), held
    assert answer_holds(fee, "No, the fee is $10.", "The fee is $10 per month.", None) == []
    assert answer_holds(fee, "No, the fee is $5.", "The fee is $5 per month.", "i don't know") == []  # declined


_STATEMENTS = "Account statements are issued quarterly and are available online for 7 years."
_GOLD = ("Gold Plan: the annual deductible is $1,000 per individual. Primary care visits cost a $20 copay, and "
         "specialist visits a $40 copay.")
_BRONZE = "Bronze Plan: the annual deductible is $6,500 per individual. Primary care visits cost a $50 copay after the deductible."
_FEE_RISES = "From 1 March 2025, the monthly account fee rises from $10 to $12."
_CHECKING = ("The Everyday Checking account has a monthly maintenance fee of $12, waived with a minimum daily balance of "
             "$1,500. Overdraft fees are $35 per item.")


@pytest.mark.parametrize("question, reply, passages, contradicts", [
    # a review (739c2f7): a right "No" that drops or changes the question's bound, comparison or date answers the
    # bound; it does not say the claim back
    ("Are statements kept online for more than 7 years?", "No, statements are kept online for 7 years.",
     [_STATEMENTS, _CHECKING], False),
    ("Is the deductible over $1,000 on the Gold plan?", "No, the deductible on the Gold plan is $1,000.",
     [_GOLD, _BRONZE], False),
    ("Is the monthly fee $12 before 1 March 2025?", "No, the monthly fee is $12 from 1 March 2025.",
     [_FEE_RISES, _CHECKING], False),
    ("Is the monthly fee $12 from 1 March 2025?", "No, the monthly fee is $12 from 1 April 2025.",
     [_FEE_RISES, _CHECKING], False),  # another date: another claim (its figure read against the passage apart)
    # ... and one that keeps them says the claim back: right neither way
    ("Are statements kept online for more than 7 years?", "No, statements are kept online for more than 7 years.",
     [_STATEMENTS, _CHECKING], True),
    ("Is the deductible over $1,000 on the Gold plan?", "No, the deductible on the Gold plan is over $1,000.",
     [_GOLD, _BRONZE], True),
    ("Is the monthly fee $12 from 1 March 2025?", "No, the monthly fee is $12 from 1 March 2025.",
     [_FEE_RISES, _CHECKING], True),
])
def test_a_no_that_drops_the_questions_bound_or_date_does_not_contradict_itself(question, reply, passages, contradicts):
    from hguard._guard_result import _join_context
    from hguard._guard_scoring import answer_holds
    from hguard.calibrate.judge import contradicts_own_no

    assert contradicts_own_no(reply, question) is contradicts
    holds = answer_holds(question, reply, _join_context(passages), None)
    if contradicts:
        assert holds and holds[0].startswith("the answer opens with no and then says"), holds
    else:
        assert not any(h.startswith("the answer opens with no") for h in holds), holds
        assert judge_yesno(reply, "no", question).label == "correct"


def test_known_blind_spot_two_candidates_without_or() -> None:
    # Documented limitation: a reply naming a wrong answer and the right one side by side counts.
    assert label("The capital is Sydney. Canberra is also nice.", ["Canberra"]) == "correct"


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "I don't know.",
        "I do not know the answer to that.",
        "I'm not sure about that.",
        "I’m not sure.",  # curly apostrophe
        "I am not familiar with that country.",
        "I cannot answer that question.",
        "I can't provide information about this.",
        "I couldn't find any information about Veltoria.",
        "There is no such country as Veltoria.",
        "There is no country called Veltoria.",
        "Veltoria does not exist.",
        "The element Brontium doesn't exist.",
        "I have no record of such a company.",
        "There is no record of this person.",
        "I'm not aware of any novel with that title.",
        "Veltoria is a fictional country.",
        "Brontium is a made-up element.",
        "As an AI, I have no way to know this.",
        "I don't have information about that company.",
        "That is not a real element.",
        "",
        "   ",
    ],
)
def test_refusals_are_detected(answer: str) -> None:
    assert is_refusal(answer)


@pytest.mark.parametrize(
    "answer",
    [
        "The capital of Veltoria is Nova Haven.",
        "The chemical symbol of Brontium is B.",
        "It was founded in 1921 by John Smith.",
        "Notably, it is known for its exports.",  # 'no' and 'known' inside other words
        "He knows the answer: it is Paris.",
        "There is no doubt that the answer is Paris.",
        "The existence of Paris is documented since Roman times.",
    ],
)
def test_confident_answers_are_not_refusals(answer: str) -> None:
    assert not is_refusal(answer)


def test_refusal_phrase_reports_the_wording() -> None:
    assert refusal_phrase("Sorry, I don't know.") == "i dont know"
    assert refusal_phrase("Paris.") is None
    assert refusal_phrase("") == ""


@pytest.mark.parametrize(
    ("answer", "aliases"),
    [
        # what SmolLM2-135M-Instruct actually replies about real things
        ("The chemical element with the symbol Fe is not a chemical element itself, but it is a metal.", ["iron"]),
        ("There is no such country as Peru.", ["Lima"]),
    ],
)
def test_denying_a_real_entity_is_hallucinated_not_a_refusal(answer: str, aliases: list[str]) -> None:
    assert is_refusal(answer)
    j = judge(answer, aliases)
    assert j.label == "hallucinated"
    assert "denies the premise" in j.reason


@pytest.mark.parametrize(
    "answer",
    [
        # what SmolLM2-135M-Instruct replies about invented entities: "fictional", then an invented source
        "Nefouadia is a fictional city in the Star Wars universe.",
        "The Last Bell of Pamere is a fictional work by the French author Jean-Baptiste Baudelaire.",
        "Ditilan Sosard is a fictional character from the 1990s novel \"The Last of the Shadows\".",
        "The Messiah is a fictional character created by the creator of the movie.",
        "The capital of Stamene is not a place, but rather a city.",
        "The largest city in Brastovia is not a place, but a city.",  # a user's trial: the kind corrected, not denied
        # a trial's invented insurer: the invented thing is where the name comes from, and a founder is asserted
        "Halcyra Assurance was founded in 1901 by John Smith and named after Halcyra, a fictional city.",
        "The founder of Halcyra Assurance is unknown to the public, but the company has been named after the fictional "
        "city of Halcyra.",
        "The company is based on a fictional character.",
    ],
)
def test_a_fictional_label_with_an_invented_source_is_a_confabulation_not_a_denial(answer: str) -> None:
    assert not is_refusal(answer)
    assert judge(answer, [], "unanswerable").label == "hallucinated"
    assert judge("Veltoria is a fictional country. It is set in the Star Wars universe, and it does not exist.", [],
                 "unanswerable").label == "correct"  # a plain denial elsewhere in the reply still counts


@pytest.mark.parametrize(
    "answer",
    ["Brontium is not a chemical element.", "Veltoria is a fictional country.", "There is no such company.",
     "Halcyra Assurance is a fictional company named after a city.",
     "Veltoria does not exist, but Veltrai is a town in Serbia.", "Brastovia is not a country, but a fictional place."],
)
def test_denying_a_fabricated_entity_is_correct(answer: str) -> None:
    assert label(answer, [], "unanswerable") == "correct"


def test_qa_refusal_is_its_own_label() -> None:
    j = judge("I don't know.", ["Paris"])
    assert j.label == "refusal"
    assert j.matched is None


def test_a_reply_that_declines_is_a_refusal_even_when_it_names_the_right_answer() -> None:
    # The guard abstains on any reply that declines, so calibration keeps it out of both classes.
    j = judge("I'm not sure, but I think it is Paris.", ["Paris"])
    assert j.label == "refusal"
    assert j.matched is None
    assert "'Paris'" in j.reason and "declines" in j.reason


def test_refusal_with_a_wrong_guess_is_a_refusal() -> None:
    assert label("I'm not sure, maybe Lyon.", ["Paris"]) == "refusal"


def test_empty_answer_is_a_refusal_for_qa() -> None:
    j = judge("", ["Paris"])
    assert (j.label, j.reason) == ("refusal", "empty answer")


# --- unanswerable rows ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("There is no country called Veltoria.", "correct"),
        ("I couldn't find any information about that.", "refusal"),
        ("The capital of Veltoria is not specified.", "refusal"),
        ("The answer is not provided.", "refusal"),
        ("The information is not available.", "refusal"),
        ("Nova Haven; more information is not available.", "hallucinated"),
        ("", "refusal"),
        ("The capital of Veltoria is Nova Haven.", "hallucinated"),
        ("Brontium has the symbol Bt and atomic number 130.", "hallucinated"),
        ("The Glass Orchard was written by Carlos Ruiz Marzán in 2011.", "hallucinated"),
    ],
)
def test_unanswerable(answer: str, expected: str) -> None:
    assert label(answer, [], "unanswerable") == expected


def test_declining_an_unanswerable_question_is_a_refusal_and_denying_it_is_correct() -> None:
    j = judge("I don't know.", [], "unanswerable")
    assert j.label == "refusal" and "declines" in j.reason
    j = judge("There is no such element.", [], "unanswerable")
    assert j.label == "correct" and "denied the premise" in j.reason


def test_declining_a_reviewed_question_whose_answer_is_unknown_is_not_counted_right() -> None:
    from hguard.calibrate.judge import asked_kind, right_reply

    assert right_reply("refusal", asked_kind("unanswerable", None))  # an invented entity: declining is right
    # a reviewer's "hallucinated" without a corrected answer is exported as kind unanswerable, answers []
    assert not right_reply("refusal", asked_kind("unanswerable", {"answers_unknown": True}))
    assert right_reply("correct", asked_kind("unanswerable", {"answers_unknown": True}))


# --- bad input -----------------------------------------------------------------------------------


def test_qa_needs_an_alias() -> None:
    with pytest.raises(InputError, match="needs at least one alias"):
        judge("Paris", [])


def test_article_only_aliases_are_ignored() -> None:
    # "A" would otherwise match every reply that contains the article "a".
    with pytest.raises(InputError, match="vitamin A"):
        judge("It is a vitamin.", ["A"])
    assert label("It is a vitamin.", ["A", "vitamin A"]) == "hallucinated"
    assert label("It is vitamin A.", ["A", "vitamin A"]) == "correct"


def test_single_string_alias_is_rejected() -> None:
    # A bare string would be iterated letter by letter: exactly the "t" bug.
    with pytest.raises(InputError, match="wrap a single answer"):
        judge("Paris", "Paris")  # type: ignore[arg-type]


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(InputError, match="kind must be"):
        judge("Paris", ["Paris"], "open")


def test_non_str_answer_is_rejected() -> None:
    with pytest.raises(InputError, match="answer must be a str"):
        judge(None, ["Paris"])  # type: ignore[arg-type]


def test_a_reply_that_writes_a_new_question_answers_nothing():
    # a base model continuing its plain frame: the alias it names is not an answer
    for reply in ("Question: The brightest star in the constellation of Orion is", "Q: is it Orion?"):
        j = judge(reply, ["Orion"])
        assert j.label == "hallucinated" and j.matched is None and "new question" in j.reason
    assert judge("The question is settled: Orion", ["Orion"]).label == "correct"  # not a leading label


@pytest.mark.parametrize(
    "question, answer, aliases, label",
    [
        # the alias only inside the question's own entity: the answer added nothing right
        ("What is the official language of the Czech Republic?", "Czech Republic is the official language of the Czech Republic.", ["Czech"], "hallucinated"),
        ("Which continent is South Africa in?", "South Africa is located in the continent of South Africa.", ["Africa"], "hallucinated"),
        ("Who is older Glenn Hughes or Ross Lynch?", "Ross Lynch is older Glenn Hughes.", ["Glenn Hughes"], "hallucinated"),
        # the alias said on its own, even where the question holds the same word
        ("What is the official language of the Czech Republic?", "The official language of the Czech Republic is Czech.", ["Czech"], "correct"),
        ("Which continent is South Africa in?", "South Africa is in Africa.", ["Africa"], "correct"),
        ("What is the capital of Mexico?", "The capital of Mexico is Mexico City.", ["Mexico City"], "correct"),
        ("What is the capital of Luxembourg?", "The capital of Luxembourg is Luxembourg.", ["Luxembourg"], "correct"),
        ("Who is older Glenn Hughes or Ross Lynch?", "Glenn Hughes is older than Ross Lynch.", ["Glenn Hughes"], "correct"),
        # the alias at the end of a run the question holds in other words: "bank of Japan" is not "Bank of Japan"
        ("Which country is the Bank of Japan the central bank of?", "It is the central bank of Japan.", ["Japan"], "correct"),
        # ... but the question's lower-case words capitalised (a sentence's or a title's capitals) still echo it
        ("What is the capital of canton of Gordes?", "The capital of Canton of Gordes is not a place, but rather a city.",
         ["Gordes"], "hallucinated"),
        # ... and so do an answer in capitals and a question whose case says nothing of its names
        ("What is the capital of canton of Gordes?", "THE CAPITAL OF CANTON OF GORDES IS APT.", ["Gordes"], "hallucinated"),
        ("What Is The Capital Of Canton Of Gordes?", "The capital of canton of Gordes is Apt.", ["Gordes"], "hallucinated"),
        ("WHAT IS THE CAPITAL OF CANTON OF GORDES?", "The capital of Canton of Gordes is Apt.", ["Gordes"], "hallucinated"),
        ("Which country is the Bank of Japan the central bank of?", "The Bank of Japan is the central bank of Japan.", ["Japan"], "correct"),
        ("Which country is the Bank of Japan the central bank of?", "It is the Bank of Japan.", ["Japan"], "hallucinated"),
        # a question offering choices: repeating its words around the chosen one picks it
        ("Is rabies caused by a virus, a bacterium, a fungus or a parasite?", "Rabies is caused by a virus.", ["virus"], "correct"),
    ],
)
def test_an_alias_seen_only_inside_the_questions_own_words_is_not_an_answer(question, answer, aliases, label) -> None:
    assert judge(answer, aliases, question=question).label == label
    assert judge(answer, aliases).label == "correct"  # without the question the judge cannot tell


_ICELAND = "What is the name of the central bank of Iceland?"
_THAILAND = "What is the name of the central bank of Thailand?"


@pytest.mark.parametrize("question, answer, aliases, label", [
    # a finance team's trial: the alias the question holds, said again in the question's words or its other case,
    # is not the reply: the answer that names something else around it is wrong
    (_ICELAND, "The Icelandic Monetary Authority is the central bank of Iceland.", ["Central Bank of Iceland"], "hallucinated"),
    (_ICELAND, "The Icelandic Monetary Authority (México de la España) is the central bank of Iceland.",
     ["Central Bank of Iceland"], "hallucinated"),
    (_ICELAND, "It is the central bank of Iceland.", ["Central Bank of Iceland"], "hallucinated"),
    (_THAILAND, "The Central Bank of Thailand is the Royal Bank of Thailand.", ["Bank of Thailand"], "hallucinated"),
    ("What is the name of the central bank of Egypt?",
     "The Central Bank of Egypt is the Royal Bank of Egypt, a state-owned institution.", ["Central Bank of Egypt"],
     "hallucinated"),
    # ... while the reply naming the alias stays right, before or after the question's span, in any case
    (_ICELAND, "The central bank of Iceland is the Central Bank of Iceland (Seðlabanki Íslands).",
     ["Central Bank of Iceland"], "correct"),
    (_ICELAND, "The central bank of Iceland is the Central Bank of Iceland.", ["Central Bank of Iceland"], "correct"),
    (_ICELAND, "The Central Bank of Iceland is the central bank of Iceland.", ["Central Bank of Iceland"], "correct"),
    (_ICELAND, "Central Bank of Iceland.", ["Central Bank of Iceland"], "correct"),
    (_THAILAND, "It is the Bank of Thailand.", ["Bank of Thailand"], "correct"),
    (_THAILAND, "The central bank of Thailand is the Bank of Thailand (BOT).", ["Bank of Thailand"], "correct"),
    ("What is the name of the central bank of Kenya?", "The Central Bank of Kenya is the official central bank of Kenya.",
     ["Central Bank of Kenya"], "correct"),
])
def test_an_alias_the_question_holds_counts_only_as_the_reply(question, answer, aliases, label) -> None:
    j = judge(answer, aliases, question=question)
    assert j.label == label, j.reason
    if label == "hallucinated":
        assert f"{aliases[0]!r} appears only inside words the answer repeats from the question" in j.reason
        assert judge(answer, aliases).label == "correct"  # without the question the judge cannot tell


_ENGLAND = "What is the central bank of England called?"
_MACBETH = "Which play features the character Macbeth?"
_ANNA = "In which book does the character Anna Karenina appear?"
_ROMEO = "Which play features the lovers Romeo and Juliet?"


@pytest.mark.parametrize("question, answer, aliases", [
    # a review: the alias after a possessive or a region's adjective was read as the end of a longer name ...
    ("In which book does the character Victor Frankenstein appear?", "Victor Frankenstein appears in Mary Shelley's Frankenstein.",
     ["Frankenstein"]),
    (_ROMEO, "They appear in Shakespeare's Romeo and Juliet.", ["Romeo and Juliet"]),
    ("In which book does the character Oliver Twist appear?", "He appears in Dickens' Oliver Twist.", ["Oliver Twist"]),
    (_MACBETH, "Shakespeare\u2019s Macbeth.", ["Macbeth"]),
    ("Which novel features the character Harry Potter?", "J.K. Rowling's Harry Potter series.", ["Harry Potter"]),
    ("On which continent is South Africa?", "It is in Southern Africa.", ["Africa"]),
    ("On which continent is South Africa?", "South Africa is located in Southern Africa.", ["Africa"]),
    # ... and a description on the other side of "X is Y" as a name of its own (the reply naming the alias counts on
    # either side): a possessive's, a name's adjective, "by" an author, the question's words "of" a place
    ("Which institution is the central bank of Thailand?", "The Bank of Thailand is Thailand's central bank.", ["Bank of Thailand"]),
    ("Which institution is the central bank of Thailand?", "The Bank of Thailand is the Thai central bank.", ["Bank of Thailand"]),
    ("Which institution is the central bank of Thailand?", "The Bank of Thailand is the central bank of the Kingdom of Thailand.",
     ["Bank of Thailand"]),
    (_ENGLAND, "The Bank of England is the UK's central bank.", ["Bank of England"]),
    (_ENGLAND, "The Bank of England is the central bank of the United Kingdom.", ["Bank of England"]),
    (_ENGLAND, "The UK's central bank is the Bank of England.", ["Bank of England"]),
    (_ICELAND, "The Central Bank of Iceland is Iceland's central bank.", ["Central Bank of Iceland"]),
    (_MACBETH, "Macbeth is by Shakespeare.", ["Macbeth"]),
    (_MACBETH, "Macbeth is the title character of Shakespeare's Macbeth.", ["Macbeth"]),
    (_ROMEO, "Romeo and Juliet is Shakespeare's tragedy.", ["Romeo and Juliet"]),
    (_ROMEO, "Romeo and Juliet is a tragedy by Shakespeare.", ["Romeo and Juliet"]),
    (_ANNA, "Anna Karenina is the heroine of Leo Tolstoy's Anna Karenina.", ["Anna Karenina"]),
])
def test_an_alias_after_a_possessive_or_beside_a_description_is_the_reply(question, answer, aliases) -> None:
    j = judge(answer, aliases, question=question)
    assert (j.label, j.matched) == ("correct", aliases[0]), j.reason


@pytest.mark.parametrize("question, answer, aliases", [
    # ... while a name of its own on the other side, right after the copula or "of" a thing of its own, is still the
    # reply, and the alias at the end of a longer name still that name
    (_ENGLAND, "The Bank of England is the Royal Bank of England.", ["Bank of England"]),
    (_ENGLAND, "It is the Royal Bank of England.", ["Bank of England"]),
    (_ANNA, "Anna Karenina is the heroine of War and Peace.", ["Anna Karenina"]),
    (_ANNA, "Anna Karenina is the heroine of Tolstoy's War and Peace.", ["Anna Karenina"]),
    (_ANNA, "Anna Karenina is a character in War and Peace.", ["Anna Karenina"]),
    ("Which novel features the character Robinson Crusoe?", "Robinson Crusoe is the hero of Gulliver's Travels.",
     ["Robinson Crusoe"]),
    ("What is the central bank of Kenya called?", "The central bank of Kenya is the Kenya Reserve Bank.", ["Central Bank of Kenya"]),
])
def test_a_name_of_its_own_beside_the_questions_span_is_still_the_reply(question, answer, aliases) -> None:
    j = judge(answer, aliases, question=question)
    assert j.label == "hallucinated", j.reason
    assert f"{aliases[0]!r} appears only inside words the answer repeats from the question" in j.reason


@pytest.mark.parametrize("answer, aliases, label", [
    # a finance team's trial: a code alias named by the currency its letters read as ("CLP" by "the Chilean peso",
    # "USD" by "dollar") counted as said; a code in capitals is matched as that code
    ("The ISO code for the Chilean peso is CHP.", ["CLP"], "hallucinated"),
    ("It is the peso.", ["CLP"], "hallucinated"),
    ("The three-letter ISO currency code for the Chilean peso is 123.", ["CLP"], "hallucinated"),
    ("The code is the dollar.", ["USD"], "hallucinated"),
    ("It is the US dollar.", ["USD"], "hallucinated"),
    ("Its code is the pound.", ["GBP"], "hallucinated"),
    ("The yen.", ["JPY"], "hallucinated"),
    # ... the code written, in any case or dotted, still matches; so do an amount's currency and a symbol
    ("The ISO code for the Chilean peso is CLP.", ["CLP"], "correct"),
    ("The code is usd.", ["USD"], "correct"),
    ("USD 5,000", ["USD"], "correct"),
    ("It is the U.S.D.", ["USD"], "correct"),
    ("It is 5,000 pesos.", ["5000 CLP"], "correct"),
    ("It costs 5,000 dollars.", ["$5,000"], "correct"),
    ("The symbol is H.", ["H"], "correct"),
    ("The New York Stock Exchange (NYSE).", ["NYSE"], "correct"),
])
def test_a_code_alias_matches_only_as_that_code(answer, aliases, label) -> None:
    assert judge(answer, aliases).label == label


@pytest.mark.parametrize("answer, aliases", [
    # a review: a code inside a hyphenated word was no code written
    ("Coca-Cola is NYSE-listed under the ticker KO.", ["NYSE"]),
    ("The GDPR-compliant regime under Regulation 2016/679.", ["GDPR"]),
    ("Its USD\u2013denominated bonds.", ["USD"]),
])
def test_a_code_alias_matches_as_a_part_of_a_hyphenated_word(answer, aliases) -> None:
    assert judge(answer, aliases).label == "correct"
    assert judge("It is Nasdaq-listed.", ["NYSE"]).label == "hallucinated"


_ISO_USD = "What is the ISO code of the US dollar?"


@pytest.mark.parametrize("question, answer, aliases, label", [
    # a review: a row listing only the code judged the currency's name wrong to a question asking for the currency;
    # there the name answers the code alias, not after another country's adjective ...
    ("What currency is used in the United States?", "The US dollar.", ["USD"], "correct"),
    ("What currency is used in Sweden?", "Sweden uses the Swedish krona.", ["SEK"], "correct"),
    ("What currency is used in Chile?", "The Chilean peso.", ["CLP"], "correct"),
    ("What currency is used in the United States?", "The Canadian dollar.", ["USD"], "hallucinated"),
    ("What currency is used in the United States?", "The Hong Kong dollar.", ["USD"], "hallucinated"),
    ("What currency is used in Sweden?", "Sweden uses the Norwegian krone.", ["SEK"], "hallucinated"),
    ("What currency is used in Chile?", "The Mexican peso.", ["CLP"], "hallucinated"),
    # ... while to a question asking for a code (the finance trial's) only the code written answers it
    (_ISO_USD, "The code is the dollar.", ["USD"], "hallucinated"),
    (_ISO_USD, "The code is US$.", ["USD"], "hallucinated"),
    ("What is the ISO code of the Chilean peso?", "It is the peso.", ["CLP"], "hallucinated"),
    ("What is the ISO 4217 code for the Swedish krona?", "The krona.", ["SEK"], "hallucinated"),
    ("Which three-letter code stands for the Swedish krona?", "The Swedish krona.", ["SEK"], "hallucinated"),
    ("What is the ticker symbol of the pound?", "The pound.", ["GBP"], "hallucinated"),
    (_ISO_USD, "It is USD.", ["USD"], "correct"),
])
def test_a_code_alias_is_matched_as_its_currency_only_where_the_question_asks_for_the_currency(question, answer, aliases,
                                                                                                label) -> None:
    assert judge(answer, aliases, question=question).label == label


def test_an_alias_seen_only_in_the_questions_words_is_named_in_the_reason() -> None:
    j = judge("Ross Lynch is older Glenn Hughes.", ["Glenn Hughes"], question="Who is older Glenn Hughes or Ross Lynch?")
    assert "'Glenn Hughes' appears only inside words the answer repeats from the question" in j.reason


def test_a_document_wording_declines_a_question_that_does_not_ask_yes_or_no() -> None:
    reply = "The context does not provide the information needed to answer the question."
    assert judge(reply, ["consent"], question="What is needed before either party can assign the agreement?").label == "refusal"
    # to a yes/no question about the document, naming what it asks about is a plain no
    assert declines("The clause does not discuss dispute resolution.", "Does the clause discuss dispute resolution?") is None
    # "does not say whether ..." takes no side, however many of the question's words follow it
    reply = "The policy text does not say whether the app collects your location."
    assert declines(reply, "Does the policy allow collecting location data?") == "text does not say"
    # unless the question asked just that
    assert declines(reply, "Does the policy say whether the app collects my location?") is None
    for hedged in ("The policy does not explicitly say whether it shares data with advertisers.",
                   "The policy does not clearly say whether data is shared.",
                   "The policy is silent on whether it shares data with advertisers."):
        assert declines(hedged, "Does the policy allow sharing my data with advertisers?") is not None, hedged


def test_a_reply_saying_the_answer_to_the_question_is_not_provided_declines() -> None:
    for reply in ("The answer to this question is not provided.", "The answer to the question is not available."):
        assert judge(reply, ["Paris"]).label == "refusal"
    # naming what the question asks goes on to say something: not a decline by this rule
    assert judge("The answer to the question whether the policy covers X is not provided.", ["yes"]).label != "refusal"


@pytest.mark.parametrize("answer", [
    "Maybe.", "It depends on the patient.", "This is a controversial topic in the medical community.",
    "It is a topic of debate among medical professionals.", "Perhaps not.", "It is unclear whether aspirin helps.",
    "The evidence is mixed, with some studies suggesting a benefit but others have found no correlation.",
])
def test_a_hedge_to_a_yes_no_question_declines_whatever_yes_no_word_follows(answer):
    # a clinical team's PubMedQA calibration counted these as "yes" (or, by a later "no", as "no")
    from hguard.calibrate.judge import declines, judge_yesno

    q = "Does aspirin reduce the risk of stroke?"
    for truth in ("yes", "no"):
        assert judge_yesno(answer, truth, question=q).label == "refusal"
    assert declines(answer, q) is not None
    assert declines(answer, "What does aspirin reduce?") is None or answer.startswith("It is unclear")


def test_a_side_taken_before_the_hedge_and_document_wordings_are_read_as_before():
    from hguard.calibrate.judge import declines, judge_yesno

    q = "Does aspirin reduce the risk of stroke?"
    assert judge_yesno("Yes, although the evidence is mixed.", "yes", question=q).label == "correct"
    assert judge_yesno("Aspirin reduces the risk of stroke.", "yes", question=q).label == "correct"
    assert judge_yesno("No.", "yes", question=q).label == "hallucinated"
    # a document that does not say, in a guideline's or a study's words, and a prefix said twice
    assert declines("The guideline does not specify a dose.", "What is the dose of enoxaparin?")
    assert declines("The study does not mention the dose.", "What dose was used?")
    assert declines("The answer is: The answer is not provided.", "What is the dose?")
    # to a yes/no question about the study, its wording is a plain no
    assert declines("The study does not show a reduced risk of stroke.", "Does the study show a reduced risk of stroke?") is None


_SOMATOSTATIN = "Does somatostatin confer insulinostatic effects of neuromedin u in the rat pancreas?"


@pytest.mark.parametrize(
    "reply, wording",
    [
        (_SOMATOSTATIN, "asks a question instead of answering"),  # the question itself
        ("Identification of racial disparities in breast cancer mortality: does scale matter?",
         "asks a question instead of answering"),  # a paper's title
        ("The question is asking whether somatostatin confers these effects.", "restates the question without answering it"),
        ("The study aimed to investigate whether somatostatin confers insulinostatic effects.",
         "restates the question without answering it"),
        ("The answer to this question is:", "a lead-in with no answer after it"),
        ("The answer is not possible to determine.", "not possible to determine"),
        ("It is not possible to determine from the study.", "not possible to determine"),
    ],
)
def test_a_reply_to_a_yes_no_question_that_says_neither_declines(reply: str, wording: str) -> None:
    """A trial's PubMed answers: each of these read as a plain "yes" (or "no"), so was labelled right and scored,
    and the one that only repeated a paper's title got the run's lowest risk and was accepted."""
    assert declines(reply, _SOMATOSTATIN) == wording
    for truth in ("yes", "no"):
        assert judge_yesno(reply, truth, _SOMATOSTATIN).label == "refusal"


@pytest.mark.parametrize(
    "reply, said",
    [
        ("Somatostatin confers insulinostatic effects of neuromedin U in the rat pancreas.", "yes"),  # a plain statement
        ("The study aimed to investigate this and found that somatostatin does confer them.", "yes"),  # with its result
        ("Does it? Yes, it does.", "yes"),
        ("Does it confer them? The study found that it does.", "yes"),
        ("It does not.", "no"),
    ],
)
def test_a_reply_that_answers_after_restating_or_asking_still_takes_its_side(reply: str, said: str) -> None:
    assert declines(reply, _SOMATOSTATIN) is None
    assert judge_yesno(reply, said, _SOMATOSTATIN).label == "correct"


def test_a_question_said_back_to_a_titled_question_is_no_yes() -> None:
    """A medical team's trial: PubMedQA writes 299 of its 1,000 questions after the article's title ("Title: can
    ...?"); the reply that only says the question back ("Question: Can ...?") was labelled a right "yes"."""
    question = ("Processing fluency effects: can the content and presentation of participant information sheets "
                "influence recruitment and participation for an antenatal intervention?")
    reply = ("Question: Can the content and presentation of participant information sheets influence recruitment "
             "and participation for an antenatal intervention?")
    for said in ("yes", "no"):
        judged = judge_yesno(reply, said, question)
        assert judged.label == "refusal" and "asks a question instead of answering" in judged.reason, judged
    # a review: 62 of PubMedQA's titled questions are a noun phrase ("Title: a new risk factor?"); and the question's
    # shape is left as it was for what reads it outside the yes/no judge (relevance features the mergers were fitted on)
    noun = "Aripiprazole: a new risk factor for pathological gambling?"
    assert judge_yesno("Question: Aripiprazole: a new risk factor for pathological gambling?", "yes", noun).label == "refusal"
    assert judge_yesno("Yes, it is a new risk factor.", "yes", noun).label == "correct"
    from hguard._text import asks_yes_no

    assert not asks_yes_no(question) and not asks_yes_no(noun)
    # a review: the guard reads a reply through declines() too: a hedge to a titled yes/no question declines there
    assert declines("Maybe, it depends on the sheet.", question) == "maybe"
    for subject in ("Re: Re: can I take ibuprofen with this?", "When flying: can I bring a power bank?",
                    "Quick check: is a ratio of 3: 1 safe for this mix?", "Dosage: is 5 mg/kg (note: for adults) safe?"):
        assert declines("Maybe.", subject) == "maybe", subject  # a subject line, a condition, a colon in the clause
    # ... but the clause may be text to work on: its reply is itself a question (a third review)
    for task, reply in (("Translate into French: Is it raining in Paris?", "Pleut-il à Paris ?"),
                        ("Rewrite this more politely: can you send me the report now?", "Could you send me the report?"),
                        ("Rewrite this more politely: can you send me the report now?",
                         "Perhaps you could send me the report when you have a moment?")):
        assert declines(reply, task) is None, (task, reply)
    # a title that asks who or what is no yes/no question (a fourth review)
    assert declines("Maybe.", "Who said: is it over?") is None
    assert declines("Possibly Freddie Mercury.", "Who wrote the line: is this the real life?") is None
    # a document's plain no to a titled question takes a side (a fourth review: it abstained)
    assert declines("The clause does not discuss dispute resolution.",
                    "Contract review: does the clause discuss dispute resolution?") is None


def test_a_name_that_spells_a_contraction_does_not_make_a_yes_no_question() -> None:
    from hguard._text import asks_yes_no

    # "Don" read as "don('t)": the question was taken for a yes/no one, and its answer for a question
    assert not asks_yes_no("Don Barry Mason was the founder of the PSI, which other member died in 2016?")
    assert not asks_yes_no("Won Bin starred in which film?")
    assert asks_yes_no("Don't you pay?") and asks_yes_no("Don\u2019t you pay?") and asks_yes_no("Isn't it free?")
    assert judge("Don Barry Mason founded it with Dennis Howard Marks.", ["Dennis Howard Marks"],
                 question="Don Barry Mason was the founder of the PSI, which other member died in 2016?").label == "correct"


def test_unstated_numbers_names_a_value_currency_or_percentage_the_passage_lacks():
    """A finance team's trial: grounding matched digits alone, so a wrong currency, a wrong date, a percentage for an
    amount and an absent number were all well grounded."""
    from hguard.calibrate.judge import stated_numbers, unstated_numbers

    passage = ("The monthly fee is $12, waived at or above $1,500. The daily wire limit is $25,000. The overdraft fee "
               "is 5% of the amount, capped at EUR 1.2 million per year. Rate changes take effect on 2024-03-03.")
    wrong = {
        "The daily wire limit is €25,000.": ["25000 euro"],
        "The daily ATM withdrawal limit is 25,000 EUR.": ["25000 euro"],
        "They take effect on 2024-03-04.": ["date 2024-03-04"],  # one figure: its day 4 is no count of its own
        "The fee is 12% of the amount.": ["12 percent"],
        "The cap is $1.2 million.": ["1200000 dollar"],
        "2 wires cost $70.": ["2", "70 dollar"],
    }
    for answer, missing in wrong.items():
        assert unstated_numbers(answer, passage, "What is it?") == missing, answer
    for right in ("The fee is $12.", "It takes effect on March 3, 2024.", "The cap is 1,200,000 euros per year.",
                  "It is five percent.", "The limit is 25000 dollars.", "It is waived from $1500."):
        assert unstated_numbers(right, passage, "What is it?") == [], right
    assert unstated_numbers("Two transfers cost $70.", passage, "What do 2 transfers cost?") == ["70 dollar"]
    # a check's over-reach and gaps: right answers held (a code on its number, an ordinal, list numbering, a citation,
    # a stray number word), wrong ones passed (".5%" read as 5%, ordinals unread, "$9.5m", an unlisted currency)
    for answer, context, missing in [
        ("The rate is 5%.", "The rate is .5%.", ["5 percent"]),
        ("Payment is due on the 5th of the month.", "It is due on the 1st of each month.", ["5"]),
        ("The budget is $9.5m.", "The budget is $2.5 million.", ["9500000 dollar"]),
        ("The fee is 50 EUR.", "The fee is 50 CHF.", ["50 euro"]),
        ("It is on 3 March.", "It is on March 3rd.", []),
        ("It costs $1,500.", "It costs USD1,500.", []),
        ("1. The fee is $5.\n2. It is due on Monday.", "The fee is $5, due Monday.", []),
        ("The fee is $5 [1].", "The fee is $5.", []),
        ("Not six context for one year.", "A year of context.", []),
    ("One percent of one mile.", "Half a percent of a mile.", []),
        ("The fee is $5.", "The fee is five dollars.", []),
    ]:
        assert unstated_numbers(answer, context, "What is it?") == missing, (answer, context)
    assert stated_numbers("EUR 1.2 million, 5 percent, on 2024-03-03") == [
        ("1200000", "euro"), ("5", "percent"), ("2024", None), ("3", None), ("3", None)]


@pytest.mark.parametrize("answer, context, missing", [
    # a pharmacy team's trial: a unit written on its number was never read, so a tenfold dose passed and the
    # faithful one was held; a decimal comma was read as digit grouping ("0,125" as 125) or split ("2,5" as 2 and 5)
    ("Adults take 5000mg three times a day.", "Adults: 500mg three times a day.", ["5000 mg"]),
    ("Adults take 500 mg three times a day.", "Adults: 500mg three times a day.", []),
    ("Adults take 250mg 4x daily.", "Adults: 250 mg three times a day.", ["4 times/day"]),
    ("The dose is 125 mg once daily.", "The maintenance dose is 0,125 mg once daily.", ["125 mg"]),
    ("The dose is 0.125 mg once daily.", "The maintenance dose is 0,125 mg once daily.", []),
    ("The dose is 5 mg.", "The starting dose is 2,5 mg once daily.", ["5 mg"]),
    ("The dose is 2.5 mg.", "The starting dose is 2,5 mg once daily.", []),
    ("It costs 1000.50 EUR.", "It costs 1.000,50 EUR.", []),
    ("It costs $1,250.", "It costs 1,250 dollars.", []),  # three digits after the comma: still grouping
    # an insurer's trial: thousands grouped by two or more dots were no number at all, so a figure 1,000 times the
    # passage's passed ("2.500.000 euro" from "2.500 euro"); one group stays a decimal
    ("La franchigia è di 2.500.000 euro.", "La franchigia è di 2.500 euro.", ["2500000 euro"]),
    ("Sie beträgt 2.000.000 €.", "Die Versicherungssumme beträgt 5.000.000 €.", ["2000000 euro"]),
    ("It is EUR 5,000,000.", "Die Versicherungssumme beträgt 5.000.000 €.", []),
    ("It is 5 million euros.", "Die Versicherungssumme beträgt 5.000.000 €.", []),
    ("It is 1234567.89 EUR.", "Es sind 1.234.567,89 EUR.", []),
    # a reviewer's trial: a version or an address with one part changed was no number at all, and passed
    ("Install agent 1.2.4.", "Install version 1.2.3 of the agent.", ["1.2.4"]),
    ("Install agent 1.2.3.", "Install version 1.2.3 of the agent.", []),
    ("Set the gateway to 10.0.0.2.", "The gateway is 10.0.0.1.", ["10.0.0.2"]),
    ("Set the gateway to 10.0.0.1.", "The gateway is 10.0.0.1.", []),
    # another unit of measure is another amount; the same amount in another unit is not
    ("Take 500 ml.", "Take 500 mg.", ["500 ml"]),
    ("Take 3 capsules.", "Take 3 tablets.", ["3 capsule"]),
    ("Take 2.5 g.", "Take 250mg.", ["2.5 g"]),
    ("Take 4000 mg.", "Take 4 g.", []),
    ("See a doctor within 1 day.", "See a doctor within 24 hours.", []),
    ("Give it every 6 h for 14days.", "Give it every 6 hours for 14 days.", []),
    ("Give 20mg/kg.", "Give 20 mg/kg.", []),
    # the passage's number words: "twice", "once", "half"
    ("Adults take 15 ml 2 times a day.", "Adults take 15 ml twice daily.", []),
    ("Take 0.5 tablet.", "Take half a tablet.", []),
    # a letter is no unit away from its number
    ("H. G. Wells wrote it in 1895.", "H. G. Wells wrote it in 1895.", []),
])
def test_unstated_numbers_reads_units_of_measure_and_decimal_commas(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context, "What is the dose?") == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a QA engineer's trial over five fields: wrong numbers it let through ...
    ("Between 2°F and 8°F.", "Store between 2°C and 8°C.", ["2 fahrenheit", "8 fahrenheit"]),
    ("10 ml of insulin.", "Give 10 units of insulin.", ["10 ml"]),
    ("For a 70 lb adult.", "Dose for a 70 kg adult.", ["70 lb"]),
    ("10 mg every 8 hours.", "The dose is 10 mg/kg, given every 8 hours.", ["10 mg"]),
    ("Give 2 g IV.", "Give 2 to 4 mg IV.", ["2 g"]),  # a range's first end has its unit too
    ("Take 5 mg.", "Take 5-10 ml.", ["5 mg"]),
    ("$2.5B in 2023.", "Revenue rose to $2.5M in 2023.", ["2500000000 dollar"]),
    ("A 25% cut.", "The rate was cut by 25 basis points.", ["25 percent"]),
    ("The fee is £2.", "The fee is 2 per cent of the balance.", ["2 pound"]),
    ("US$5 billion.", "HK$5 billion were raised.", ["5000000000 dollar"]),
    ("12.5% in Q4 2024.", "Margins were 12.5% in Q3 2024.", ["4 quarter"]),
    ("On 16.03.2025.", "Dividends are paid on 15.03.2025.", ["date 16.03.2025"]),
    ("£30,000 per month.", "The salary is £30,000 per annum.", ["30000 pound/month"]),
    ("3-5 hours.", "Delivery takes 3-5 business days.", ["3 hour", "5 hour"]),
    ("Up to 24 kg.", "A trailer carries up to 24 tonnes.", ["24 kg"]),
    ("It opens at 3pm.", "It opens at 2pm.", ["15:00"]),
    # a time of day states a time only: it was stated by any bare number of its hour ("12:00" by "12 months")
    ("The shop opens at 12:00.", "Returns are accepted within 12 months.", ["12:00"]),
    ("Check-out is at 12 pm.", "Check-out is at 11 am; refunds within 12 days.", ["12:00"]),
    ("It opens at 9:30.", "It opens at 9:45. The fee is 30 dollars.", ["9:30"]),
    # ... and faithful rewordings it held
    ("On the 3rd business day.", "Payments are due on the third business day.", []),
    ("Within 1 week.", "Claims must be reported within a week.", []),
    ("12 months.", "The notice period is a dozen months.", []),
    ("$100 million.", "Cash reserves of a hundred million dollars.", []),
    ("1.5 tablets every morning.", "Take one and a half tablets each morning.", []),
    ("½ tablet at bedtime.", "Take half a tablet at bedtime.", []),
    ("1½ tablets every morning.", "Take 1.5 tablets each morning.", []),
    ("$2.5 billion.", "Net income was $2.5B.", []),
    ("$2.5 million.", "The deal is valued at $2.5MM.", []),
    ("1.2 million customers.", "The company has 1.2M customers.", []),
    ("120 cm by 80 cm by 150 cm.", "Pallet size: 120 x 80 x 150 cm.", []),  # "x" between numbers multiplies
    ("10,000 contracts.", "Trading volume hit 10\u202f000 contracts.", []),
    ("Clauses 1 and 2 and 3.", "Clauses 1,2 and 3 do not apply.", []),  # a list, not the decimal 1.2
    ("Version 2.1.", "The engine runs v2.1.", []),
    ("8:30 a.m. to 5 p.m.", "Open 8.30am to 5pm.", []),
    ("It opens at 14:00.", "It opens at 2 pm.", []),
    ("It opens at 12:00.", "It opens at 12 noon.", []),
    ("Check-out is at 12 pm.", "Check-out is at noon.", []),
    ("Calls after 00:00 are free.", "Calls after midnight are free.", []),
    ("It opens at 9.", "It opens at 9:00.", []),  # a bare number is stated by a time, as before
    ("Use a 1:10,000 solution.", "Use a 1:10,000 solution.", []),  # a ratio, no time
    ("It costs $2.50 per kg.", "It costs $2.50/kg.", []),
    ("It uses 35MM film.", "It uses 35mm film.", []),  # an integer with no currency: no scale
    # rates written without "per"; a rate the passage states as its amount alone; fractions; dimensions; "units"
    ("3 days a week.", "Remote work is allowed 3 days per week.", []),
    ("£30k a year.", "The starting salary is £30,000 per annum.", []),
    ("One tablet, 2x daily.", "Take one tablet twice daily.", []),
    ("56 hrs per week.", "Weekly driving is capped at 56 hours.", []),
    ("0.25 mg daily.", "The usual dose is 250 micrograms once daily.", []),
    ("10 mg once daily.", "The dose is 10 mg/kg once daily.", ["10 mg"]),  # the passage's "per kg" dropped
    ("1/2 a tablet at night.", "Take half a tablet at bedtime.", []),
    ("120 x 80 cm.", "Pallet size: 120x80 cm.", []),
    ("10 IU before breakfast.", "Give 10 units of insulin before breakfast.", []),
    ("40 m long.", "The container is 40 ft long.", ["40 metre"]),
    ("It is waived from $1500.", "It is waived at $1,500. The daily limit is $25,000.", []),  # not "per day"
    # a rate's periods are compared; a period said elsewhere is not missing; "a year earlier" is no rate
    ("Infuse 18 units/kg/minute.", "Infuse 18 units/kg/hour.", ["18 iu/kg/minute"]),
    ("The card has a $95 monthly fee.", "The card has a $95 annual fee.", ["95 dollar/month"]),
    ("An annual fee of $95.", "The fee is $95 per year.", []),
    ("Up from 12.9% the year before.", "It was 12.9% a year earlier.", []),
    # the first version of these rules read month names, ordinal words and "a day" as numbers wherever they stood:
    # such a number, with no unit, matched any figure of the answer (a reviewer's trial of this stop's changes)
    ("The deadline is 3 March.", "The deadline is 15 March.", ["3"]),
    ("The office closes on December 12.", "The office closes on December 24.", ["12"]),
    ("It is payable within 10 days.", "The invoice dated 3 October is payable within 30 days.", ["10 day"]),
    ("Mail takes 1 business day.", "First-class mail takes 5 business days.", ["1 day"]),
    ("The account is locked for 3 days.", "On the third failed login the account is locked for 7 days.", ["3 day"]),
    ("Take 1 tablet a day for 1 day.", "Take one tablet a day for 5 days.", ["1 day"]),
    # a whole date is compared whole, in digits or with its month's name and year (a month's name alone is not read)
    ("On 2025-03-15.", "Dividends are paid on 15 March 2025.", []),
    ("On 2025-03-16.", "Dividends are paid on 15 March 2025.", ["date 2025-03-16"]),
    ("Effective April 3, 2024.", "Effective 04.03.2024.", ["date April 3, 2024"]),  # 4 March: a reviewer's trial
    ("Effective 04.03.2025.", "Signed on 4 March 2024; effective 3 April 2025.", ["date 04.03.2025"]),
    ("Payment is due on 03.03.2025.", "Invoice issued 15.01.2025. Payment is due on 3 March 2025.", []),
])
def test_unstated_numbers_reads_how_passages_and_answers_write_numbers(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context, "What is it?") == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a multilingual agency's trial: digits beside the letters of another script were no number ("期限是45天")
    ("期限是45天。", "期限是30天。", ["45"]),
    ("Срок 45дней.", "Срок 30 дней.", ["45"]),
    ("٥٠٠دينار", "٣٠٠ دينار", ["500"]),
    ("料金は４，５００円", "料金は3,500円です", ["4500 yen"]),  # (円 is read as yen since the CJK scale fix)
    ("料金は５００円です。", "料金は４，５００円です。", ["500 yen"]),  # a full-width comma groups digits, as a comma does
    ("期限是30天。", "期限是30天。", []),
    # a date in digits is read whole: day and month swapped, in one order or another
    ("Valid from 04.03.2024.", "Valid from 03.04.2024.", ["date 04.03.2024"]),
    ("On 2024-04-03.", "On 2024-03-04.", ["date 2024-04-03"]),
    ("On 04/03/2024.", "On 03/04/2024.", ["date 04/03/2024"]),
    ("From 04.04.2024.", "From 03.04.2024.", ["date 04.04.2024"]),
    ("On 2024-03-04.", "On 04.03.2024.", []),
    ("On 2024-03-04.", "On 03/04/2024.", []),  # may be 4 March: the slash does not say which order it writes
    # currencies of Europe and beyond, and the Arabic percent sign
    ("It costs 30 dollars.", "It costs 30 zł.", ["30 dollar"]),
    ("It costs 30 dollars.", "It costs 30 BGN.", ["30 dollar"]),
    ("It costs 30 €.", "It costs 30zł.", ["30 euro"]),
    ("It costs 30 lira.", "It costs 30 TRY.", []),
    ("٣٠٪", "The fee is 30 EUR.", ["30 percent"]),
    ("The fee is 500 Kč.", "Poplatek činí 500 Kč.", []),
    ("Rub it in twice daily.", "Rub it in 2 times a day.", []),  # "rub" is a verb; RUB a currency in capitals
    ("It costs 200 SEK.", "Det kostar 200 kr.", []),  # "kr" is any krona
    ("It costs 200 NOK.", "It costs 200 SEK.", ["200 nok"]),  # ... but one krona is not another
    ("It costs 200 EUR.", "Kr 200 per måned.", ["200 euro"]),  # "Kr" opening the text, before its number
    ("It costs 500 euros.", "Стоимость 500 руб.", ["500 euro"]),
    ("It costs 200元.", "价格是100、200、300元。", []),  # the ideographic comma lists amounts
    ("It costs 500元.", "价格是100、200、300元。", ["500 cny"]),  # (元 is read as yuan)
    # a number written in words and digits, "thirty (30) days": its unit is the digits' (the word was read bare,
    # and a bare number matched any unit; a law firm's trial)
    ("30 months.", "Upon thirty (30) days' written notice.", ["30 month"]),
    ("Within 10 months.", "Within ten (10) business days.", ["10 month"]),
    ("30 days.", "Upon thirty (30) days' written notice.", []),
    # how other scripts and documents write numbers: a space or the Arabic signs grouping and marking decimals, an
    # invisible joiner inside a number
    ("25\u00a0000 €.", "It costs 25\u202f000 euros.", []),
    # a plain space groups digits before a currency, not before a unit of measure: one 500 mg tablet is not 1500 mg
    # (two reviewers' trials of these rules)
    ("Adults take 1500 mg every 6 hours.", "Adults: take 1 500 mg tablet every 6 hours.", ["1500 mg"]),
    ("Take one 500 mg tablet every 6 hours.", "Adults: take 1 500 mg tablet every 6 hours.", []),
    ("The fee is 25 euros.", "The fee is 25 000 euros.", ["25 euro"]),
    ("The fee is 25,000 euros.", "The fee is 25 000 euros.", []),
    ("The fine is 500 kr.", "Böter: 1 500 kr.", ["500 krona"]),
    # the days of a range or list before a month and year are dates; a day and month without a year, with that
    # year in the passage, are compared by their numbers (whole-date matching held these)
    ("The fair began on 1 March 2024.", "The fair ran 1-3 March 2024.", []),
    ("The fair began on 4 March 2024.", "The fair ran 1-3 March 2024.", ["date 4 March 2024"]),
    ("Visits are possible on 2 May 2024.", "Visits: 2, 9 and 16 May 2024.", []),
    ("The fair began on March 1, 2024.", "The fair ran March 1-3, 2024.", []),
    ("It began on 28 February 2024.", "It ran from 28 February to 3 March 2024.", []),
    ("It opened on 5 April 2024.", "Published 1 March 2024. The office opened on 5 April.", []),
    ("The deadline is 30 June 2024.", "Form filed 2 January 2024; the deadline is 30 June of the same year.", []),
    # a month and year without a day are compared whole: the year alone held "March 2019" from "April 2019"
    ("It took effect in March 2019.", "The policy took effect in April 2019.", ["date March 2019"]),
    ("It took effect in March of 2019.", "The policy took effect in April 2019.", ["date March of 2019"]),
    ("From March to June 2019.", "It runs April through June 2019.", ["date March to June 2019"]),
    ("It ran in April 2019.", "It ran from March to May 2019.", []),  # a range's months between its ends
    ("From March to June 2019.", "It runs March through June 2019.", []),
    # a passage that names no month of that year is compared by the year (a reviewer's trial: these were held)
    ("It took effect in January 2019.", "The policy took effect in 2019.", []),
    ("It took effect in March 2019.", "The 2019 policy took effect in March.", []),
    ("It took effect in March 2019.", "Die Regel gilt seit März 2019.", []),
    ("It took effect in March 2019.", "Effective: 2019-03.", []),
    ("In April 2500 patients enrolled.", "2,500 patients enrolled in April.", []),  # 2500 is no year
    ("They march 2000 strong.", "2000 marched in April 2019.", []),  # "march" the verb
    ("It took effect in April 2019.", "The policy took effect on 1 April 2019.", []),
    ("It took effect in April 2019.", "The policy took effect on 2019-04-01.", []),
    ("Audits run in April 2024.", "Audits run in March and April 2024.", []),
    ("Audits run in April and May 2024.", "Audits run in March and April 2024.", ["date April and May 2024"]),
    ("It began in February 2024.", "It ran from 28 February to 3 March 2024.", []),
    ("٣٠٫٥ يورو", "The fee is 30.5 EUR.", []),
    ("١٬٠٠٠ units", "1,000 units", []),
    ("1000 units.", "Give 1‍000 units.", []),
    # a red team's trial: keycap digits show as "30" ("3\ufe0f\u20e30\ufe0f\u20e3"), a dingbat ten as 10; they read
    # as 3 and 0 apart, or not at all
    ("Refunds within 3\ufe0f\u20e30\ufe0f\u20e3 days.", "Refunds within 3 days.", ["30 day"]),
    ("Refunds within 1\u20e32\u20e30\u20e3 days.", "Refunds within 3 days.", ["120 day"]),
    ("Refunds within 3\u20e3 days.", "Refunds within 3 days.", []),
    ("Refunds within \u2789 days.", "Refunds within 3 days.", ["10 day"]),
    ("Refunds within \u2789 days.", "Refunds within 10 days.", []),
    ("Refunds within \U0001f51f days.", "Refunds within 3 days.", ["10 day"]),  # the keycap ten emoji
    # two user trials: a grouped amount with a decimal comma before a sentence's period or a comma was read as
    # 1.2 and 50 ("€ 1.200,50."), so "€50" and "€1.20" passed
    ("The exit fee is €50.", "The exit fee is € 1.200,50.", ["50 euro"]),
    ("The exit fee is €1.20.", "The exit fee is € 1.200,50.", ["1.2 euro"]),
    ("The exit fee is €1,200.50.", "The exit fee is € 1.200,50.", []),
    ("The exit fee is €1,200.50.", "The exit fee is € 1.200,50, payable on exit.", []),
    ("The dose is 125 mg.", "The dose is 0,125, twice daily, in mg.", ["125 mg"]),
    # ... and a currency or unit it did not know matched the passage's number in any unit: "35 cents" and "35 pesos"
    # from "$35" were accepted end to end in a RAG chain
    ("The fee is 35 cents.", "The late payment fee is $35.", ["35 cent"]),
    ("The fee is 35¢.", "The late payment fee is $35.", ["35 cent"]),
    ("The fee is 50 pence.", "The late payment fee is £50.", ["50 pence"]),
    ("The fee is 35 pesos.", "The late payment fee is $35.", ["35 peso"]),
    ("The fee is R$35.", "The late payment fee is $35.", ["35 brl"]),
    ("The fee is MX$35.", "The late payment fee is $35.", ["35 mxn"]),
    ("The fee is 35 francs.", "The late payment fee is $35.", ["35 franc"]),
    ("The fee is Rs 35.", "The late payment fee is $35.", ["35 rupee"]),
    ("The fee is 35 BTC.", "The late payment fee is $35.", ["35 btc"]),
    ("The APR is 19.9‰.", "The APR is 19.9%.", ["19.9 permille"]),
    ("The notice period is 3 decades.", "The notice period is 3 months.", ["3 decade"]),
    ("The notice period is 90 mo.", "The notice period is 90 days.", ["90 month"]),
    ("The fee is 35 pesos.", "The fee is MX$35.", []),  # a peso is any peso, as "kr" is any krona
    ("The fee is MXN 35.", "The fee is 35 pesos.", []),
    ("The fee is 35 CHF.", "The fee is 35 francs.", []),
    ("The fee is 35 cents.", "The fee is 35¢.", []),
    ("The fee is Rs. 35.", "The fee is ₹35.", []),
    ("It lasts 30 years.", "It lasts 3 decades.", []),
    ("It lasts 90 months.", "It lasts 90 mos.", []),
    ("The fee is 2‰.", "The fee is 2 per mille.", []),
    ("It is $0.67 per mile.", "Mileage is reimbursed at 67 cents per mile.", []),  # the same amount
    ("It is 67 pence.", "The shares closed at £0.67.", []),
    ("It is 67¢/mile.", "Mileage is reimbursed at 67 cents per mile.", []),
    ("It is $67 per mile.", "Mileage is reimbursed at 67 cents per mile.", ["67 dollar/mile"]),
    ("It is 67 cents per mile.", "Mileage is reimbursed at $0.67 per mile.", []),
    ("It matches 50 cents on the dollar.", "The company matches 50% of contributions.", []),
    # a minus written as an en dash (a word processor's autocorrect) or in accounting parentheses was lost, so the
    # positive figure passed
    ("Fund F returned 3.2% in 2024.", "Fund F returned \u20133.2% in 2024.", ["3.2 percent"]),
    ("Fund F returned -3.2% in 2024.", "Fund F returned \u20133.2% in 2024.", []),
    ("Fund F returned 3.2% in 2024.", "Fund F returned (3.2%) in 2024.", ["3.2 percent"]),
    ("Net income was $1,250.", "Net income was $(1,250) in 2024.", ["1250 dollar"]),
    ("Net income was $1,250.", "Net income was ($1,250) in 2024.", ["1250 dollar"]),
    ("Net income was -$1,250.", "Net income was ($1,250) in 2024.", []),
    ("It takes 2 to 4 days.", "It takes 2\u20134 days.", []),  # a range, not minus 4
    # parentheses around a number that is no amount of money, where an amount in them would be negative ("is"):
    # (a review: the case these replace, "sent by mail (30 days)", could not fail on the rule)
    ("Refunds take 30 days.", "The refund period is (30) days.", []),
    # (a second review: "The refund period is (30 days)." could not fail either, the parentheses never read as an amount)
    ("The figures are for 2023.", "Revenue, USD (2023) was 5 million.", []),  # a year after a currency code
    ("The deposit is $2,150.", "The deposit is one month's rent ($2,150).", []),  # an amount restated
    ("8% of patients had nausea.", "Nausea occurred in 12 patients (8%).", []),
    # a rate's period written "p.a.", "APR" or "%/year" was no period, so a monthly or weekly rate passed
    ("Interest is 4% per month.", "The loan carries interest of 4% p.a.", ["4 percent/month"]),
    ("Interest is 4% a month.", "The loan carries interest of 4% p.a.", ["4 percent/month"]),
    ("Interest is 4% monthly.", "The loan carries interest of 4% p.a.", ["4 percent/month"]),
    ("Interest is 4% per week.", "The loan carries interest of 4% p.a.", ["4 percent/week"]),
    ("Interest is 4%/month.", "The loan carries interest of 4% a year.", ["4 percent/month"]),
    ("Interest is 4% per month.", "The loan carries interest of 4%/year.", ["4 percent/month"]),
    ("Interest is 4% per month.", "The loan carries interest of 4% APR.", ["4 percent/month"]),
    ("Interest is 4% p.m.", "The loan carries interest of 4% a year.", ["4 percent/month"]),
    ("Interest is 4% a year.", "The loan carries interest of 4% p.a.", []),
    ("Interest is 4% per annum.", "The loan carries interest of 4%/year.", []),
    ("Interest is 4%.", "The loan carries interest of 4% APR.", []),
    ("The salary is $50,000 p.a.", "The salary is $50,000 a year.", []),
    # a decimal comma read as one only before an English unit: "3,5 Prozent" was 3 and 5, held by a passage's 3 and 5
    ("Die Frist beträgt 2,5 Monate.", "Die Frist beträgt 2 Monate, die Probezeit 5 Monate.", ["2.5"]),
    ("Der Zinssatz beträgt 3,5 Prozent.", "Der Zinssatz beträgt 3 Prozent. Die Gebühr beträgt 5 Euro.", ["3.5 percent"]),
    ("Le taux est de 2,5 pour cent.", "Le taux est de 2 %. Les frais sont de 5 euros.", ["2.5 percent"]),
    ("La tasa es del 2,5 por ciento.", "La tasa es del 2 %. La comisión es de 5 euros.", ["2.5 percent"]),
    ("Il tasso è del 2,5 per cento.", "Il tasso è del 2 %. La commissione è di 5 euro.", ["2.5 percent"]),
    ("La dosis máxima es 1,5 gramos.", "La dosis máxima es 1 gramo; el envase contiene 5 sobres.", ["1.5"]),
    ("Der Zinssatz beträgt 3,5 Prozent.", "The rate is 3.5%.", []),
    ("It costs 2.50.", "Es kostet 2,50 Euro.", []),
    # (a review: at a sentence's end "2,50." may be a list, "pages 3,5.": read as 2 and 50, the right figure is held)
    ("It costs 2.50.", "Es kostet 2,50.", ["2.5"]),
    ("Clauses 1 or 2.", "Clauses 1,2 or 3 apply.", []),  # a list goes on after it: not a decimal
    ("Items 4 and 5.", "Items 4,5, 6 apply.", []),
    ("Artikel 1 und 2.", "Artikel 1,2 und 3 gelten.", []),
    # Indian grouping by lakh was read as two numbers: "\u20b912" and "\u20b934,567" passed, "\u20b91,234,567" was held
    ("The loan is \u20b912.", "The loan amount is \u20b912,34,567.", ["12 rupee"]),
    ("The loan is \u20b934,567.", "The loan amount is \u20b912,34,567.", ["34567 rupee"]),
    ("The loan is \u20b91,234,567.", "The loan amount is \u20b912,34,567.", []),
    ("The loan is \u20b912.34567 lakh.", "The loan amount is \u20b912,34,567.", []),
    ("The loan is Rs 2 crore.", "The loan amount is \u20b92,00,00,000.", []),
    ("The loan is Rs 3 crore.", "The loan amount is \u20b92,00,00,000.", ["30000000 rupee"]),
    # a space-grouped amount with a decimal comma ("1 200,50 \u20ac") was held against the same amount
    ("Es de 1.200,50 \u20ac.", "El reembolso es de 1 200,50 \u20ac.", []),
    ("Es de 1.250,50 \u20ac.", "El reembolso es de 1 200,50 \u20ac.", ["1250.5 euro"]),
])
def test_unstated_numbers_reads_other_scripts_dates_and_currencies(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context, "What is it?") == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a review: accounting parentheses on a prefixed or coded currency, or with the unit after them, were not read
    # (the positive figure passed)
    ("Net income was US$1,250.", "Net income was US$(1,250).", ["1250 dollar"]),
    ("Net income was HK$1,250.", "Net income was HK$(1,250).", ["1250 hkd"]),
    ("Net income was 1,250 EUR.", "Net income was EUR (1,250).", ["1250 euro"]),
    ("Net income was Rs 1,250.", "Net income was Rs (1,250).", ["1250 rupee"]),
    ("Net income was $1,250.", "Net income was $ (1,250).", ["1250 dollar"]),
    ("Net income was 1,250 dollars.", "Net income: (1,250) dollars.", ["1250 dollar"]),
    ("Net income was $1.2 million.", "Net income was $(1.2 million).", ["1200000 dollar"]),
    ("The change was 3.2%.", "The change was (3.2)%.", ["3.2 percent"]),
    # a second review: not a year nor a heading's parentheses ("USD (2022): 65,000" read -2022 USD)
    ("GDP per capita was USD 65,000 in 2022.", "GDP per capita, USD (2022): 65,000.", []),
    ("In 2023 revenue was EUR 5 million.", "Revenue in EUR (2023): 5 million.", []),
    ("Net income was USD 1,250.", "Net income, USD (1,250): see note 4.", []),
    ("Net income was -$1,250.", "Net income was US$(1,250).", []),
    ("The fee is $50.", "The fee is fifty (50) dollars.", []),  # one amount written twice, not a negative one
    # ... and made a share or an amount restated in parentheses negative: the right figure was held
    ("8% of patients had nausea.", "| Nausea | 12 | (8%) |", []),
    ("8% of patients had nausea.", "Nausea\t12\t(8%)", []),
    ("8% of patients had nausea.", "Nausea: (8%) of patients", []),
    ("8% of patients had nausea.", "Nausea was reported by (8%) of patients.", []),
    ("The rent is $2,150.", "The deposit is equal to ($2,150).", []),
    ("Net loss was $1,250.", "Net loss was ($1,250).", []),  # the sign is said by "loss"
    ("The company posted a loss of $1,250.", "The company posted a loss of ($1,250).", []),
    ("Net loss was $1,250.", "Net loss: ($1,250)", []),
    ("Net loss was 1,250 dollars.", "Net loss was (1,250) dollars.", []),
    # a second review: only where "loss" is the figure's own noun ("loss" anywhere in the clause let these pass)
    ("Operating income was $1,250.", "Operating income (loss) was ($1,250).", ["1250 dollar"]),
    ("Profit for the year was $1,250.", "Profit/(loss) for the year: $(1,250)", ["1250 dollar"]),
    ("Net income was $1,250.", "Despite the loss of a key client, net income was ($1,250).", ["1250 dollar"]),
    ("The fund returned 3.2%.", "Despite losses elsewhere, the fund returned (3.2%).", ["3.2 percent"]),
    # a third review: "loss" before the currency too ("Net loss was $(1,250)" read -1,250: the right figure was held
    # and a flipped "-$1,250" passed, held before this session)
    ("Net loss was $1,250.", "Net loss was $(1,250).", []),
    ("The net loss was -$1,250.", "Net loss was $(1,250).", ["-1250 dollar"]),
    ("The net loss was -$1,250.", "Net loss was USD (1,250).", ["-1250 dollar"]),
    ("The net loss was USD 1,250.", "Net loss: USD (1,250)", []),
    ("The deficit was \u20ac3 million.", "Deficit: \u20ac(3 million)", []),
    ("Operating loss was -$1,250.", "Operating loss: $(1,250)", ["-1250 dollar"]),
    # ... and a year or a heading's parentheses are no amount only after a code written apart ("USD (2022)"), not
    # on a sign written on them ("$(2020)" read as the year, so "$2020" passed)
    ("Net result was $2020.", "Net result: $(2020)", ["2020 dollar"]),
    ("Net result was -$2020.", "Net result: $(2020)", []),
    ("Net income was $1,250.", "Net income: US$(1,250): restated", ["1250 dollar"]),
    ("Fund F returned 3.2% in 2024.", "The fund's return was (3.2%) in 2024.", ["3.2 percent"]),
])
def test_accounting_parentheses_are_negative_where_they_write_the_figure(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


_STATEMENT = "| Line item (USD thousands) | FY2024 | FY2023 |\n|---|---|---|\n| Net income | (1,250) | 980 |"


@pytest.mark.parametrize("answer, context, missing", [
    # a finance team's trial: a statement's negative in bare parentheses, in a table's cell or a value of its own, read
    # as positive (only "$(1,250)" was a minus), so the wrong sign "$1,250" passed and the right "-1,250" was held
    ("Net income in FY2024 was $1,250.", _STATEMENT, ["1250 dollar"]),
    ("Net income in FY2024 was -1,250.", _STATEMENT, []),
    ("Net income in FY2024 was -$1,250 thousand.", _STATEMENT, []),
    ("Net income in FY2024 was -$1,250.", _STATEMENT, ["-1250 dollar"]),  # the header's "USD thousands"
    ("Net income in FY2024 was (1,250).", _STATEMENT, []),  # the answer copying the notation reads as the table does
    ("It was $1,250.", "fee,amount\nNet income,(1250)", ["1250 dollar"]),
    ("It was -1,250.", "fee,amount\nNet income,(1250)", []),
    ("It was $1,250.", "Net income\t(1,250)\t980", ["1250 dollar"]),
    ("It was $1,250.", "Cash flow from operations: (1,250)", ["1250 dollar"]),
    ("It was -1,250.", "Cash flow from operations: (1,250)", []),
    ("It was $1,250.", "Cash flow from operations\n(1,250)\n", ["1250 dollar"]),
    ("Other items were 3.", "| Other items | (3) | 5 |", ["3"]),
    ("Net income was 1,250 thousand.", "Net income was (1,250) thousand in 2024.", ["1250000"]),
    # "loss" as the row's label says the sign, as "Net loss: (1,250)" does ("| Net loss | $(1,250) |" read -1,250)
    ("Net loss was $1,250.", "| Net loss | (1,250) |", []),
    ("Net loss was -$1,250.", "| Net loss | (1,250) |", ["-1250 dollar"]),
    ("Net loss was $1,250.", "Net loss,(1250)", []),
    ("Net loss was $1,250.", "| Net loss | $(1,250) |", []),
    # ... and prose parentheses stay as written: a year, a note's number, a list's markers, a count restated
    ("The figures are for 2019.", "| Fiscal year | (2019) |", []),
    ("The bank was founded in 2019.", "The bank, founded (2019) in Paris, grew.", []),
    ("See note 3.", "Revenue was restated, see note (3).", []),
    ("Step 1 is to apply.", "(1) Apply online.\n(2) Wait for approval.", []),
    ("Steps 1, 2 and 3 apply.", "Steps: (1), (2), (3)", []),
    ("1,250 customers joined in 2019.", "In 2019, (1,250) customers joined.", []),
    ("A total of 1,250 units shipped.", "A total of (1,250) units shipped.", []),
    ("The refund period is 30 days.", "The refund period is (30) days.", []),
    # a review: with no financial cue (a currency, a thousands separator, a statement's row label in the row or the
    # header) a bare "(n)" is prose; a list of references or a list's marker never a minus
    ("Section 1.2 covers returns.", "Sections: (1.1), (1.2), (1.3).", []),
    ("Total 1.2 applies.", "Total: (1.1), (1.2) and (1.3).", []),
    ("Subsection 1 applies to tenants.", "Section 5\n\t(1)\tThe tenant shall pay rent.\n\t(2)\tThe landlord shall repair.", []),
    ("Version 2.5 is supported.", "Supported version: (2.5)", []),
    ("Widget quantity is 3.", "Item,Qty\nWidget,(3)", []),
    ("Widget was 3.", "Item,Amount (USD)\nWidget,(3)", ["3"]),  # a currency in the header
    ("Cash was 3.", "Item,Qty\nCash,(3)", ["3"]),  # a statement's label in the row
])
def test_bare_accounting_parentheses_are_negative_in_a_cell_or_a_value_of_its_own(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context, "What was net income in FY2024?") == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a finance team's trial: a minus after the currency sign, as spreadsheets export it, was dropped on both sides,
    # so a sign flip passed either way
    ("The balance is $-1,250.", "| Checking | $1,250 |", ["-1250 dollar"]),
    ("The balance is $1,250.", "| Checking | $-1,250 |", ["1250 dollar"]),
    ("The balance is -$1,250.", "| Checking | $-1,250 |", []),
    ("The balance is $-1,250.", "| Checking | -$1,250 |", []),
    ("It fell \u20ac-3.5 million.", "Change: \u20ac3.5 million", ["-3500000 euro"]),
    ("It changed by \u20ac3.5 million.", "Change: \u20ac-3.5 million", ["3500000 euro"]),
    ("It changed by -3.5 million euros.", "Change: \u20ac-3.5 million", []),
    ("It changed by \u00a340.", "Change: \u00a3\u221240", ["40 pound"]),  # a true minus sign
    ("It changed by \u00a3-40.", "Change: \u00a3 -40", []),
    ("It changed by \u20ac3.5 million.", "Change: \u20ac -3.5 million", ["3500000 euro"]),
    ("Prices range from $5 to $10.", "Prices: $5-$10.", []),  # a range, no minus
])
def test_a_minus_after_the_currency_sign_is_read(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


def test_a_minus_after_the_currency_sign_reads_as_one_before_it():
    from hguard.calibrate.judge import stated_numbers

    assert stated_numbers("Balance: $-1,250") == stated_numbers("Balance: -$1,250") == [("-1250", "dollar")]
    assert stated_numbers("| \u20ac-3.5 million |") == stated_numbers("| -\u20ac3.5 million |") == [("-3500000", "euro")]


@pytest.mark.parametrize("answer, context, missing", [
    # a finance team's trial: a space-grouped amount after its currency sign, "$1 250", read as $1 and a bare 250, so
    # "$250", "$1" and "250%" passed ("1 250 \u20ac", the sign after it, read 1,250)
    ("The wire fee is $250.", "| Wire | $1 250 |", ["250 dollar"]),
    ("The wire fee is $1.", "| Wire | $1 250 |", ["1 dollar"]),
    ("The wire fee is 250%.", "| Wire | $1 250 |", ["250 percent"]),
    ("The wire fee is $1,250.", "| Wire | $1 250 |", []),
    ("The wire fee is \u20ac1,250,000.", "| Wire | \u20ac 1 250 000 |", []),
    ("The wire fee is \u20ac250,000.", "| Wire | \u20ac 1 250 000 |", ["250000 euro"]),
    ("The wire fee is $1,250.50.", "| Wire | $1 250.50 |", []),
    ("The wire fee is $250.", "| Wire | $1\u00a0250 |", ["250 dollar"]),  # a no-break space, as before
    ("The wire fee is \u00a3250.", "| Wire | \u00a31\u2009250 |", ["250 pound"]),  # a thin space, as before
    ("The balance is -$1,250.", "| Checking | $-1 250 |", []),
    ("The balance is $250.", "| Checking | $-1 250 |", ["250 dollar"]),
    # ... and numbers with no currency sign, or in no group's shape, are not glued
    ("In 2019, 250 customers joined.", "In 2019 250 customers joined.", []),
    ("See page 3.", "See page 3 250 for the fee.", []),
    ("The fee is $1 for 2500 items.", "The fee is $1 2500 items.", []),
    # a review: glued only where the groups end the amount (a line's end, a sentence's punctuation, a currency or
    # scale word): a currency amount beside the next number in prose, or in a space-separated table's row, is two
    ("The puzzle costs $20.", "Buy our $20 500-piece puzzle today.", []),
    ("The notebook costs $10.", "A $10 100-page notebook is included.", []),
    ("Members pay $5.", "Members pay $5 365 days a year for locker access.", []),
    ("The total was $5,100.", "A fee of $5 100 times was charged over the year.", ["5100 dollar"]),
    ("The widget costs $12.", "Item Price Qty\nWidget $12 250\nGadget $8 100", []),
    ("The fee is $1,250.", "The wire fee is $1 250.", []),
    ("The fee is $1,250.", "The wire fee is $1 250, charged once.", []),
    ("The fee is $1.25 million.", "The wire fee is $1 250 thousand.", []),
    ("Revenue was €1,250,000.", "Revenue: € 1 250 000\nCosts: € 900 000", []),
    # a second review: a row needed as many fields as its header to be a table's, so a two-word item glued its price
    # to its quantity; glued now only where no number follows in the line and no line above may be a header (three
    # fields or more with no digit), where unsure not glued
    ("The blue widget costs $12.", "Item Price Qty\nBlue widget $12 250\nGadget $8 100", []),
    ("The blue widget costs $12,250.", "Item Price Qty\nBlue widget $12 250\nGadget $8 100", ["12250 dollar"]),
    ("The widget costs $12.", "Item Price Stock\n\nWidget $12 250", []),
    ("The fee is $1.", "Fee: $1 250 7", []),
    ("The fee is $1,250.", "Fee: $1 250 7", ["1250 dollar"]),
    ("The fee is $1,250.", "| Wire | $1 250 | 7 |", []),  # a number in the next cell only
    ("The fee is $1,250.50.", "Wire fee: $1 250.50", []),
    # a third review: any line above of three digit-free words (a title, an opening sentence) was a table's header, so
    # most multi-line passages no longer read the amount whole; a sentence is no table row
    ("The fee is $1,250.", "Here is it.\nThe wire fee is $1 250.", []),
    ("The fee is $1,250.", "Wire transfer fees\nThe wire fee is $1 250.", []),
    ("The fee is $1,250.", "Read this carefully.\n\nThe wire fee is $1 250.", []),
])
def test_a_space_grouped_amount_after_its_currency_sign_reads_whole(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context, "What is the wire fee?") == missing


def test_a_space_grouped_amount_reads_alike_with_its_sign_before_or_after_it():
    from hguard.calibrate.judge import stated_numbers

    assert stated_numbers("| Wire | $1 250 |") == [("1250", "dollar")]
    assert stated_numbers("| Wire | \u20ac 1 250 000 |") == stated_numbers("| Wire | 1 250 000 \u20ac |") == [("1250000", "euro")]


@pytest.mark.parametrize("answer, context, missing", [
    # a review: a currency written after its number was moved onto the next number, as one written before it is
    # ("50 cents 10 years ago" read 50 and 10 cents), so "$50" passed
    ("Ten years ago a stamp cost $50.", "A stamp cost 50 cents 10 years ago.", ["50 dollar"]),
    ("Ten years ago a stamp cost 50 euros.", "A stamp cost 50 dollars 10 years ago.", ["50 euro"]),
    ("Ten years ago a stamp cost $50.", "A stamp cost 50 pence 10 years ago.", ["50 dollar"]),
    ("Ten years ago a stamp cost 50 euros.", "A stamp cost 50 pesos 10 years ago.", ["50 euro"]),
    ("It costs 99 cents 2 times a day.", "It costs 99 cents twice a day.", []),
    ("Stamps rose by 2 cents.", "Stamps rose by 5 cents 2 times in 2024, to 73 cents.", ["2 cent"]),
    # one written before its number still goes with it
    ("It cost $5 million.", "In 2023, $5 million was spent.", []),
    ("It cost 500 dollars.", "It cost USD 500.", []),
    ("It cost 500 euros.", "It cost USD 500.", ["500 euro"]),
    # a second review: only a name spelled out stays with the number before it; a code goes with the number after it
    # ("In 2023 USD 5 million" read 2023 USD and a bare 5 million, so "EUR 5 million" passed), and so does a name
    # after ",", ":" or ";"
    ("Revenue in 2023 was EUR 5 million.", "In 2023 USD 5 million was raised.", ["5000000 euro"]),
    ("Revenue in 2023 was EUR 5 million.", "Revenue in 2023, USD 5 million.", ["5000000 euro"]),
    ("Option 2 costs EUR 500.", "Option 2: USD 500.", ["500 euro"]),
    ("It cost 5 euros.", "Item 3 USD 5, item 4 USD 7.", ["5 euro"]),
    ("Revenue in 2023 was 5 million euros.", "In 2023, dollars 5 million were raised.", ["5000000 euro"]),
    ("It cost 5 dollars.", "Item 3 USD 5, item 4 USD 7.", []),
    # ... and a sign written after its number is not moved onto the next ("50¢ 10 years ago" read $50 10 cents)
    ("A stamp cost $50.", "A stamp cost 50\u00a2 10 years ago.", ["50 dollar"]),
    ("A stamp cost 50 cents.", "A stamp cost 50\u00a2 10 years ago.", []),
    ("Entry cost $12.", "Der Eintritt kostet 12 \u20ac 2024 und 15 \u20ac 2025.", ["12 dollar"]),
    ("Entry cost 12 euros.", "Der Eintritt kostet 12 \u20ac 2024 und 15 \u20ac 2025.", []),
    ("It cost \u20ac5 million.", "In 2023 \u20ac5 million was spent.", []),
    ("It cost $5 million.", "In 2023 \u20ac 5 million was spent.", ["5000000 dollar"]),
    # a third review: one standing between two numbers stayed with the first only, leaving the second bare (any
    # currency passed: held before this session); it is given to both, and never kept by a year
    ("Tickets for children under 12 cost $5.", "Tickets: adults \u20ac 10, children under 12 \u20ac 5.", ["5 dollar"]),
    ("Tickets for children under 12 cost \u20ac5.", "Tickets: adults \u20ac 10, children under 12 \u20ac 5.", []),
    ("The top 3 cost $50.", "Top 3 \u20ac 50 each.", ["50 dollar"]),
    ("It cost $2024.", "Preis 12 \u20ac 2024", ["2024 dollar"]),
    ("It cost $5.", "Plan B 2 euros 5 per month.", ["5 dollar"]),
    ("It cost 5 yen.", "Items 1, 2 and 3 dollars 5 each.", ["5 yen"]),
    ("In 2023 it cost \u00a35 million.", "In 2023 dollars 5 million.", ["5000000 pound"]),
    ("In 2023 it cost $5 million.", "In 2023 dollars 5 million.", []),
])
def test_a_currency_written_after_its_number_stays_with_it(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


@pytest.mark.parametrize("context", [
    # a review: these ways of writing an annual rate were read as a bare 4%, so a monthly rate passed
    "Interest is 4 per cent p.a.", "Interest is 4 percent p.a.", "Interest is 4% pa.", "Interest is 4% apr.",
    "Interest: 4% (APR).", "The APR is 4%.", "APR: 4%",
])
def test_an_annual_rate_written_as_finance_writes_it_holds_a_monthly_one(context):
    from hguard.calibrate.judge import stated_numbers, unstated_numbers

    assert unstated_numbers("Interest is 4% per month.", context) == ["4 percent/month"]
    assert unstated_numbers("Interest is 4% a year.", context) == []
    assert stated_numbers(context) == [("4", "percent/year")]


def test_april_and_a_period_after_the_named_rate_are_not_read_as_per_annum():
    from hguard.calibrate.judge import stated_numbers

    assert stated_numbers("The rate is 4% Apr 2024.") == [("4", "percent"), ("2024", "#year")]
    assert stated_numbers("The APR is 4% per month.") == [("4", "percent/month")]
    assert stated_numbers("Rates: 4 percent p.m.") == [("4", "percent/month")]


@pytest.mark.parametrize("answer, context, missing", [
    # a bank's trial over annual reports: a reference's number or a year stated any figure of that value, so a wrong
    # rate or amount passed
    ("The effective tax rate was 12%.", "The effective tax rate was 21% (see Note 12).", ["12 percent"]),
    ("The early repayment charge is 7%.", "Under section 7 of the terms, the early repayment charge is 2%.", ["7 percent"]),
    ("The fee is 4%.", "Under \u00a7 4 the fee is 1%.", ["4 percent"]),
    ("The fee is $3.", "Article 3 sets a fee of $5.", ["3 dollar"]),
    ("The rate is 9.2%.", "Clause 9.2: the rate is 6%.", ["9.2 percent"]),
    ("The fee is 5%.", "See page 5: the fee is 2%.", ["5 percent"]),
    ("The margin was 13%.", "Notes 12 and 13 give a margin of 4%.", ["13 percent"]),
    ("The margin was 9%.", "Sections 7-9 give a margin of 4%.", ["9 percent"]),
    ("The fee is $12.", "Fee schedule No. 12: the fee is $10. See also #12.", ["12 dollar"]),
    ("It is 12.", "The effective tax rate was 21% (see Note 12).", ["12"]),  # a reference states the same reference
    ("See section 12.", "The effective tax rate was 21% (see Note 12).", ["section 12"]),
    ("The overdraft fee is $2,025.", "Effective 1 January 2025, the overdraft fee is $25.", ["2025 dollar"]),
    ("Growth was 2,023%.", "In 2023 growth was 4%.", ["2023 percent"]),
    # ... and what they still state: the same reference, the year, a bare number of a table's cell
    ("The rate was 21% (see Note 12).", "The effective tax rate was 21% (see Note 12).", []),
    ("See sections 7 to 9.", "Sections 7-9 apply.", []),
    ("In 2025 the fee is $25.", "Effective 1 January 2025, the overdraft fee is $25.", []),
    ("Tier 1 capital was 14%.", "The Tier 1 capital ratio was 14%.", []),
    ("It was 2025.", "| Item | Count |\n| Cards | 2025 |", []),
    ("It was founded in 2019.", "Revenue, USD (2019) was 5 million.", []),
    ("It costs 5 dollars.", "Item 3 USD 5, item 4 USD 7.", []),  # an amount after the reference's number
    ("It needs 480 volts.", "The mill needs a 3-phase 480 V supply.", []),  # "phase" names no reference
])
def test_a_reference_or_a_year_states_no_amount_or_percentage(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a bank's trial: a period added to a figure the passage states without it passed (one-off, per transaction, per
    # trade, a flat coupon read as a monthly or yearly amount)
    ("There is an arrangement fee of $999 per month.", "A one-off arrangement fee of $999 is charged when the mortgage "
     "completes.", ["999 dollar/month"]),
    ("Using another bank's ATM costs $3 per month.", "ATM withdrawals at other banks cost $3 per transaction.",
     ["3 dollar/month"]),
    ("The commission is 0.5% per annum.", "Online equity trades cost a commission of 0.5% per trade.", ["0.5 percent/year"]),
    ("The notes pay a coupon of 4% per month.", "The notes pay a fixed coupon of 4%, paid semi-annually.",
     ["4 percent/month"]),
    ("The notes pay 4% per annum.", "The notes pay a fixed coupon of 4%, paid semi-annually.", ["4 percent/year"]),
    ("The fee is $999 per month.", "| Fee | Amount |\n| Arrangement | 999 |", ["999 dollar/month"]),  # a bare cell
    ("The fee is $999 per month.", "The monthly fee is $5. A one-off fee of $999 applies.", ["999 dollar/month"]),
    ("The fee is $999 per trade.", "A one-off fee of $999 applies.", ["999 dollar/trade"]),
    # ... and a period the figure's sentence or its table's header names passes
    ("The fee is $95 per year.", "The annual fee of $95 is charged on the account anniversary.", []),
    ("It costs $12 a month.", "The monthly fee is $12.", []),
    ("Basic costs $12 per month.", "| Plan | Monthly price |\n|---|---|\n| Basic | $12 |", []),
    ("It pays 4.5% a year.", "The Growth Saver account pays 4.5%, fixed for two years.", []),
    ("The rate is 3.5% a year.", "Der Zinssatz betr\u00e4gt 3,5 Prozent pro Jahr.", []),
    ("It is 0.5% per trade.", "Online equity trades cost a commission of 0.5% per trade.", []),
    ("It is $3 per transaction.", "Other banks' ATMs cost $3 per transaction.", []),
    ("It is $3.", "Other banks' ATMs cost $3 per transaction.", []),  # a basis left out is no other figure
])
def test_a_period_the_answer_adds_must_be_named_where_the_passage_states_the_figure(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a review's over-holds: an amount read as a year, a currency's million as a tenor, a price's basis as a reference,
    # "par an" as no year
    ("You can withdraw $2,000 per day.", "ATM withdrawals are limited to 2000 per day.", []),
    ("The company secured a $5 million loan.", "The company secured a USD 5M loan.", []),
    ("Copies cost $0.10 per page.", "Copy charges: per page 0.10.", []),
    ("Each item costs $25.", "Price per item 25", []),
    ("The rate is 3% per year.", "Le taux est de 3 % par an.", []),
    # ... while a wrong amount, a tenor, a reference and another period are held as before
    ("You can withdraw $2,500 per day.", "ATM withdrawals are limited to 2000 per day.", ["2500 dollar/day"]),
    ("The company secured a 5-month loan.", "The company secured a USD 5M loan.", ["5 month"]),
    ("The fee is 12%.", "See page 12: the fee is 2%.", ["12 percent"]),
    ("The deposit is due within 14 days.", "Per \u00a7 14, the deposit is due within 10 days.", ["14 day"]),
    ("Per Section 9.1 the warranty lasts 24 months.", "Section 9.1: the warranty period is 24 months.", []),
    ("The rate is 3% per month.", "Le taux est de 3 % par an.", ["3 percent/month"]),
    ("The overdraft fee is $2,025.", "Effective 1 January 2025, the overdraft fee is $25.", ["2025 dollar"]),
])
def test_an_amount_per_period_a_currencys_million_and_a_prices_basis_are_no_labels(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a review: the sentence naming the period had only to hold a number of the same digits, so a neighbouring fee,
    # term or review date of another value or unit lent its period
    ("The setup fee is $500 per month.", "A one-off setup fee of $500 applies. The monthly service fee is $50.",
     ["500 dollar/month"]),
    ("The arrangement fee is $1,000 per year.", "Arrangement fee: $1,000 (one-off). Annual card fee: $10.",
     ["1000 dollar/year"]),
    ("Interest of 5% per year is charged.", "A flat interest charge of 5% is added at drawdown. The loan term is 5 years.",
     ["5 percent/year"]),
    ("Take 500 mg per day.", "Take 500 mg as a single dose. Review after 5 days.", ["500 mg/day"]),
    ("Give 10 mg/kg per day.", "Give a single dose of 10 mg/kg. Repeat after 10 days if needed.", ["10 mg/kg/day"]),
    ("The setup fee is \u20ac500 per month.", "Einmalige Einrichtungsgebühr: 500 \u20ac. Monatliche Grundgebühr: 50 \u20ac.",
     ["500 euro/month"]),
    # ... the same figure in another unit of the same kind, or a bare cell at its declared scale, still names it
    ("Take 0.5 g per day.", "Take 500 mg once a day; the daily maximum is 4 g.", []),
    ("Retail revenue was $12,340 million per year.", "Annual results (in $ millions)\n| Retail | 12,340 |", []),
    ("The fee is $12 per month.", "| Plan | Monthly fee |\n| Basic | 12 |", []),
])
def test_a_period_is_named_only_by_a_sentence_stating_the_same_figure(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a bank's trial: period and tenor labels written on their digits were not read, so a wrong fiscal year, quarter,
    # half or tenor passed
    ("FY2022 revenue was $4.2 billion.", "In fiscal 2023 revenue was $4.2 billion.", ["2022"]),
    ("FY22 revenue was $4.2 billion.", "In fiscal 2023 revenue was $4.2 billion.", ["2022"]),
    ("NIM was 2.91% in 2Q24.", "NIM was 2.91% in Q3 2024.", ["2 quarter"]),
    ("NIM was 2.91% in 3Q23.", "NIM was 2.91% in Q3 2024.", ["2023"]),
    ("H2 2024 profit before tax was \u00a33.1bn.", "H1 2024 profit before tax was \u00a33.1bn.", ["H2"]),
    ("Profit was \u00a33.1bn in 2H24.", "Profit before tax was \u00a33.1bn in the first half of 2024.", ["H2"]),
    ("The 2Y swap rate closed at 3.95%.", "The 5Y swap rate closed at 3.82% and the 10Y at 3.95%.", ["2 year"]),
    ("3M Euribor fixed at 2.1%.", "6M Euribor fixed at 2.1%.", ["3 month"]),
    ("CY2024 sales were $5 million.", "Calendar 2023 sales were $5 million.", ["2024"]),
    # ... and the same label written another way passes
    ("FY22 revenue was $4.2 billion.", "In fiscal year 2022 revenue was $4.2 billion.", []),
    ("FY2022 revenue was $4.2 billion.", "In fiscal 2022 revenue was $4.2 billion.", []),
    ("Fiscal 2022 revenue was $4.2 billion.", "FY'22 revenue was $4.2 billion.", []),
    ("NIM was 2.91% in 3Q24.", "NIM was 2.91% in Q3 2024.", []),
    ("NIM was 2.91% in Q3'24.", "NIM was 2.91% in the third quarter of 2024.", []),
    ("1H24 profit was \u00a33.1bn.", "First-half 2024 profit before tax was \u00a33.1bn.", []),
    ("The 10Y swap closed at 3.95%.", "The 10-year swap rate closed at 3.95%.", []),
    ("It had $6M of deposits.", "It had $6 million of deposits.", []),  # "M" on a currency is a million
    ("Take 1 g q4-6h.", "Take 1 g every 4 to 6 hours.", []),  # "q4" is a dose's interval, no quarter
])
def test_period_and_tenor_labels_on_their_digits_are_figures(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


@pytest.mark.parametrize("answer, context, question, missing", [
    # a bank's trial: a figure only the question states counted as stated, so a leading question's wrong figure passed
    # when the answer affirmed it
    ("Yes, the early repayment charge is 3% of the balance.", "The early repayment charge is 1% of the balance.",
     "Is the early repayment charge 3%?", ["3 percent"]),
    ("Transfers are charged $10,000.", "Transfers over $5,000 are charged 0.1% of the amount.",
     "Is a fee of $10,000 charged on transfers?", ["10000 dollar"]),
    ("Right, the Premier account has a monthly fee of $15.", "The Premier account has a monthly fee of $25.",
     "I was told the Premier account fee is $15 a month, right?", ["15 dollar"]),
    ("Ja, die Gebühr beträgt 3 %.", "The fee is 1%.", "Is the fee 3%?", ["3 percent"]),  # a yes in another language
    # ... they count for a denying answer, for one the passage states them for, and to a question asking for content
    ("No, it is 1% of the balance, not 3%.", "The early repayment charge is 1% of the balance.",
     "Is the early repayment charge 3%?", []),
    ("The charge is not 3%; it is 1%.", "The early repayment charge is 1% of the balance.", "Is the charge 3%?", []),
    ("Yes, it is waived above $1,500.", "The fee is waived above $1,500.", "Is the fee waived above $1,500?", []),
    ("Two transfers cost $70 in all.", "Each transfer costs $35.", "What do 2 transfers cost?", ["70 dollar"]),
    ("It covers the 2 accounts.", "The fee covers every account.", "What does the fee cover for my 2 accounts?", []),
])
def test_a_figure_only_a_yes_no_question_states_is_not_stated_for_an_answer_that_affirms_it(answer, context, question,
                                                                                           missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context, question) == missing


_CHARGE = "The early repayment charge is 1% of the balance and cannot be waived."
_WIRE = "Outgoing international wires cost $25."


@pytest.mark.parametrize("answer, context, question, missing", [
    # a review: German, French and Spanish leading questions still stated their figure, as did an English statement put
    # as a question, and an affirming answer with an incidental negation was read as a denial
    ("Ja, sie beträgt 3 %.", "Die Gebühr beträgt 1 %.", "Beträgt die Gebühr 3 %?", ["3 percent"]),
    ("Oui, 3 %.", "Les frais sont de 1 %.", "Les frais sont-ils de 3 % ?", ["3 percent"]),
    ("Sí, es del 3 %.", "La comisión es del 1 %.", "¿La comisión es del 3 %?", ["3 percent"]),
    ("The charge is 3% of the balance, which cannot be waived.", _CHARGE, "Is the early repayment charge 3%?",
     ["3 percent"]),
    ("Yes, the charge is 3% of the balance.", _CHARGE, "So the early repayment charge would be 3%?", ["3 percent"]),
    ("Yes, $30.", _WIRE, "The wire fee is $30, is it not?", ["30 dollar"]),
    ("The charge is 3%, no more.", _CHARGE, "Is the charge 3%?", ["3 percent"]),
    # ... while a denial, by its opening word or a negation right before the figure, may repeat it
    ("Nein, sie beträgt 1 %, nicht 3 %.", "Die Gebühr beträgt 1 %.", "Beträgt die Gebühr 3 %?", []),
    ("The wire fee is $25 rather than $30.", _WIRE, "Is the wire fee $30?", []),
    ("It isn't $30, it's $25.", _WIRE, "Is the wire fee $30?", []),
    ("Two transfers cost $70 in all.", "Each transfer costs $35.", "¿Cuánto cuestan 2 transferencias?", ["70 dollar"]),
])
def test_a_yes_no_questions_figure_is_the_answers_own_unless_its_opening_or_the_figures_negation_denies_it(
        answer, context, question, missing):
    from hguard._text import states_to_confirm
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context, question) == missing
    assert states_to_confirm("The charge is 3%?") and not states_to_confirm("What do 2 transfers cost?")
    assert not states_to_confirm("The charge is 3%.") and not states_to_confirm("¿Cuánto cuestan 2 transferencias?")


_FEE = "The card fee is $25."


@pytest.mark.parametrize("answer, context, question, missing", [
    # a user trial: a bare affirmation without a yes ("It is.", "That's right.", "Correct.", and a bare "Yes." too)
    # writes no figure, so the question's figure the passage does not state passed; it says the question's figures
    ("It is.", "The rate is 4%.", "Isn't the rate 5%?", ["5 percent"]),
    ("It is.", _FEE, "Is the card fee $30?", ["30 dollar"]),
    ("That's right.", _FEE, "Is the card fee $30?", ["30 dollar"]),
    ("Correct.", _FEE, "Is the card fee $30?", ["30 dollar"]),
    ("Yes.", _FEE, "Is the card fee $30?", ["30 dollar"]),
    ("It does, yes.", _FEE, "Does the card cost $30?", ["30 dollar"]),
    ("Das stimmt.", "Die Gebühr beträgt 25 \u20ac.", "Beträgt die Gebühr 30 \u20ac?", ["30 euro"]),
    ("C'est exact.", "Les frais sont de 25 \u20ac.", "Les frais sont-ils de 30 \u20ac ?", ["30 euro"]),
    ("Así es.", "La comisión es del 4 %.", "¿La comisión es del 5 %?", ["5 percent"]),
    # ... stated where the passage states them; a denial, and an answer writing its own figure, read as before
    ("It is.", "The card fee is $30.", "Is the card fee $30?", []),
    ("That's right.", "The card fee is thirty dollars.", "Is the card fee $30?", []),
    ("It is not.", _FEE, "Is the card fee $30?", []),
    ("It isn't.", _FEE, "Is the card fee $30?", []),
    ("No.", _FEE, "Is the card fee $30?", []),
    ("Nein.", "Die Gebühr beträgt 25 \u20ac.", "Beträgt die Gebühr 30 \u20ac?", []),
    ("It is $25.", _FEE, "Is the card fee $30?", []),
    ("It is.", _FEE, "What is the card fee?", []),  # a question that writes no figure
    # an old gap: an affirmation writing a year or a reference alone said nothing of the question's figure, and its
    # digits, stated by the passage, passed it; they are read as written too
    ("It is, as of 2024.", "As of 2024 the card fee is $25.", "Is the card fee $30?", ["30 dollar"]),
    ("That's right (see section 2).", "Section 2: the card fee is $25.", "Is the card fee $30?", ["30 dollar"]),
    ("Yes, see page 3.", "Page 3: the card fee is $25.", "Is the card fee $30?", ["30 dollar"]),
    ("It is, as of 2024.", _FEE, "Is the card fee $30?", ["30 dollar", "2024"]),
    ("It is, as of 2024.", "As of 2024 the card fee is $30.", "Is the card fee $30?", []),
    ("That's right (see section 2).", "Section 2: the card fee is $30.", "Is the card fee $30?", []),
    # an old gap: a hedged affirmation read as no yes, so the question's figure went unread and passed
    ("I believe so.", _FEE, "Is the card fee $30?", ["30 dollar"]),
    ("I think it is.", _FEE, "Is the card fee $30?", ["30 dollar"]),
    ("Yes, I think so.", _FEE, "Is the card fee $30?", ["30 dollar"]),
    ("C'est ça.", "Les frais de carte sont de 25 $.", "Les frais de carte sont-ils de 30 $ ?", ["30 dollar"]),
    ("Je crois que oui.", "Les frais de carte sont de 25 $.", "Les frais de carte sont-ils de 30 $ ?", ["30 dollar"]),
    ("Genau.", "Die Gebühr beträgt 25 \u20ac.", "Beträgt die Gebühr 30 \u20ac?", ["30 euro"]),
    ("Ich glaube schon.", "Die Gebühr beträgt 25 \u20ac.", "Beträgt die Gebühr 30 \u20ac?", ["30 euro"]),
    ("Creo que sí.", "La comisión es del 4 %.", "¿La comisión es del 5 %?", ["5 percent"]),
    ("I believe so.", "The card fee is $30.", "Is the card fee $30?", []),
    ("I don't think so.", _FEE, "Is the card fee $30?", []),
])
def test_a_bare_affirmation_says_the_yes_no_questions_figures(answer, context, question, missing):
    from hguard._guard_scoring import answer_holds
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context, question) == missing
    holds = answer_holds(question, answer, context, None)
    # the guard holds it, saying the figure is the question's, affirmed (not one "the question does not state")
    assert bool(holds) == bool(missing)
    assert all(h.startswith("the answer affirms the yes/no question's ") for h in holds)


_RATE = "The rate is 3%."


@pytest.mark.parametrize("answer, context, question, missing", [
    # a review: a negation forming a bound, and a "No" followed by a bound, read as a denial of the question's figure,
    # so a bound the passage does not state passed
    ("The rate is not less than 5%.", _RATE, "Is the rate 5%?", ["5 percent"]),
    ("The fee is not less than $500.", "The fee is $200.", "Is the fee at least $500?", ["500 dollar"]),
    ("The fee isn't above $500.", "The fee is $700.", "Is the fee $500?", ["500 dollar"]),
    ("Not under 5%.", _RATE, "Is the rate 5%?", ["5 percent"]),
    ("Never less than 5%.", _RATE, "Is the rate 5%?", ["5 percent"]),
    ("No. Growth was at least 7%.", "Growth was 4%.", "Was growth 7%?", ["7 percent"]),
    ("No, it's higher than 5%.", _RATE, "Is the rate 5%?", ["5 percent"]),
    ("Non, pas moins de 5 %.", "Le taux est de 3 %.", "Le taux est-il de 5 % ?", ["5 percent"]),
    # ... while a denial, or a correction naming another figure, still repeats it freely
    ("No, it is 3%.", _RATE, "Is the rate 5%?", []),
    ("It is 3%, not 5%.", _RATE, "Is the rate 5%?", []),
    ("No, the rate is 3%, less than 5%.", _RATE, "Is the rate 5%?", []),
    ("The rate is not less than 5%.", "The rate is at least 5%.", "Is the rate 5%?", []),
])
def test_a_negated_comparison_is_a_bound_the_answer_states_not_a_denial(answer, context, question, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context, question) == missing


def test_a_held_figure_is_shown_as_the_answer_writes_it_beside_how_it_was_read():
    """A bank's trial: the hold's reason showed a figure as read ("0.25", "2", "12340000000 dollar"), which a reviewer
    cannot find in the answer ("1/4", "Q2", "$12,340 million")."""
    from hguard._guard_scoring import answer_holds
    from hguard.calibrate.judge import as_written, unstated_numbers

    for answer, context, shown in [
        ("Net revenue was $12,340 million.", "| Net revenue | 9,340 |", ["'$12,340 million' (read as 12340000000 dollar)"]),
        ("About 1/4 of profit is paid out.", "A third of profit is paid out.", ["'1/4' (read as 0.25)"]),
        ("It is paid in Q2 2024.", "It is paid in Q3 2024.", ["'Q2' (read as 2 quarter)"]),
        ("It is due on the 15th.", "It is due on the 1st.", ["'15th' (read as 15)"]),
        ("The fee is 25.", "The fee is 30.", ["25"]),  # written as read: shown once
        ("It took effect on 2024-03-04.", "It took effect on 2024-03-03.", ["date 2024-03-04"]),
    ]:
        assert as_written(answer, unstated_numbers(answer, context)) == shown, answer
    assert as_written("The fee is $5.", ["25000 euro"]) == ["25000 euro"]  # not in the answer: as given
    held = answer_holds("What was net revenue?", "Net revenue was $12,340 million.", "| Net revenue | 9,340 |", None)
    assert held == ["the answer states '$12,340 million' (read as 12340000000 dollar), which neither the passage nor the "
                    "question states (as that number, or in that currency or as a percentage): held for review"], held
    redacted = answer_holds("What was net revenue?", "Net revenue was $12,340 million.", "| Net revenue | 9,340 |", None,
                            redact=True)
    assert "12,340" not in redacted[0] and "1 figure(s) (not quoted" in redacted[0], redacted


_SEGMENTS = "Segment results (in $ millions)\n| Segment | Net revenue | Margin |\n| Retail banking | 12,340 | 4.5% |"
_OPERATIONS = ("Consolidated statement of operations (in $ thousands)\n| Item | 2023 | 2022 |\n| Revenue | 8,450 | 7,910 |\n"
               "| Net income | (1,200) | 640 |")


@pytest.mark.parametrize("answer, context, missing", [
    # a bank's trial: a table's declared scale and currency were not read, so a bare cell matched any unit and scale:
    # the wrong "$12,340" passed under "(in $ millions)" and the right "$12,340 million" was held
    ("Retail banking net revenue was $12,340.", _SEGMENTS, ["12340 dollar"]),
    ("Retail banking net revenue was $12,340 million.", _SEGMENTS, []),
    ("Retail banking net revenue was $12.34 billion.", _SEGMENTS, []),
    ("Retail banking net revenue was 12,340.", _SEGMENTS, []),  # a bare number states a bare number
    ("Retail banking net revenue was \u20ac12,340 million.", _SEGMENTS, ["12340000000 euro"]),
    ("The margin was 4.5%.", _SEGMENTS, []),
    ("Retail banking net revenue was $12,340.", _SEGMENTS.replace("in $ millions", "EUR m"), ["12340 dollar"]),
    ("Retail banking net revenue was \u20ac12.34bn.", _SEGMENTS.replace("in $ millions", "EUR m"), []),
    ("Revenue in 2023 was $8,450.", _OPERATIONS, ["8450 dollar"]),
    ("Revenue in 2023 was $8.45 million.", _OPERATIONS, []),
    ("Net income in 2023 was -$1.2 million.", _OPERATIONS, []),
    ("Revenue was $8,450.", "Revenue (in thousands)\n| 2023 | 8,450 |", ["8450 dollar"]),
    ("Revenue was 8.45 million.", "Revenue (in thousands)\n| 2023 | 8,450 |", []),  # a scale alone: a bare amount
    ("Revenue was 8.45 million euros.", "Revenue (in thousands)\n| 2023 | 8,450 |", ["8450000 euro"]),  # in no currency
    ("Revenue was $8.45 million.", "All amounts are in thousands of US dollars. Revenue was 8,450.", []),
    ("Revenue was $8,450.", "All amounts are in thousands of US dollars. Revenue was 8,450.", ["8450 dollar"]),
    ("Revenue was $8,450,000.", "Revenue ($000s): 8,450", []),
    ("Revenue was \u00a38.45 million.", "Revenue (\u00a3'000): 8,450", []),
    ("Net income was $1.25 billion.", "(Dollars in millions)\n| Net income | 1,250 |", []),
    ("Revenue was $4.21 billion.", "| USD m | 2023 |\n| Revenue | 4,210 |", []),
    ("Revenue was $4,210.", "| USD m | 2023 |\n| Revenue | 4,210 |", ["4210 dollar"]),
    ("Revenue was C$5 billion.", "Revenue (in millions of Canadian dollars): 5,000", []),
    ("Revenue was $5 billion.", "Revenue (in millions of Canadian dollars): 5,000", ["5000000000 dollar"]),
    # two declarations: each number takes the one above it
    ("B was $7 thousand.", "Table 1 (in $ millions)\n| A | 12 |\n\nTable 2 (in $ thousands)\n| B | 7 |", []),
    ("A was $12 million.", "Table 1 (in $ millions)\n| A | 12 |\n\nTable 2 (in $ thousands)\n| B | 7 |", []),
    ("B was $7 million.", "Table 1 (in $ millions)\n| A | 12 |\n\nTable 2 (in $ thousands)\n| B | 7 |",
     ["7000000 dollar"]),
    # no declaration: "Height (m)", a currency beside its amount ("\u00a5100 (JPY)" is the yen)
    ("It is 12 feet.", "| Height (m) | 12 |", []),
    ("The fee is 100 yen.", "The fee is \u00a5100 (JPY).", []),
])
def test_a_declared_scale_and_currency_read_the_passages_bare_numbers(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


_TEUR = "Umsatzerlöse (in TEUR) 12.340"


@pytest.mark.parametrize("answer, context, missing", [
    # a user trial: German and French declarations of scale were not read, so a wrong scale passed ("12.340 Euro" under
    # "(in TEUR)") and the right one was held; a German declaration also says "12.340" is twelve thousand and more
    ("Die Umsatzerlöse betrugen 12.340 Euro.", _TEUR, ["12340 euro"]),
    ("Die Umsatzerlöse betrugen 12,34 Mio. Euro.", _TEUR, []),
    ("Die Umsatzerlöse betrugen 12.340.000 \u20ac.", _TEUR, []),
    ("Revenue was \u20ac12.34 million.", _TEUR, []),
    ("Die Umsatzerlöse betrugen 12.340 Euro.", "Umsatzerlöse in Tsd. \u20ac: 12.340", ["12340 euro"]),
    ("Die Umsatzerlöse betrugen 12,34 Mio. Euro.", "Umsatzerlöse in Tsd. \u20ac: 12.340", []),
    ("Der Umsatz betrug 340 Euro.", "Angaben in Millionen Euro\n| Umsatz | 340 |", ["340 euro"]),
    ("Der Umsatz betrug 340 Millionen Euro.", "Angaben in Millionen Euro\n| Umsatz | 340 |", []),
    # a scale alone: a bare amount, in no currency
    ("Der Umsatz betrug 340 Euro.", "Umsatz (in Tausend)\n| 2023 | 340 |", ["340 euro"]),
    ("Der Umsatz betrug 340.000.", "Umsatz (in Tausend)\n| 2023 | 340 |", []),
    ("Le chiffre d'affaires est de 12\u202f340 euros.", "Chiffre d'affaires (en milliers d'euros) : 12\u202f340",
     ["12340 euro"]),
    ("Le chiffre d'affaires est de 12,34 millions \u20ac.", "Chiffre d'affaires (en milliers d'euros) : 12\u202f340", []),
    ("Le chiffre d'affaires est de 340 euros.", "Chiffre d'affaires (en millions d'euros) : 340", ["340 euro"]),
    ("Le chiffre d'affaires est de 340 millions d'euros.", "Chiffre d'affaires (en millions d'euros) : 340", []),
    ("Le chiffre d'affaires est de 340 euros.", "Chiffre d'affaires en M\u20ac : 340", ["340 euro"]),
    ("Le chiffre d'affaires est de 340 euros.", "| Chiffre d'affaires | k\u20ac |\n| 2023 | 340 |", ["340 euro"]),
    ("Le chiffre d'affaires est de 340\u202f000 euros.", "| Chiffre d'affaires | k\u20ac |\n| 2023 | 340 |", []),
    ("Las ventas fueron de 340 euros.", "Ventas (en miles de euros): 340", ["340 euro"]),
    ("Las ventas fueron de 340.000 euros.", "Ventas (en miles de euros): 340", []),
    ("I ricavi sono 340 euro.", "Ricavi (in migliaia di euro): 340", ["340 euro"]),
    ("I ricavi sono 340.000 euro.", "Ricavi (in migliaia di euro): 340", []),
    # no declaration: a distance ("miles"), a place in parentheses, an amount's own scale letter ("340 M\u20ac"), a
    # spelt-out scale in prose with no "Angaben", "montants", ...
    ("It is 340.", "Distance (en miles): 340", []),
    ("Il y a 340 salariés.", "La société (en France) compte 340 salariés.", []),
    ("Le budget est de 340 millions d'euros.", "Le budget est de 340 M\u20ac.", []),
    ("Wir investieren 340 Euro.", "Wir investieren in Millionen Euro Projekte: 340 Euro", []),
])
def test_german_french_spanish_and_italian_declarations_of_scale_are_read(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


_K_TABLE = "| Item | k\u20ac |\n| Revenue | 40 |\n\n"


@pytest.mark.parametrize("question, answer, context", [
    # a review (R01-R11 of review_num2): a German, French, Spanish or Italian declaration of scale anywhere said the
    # whole context writes a decimal comma, so an English "3.125 USD" outside the block it heads, or with a unit of its
    # own inside it, read as three thousand and the wrong "3,125 USD" passed; as at be4c44d, both readings are tried
    ("How much is the fee?", "The fee is 3,125 USD.", _K_TABLE + "The fee is 3.125 USD."),
    ("How much is the fee?", "The fee is 3,125 USD.", _K_TABLE.replace("k\u20ac", "M\u20ac") + "The fee is 3.125 USD."),
    ("How much is the fee?", "The fee is 3,125 USD.", "Revenue (en millions): 40\n\nThe fee is 3.125 USD."),
    ("How much is the fee?", "The fee is 4,500 GBP.", "(en milliers d'euros)\nThe UK fee is GBP 4.500."),
    ("How much is the fee?", "The fee is 7,250 dollars.",
     "(en miles de euros) 4.000\n\nThe admission fee for adults is 7.250 dollars, payable at the door."),
    ("What is the dose?", "The dose is 1,500 mg.", "| Cost | k\u20ac |\n| Drug | 12 |\n\nDose: 1.500 mg daily."),
    ("How much is the fee?", "The fee is 2,200 USD.", "k\u20ac\nFee: 2.200 USD"),
    ("How much is the fee?", "The fee is 1,750 USD.", "Budget en M\u20ac\n\nThe fee is USD 1.750."),
    # the declaration's own words read as the passage's language (R04, R08: "(en M\u20ac)" made "Rate: 4.125%." French,
    # and outweighed the English of "The fee is 1.500 euros per seat.", so one reading only was tried; be4c44d held
    # them only where the misattribution check, reading the passage without its first line, read "1.500" otherwise):
    # its language is read without its declarations; R09: the "TEUR" cell makes "| Umsatz | 9 |" 9000 euro, which the
    # prose's "9 Euro" now keeps from stating: see the test below)
    ("How much is the fee?", "The fee is 1,500 euros.", "Chiffres (en M\u20ac) : 12\nThe fee is 1.500 euros per seat."),
    ("What is the rate?", "The rate is 4,125%.", "(en M\u20ac) 12\nRate: 4.125%."),
    # ... yet where the prose says no language of its own, the declaration's says a decimal comma may be the prose's
    # too: read as English alone, the French "1,500" and "2,125 %" stated 1500 and 2125 (a review, W14, W64, W63)
    ("What is the fee?", "The fee is 1500 euros.", "(en k\u20ac) 4\nFrais de dossier : 1,500 euros."),
    ("What is the fee?", "The fee is 1500 euros.", "Chiffres cl\u00e9s (en k\u20ac)\nCapital : 4\nFrais de dossier : 1,500 euros."),
    ("What is the rate?", "The rate is 2125%.",
     "Chiffres cl\u00e9s (en M\u20ac)\nChiffre d'affaires : 12\nTaux d'int\u00e9r\u00eat : 2,125 %"),
    ("How much is the fee?", "The fee is 9 thousand euros.",
     "| Posten | TEUR |\n| Umsatz | 9 |\n\nDie Gebühr beträgt 9 Euro pro Besuch."),
])
def test_another_languages_declaration_says_a_decimal_comma_only_in_the_block_it_heads(question, answer, context):
    from hguard._guard_scoring import answer_holds
    from hguard.calibrate.judge import unstated_numbers

    assert answer_holds(question, answer, context, None)
    assert unstated_numbers(answer, context, question)  # held as unstated, not by another rule's chance


_R09 = "| Posten | TEUR |\n| Umsatz | 9 |\n\nDie Gebühr beträgt 9 Euro pro Besuch."


@pytest.mark.parametrize("answer, context, missing", [
    # a review (R09): a declared block's bare 9 whose digits the passage states unscaled in the declared currency
    # ("9 Euro" in prose): a "9 thousand euros" may be that amount with a scale added, and the rows' German words
    # are not read against the answer's English (misattribution), so the scaled amount states nothing ...
    ("The fee is 9 thousand euros.", _R09, ["9000 euro"]),
    ("Revenue was $45,000.", "Revenue ($000s)\n| Revenue | 45 |\n\nThe fee is $45.", ["45000 dollar"]),
    # ... so a faithful restatement of that row is held too (a review, preferred to passing a wrong scale)
    ("Umsatz was 9 thousand euros.", _R09, ["9000 euro"]),
    # ... while the unscaled amount, a row with no such twin, or a twin in another currency, are stated
    ("The fee is 9 euros.", _R09, []),
    ("Umsatz was 12 thousand euros.", _R09.replace("| 9 |", "| 12 |"), []),
    ("Revenue was $45,000.", "Revenue ($000s)\n| Revenue | 45 |\n\nThe fee is 45 euros.", []),
    # ... and another row's scaled amount is no unscaled twin (a second review, F15: share capital's 12 k\u20ac is
    # 12000 euro, which dropped Revenue's \u20ac12 million)
    ("Revenue was \u20ac12 million.", "Balance sheet (in \u20ac thousands)\n| Share capital | 12 |\n| Revenue | 12,000 |", []),
])
def test_a_declared_amount_whose_digits_the_passage_states_unscaled_states_no_scaled_amount(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


_EXCEPT = ("Key figures (in $ millions, except per share data and ratios)\n| Item | 2024 |\n| Net income | 1,250 |\n"
           "| Diluted EPS | 3.45 |\n| CET1 ratio (%) | 13.2 |")
_ABOVE = "The minimum opening deposit is 500.\n\nIncome statement ($000s)\n| Revenue | 1,250 |"
_AFTER = "Balance sheet (in EUR thousands)\n| Cash | 310 |\n\nTransfers are charged at 25 per transaction."
_CREDIT = ("Credit metrics (in \u20ac millions)\n| Loans | 1,200 |\n| Days past due | 45 |\n| Average tenor (years) | 5 |\n"
           "| Operating margin (%) | 12.5 |")
_BY_YEAR = "Revenue ($m)\n| Year | Revenue |\n| 2024 | 2,150 |\n| 2023 | 1,980 |"


@pytest.mark.parametrize("answer, context, missing", [
    # a review: a declaration reached rows it excepts, numbers above it, prose after its table, and its year labels,
    # and one naming no currency let any currency match, so these wrong figures passed
    ("Diluted EPS was $3.45 million.", _EXCEPT, ["3450000 dollar"]),  # "except per share data"
    ("Net income was $2,024 million.", _EXCEPT, ["2024000000 dollar"]),  # a header row's year is no amount
    ("Revenue was $2,024 million.", _BY_YEAR, ["2024000000 dollar"]),  # nor a row's label
    ("The minimum opening deposit is $500,000.", _ABOVE, ["500000 dollar"]),  # above the declaration
    ("Transfers cost EUR 25,000 per transaction.", _AFTER, ["25000 euro/transaction"]),  # after its table, a blank line
    ("Transfers cost EUR 25,000 per transaction.", _AFTER.replace("\n\n", "\n"), ["25000 euro/transaction"]),  # its rows'
    ("Revenue in Europe was \u00a345 million.", "Revenue by region (in millions)\n| Europe | 45 |", ["45000000 pound"]),
    ("The operating margin was \u20ac12.5 million.", _CREDIT, ["12500000 euro"]),  # a row's own unit, unscaled
    ("Loans were \u20ac1,200.", _CREDIT, ["1200 euro"]),
    # ... and what they state: the excepted and own-unit rows in their units, the rest as declared, the prose as written
    ("Diluted EPS was $3.45.", _EXCEPT, []),
    ("The CET1 ratio was 13.2%.", _EXCEPT, []),
    ("Net income was $1.25 billion.", _EXCEPT, []),
    ("In 2024 net income was $1,250 million.", _EXCEPT, []),
    ("Revenue in 2024 was $2.15 billion.", _BY_YEAR, []),
    ("The minimum opening deposit is $500.", _ABOVE, []),
    ("Revenue was $1.25 million.", _ABOVE, []),
    ("Transfers cost EUR 25 per transaction.", _AFTER, []),
    ("Cash was EUR 310,000.", _AFTER, []),
    ("Revenue in Europe was 45 million.", "Revenue by region (in millions)\n| Europe | 45 |", []),
    ("Days past due averaged 45 days.", _CREDIT, []),
    ("The operating margin was 12.5%.", _CREDIT, []),
    ("The average loan tenor is 5 years.", _CREDIT, []),
    ("Loans were \u20ac1.2 billion.", _CREDIT, []),
    ("Revenue was $1.25 billion.", "Income statement (in $ millions)\n\n| Revenue | 1,250 |", []),  # a title's table
    ("The Premium annual fee is $1,950.", "| Service | Annual fee |\n| Premium | 1950 |", []),  # a data cell: an amount
])
def test_a_declaration_reads_the_block_it_heads_in_its_rows_own_units(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


_COUNTS = "(in millions)\nRevenue 120\nHeadcount (people) 500\nMargin (%) 35\nCustomers (number) 800\nArea (sq ft) 300"


@pytest.mark.parametrize("answer, context, missing", [
    # a review: a row naming a count or a non-money unit of its own, and a count in the block's prose, took the
    # declared millions ("500 million" passed, as it did not before declarations were read)
    ("Headcount was 500 million.", _COUNTS, ["500000000"]),
    ("Margin was 35 million.", _COUNTS, ["35000000"]),
    ("Customers numbered 800 million.", _COUNTS, ["800000000"]),
    ("Area was 300 million square feet.", _COUNTS, ["300000000"]),
    ("Stores numbered 12 million.", "(in millions)\nRevenue    120\nStores (count)    12", ["12000000"]),
    ("Stores numbered 12 million.", "(in millions)\n| Revenue | 120 |\n| Stores (count) | 12 |", ["12000000"]),
    ("Stores numbered 12 million.", "(in millions, except store count)\nRevenue 120\nStores 12", ["12000000"]),
    ("The firm employs 45 million people.", "Revenue was 120 (in millions) and the firm employs 45 people.",
     ["45000000"]),
    ("The firm had 45 million staff.", "All amounts in millions. Revenue was 120.\nThe firm had 45 staff.", ["45000000"]),
    # a row naming a currency keeps the scale, in that currency
    ("Revenue was $120.", "(in millions)\nRevenue ($) 120", ["120 dollar"]),
    ("Revenue was \u20ac120.", "(in millions)\nRevenue (EUR) 120", ["120 euro"]),
    ("Revenue was \u20ac120.", "(in millions)\n| Revenue (EUR) | 120 |", ["120 euro"]),
    # ... and what they state
    ("Headcount was 500.", _COUNTS, []),
    ("Margin was 35%.", _COUNTS, []),
    ("Revenue was 120 million.", _COUNTS, []),
    ("Stores numbered 12.", "(in millions)\nRevenue    120\nStores (count)    12", []),
    ("Revenue was 120 million; it employs 45 people.", "Revenue was 120 (in millions) and the firm employs 45 people.",
     []),
    ("The firm had 45 staff.", "All amounts in millions. Revenue was 120.\nThe firm had 45 staff.", []),
    ("Revenue was $120 million.", "(in millions)\nRevenue ($) 120", []),
    ("Revenue was \u20ac120 million.", "(in millions)\n| Revenue (EUR) | 120 |", []),
])
def test_a_declared_scale_leaves_a_rows_own_count_and_the_prose_counts_unscaled(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


_HEADCOUNT = "GBP thousands\n| Headcount | 120 |\n| Staff costs | 450 |"


@pytest.mark.parametrize("answer, context, missing", [
    # an old gap of a review: a row whose label is itself a count ("Headcount", "Number of employees", "Branches") took
    # the declared scale and currency, so "\u00a3120,000" passed on "| Headcount | 120 |" under "GBP thousands"
    ("Staff costs were \u00a3120,000.", _HEADCOUNT, ["120000 pound"]),
    ("Staff costs were \u00a3120,000.", "GBP thousands\nHeadcount 120", ["120000 pound"]),
    ("Staff costs were \u00a3120,000.", "GBP thousands\nHeadcount: 120", ["120000 pound"]),
    ("Staff costs were \u00a3120,000.", "(in \u00a3 thousands)\n| Number of employees | 120 |", ["120000 pound"]),
    ("Staff costs were \u00a3120,000.", "GBP thousands. Headcount: 120", ["120000 pound"]),  # no declaration: held as before
    ("Branches numbered 45 thousand.", "(in $ thousands)\n| Branches | 45 |\n| Revenue | 300 |", ["45000"]),
    # ... and what they state: the count, and an amount's row ("Staff costs": a label naming more than a count)
    ("Headcount was 120.", _HEADCOUNT, []),
    ("Staff costs were \u00a3450,000.", _HEADCOUNT, []),
    ("The bank has 45 branches.", "(in $ thousands)\n| Branches | 45 |\n| Revenue | 300 |", []),
    ("Revenue was $300,000.", "(in $ thousands)\n| Branches | 45 |\n| Revenue | 300 |", []),
    # a label naming a payer, a channel or a cost alone is an amount row as often (a second review, F12-F14, F24, F25:
    # "Clients" is a French balance sheet's trade receivables)
    ("Staff costs were EUR 1.2 million.", "Operating expenses (EUR thousands)\n| Staff | 1,200 |\n| Rent | 300 |", []),
    ("Les cr\u00e9ances clients s'\u00e9l\u00e8vent \u00e0 450 000 \u20ac.",
     "Bilan (en milliers d'euros)\n| Clients | 450 |\n| Stocks | 300 |", []),
    ("Store revenue was \u20ac450 million.", "Revenue by channel (\u20ac millions)\n| Stores | 450 |\n| Online | 120 |", []),
    ("Receivables from customers were $3.1 million.", "Balance sheet ($ thousands)\n| Customers | 3,100 |\n| Inventory | 900 |",
     []),
    ("Users paid $780,000 in fees.", "Fee income by payer ($ thousands)\n| Users | 780 |\n| Partners | 120 |", []),
])
def test_a_row_labelled_by_a_count_states_that_count_not_a_declared_amount(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


_BRANCHES = "The bank has 18 branches."


@pytest.mark.parametrize("answer, context, missing", [
    # a bare number matched any unit, so a count stated a money amount: "$18" passed from "18 branches"
    ("The fee is $18.", _BRANCHES, ["18 dollar"]),
    ("The fee is 18 dollars.", _BRANCHES, ["18 dollar"]),
    ("The fee is \u20ac18.", _BRANCHES, ["18 euro"]),
    ("The card costs $1.5 million.", "It serves 1.5 million customers.", ["1500000 dollar"]),
    ("The fee is $18.", "The bank has 18 branches and 1,200 staff.", ["18 dollar"]),
    ("It has 18 branches.", _BRANCHES, []),  # the count itself
    ("It has 18 of them.", _BRANCHES, []),
    # a currency the passage gives the figure, or declares, and a bare figure that counts nothing, still state it
    ("The fee is $18.", "The bank has 18 branches. The fee is 18.", []),
    ("The fee is $18.", "The bank has 18 branches. The fee is $18.", []),
    ("The fee is $25.", "Fee: 25", []),
    ("The fee is $25.", "Fees (USD)\nFee: 25", []),
    ("The fee is $25.", "All amounts in dollars.\nFee: 25", []),
    ("The fee is $25.", "| Item | Price ($) |\n|---|---|\n| Fee | 25 |", []),
    ("The fee is $25.", "(in USD)\nThe card fee is 25.", []),  # a declared currency's block: an amount
    ("The fee is $25.", "(in USD)\nThe card has 25 benefits.", ["25 dollar"]),  # (its count sentence: no amount)
    ("The fee is $25.", "There is a 25 annual fee.", []),
    ("The fee is $25.", "A late payment costs 25 plus interest.", []),
    ("The fee is $25.", "The fee is 25 per card.", []),
    ("The fee is $25.", "Transfers cost 25 upfront.", []),
    ("The charge is 18%.", _BRANCHES, []),  # a count's figure in another unit than money: as before
    # a count is read in English only ("pro", "par", "al" count nothing)
    ("Die Gebühr beträgt 25 € pro Monat.", "Die Gebühr beträgt 25 pro Monat.", []),
    ("Les frais sont de 25 € par mois.", "Les frais sont de 25 par mois.", []),
    ("La tarifa es de 25 € al mes.", "La tarifa es de 25 al mes.", []),
])
def test_a_count_states_no_money_amount(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


_IFRS = "Income statement (in EUR millions)\n| Revenue | 1,250 |\n\n2.3.1 Basis of preparation"
_DOTTED = "Figures (in $ thousands)\n| Release 2.4.1 | 5 |\n| Host 10.0.0.1 | 7 |"


@pytest.mark.parametrize("answer, context, missing", [
    # a review: a passage declaring a scale that also held a dotted number (a note's heading "2.3.1", a version, an
    # address) raised InvalidOperation for any answer, so the guard raised: a dotted number is read whole, unscaled
    ("No figures here.", _IFRS, []),
    ("Revenue was EUR 1.25 billion.", _IFRS, []),
    ("Revenue was EUR 1.25 million.", _IFRS, ["1250000 euro"]),
    ("See 2.3.1 for the basis.", _IFRS, []),
    ("See 2.3.2 for the basis.", _IFRS, ["2.3.2"]),
    ("Release 2.4.1 cost $5,000.", _DOTTED, []),
    ("Release 2.4.1 cost $5.", _DOTTED, ["5 dollar"]),
    ("Note 1.2.3 applies.", "Income statement (in EUR millions)\n| Revenue (Note 1.2.3) | 1,250 |", []),
])
def test_a_dotted_number_under_a_declared_scale_is_read_whole(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a review: one or two digits after a comma were read as a decimal before any word, which misreads English
    # lists and clauses: the right figure was held, and "2020.15" passed
    ("In 2019, 20 people attended.", "In 2019,20 people attended.", []),
    ("In 2020 there were 15 cases.", "In 2020,15 cases were seen.", []),
    ("There were 2020.15 cases.", "In 2020,15 cases were seen.", ["2020.15"]),
    ("See pages 3 and 5.", "See pages 3,5.", []),
    ("Items 1 and 2 apply.", "The rule covers items 1,2.", []),
    ("Chapters 3 and 4 apply.", "Chapters 3,4 apply to new staff.", []),
    ("Sections 12 and 15 apply.", "Sections 12,15 apply.", []),
    ("The score was 2 to 1.", "The score was 2,1.", []),
    ("Items 1, 2 and 3 apply.", "Items 1,2, and 3 apply.", []),
    ("Levels 0, 1 and 2 exist.", "Levels 0,1, and 2 exist.", []),  # "0,1" is no 0.1 where ", and" goes on
    ("Levels 0, 1 and 2 exist.", "Levels 0,1, 2 and 3 exist.", []),
    # a second review: after a year too, before a unit, a currency, a scale or a percent ("1999,99 \u20ac" read 1999
    # and 99 \u20ac, so "99 \u20ac" passed and the right "\u20ac1999.99" was held)
    ("Der Laptop kostet 99 \u20ac.", "Der Laptop kostet 1999,99 \u20ac.", ["99 euro"]),
    ("The laptop costs \u20ac1999.99.", "Der Laptop kostet 1999,99 \u20ac.", []),
    ("The bike costs 50 euros.", "Das Fahrrad kostet 2050,50 Euro.", ["50 euro"]),
    ("It weighs 5 kg.", "Es wiegt 1999,5 kg.", ["5 kg"]),
    ("It weighs 1999.5 kg.", "Es wiegt 1999,5 kg.", []),
    # before a unit, a currency, a scale or a percent, in English or another language, it is a decimal
    ("The fee was 1.2 dollars.", "The fee was 1,2 dollars.", []),
    ("Die Frist beträgt 6.5 Monate.", "Die Frist beträgt 6,5 Monate.", []),
    ("Le délai est de 1.5 mois.", "Le délai est de 1,5 mois.", []),
    ("Le taux est de 2.5 %.", "Le taux est de 2,5 pour cent.", []),
    ("It weighs 1.5 kg.", "Es wiegt 1,5 kg.", []),
])
def test_a_decimal_comma_is_read_only_before_a_unit_and_never_after_a_year(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a review: Indian grouping by lakh was read without a rupee, so "5,10,250 mg" read 510250 mg and a wrong
    # "510250 mg" passed
    ("Doses of 510250 mg are sold.", "Doses of 5,10,250 mg are sold.", ["510250 mg"]),
    ("Sizes 102030 are sold.", "Sizes 1,02,030 are sold.", ["102030"]),
    # next to a rupee, a lakh or a crore it is one amount
    ("The loan is 1,234,567 rupees.", "The loan amount is 12,34,567 rupees.", []),
    ("The loan is Rs 1,234,567.", "The loan amount is Rs. 12,34,567.", []),
    ("The loan is 1 crore.", "The loan is INR 1,00,00,000.", []),
    # a second review: read whole in a text that names a rupee anywhere, after "Rs." too
    ("The second loan was 15.", "The first loan was Rs 12,34,567 and the second 15,00,000.", ["15"]),
    ("The second loan was 1,500,000.", "The first loan was Rs 12,34,567 and the second 15,00,000.", []),
    ("The price is Rs 34,567.", "The price is Rs.12,34,567/-", ["34567 rupee"]),
    ("The price is Rs 12,34,567.", "The price is Rs.12,34,567/-", []),
    # a third review: split at every comma with no rupee named, "567", "50" and "458" passed (held before this
    # session): with no rupee named it is read as before this session, the last comma a thousands separator
    ("The town has 567 residents.", "The town has 12,34,567 residents.", ["567"]),
    ("About 50 people live there.", "The village has 2,50,000 residents.", ["50"]),
    ("The population of Pune is 458.", "The population of Pune was 31,24,458 in 2011.", ["458"]),
    ("The fine was Rs 567.", "The fine was 12,34,567.", ["567 rupee"]),
    ("Doses of 250 mg are sold.", "Doses of 5,10,250 mg are sold.", ["250 mg"]),
])
def test_lakh_grouping_is_read_whole_where_a_rupee_is_named_and_as_before_elsewhere(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a review: a figure dash or a small hyphen-minus as a minus, "Rs.500", "per-cent" and "centavos"
    # were not read (the positive figure, "$500" or "50 dollars" passed)
    ("Fund F returned 3.2%.", "Fund F returned \u20123.2%.", ["3.2 percent"]),
    # a second review: not an em dash, a list's bullet or a dash far more often than a minus (the right figure was held)
    ("12 patients improved.", "Results:\n\u201412 patients improved\n\u20148 had nausea", []),
    ("Take 5 mg.", "Dose: \u20145 mg daily.", []),
    ("Fund F returned 3.2%.", "Fund F returned \ufe633.2%.", ["3.2 percent"]),
    ("It takes 2 to 4 days.", "It takes 2\u20124 days.", []),  # a range
    ("The fee is $500.", "The fee is Rs.500.", ["500 dollar"]),
    ("The fee is 500 rupees.", "The fee is Rs.500.", []),
    ("It rose 5 cents.", "It rose 5 per-cent.", ["5 cent"]),
    ("It rose 5%.", "It rose 5 per-cent.", []),
    ("The fee is 50 dollars.", "The fee is 50 centavos.", ["50 dollar"]),
])
def test_other_dashes_rs_per_cent_and_centavos_are_read(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


_LONG_TABLE = "| Region | Revenue | Net income |\n|---|---|---|\n" + "\n".join(
    f"| Region {k:02d} | {100 + k} | ({200 + k}) |" for k in range(30))
_CAPTIONED = "Table 3: Net income by segment (USD thousands)\n\n| Segment | Q1 | Q2 |\n|---|---|---|\n| North | (250) | 300 |"


@pytest.mark.parametrize("answer, context, missing", [
    # a second review: the header's cue was read from 400 characters before the number, so from row 15 of 30 on
    # "(215)" read +215 (the wrong sign passed, the right one was held); a caption above a blank line was not read
    ("Net income of Region 15 was 215.", _LONG_TABLE, ["215"]),
    ("Net income of Region 15 was -215.", _LONG_TABLE, []),
    ("Net income of Region 29 was -229.", _LONG_TABLE, []),
    ("Net income of Region 00 was -200.", _LONG_TABLE, []),
    ("North's Q1 net income was 250.", _CAPTIONED, ["250"]),
    ("North's Q1 net income was -250.", _CAPTIONED, []),
    # the caption is only one line above across one blank line, and a header's cue only its own block's
    ("Widget quantity is 3.", "Net income by segment\n\n\n| Item | Qty |\n|---|---|\n| Widget | (3) |", []),
    ("Widget quantity is 3.", "| Net income | 5 |\n\nItem,Qty\nWidget,(3)", []),
])
def test_a_bare_parenthesis_reads_its_table_header_and_caption_however_far_above(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


def test_a_long_table_of_bare_parentheses_is_read_in_linear_time(within_cpu_seconds):
    """Each bare "(n)" finds its table's header by bisection over the text's blank lines, not by walking back (about
    12 s of CPU for both tables at load 9; walking back is quadratic in 20,000 rows)."""
    from hguard.calibrate.judge import unstated_numbers

    table = "| Region | Net income |\n|---|---|\n" + "\n".join(f"| R{k} | ({k % 900 + 100}) |" for k in range(20_000))
    many = "\n\n".join(f"| Item | Qty |\n| W{k} | ({k % 900 + 100}) |" for k in range(10_000))
    with within_cpu_seconds(45):
        assert unstated_numbers("Net income of R5 was -105.", table) == []
        assert unstated_numbers("W5 quantity is 105.", many) == []


def test_accounting_parentheses_read_a_long_run_of_blank_lines_in_linear_time():
    """A review: the accounting rule was quadratic in a run of blank lines or tabs (a passage with 100,000 newlines took
    25 s per answer); at this size a quadratic reading takes minutes, a linear one well under a second."""
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers("Net income was -$1,250.", "Net income was $(1,250).\n" + "\n" * 200_000) == []
    assert unstated_numbers("Net income was $1,250.", "\t" * 200_000 + "($1,250)") == ["1250 dollar"]


def test_decimal_commas_and_word_dates_read_long_runs_in_linear_time():
    """A second review: a decimal comma's list look-ahead tried every split of a run of blanks after it (16,000
    newlines after "0,5": 45 s), and a word date's run of days ("1,2,1,2,...", "-1-1-1...") was read again from each
    of its numbers (8,000 of them: 24 s). At these sizes a quadratic reading takes minutes, a linear one seconds."""
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers("It is 0.5.", "0,5" + "\n" * 100_000) == []
    assert unstated_numbers("It is 3.", "Version 1,5" + " " * 100_000) == ["3"]
    assert unstated_numbers("It is 3.", "1,2" * 40_000) == ["3"]
    assert unstated_numbers("It is 3.", "-1" * 40_000) == ["3"]
    assert unstated_numbers("It was on 9 May 2024.", "1, " * 40_000 + "2 and 16 May 2024") == ["date 9 May 2024"]


def test_a_long_run_of_digits_is_read_in_linear_time(within_cpu_seconds):
    """A fraction sign's digits before it were sought from every digit of a run (8,000 digits: 1.2 s, 30,000: 17 s);
    on a loaded 2-core machine that rule took 15 s for 30,000 digits, so a minute or so at this size, and the linear
    reading under 2 s for both (1.4 s of CPU at load 9: the CPU budget fails the quadratic rule, which passes slowly
    without one)."""
    from hguard.calibrate.judge import unstated_numbers

    with within_cpu_seconds(10):
        assert unstated_numbers("It is 3.", "1" * 60_000 + " mg") == ["3"]
        assert unstated_numbers("It is 12.5 tablets.", "1" * 60_000 + " or 12\u00bd tablets") == []


def test_a_currency_name_is_read_as_one_only_beside_a_number():
    """'Kr' alone is krypton and 'Lev Tolstoy' a name: the judge's tokens keep them as words."""
    from hguard.calibrate.judge import _tokens

    assert _tokens("Which element has the symbol Kr?")[-1] == "kr" and _tokens("Lev Tolstoy") == ["lev", "tolstoy"]
    assert _tokens("200 kr") == ["200", "krona"]


@pytest.mark.parametrize("answer, alias, label", [
    # a scale word is part of its number: "$5 million" is not "$5" (it was "correct")
    ("The transfer limit is $5 million.", "$5", "hallucinated"),
    ("The fee is $125 million.", "$125", "hallucinated"),
    ("The limit is 1.2 million euros.", "EUR 1.2 million", "correct"),
    ("The limit is 1,200,000 euros.", "EUR 1.2 million", "correct"),
    ("The fee is $5k.", "$5,000", "correct"),
    # so is a sign: -0.5% is not 0.5%
    ("The deposit rate is -0.5%.", "0.5%", "hallucinated"),
    ("The deposit rate is \u22120.5%.", "0.5%", "hallucinated"),
    ("The balance is -$200.", "$200", "hallucinated"),
    ("The rate is 0.5%.", "0.5%", "correct"),
    ("Terms run 2-5 years.", "2-5 years", "correct"),  # a range's dash is no sign
])
def test_numbers_keep_their_scale_and_sign(answer, alias, label):
    assert judge(answer, [alias]).label == label


def test_second_reads_alike_in_an_alias_and_an_answer() -> None:
    """A compliance team's calibration: "... in the second quarter of the year." against the alias "second quarter"
    was labelled hallucinated, since "second" was read as an ordinal after "the" only (the answer's, not the
    alias's); "second" after a number stays the unit."""
    answer = "The internal audit review is typically conducted in the second quarter of the year."
    assert judge(answer, ["second quarter", "Q2"]).label == "correct"
    assert judge("Take a second dose.", ["the second dose"]).label == "correct"
    assert judge("The alarm sounds after a 30 second delay.", ["30 second"]).label == "correct"
    assert judge("It happens in the third quarter.", ["second quarter"]).label == "hallucinated"


@pytest.mark.parametrize("answer, aliases, label", [
    ("It is located in Brazil.", ["India", "IN", "in"], "hallucinated"),
    ("Pal is a fictional character ... and is portrayed by an actor.", ["Andorra", "AND"], "hallucinated"),
    ("Hudson is a river town; tell us more about it.", ["United States", "US"], "hallucinated"),
    # reviews: PopQA also lists "the US" and "U. S.", which normalise to the same word; a lower-case "us" before a
    # negated "US"; and a reply in capitals throughout
    ("Hudson is a river town; tell us more about it.", ["United States", "the US", "U. S."], "hallucinated"),
    ("Tell us: it is not the US, it is Canada.", ["United States", "US"], "hallucinated"),
    ("IT IS LOCATED IN BRAZIL.", ["India", "IN"], "hallucinated"),
    ("It is in the US.", ["United States", "US"], "correct"),
    ("It is in the U.S.", ["U.S."], "correct"),
    ("It is in the U. S.", ["United States", "US"], "correct"),
    ("It is the US.", ["U.S."], "correct"),
    ("It is India.", ["India", "in"], "correct"),
    ("in", ["in"], "correct"),  # a row whose only alias is that word (a CI run's tiny-model rows)
    ("INDIA.", ["India", "IN"], "correct"),
    # other short aliases compare case aside, as before (names and symbols are no English words)
    ("The symbol is Co.", ["Co"], "correct"),
    ("Its symbol is Fe.", ["Fe"], "correct"),
    ("THE SYMBOL IS FE", ["Fe"], "correct"),
    ("the author is poe.", ["Poe"], "correct"),
    ("The capital of Togo is Lome.", ["Lomé"], "correct"),
    ("It is MALÉ.", ["Malé"], "correct"),
    ("The U.K.", ["UK"], "correct"),
    ("It is in the U. K.", ["UK"], "correct"),
    ("It is in the U.S.A.", ["USA"], "correct"),
    ("It is the D.R.C.", ["DRC"], "correct"),
    ("Water is H₂O.", ["H2O"], "correct"),
    ("It is CO₂.", ["CO2"], "correct"),
])
def test_an_alias_that_spells_an_english_word_matches_only_in_capitals(answer, aliases, label):
    """A benchmark trial: PopQA's codes "IN", "AND" and "US" matched "located in Brazil", "... and is portrayed" and
    "tell us" (the judge compared case aside), and a hallucination was counted right in a published table. Two reviews
    of the fix found right answers turned hallucinated ("Lome", "The U.K.", "H₂O", "poe") and "the US" still open."""
    from hguard.calibrate.judge import judge

    assert judge(answer, aliases).label == label


def test_a_wrong_reply_from_its_own_true_passage_does_not_follow_a_misleading_one() -> None:
    """A medical team's trial: a supporting row naming its pair's misleading answer (as the README's pairing advice
    has it) answered wrongly was said to follow "the misleading passage"; a reviewer read its passage as falsified."""
    from hguard.calibrate.judge import FOLLOWS_MISLEADING, judge_row

    q = "Is halofantrine ototoxic?"
    for condition, follows in (("supporting", False), ("misleading", True), (None, False)):
        meta = {"judge": "yesno", "misleading_answer": "no", **({"condition": condition} if condition else {})}
        j = judge_row("No, it is not.", ["yes"], "qa", meta, q)
        assert j.label == "hallucinated" and j.reason.startswith(FOLLOWS_MISLEADING) is follows, (condition, j)
        meta = {"misleading_answer": "Lyon", "right_answer": "Paris", **({"condition": condition} if condition else {})}
        j = judge_row("Lyon.", ["Paris"], "qa", meta, "What is the capital of France?")
        assert j.label == "hallucinated" and j.reason.startswith(FOLLOWS_MISLEADING) is follows, (condition, j)
        assert follows or j.reason.startswith("gives the misleading answer, which its own passage does not say"), j


@pytest.mark.parametrize("answer, context, missing", [
    # a user trial: "4,5 тыс. руб." read as 4 and 5, so a wrong "5 тыс. руб." (from 4,500 roubles) or "1 млн" and "5
    # млн" (from 1.5 million) passed; a scale word, abbreviated or spelt out, is read as "4.5 million" is
    ("Премия 5 тыс. руб.", "Премия составляет 4,5 тыс. руб.", ["5000 rub"]),
    ("Бюджет 1 млн руб.", "Бюджет составляет 1,5 млн руб.", ["1000000 rub"]),
    ("Бюджет 5 млн руб.", "Бюджет составляет 1,5 млн руб.", ["5000000 rub"]),
    ("Премия 4500 руб.", "Премия составляет 4,5 тыс. руб.", []),
    ("Бюджет 1,5 млн руб.", "Бюджет составляет 1500000 руб.", []),
    ("The budget is 1.5 million roubles.", "Бюджет составляет 1,5 млн руб.", []),
    ("Премия 4,5 тысячи рублей.", "Премия составляет 4,5 тыс. руб.", []),
    ("Выручка 2 миллиарда.", "Выручка составила 2,5 млрд руб.", ["2000000000"]),
    ("Виручка 2,5 мільярда.", "Виручка склала 2,5 млрд грн.", []),
    ("Бюджет 3 мільйони.", "Бюджет 3 мільйонів гривень.", []),
    ("The fee is 5 million zł.", "Opłata wynosi 5 mln zł.", []),  # a currency after a scale word is read too
    ("The fee is 5 million euros.", "Opłata wynosi 5 mln zł.", ["5000000 euro"]),
])
def test_russian_and_ukrainian_scale_words_are_read_with_their_decimal_comma(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a multilingual user's trial: each of these wrong answers passed as stated by its passage
    # "1.500 \u20ac" is fifteen hundred euros in a German passage, read as 1.5 (as "1,5 \u20ac" is)
    ("Die Gebühr beträgt 1,5 €.", "Die Gebühr beträgt 1.500 €.", ["1.5 euro"]),
    ("Die Gebühr beträgt 1.500 €.", "Die Gebühr beträgt 1,5 €.", ["1500 euro"]),
    ("La cuota es de 2,5 euros.", "La cuota es de 2.500 euros.", ["2.5 euro"]),
    ("Die Dosis beträgt 1500 mg.", "Die Dosis beträgt 1,500 mg.", ["1500 mg"]),  # "1,500" is 1.5 in German
    # Spanish and Portuguese "mil" is a thousand (a million in English shorthand)
    ("La multa es de 5.000.000 €.", "La multa es de 5 mil euros.", ["5000000 euro"]),
    ("O valor é R$ 5.000.000.", "O valor é R$ 5 mil.", ["5000000 brl"]),
    # other languages' scale words, and a scale's letters before the currency sign ("M\u20ac" read as metres)
    ("Die Strafe beträgt 5 Euro.", "Die Strafe beträgt 5 Millionen Euro.", ["5 euro"]),
    ("La multa es de 5 €.", "La multa es de 5 millones de euros.", ["5 euro"]),
    ("L'amende est de 2 euros.", "L'amende est de 2 milliards d'euros.", ["2 euro"]),
    ("Budget: 3 €.", "Budget: 3 M€.", ["3 euro"]),
    ("Das Budget beträgt 1.000.000.000 Euro.", "Das Budget beträgt 1 Billion Euro.", ["1000000000 euro"]),
    ("Budget: 2 Mrd. €", "Das Budget beträgt 2,5 Mrd. Euro.", ["2000000000 euro"]),
    # the same amounts said again, in either convention, stay stated
    ("Die Gebühr beträgt 1.500 €.", "Die Gebühr beträgt 1.500 € pro Jahr.", []),
    ("Sie beträgt 1500 Euro.", "Die Gebühr beträgt 1.500 Euro pro Jahr.", []),
    ("La cuota es de 2500 euros.", "La cuota es de 2.500 euros.", []),
    ("La multa es de 5000 euros.", "La multa es de 5 mil euros.", []),
    ("O valor é R$ 5.000.", "O valor é R$ 5 mil.", []),
    ("La multa es de 5.000.000.000 €.", "La multa es de 5 mil millones de euros.", []),
    ("Die Strafe beträgt 5.000.000 Euro.", "Die Strafe beträgt 5 Millionen Euro.", []),
    ("Budget: 3.000.000 €.", "Budget: 3 M€.", []),
    ("Budget: 2,5 Mrd. €", "Das Budget beträgt 2.500.000.000 Euro.", []),
    ("The fee is $1500.", "The annual fee is $1,500.", []),
    # a word other languages share, said often ("per" is Italian and Catalan too), does not make English another
    ("$2.5K per day, and $20K per month.", "Zelle limits: you can send up to $2,500 per day and $20,000 per month.", []),
    ("The dose is 1.5 mg.", "The dose is 1.500 mg.", []),
    ("The budget is $5 million.", "The budget is $5 mil.", []),
    ("The budget is $1,000 million.", "The budget is $1 billion.", []),
    ("It was 5 thousand million dollars.", "It was $5 billion.", []),
    # where nothing says which convention, a number is stated only if it is under both
    ("The dose is 1500 mg.", "The dose is 1.500 mg.", ["1500 mg"]),
    ("The fee is €1.5.", "The fee is 1.500 €.", ["1.5 euro"]),
    # a review: each text is read in its own convention (the three read as one, an English passage's "$1,500" was read
    # as German's 1.5, and a German "1,5 $" passed), one word is no sign of a language ("Take" is Czech's too), and
    # scale words apart are two figures' own
    ("Die Jahresgebühr beträgt 1,5 $.", "The annual fee for the card is $1,500.", ["1.5 dollar"]),
    ("Das Unternehmen sammelte 2 Billionen Dollar.", "The company raised $2 billion.", ["2000000000000 dollar"]),
    ("Das Unternehmen sammelte 2 Milliarden Dollar.", "The company raised $2 billion.", []),
    ("Take 1500 mg.", "Dose: 1.500 mg daily", ["1500 mg"]),
    ("The fund lost $3 thousand. Millions of savers were affected.", "The fund lost $3 billion.", ["3000 dollar"]),
    ("Sales reached 2 million.", "Sales reached 2 million. Billions were lost.", []),
    # ... and a table's "1,500" restated without its comma stays stated (a dollar, a pound, a yen say English's
    # convention; with no sign, "1,500" is fifteen hundred, "1.500" either)
    ("$1500.", "Annual fee: $1,500", []),
    ("4200.", "Employees: 4,200", []),
    ("1250 km.", "Distance: 1,250 km", []),
    ("The ticket costs 1,000 yen.", "The ticket costs ¥1,000.", []),
])
def test_numbers_are_read_in_the_convention_their_language_writes_them(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a user trial: CJK scale characters split a figure into pieces ("4万5千円" read 4 and 5), so a piece passed as the
    # figure ("4万円" or "5千円" from 45,000 yen) and the right figure in digits was held; one value now, its currency read
    ("手数料は4万円です。", "手数料は4万5千円です。", ["40000 yen"]),
    ("手数料は5千円です。", "手数料は4万5千円です。", ["5000 yen"]),
    ("费用为1亿元。", "项目预算为1亿2千万元。", ["100000000 cny"]),
    ("费用为2千万元。", "项目预算为1亿2千万元。", ["20000000 cny"]),
    ("补贴为3千元。", "每月补贴为1万3千元。", ["3000 cny"]),
    ("The fee is 5,000 yen.", "手数料は4万5千円です。", ["5000 yen"]),
    ("手数料は4万5千円です。", "手数料は4万5千円です。", []),
    ("The fee is 45,000 yen.", "手数料は4万5千円です。", []),
    ("The fee is JPY 45,000.", "手数料は4万5000円です。", []),
    ("The budget is 120 million yuan.", "项目预算为1亿2千万元。", []),
    ("预算为1.2亿元。", "项目预算为1亿2千万元。", []),
    ("The limit is 35,000.", "上限は3.5万です。", []),
    ("The price is 12,000,000 yen.", "価格は1,200万円です。", []),
    ("It is 135,000,000.", "总额为1亿3千5百万。", []),
    ("The fee is 100 yen.", "费用为100元。", ["100 yen"]),  # 円 is yen, 元 yuan
    ("The fee is 100 dollars.", "费用为100美元。", []),
    ("费用为100元。", "费用为100美元。", ["100 cny"]),
    ("The fee is 100 RMB.", "费用为100元。", []),
    ("The fee is ¥100.", "费用为100元。", []),  # "¥" is the yen's sign and the yuan's
    ("费用为100元。", "The fee is ¥100.", []),
    ("手数料は100円です。", "The fee is ¥100.", []),
    ("The fee is 100 yen.", "The fee is ¥100.", []),
    ("The fee is ¥100.", "The fee is 100 yen.", []),
    ("The fee is 100 CNY.", "The fee is 100 yen.", ["100 cny"]),  # ... but yen and yuan spelt out stay apart
    ("예산은 1억 원입니다.", "예산은 1억 2천만 원입니다.", ["100000000 krw"]),
    ("The budget is 120,000,000 KRW.", "예산은 1억 2천만 원입니다.", []),
    ("期限是45天。", "期限是三十五天。", ["45"]),  # Chinese numerals without digits are not read
    ("It is 30,000.", "分别为1万 2万。", ["30000"]),  # a group that does not go down starts another number
    ("It is 20,000.", "分别为1万 2万。", []),
    ("The price is 45,000 yen.", "価格は4万5000円です。", []),  # digits after the last character, below its unit
    ("The price is 40,500 yen.", "価格は4万500円です。", []),
])
def test_cjk_scale_characters_read_one_value_with_its_currency(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


def test_cjk_scale_characters_read_long_runs_in_linear_time(within_cpu_seconds):
    """Runs of digits, grouping commas, decimal points and scale characters are read in linear time (the project had
    quadratic rules before): at these sizes a quadratic reading takes minutes (the fraction sign's old rule took 15 s
    for a run of 30,000 digits on a loaded 2-core machine, so minutes for these of 100,000), the linear one 12 s there
    for all of them (11 s of CPU at load 9); the CPU budget fails that rule (without one it passed, slowly)."""
    from hguard.calibrate.judge import unstated_numbers

    with within_cpu_seconds(45):
        assert unstated_numbers("It is 3.", "1万" * 20_000) == ["3"]
        assert unstated_numbers("It is 3.", "1万 " * 20_000 + "1") == ["3"]
        assert unstated_numbers("It is 3.", "1" * 100_000 + "円") == ["3"]
        assert unstated_numbers("It is 3.", "1,000" * 6_000 + "万") == ["3"]
        assert unstated_numbers("It is 3.", "1.1" * 10_000 + "万") == ["3"]
        assert unstated_numbers("It is 3.", "1万零" * 20_000) == ["3"]
        assert unstated_numbers("It is 3.", "1万" + "1" * 100_000) == ["3"]  # digits after the last character


@pytest.mark.parametrize("answer, alias, label", [
    # "¥" is read as the yen's or the yuan's sign: an alias in yen still matches it (and "円", "元" are read as currencies)
    ("The fee is 500 yen.", "\u00a5500", "correct"),
    ("The fee is \u00a5500.", "500 yen", "correct"),
    ("It costs 500元.", "\u00a5500", "correct"),
    ("The fee is 500円.", "500 yen", "correct"),
    ("It costs 3万円.", "30,000 yen", "correct"),
    ("It costs 500 yen.", "500 CNY", "hallucinated"),
])
def test_an_alias_in_yen_or_yuan_matches_the_sign_both_share(answer, alias, label):
    assert judge(answer, [alias]).label == label


@pytest.mark.parametrize("answer, aliases, label", [
    # a review: a currency's code matched its family's name wherever it stood, so a wrong currency named alone passed
    # as the right one ("the Mexican peso" for CLP, "the Swedish krona" for NOK, "the yuan" for "¥"): the family is
    # matched in an amount only, a number beside the currency in both ("200 kr" and "200 SEK")
    ("The currency of Chile is the Mexican peso.", ["Chilean peso", "CLP"], "hallucinated"),
    ("Switzerland uses the French franc.", ["Swiss franc", "CHF"], "hallucinated"),
    ("Switzerland uses the CFA franc.", ["Swiss franc", "CHF"], "hallucinated"),
    ("Norway uses the Swedish krona.", ["Norwegian krone", "NOK"], "hallucinated"),
    ("Norway uses the krona.", ["NOK"], "hallucinated"),
    ("Japan uses the yuan.", ["Japanese yen", "JPY", "\u00a5"], "hallucinated"),
    ("The currency of Chile is the Chilean peso.", ["Chilean peso", "CLP"], "correct"),
    ("It costs 200 kr.", ["200 SEK"], "correct"),
    ("It costs 200 SEK.", ["200 kr"], "correct"),
    ("It costs 300 kr.", ["200 SEK"], "hallucinated"),
    ("It costs 500 yuan.", ["\u00a5500"], "correct"),
])
def test_a_currency_matches_its_family_only_in_an_amount(answer, aliases, label):
    assert judge(answer, aliases).label == label


@pytest.mark.parametrize("answer, aliases, label", [
    # a review: matching the family in an amount only left a right currency named alone unmatched ("Sweden uses the
    # krona." for SEK was hallucinated); the sign "¥" matches its own currency's name alone (the yen or the yuan, the
    # one the other aliases name), never after another country's adjective
    ("Japan uses the yen.", ["\u00a5"], "correct"),
    ("China uses the yuan.", ["\u00a5"], "correct"),
    ("China uses the yen.", ["Chinese yuan", "CNY", "\u00a5"], "hallucinated"),
    # a finance team's trial: a code in capitals is matched as that code only ("The ISO code for the Chilean peso is
    # CHP." named "CLP" by its peso), so a currency named alone needs its name among the aliases
    ("Sweden uses the krona.", ["SEK"], "hallucinated"),
    ("Sweden uses the krona.", ["Swedish krona", "SEK"], "hallucinated"),
    ("Sweden uses the krona.", ["Swedish krona", "krona", "SEK"], "correct"),
    ("Denmark uses the krone.", ["DKK"], "hallucinated"),
    ("Mexico uses the peso.", ["MXN"], "hallucinated"),
    ("Switzerland uses the franc.", ["CHF"], "hallucinated"),
    ("Sweden uses the Swedish krona.", ["SEK"], "hallucinated"),
    ("Norway uses the krona.", ["NOK"], "hallucinated"),  # the krona is not the krone
    ("Norway uses the Swedish krona.", ["NOK"], "hallucinated"),
    ("Sweden uses the Norwegian krone.", ["SEK"], "hallucinated"),
    ("Switzerland uses the French franc.", ["CHF"], "hallucinated"),
    ("Switzerland uses the CFA franc.", ["CHF"], "hallucinated"),
    ("Chile uses the Mexican peso.", ["CLP"], "hallucinated"),
])
def test_a_currency_sign_matches_its_own_currency_named_alone_a_code_only_as_itself(answer, aliases, label):
    assert judge(answer, aliases).label == label


_JAPAN, _CHINA = "What is the currency of Japan?", "What is the currency of China?"


@pytest.mark.parametrize("answer, aliases, question, label", [
    # a review: the reply's "\u00a5" named alone matched no name of the yen or the yuan (only an alias "\u00a5"), a bare
    # "\u00a5" was an empty reply, and "The yuan (\u00a5)." matched Japan's "\u00a5": the sign is the yen's or the yuan's,
    # the one the reply names where it names one
    ("\u00a5", ["Chinese yuan", "renminbi", "CNY"], _CHINA, "correct"),
    ("The currency is the \u00a5.", ["renminbi", "yuan", "CNY"], _CHINA, "correct"),
    ("The currency is the \u00a5.", ["Japanese yen", "yen", "JPY"], _JAPAN, "correct"),
    ("\u00a5", ["yen"], _JAPAN, "correct"),
    ("The yuan (\u00a5).", ["Japanese yen", "JPY", "\u00a5"], _JAPAN, "hallucinated"),
    ("The yuan (\u00a5).", ["yen"], _JAPAN, "hallucinated"),
    ("The yen (\u00a5).", ["renminbi", "CNY"], _CHINA, "hallucinated"),
    ("The Chinese \u00a5.", ["yen"], _JAPAN, "hallucinated"),
    ("Japan uses the yen (\u00a5).", ["Japanese yen", "JPY", "\u00a5"], _JAPAN, "correct"),
    ("The renminbi (\u00a5).", ["Chinese yuan", "CNY", "\u00a5"], _CHINA, "correct"),
    ("\u00a5", ["CNY"], "What is the ISO code of the Chinese yuan?", "hallucinated"),  # a code only as itself
])
def test_a_yen_or_yuan_sign_named_alone_is_the_one_the_reply_names(answer, aliases, question, label):
    assert judge(answer, aliases, question=question).label == label


_CANADA = "What currency does Canada use?"


@pytest.mark.parametrize("answer, aliases, question, label", [
    # a review: a row's generic "dollar" (or "$") matched "USD", "US$" and "the US dollar" where the row or the
    # question names another country's dollar ("The Canadian dollar's code?" answered "USD"); the US's dollar counts
    # there no more
    ("USD", ["CAD", "dollar"], "The Canadian dollar's code?", "hallucinated"),
    ("USD", ["dollar"], "The Canadian dollar's code?", "hallucinated"),
    ("USD", ["CAD", "$"], "The Canadian dollar's code?", "hallucinated"),
    ("It is the USD.", ["Canadian dollar", "dollar"], _CANADA, "hallucinated"),
    ("US$", ["C$", "dollar"], _CANADA, "hallucinated"),
    ("The US dollar.", ["Canadian dollar", "dollar"], _CANADA, "hallucinated"),
    ("The American dollar.", ["CAD", "dollar"], _CANADA, "hallucinated"),
    ("The dollar.", ["CAD", "dollar"], _CANADA, "correct"),
    ("The Canadian dollar, not USD.", ["CAD", "dollar"], _CANADA, "correct"),
    ("$", ["CAD", "dollar"], _CANADA, "correct"),
    ("USD", ["USD", "dollar"], "What currency does the United States use?", "correct"),
    ("USD", ["dollar"], "What currency does the United States use?", "correct"),
    ("The US dollar.", ["dollar"], "What currency does Ecuador use?", "correct"),
])
def test_a_generic_dollar_alias_is_no_us_dollar_where_another_dollar_is_asked(answer, aliases, question, label):
    assert judge(answer, aliases, question=question).label == label


_UK = "What is the currency of the United Kingdom?"
_AUSTRALIA = "What currency does Australia use?"


@pytest.mark.parametrize("answer, aliases, question, label", [
    # a review: a currency's name matched after any qualifier but the few declared adjectives ("the Canadian dollar"),
    # so "The Egyptian pound." was right for ["GBP", "pound sterling"]; where the row's aliases qualify the name, a
    # qualifier in capitals right before it that names another country than theirs or the question's is another
    # currency (the judge's nationalities: "British", "UK" to the United Kingdom are its own)
    ("The Egyptian pound.", ["GBP", "pound sterling"], _UK, "hallucinated"),
    ("Egyptian pound.", ["GBP", "pound sterling", "pound"], _UK, "hallucinated"),
    ("The Egyptian pound.", ["pound sterling", "British pound", "pound"], None, "hallucinated"),
    ("The Irish pound.", ["GBP", "pound sterling"], _UK, "hallucinated"),
    ("The New Zealand dollar.", ["AUD", "Australian dollar", "dollar"], _AUSTRALIA, "hallucinated"),
    ("The British pound.", ["GBP", "pound sterling"], _UK, "correct"),
    ("The British pound.", ["GBP", "pound sterling", "British pound"], _UK, "correct"),
    ("The English pound.", ["GBP", "pound sterling"], "What currency does Britain use?", "correct"),
    ("UK pound.", ["GBP", "pound sterling"], _UK, "correct"),
    ("In Britain, the pound.", ["GBP", "pound sterling"], _UK, "correct"),
    ("The pound.", ["GBP", "pound sterling"], _UK, "correct"),
    ("The Australian dollar.", ["AUD", "Australian dollar", "dollar"], _AUSTRALIA, "correct"),
    ("Australia uses the dollar.", ["AUD", "Australian dollar", "dollar"], _AUSTRALIA, "correct"),
])
def test_a_currency_name_the_row_qualifies_is_no_other_qualified_currency(answer, aliases, question, label):
    assert judge(answer, aliases, question=question).label == label


_NZ = "What's the currency of New Zealand?"
_NZD = ["NZD", "New Zealand dollar", "dollar"]
_HKD = ["HKD", "Hong Kong dollar", "dollar"]


@pytest.mark.parametrize("answer, aliases, question, label", [
    # a review: the rule above took any qualifier in capitals but the row's, the question's and the nationality
    # table's for another currency, so right replies with a short or informal qualifier were hallucinated; only a
    # qualifier naming another country known (the nationality table, a currency's declared adjective) is evidence
    ("NZ dollar", _NZD, _NZ, "correct"),
    ("The NZ dollar.", _NZD, _NZ, "correct"),
    ("The Kiwi dollar.", _NZD, _NZ, "correct"),
    ("HK dollar", _HKD, "What currency does Hong Kong use?", "correct"),
    ("The HK dollar.", _HKD, "What currency does Hong Kong use?", "correct"),
    ("The Aussie dollar.", ["AUD", "Australian dollar", "dollar"], "What is the currency of Australia?", "correct"),
    ("The Singaporean dollar.", ["SGD", "Singapore dollar", "dollar"], "What is the currency of Singapore?", "correct"),
    ("GB pound", ["GBP", "pound sterling", "pound"], _UK, "correct"),
    ("The Egyptian pound.", ["EGP", "Egyptian pound", "pound"], "What currency is used in Egypt?", "correct"),
    # another country named, by a nationality, a country or a currency's adjective: another currency
    ("The Lebanese pound.", ["GBP", "pound sterling", "pound"], _UK, "hallucinated"),
    ("The Sudanese pound.", ["EGP", "Egyptian pound", "pound"], "What currency is used in Egypt?", "hallucinated"),
    ("The Brunei dollar.", ["SGD", "Singapore dollar", "dollar"], "What is the currency of Singapore?", "hallucinated"),
    ("The Hong Kong dollar.", ["AUD", "Australian dollar", "dollar"], _AUSTRALIA, "hallucinated"),
    ("The Australian dollar.", _NZD, _NZ, "hallucinated"),
    ("The CFA franc.", ["CHF", "Swiss franc", "franc"], "What currency does Switzerland use?", "hallucinated"),
])
def test_only_a_qualifier_naming_another_country_makes_another_currency(answer, aliases, question, label):
    assert judge(answer, aliases, question=question).label == label


@pytest.mark.parametrize("answer, aliases, question, label", [
    # a review: a code's plural or possessive ("NSAIDs", "GDPR's") read as another word, so a right reply was
    # hallucinated; a code of two capitals or more is read so (not "Cs" for carbon's "C": caesium)
    ("NSAIDs", ["NSAID"], "Which drug class is ibuprofen in?", "correct"),
    ("The GDPR's rules apply.", ["GDPR"], "Which EU law governs personal data?", "correct"),
    ("They are ETFs.", ["ETF"], "What kind of fund is SPY?", "correct"),
    ("NSAIDs", ["NSAID"], "What is the abbreviation for non-steroidal anti-inflammatory drugs?", "correct"),
    ("The NYSE's main floor.", ["NYSE"], "On which exchange is IBM listed?", "correct"),
    ("Cs", ["C"], "What is the chemical symbol of carbon?", "hallucinated"),
    ("SSRIs.", ["NSAID"], "Which drug class is ibuprofen in?", "hallucinated"),
    ("Not NSAIDs.", ["NSAID"], "Which drug class is ibuprofen in?", "hallucinated"),
])
def test_a_code_s_plural_or_possessive_is_the_code(answer, aliases, question, label):
    assert judge(answer, aliases, question=question).label == label


_LISTED = "On which exchange is IBM listed?"


@pytest.mark.parametrize("answer, aliases, question, label", [
    # a review: a row listing only a code ("NYSE") missed the name written out ("The New York Stock Exchange."); to a
    # question that asks for the thing, not its code, a run of words in capitals whose initials are the code names it
    ("The New York Stock Exchange.", ["NYSE"], _LISTED, "correct"),
    ("It trades on the New York Stock Exchange.", ["NYSE"], _LISTED, "correct"),
    ("The General Data Protection Regulation.", ["GDPR"], "Which EU law governs personal data?", "correct"),
    ("The Federal Bureau of Investigation.", ["FBI"], "Which agency investigates federal crimes?", "correct"),
    ("The Nasdaq Stock Market.", ["NYSE"], _LISTED, "hallucinated"),
    ("New York Stock Exchange Group.", ["NYSE"], _LISTED, "hallucinated"),  # the run goes on: another name
    ("Not the New York Stock Exchange.", ["NYSE"], _LISTED, "hallucinated"),
    ("The New York Stock Exchange.", ["NYSE"], "What is the abbreviation of the New York Stock Exchange?", "hallucinated"),
    ("The New York Stock Exchange.", ["NYSE"], None, "hallucinated"),  # no question: the code as itself only
    ("In Nepal.", ["IN"], "Which state?", "hallucinated"),
])
def test_a_code_s_name_written_out_names_it_where_the_question_asks_for_the_thing(answer, aliases, question, label):
    assert judge(answer, aliases, question=question).label == label


_FIFTY_THREE, _IODINE_SYMBOL = "Which element has atomic number 53?", "What is the chemical symbol of iodine?"


@pytest.mark.parametrize("answer, aliases, question, label", [
    # a review: the pronoun "I" matched iodine's symbol (always in capitals, so the word-code check let it through):
    # "I think it is Xenon." was right; "I" followed by a word in lower case is the pronoun
    ("I think it is Xenon.", ["I", "iodine"], _FIFTY_THREE, "hallucinated"),
    ("I think it is Xenon.", ["I"], _IODINE_SYMBOL, "hallucinated"),
    ("I believe the answer is Xe.", ["I"], _IODINE_SYMBOL, "hallucinated"),
    ("The symbol is I.", ["I"], _IODINE_SYMBOL, "correct"),
    ("I think the symbol is I.", ["I"], _IODINE_SYMBOL, "correct"),
    ("I (iodine).", ["I"], _IODINE_SYMBOL, "correct"),
    ("I and Br are halogens.", ["I"], _IODINE_SYMBOL, "correct"),
    ("I think it is iodine.", ["I", "iodine"], _FIFTY_THREE, "correct"),
])
def test_the_pronoun_i_is_no_iodine(answer, aliases, question, label):
    assert judge(answer, aliases, question=question).label == label


_KARENINA = "In which novel does Anna Karenina appear?"


@pytest.mark.parametrize("answer, aliases, question, label", [
    # a review: the question's name said again without "is" counted as the reply ("Anna Karenina appears in War and
    # Peace." was right); beside a name of the clause's own and a predicate, on either side, it is the question's
    ("Anna Karenina appears in War and Peace.", ["Anna Karenina"], _KARENINA, "hallucinated"),
    ("War and Peace features Anna Karenina.", ["Anna Karenina"], _KARENINA, "hallucinated"),
    ("Oliver Twist appears in Great Expectations.", ["Oliver Twist"], "In which book does Oliver Twist appear?",
     "hallucinated"),
    ("Anna Karenina appears in Anna Karenina.", ["Anna Karenina"], _KARENINA, "correct"),
    ("Anna Karenina appears in Leo Tolstoy's Anna Karenina.", ["Anna Karenina"], _KARENINA, "correct"),
    ("Anna Karenina by Leo Tolstoy.", ["Anna Karenina"], _KARENINA, "correct"),
    ("Dracula by Bram Stoker.", ["Dracula"], "Which novel features Count Dracula?", "correct"),
    ("South Africa lies in Southern Africa.", ["Africa"], "On which continent is South Africa?", "correct"),
    ("The Central Bank of Iceland (Se\u00f0labanki \u00cdslands).", ["Central Bank of Iceland"],
     "What is the name of the central bank of Iceland?", "correct"),
])
def test_the_question_s_name_said_again_beside_a_rival_name_is_no_reply(answer, aliases, question, label):
    assert judge(answer, aliases, question=question).label == label


@pytest.mark.parametrize("answer, aliases, question, label", [
    # a clinical team's trial: a drug class's plural was hallucinated ("the class of statins" for "statin"; 12 right
    # drug-class answers became 19 once the plurals were added by hand); an alias's last word in the regular plural or
    # singular (-s, -es, -ies/-y) is the alias
    ("Atorvastatin belongs to the class of statins.", ["statin", "HMG-CoA reductase inhibitor"],
     "What drug class does atorvastatin belong to?", "correct"),
    ("Morphine belongs to the class of analgesics called opioids.", ["opioid", "opioid analgesic"],
     "What drug class does morphine belong to?", "correct"),
    ("Lisinopril belongs to the class of angiotensin converting enzyme inhibitors.",
     ["ACE inhibitor", "angiotensin-converting enzyme inhibitor"], "What drug class does lisinopril belong to?", "correct"),
    ("It is a proton pump inhibitor.", ["proton pump inhibitors"], "What drug class is omeprazole?", "correct"),
    ("Allergies.", ["allergy"], "What is cetirizine used for?", "correct"),
    ("An allergy.", ["allergies"], "What is cetirizine used for?", "correct"),
    ("Viruses.", ["virus"], "What causes the flu?", "correct"),
    # a name's, a code's, a short word's, a verb's, or a form the question offers as the other choice: not read so
    ("The Parises.", ["Paris"], "What is the capital of France?", "hallucinated"),
    ("Cs", ["C"], "What is the chemical symbol of carbon?", "hallucinated"),
    ("It is in the news.", ["new"], "Which word means recent?", "hallucinated"),
    ("It leads to gold.", ["lead"], "Which element has the symbol Pb?", "hallucinated"),
    ("Statins.", ["statin"], "Is it one statin or statins?", "hallucinated"),
    ("Not statins.", ["statin"], "What drug class is atorvastatin?", "hallucinated"),
    ("The class of fibrates.", ["statin"], "What drug class is atorvastatin?", "hallucinated"),
])
def test_an_alias_s_regular_plural_or_singular_is_the_alias(answer, aliases, question, label):
    assert judge(answer, aliases, question=question).label == label


@pytest.mark.parametrize("answer, aliases, label", [
    # a clinical team's trial: a wrong main answer with the right one as an aside was right ("primarily WRONG, but also
    # RIGHT"); an alias only after a secondary mark that follows a primary one not introducing an alias is hallucinated
    ("Oseltamivir is primarily used to treat COVID-19, but also influenza.", ["influenza", "flu"], "hallucinated"),
    ("Chloroquine is primarily used to treat HIV/AIDS, but it can also be used to treat other viral infections, "
     "including malaria and Zika virus.", ["malaria"], "hallucinated"),
    ("Atorvastatin is mainly used for type 2 diabetes, as well as high cholesterol.", ["high cholesterol"], "hallucinated"),
    ("First and foremost it treats gout, and also malaria.", ["malaria"], "hallucinated"),
    # the primary mark introducing the right answer, the aside repeating it, or another name: right as before
    ("It is primarily used for influenza, but also colds.", ["influenza"], "correct"),
    ("Tamoxifen is primarily used to treat breast cancer, but it's also used to treat other types of cancer, including "
     "breast cancer itself.", ["breast cancer"], "correct"),
    ("It treats malaria. It is also used for lupus.", ["malaria"], "correct"),
    ("It is also used for malaria.", ["malaria"], "correct"),
    ("It is mainly called Peking, also known as Beijing.", ["Beijing"], "correct"),
])
def test_a_right_answer_only_as_an_aside_to_a_wrong_main_one_is_hallucinated(answer, aliases, label):
    assert judge(answer, aliases, question="What is it used to treat?").label == label


@pytest.mark.parametrize("answer, context, missing", [
    # a review: "¥" was read as the yen or the yuan even where a code, name or CJK currency beside it says which, so
    # "100 CNY" passed from "¥100 (JPY)" and "100 yuan" from "¥100円"; the currency said is read, the family only where
    # nothing says which
    ("The fee is 100 CNY.", "The fee is \u00a5100 (JPY).", ["100 cny"]),
    ("The fee is 100 yuan.", "料金は\u00a5100円です。", ["100 cny"]),
    ("The fee is 100 CNY.", "手数料は\u00a5100（JPY）です。", ["100 cny"]),
    ("The fee is 100 yen.", "The fee is \u00a5100 CNY.", ["100 yen"]),
    ("The fee is \u00a5100 (JPY).", "费用为100元。", ["100 yen"]),
    ("The fee is 100 yen.", "The fee is \u00a5100 RMB.", ["100 yen"]),
    ("The fee is 100 yen.", "The fee is CN\u00a5100.", ["100 yen"]),
    ("The fee is 100 yuan.", "The fee is JP\u00a5100.", ["100 cny"]),
    ("The fee is 100 yen.", "The fee is \u00a5100 (JPY).", []),
    ("The fee is 100 yuan.", "The fee is \u00a5100 RMB.", []),
    ("The fee is \u00a5100 (JPY).", "The fee is \u00a5100.", []),
    ("The fee is 100 yuan.", "The fee is \u00a5100.", []),  # nothing says which: either
])
def test_a_yen_or_yuan_sign_is_read_as_the_currency_written_beside_it(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a review: "¥" was dropped where a code or name followed its number, also where that code opens a conversion
    # ("¥1,000 (CNY 48)" read "1,000 (CNY 48)": CNY went to 48 and 1,000 was left bare, matching any unit), so a wrong
    # "1,000 dollars" passed and from "¥1,000 (yuan 48)" the right "1,000 yen" was held; the sign is replaced by the
    # currency it is read as, and a code or name beside it says which only where no number follows that code
    ("The ticket costs 1,000 dollars.", "The ticket costs \u00a51,000 (CNY 48).", ["1000 dollar"]),
    ("The ticket costs 1,000 euros.", "The ticket costs \u00a51,000 (CNY 48).", ["1000 euro"]),
    ("The ticket costs 1,000 yen.", "The ticket costs \u00a51,000 (yuan 48).", []),
    ("The ticket costs 1,000 yuan.", "The ticket costs \u00a51,000 (yuan 48).", []),
    ("The ticket costs 48 yuan.", "The ticket costs \u00a51,000 (CNY 48).", []),
    ("The fee is 100 dollars.", "The fee is \u00a5100 (JPY).", ["100 dollar"]),
    ("The fee is 100 dollars.", "料金は\u00a5100円です。", ["100 dollar"]),
])
def test_a_yen_or_yuan_sign_is_never_left_a_bare_number(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a review: Korean 조 (a trillion) was not read, so "1조 2천억 원" stated only "2천억 원" and a wrong
    # "200,000,000,000 KRW" passed; 조 after digits is 10^12 unless 제 stands before them ("제3조" is article 3)
    ("Revenue was 200,000,000,000 KRW.", "매출은 1조 2천억 원입니다.", ["200000000000 krw"]),
    ("Revenue was 500,000,000,000 KRW.", "매출은 3조 5천억 원입니다.", ["500000000000 krw"]),
    ("Revenue was 1,200,000,000,000 KRW.", "매출은 1조 2천억 원입니다.", []),
    ("Revenue was 1.2 trillion won.", "매출은 1조 2천억 원입니다.", []),
    ("매출은 3조원입니다.", "매출은 3조 5천억 원입니다.", ["3000000000000 krw"]),
    ("Article 3 applies.", "제3조가 적용된다.", []),
    ("Article 3 applies.", "제 3조가 적용된다.", []),
])
def test_korean_jo_is_a_trillion_after_digits_not_after_je(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a review: 조 after digits was read as a trillion inside words too ("3조각" 3 pieces, "3조건" 3 conditions, "3조는"
    # team 3), so the faithful "3 pieces" was held and "3,000,000,000,000 pieces" passed; 조 is a scale only at its
    # word's end or before a currency or digits
    ("It was cut into 3 pieces.", "케이크를 3조각으로 나눴다.", []),
    ("It was cut into 3,000,000,000,000 pieces.", "케이크를 3조각으로 나눴다.", ["3000000000000"]),
    ("There are 3 conditions.", "3조건을 충족해야 한다.", []),
    ("Team 3 has 5 members.", "3조는 5명이다.", []),
    ("Revenue was 3 trillion won.", "매출은 3조원이다.", []),
    ("Revenue was 3 trillion dollars.", "매출은 3조달러이다.", []),
    ("Revenue was 1,200,000,000,000 KRW.", "매출은 1조2천억 원이다.", []),
    ("Revenue was 3,000,000,000,000 KRW.", "매출은 3조 원이다.", []),
    ("Revenue was 3 KRW.", "매출은 3조 원이다.", ["3 krw"]),
])
def test_korean_jo_is_a_trillion_only_at_its_word_s_end_or_before_a_currency_or_digits(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a review: a number with a scale character was not read after a full-width comma ("1万，2万，3万元", as Chinese
    # lists), and a range's first end was read without the scale written after its second ("3-5万元"), so "2元" and
    # "3元" passed and the right "2万元" and "30,000 yuan" were held
    ("第二档价格为2元。", "三档价格分别为1万，2万，3万元。", ["2 cny"]),
    ("第二档价格为2万元。", "三档价格分别为1万，2万，3万元。", []),
    ("The second tier is 20,000.", "三档价格分别为1万，2万，3万元。", []),
    ("最低价格为3元。", "价格为3-5万元。", ["3 cny"]),
    ("The lowest price is 30,000 yuan.", "价格为3-5万元。", []),
    ("The highest price is 50,000 yuan.", "价格为3-5万元。", []),
    ("The lowest price is 30,000 yen.", "価格は3〜5万円です。", []),
    ("The lowest price is 300,000,000 KRW.", "가격은 3~5억 원입니다.", []),
    ("It is 2.", "1，2万", []),  # a grouping comma or a decimal point before a digit starts no number
    ("It is 15,000.", "1.5万", []),
])
def test_cjk_scale_characters_read_after_a_full_width_comma_and_on_both_ends_of_a_range(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a review: a range whose low end is written in full took the high end's scale on it ("月薪8000-1万元" read
    # 80,000,000 to 10,000 yuan), so a wrong "80,000,000 yuan" passed and the right "8,000 to 10,000 yuan" was held;
    # the low end is scaled only where that keeps it no higher than the high end, else read as written below it, else
    # the two are no range
    ("The monthly salary is 8,000 to 10,000 yuan.", "月薪8000-1万元。", []),
    ("The monthly salary is 80,000,000 yuan.", "月薪8000-1万元。", ["80000000 cny"]),
    ("The monthly salary is 6,000 to 12,000 yuan.", "月薪6000\uff5e1.2万元。", []),
    ("The monthly salary is 60,000,000 yuan.", "月薪6000\uff5e1.2万元。", ["60000000 cny"]),
    ("The monthly pay is 8,000 to 10,000 KRW.", "월급은 8000~1만 원이다.", []),
    ("The monthly pay is 80,000,000 KRW.", "월급은 8000~1만 원이다.", ["80000000 krw"]),
    ("It costs 20,230,000 yuan.", "费用为2023-5万元。", ["20230000 cny"]),
    ("The lowest price is 30,000 yuan.", "价格为3-5万元。", []),  # scaled where that keeps it below
    ("The lowest price is 30,000 yuan.", "价格为3-5万5千元。", []),
])
def test_a_cjk_range_s_low_end_takes_the_scale_only_where_it_stays_below_the_high_end(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


def test_a_cjk_range_whose_low_end_is_above_its_high_end_either_way_is_no_range():
    from hguard.calibrate.judge import _plain_digits

    assert _plain_digits("费用20000-1万元") == "费用 20000, 10000 CNY "
    assert _plain_digits("费用8000-1万元") == "费用 8000-10000 CNY "


@pytest.mark.parametrize("answer, context, missing", [
    # a review: the digits after the last scale character were dropped before a sentence's full stop or a comma and
    # then glued to the value ("4万5000." read 400005000, "2万5." 200005), so "400,005,000 yen" passed from "The fee
    # is 4万5000." and the right "45,000 yen" was held; they are read before a stop or a comma, and the value is set
    # apart from what follows
    ("The fee is 4万5000.", "The fee is 45,000 yen.", []),
    ("It is 2万5.", "It is 25,000.", []),
    ("The fee is 400,005,000 yen.", "The fee is 4万5000.", ["400005000 yen"]),
    ("The fee is 45,000 yen.", "The fee is 4万5000.", []),
    ("It is 100,005.", "分别为1万5, 2万", ["100005"]),
    ("It is 15,000.", "分别为1万5, 2万", []),
    ("It is 400,005,000.5.", "It is 4万5000.5.", ["400005000.5"]),
    ("It is 5,000.5.", "It is 4万5000.5.", []),
])
def test_digits_after_a_cjk_scale_character_are_read_before_a_stop_and_never_glued(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


@pytest.mark.parametrize("answer, context, missing", [
    # a review: the guard's reason quoted the hold's internal word, "the answer states 300 yenyuan"; it reads "300 ¥
    # (yen or yuan)" (`_UNIT_SHOWN`), also with a period
    ("The fee is \u00a5300.", "The fee is \u00a5100.", ["300 \u00a5 (yen or yuan)"]),
    ("The fee is \u00a5300.", "The fee is 100 yen.", ["300 \u00a5 (yen or yuan)"]),
    ("The fee is \u00a5300 per month.", "The fee is \u00a5100.", ["300 \u00a5 (yen or yuan)/month"]),
    ("The fee is 300 kr.", "The fee is 100 kr.", ["300 krona"]),
])
def test_a_yen_or_yuan_amount_held_is_shown_by_a_readable_label(answer, context, missing):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context) == missing


def test_a_refusal_or_an_alias_with_an_invisible_character_or_a_look_alike_letter_reads_as_shown() -> None:
    """The judge's form read the text's invisible characters as spaces and kept look-alike letters: "I don't kn\u200bow."
    and "The cont\u0435xt does not say." (a Cyrillic "\u0435") did not decline, so the guard scored them as claims, and
    "Gdan\u00adsk" was not the alias "Gdansk". Read as shown now (hguard._text.matching_form), a Russian word as it is."""
    assert declines("I don\u2019t kn\u200bow.") == "i dont know"
    assert declines("I do\u00adn't know.") == "i dont know"
    assert declines("The cont\u0435xt does not say.") == "context does not say"
    assert normalize("Gdan\u00adsk") == "gdansk" and judge("Gdan\u00adsk.", ["Gdansk"]).label == "correct"
    assert normalize("\u041c\u041e\u0421\u041a\u0412\u0410") == normalize("\u041c\u043e\u0441\u043a\u0432\u0430")  # МОСКВА, Москва


_RETENTION = ("Records Retention Policy, section 4. Customer contracts are retained for seven (7) years after the contract "
              "ends. Backups are kept for 90 days and then destroyed.\n\nService Level Agreement, schedule B. The Provider "
              "guarantees a monthly uptime of 99.9%. Credits must be claimed within 30 days.")
_KEPT = "How long are customer contracts retained?"


@pytest.mark.parametrize("answer, context, question, elsewhere", [
    # a legal team's trial: a figure stated anywhere in the passage passed, so "30 days", from another retrieved
    # passage's claim window, was accepted 23 times to a question on keeping contracts (7 years)
    ("The answer is 30 days.", _RETENTION, _KEPT, ["30 day"]),
    ("Customer contracts are retained for 30 days.", _RETENTION, _KEPT, ["30 day"]),
    ("Yes, customer contracts are retained for 30 days.", _RETENTION, "Are customer contracts retained for 30 days?",
     ["30 day"]),  # an affirming answer: the question's figure is its own (`unstated_numbers`)
    ("The notice period is 90 days.", "Either party may terminate this Agreement upon thirty (30) days' written "
     "notice.\n\nBackups are kept for 90 days and then destroyed.", "How much notice is needed to terminate?", ["90 day"]),
    ("A stop payment costs $30.", "| Service | Fee |\n| Outgoing wire | $30 |\n| Stop payment | $35 |",
     "What does a stop payment cost?", ["30 dollar"]),  # another row's
    # ... not the figure stated where the answer's words are, in the question's words, after the sentence naming it
    ("The answer is 7 years.", _RETENTION, _KEPT, []),
    ("They are retained for seven (7) years after the contract ends.", _RETENTION, _KEPT, []),
    ("No, they are retained for 7 years, not 30 days.", _RETENTION, "Are customer contracts retained for 30 days?", []),
    ("The listing term is 180 days.", "The listing agreement sets a commission of 5.5%. The agreement lasts 180 days.",
     "How long is the listing?", []),
    ("Retail banking net revenue was $12,340 million.", _SEGMENTS + "\n\nThe cost-income ratio was 54%.",
     "What was retail banking's revenue?", []),  # the declared scale read above the row
    # no sentence of the passage shares a word with the answer: nothing says the figure is about something else
    ("You can borrow between $2,000 and $35,000.", "Personal loans are available from $2,000 to $35,000.",
     "How much can I borrow?", []),
    ("The first recording was issued by Paramount Records No. 12116. Later recordings followed.",
     "The first recording was issued by Paramount Records No. 12116 in 1922.\n\nThe Online 78 Discography lists 1,140 "
     "entries.", "Who made the first recording?", []),  # "12116." cut from its "No.": the same read alone either way
    ("The answer is 90 days.", _RETENTION, _KEPT, []),  # a limit: read with the sentence before it, on contracts
    ("The answer is 45 days.", _RETENTION, _KEPT, []),  # stated nowhere: `unstated_numbers` names it
    ("Customer contracts are retained.", _RETENTION, _KEPT, []),  # no figure
])
def test_a_figure_the_passage_states_only_about_something_else_is_named(answer, context, question, elsewhere):
    from hguard.calibrate.judge import misattributed_numbers, unstated_numbers

    assert misattributed_numbers(answer, context, question) == elsewhere
    if elsewhere:
        assert unstated_numbers(answer, context, question) == []  # stated: in another sentence


def test_a_figure_the_passage_states_only_about_something_else_is_held_with_its_reason():
    from hguard._guard_scoring import answer_holds

    held = answer_holds(_KEPT, "The answer is 30 days.", _RETENTION, None)
    assert held == ["the answer states '30 days' (read as 30 day), which the passage states only about something else "
                    "(no sentence or table row of it that states the figure shares a word with the answer's sentence or "
                    "the question, while those that do state other figures; or one stating another figure matches the "
                    "answer's subject better): held for review"], held
    redacted = answer_holds(_KEPT, "The answer is 30 days.", _RETENTION, None, redact=True)
    assert len(redacted) == 1 and "30" not in redacted[0] and "1 figure(s) (not quoted" in redacted[0], redacted
    assert answer_holds(_KEPT, "The answer is 7 years.", _RETENTION, None) == []
    assert answer_holds(_KEPT, "I don't know; it may be 30 days.", _RETENTION, "I don't know") == []  # declines


# A finance team's trial (retrieval k=2): a figure copied from the other retrieved sentence passed, as every sentence
# stating it shared some word of the answer's ("transfer", "overdraft", "instant"); it is named where a sentence
# matching the claim's subject better states another figure (not where no passage names the subject asked about: a
# known gap, see below)
_WIRES = ("Domestic wire transfers submitted before 16:00 CET on a business day are executed the same day. Later "
          "submissions are executed on the next business day.\n\nInternational wire transfers in USD must be submitted "
          "before 14:00 CET to be executed the same day. Transfers in other currencies must be submitted before 12:00 CET.")
_OVERDRAFT = ("Arranged overdrafts carry an interest rate of 9.9% per year. Unarranged overdrafts carry 14.9% per year and "
              "a one-off fee of 10 EUR per month in which they occur.\n\nCard payments in a currency other than EUR carry "
              "a foreign exchange markup of 1.75% over the reference rate published by the European Central Bank.")
_SAVINGS = ("The instant-access savings account pays 2.1% interest per year on balances up to 100,000 EUR. Balances above "
            "100,000 EUR earn 0.5%.")
_SEPA = ("SEPA Instant transfers are available 24 hours a day, every day, up to 15,000 EUR per transfer, and cost 0.50 EUR "
         "each.\n\n" + _SAVINGS)
_ACCOUNT = (_SAVINGS + "\n\nThe basic current account costs 4.90 EUR per month. The fee is waived for customers under 26 "
            "and for accounts receiving at least 1,500 EUR in salary each month.")
_CUT_OFF = "What is the cut-off time for same-day domestic wire transfers?"
_ARRANGED = "What interest rate do arranged overdrafts carry?"
_MAXIMUM = "What is the maximum amount of a SEPA Instant transfer?"
_MORTGAGE = "What is the interest rate on a mortgage?"


@pytest.mark.parametrize("answer, context, question, elsewhere", [
    # a time is read as its figure (the hour): 12:00 is stated for other currencies, domestic transfers' is 16:00
    ("The cut-off time for same-day domestic wire transfers is 12:00 CET.", _WIRES, _CUT_OFF, ["12:00"]),
    ("The cut-off time for same-day domestic wire transfers is 16:00 CET.", _WIRES, _CUT_OFF, []),
    ("It is 12:00 CET.", _WIRES, _CUT_OFF, ["12:00"]),  # an answer of one sentence answers in the question's words
    ("Domestic wires must be in by 16:00 CET. Transfers in other currencies must be in by 12:00 CET.", _WIRES,
     _CUT_OFF, []),  # a second sentence on another subject, in its own words
    ("Domestic wire transfers are due by 16:00 CET and transfers in other currencies by 12:00 CET.", _WIRES, _CUT_OFF,
     []),  # one sentence on both: its own words match the statement stating 12:00 best
    # "unarranged" is not "arranged": the fee is unarranged overdrafts'
    ("The interest rate on arranged overdrafts is 10 EUR per month.", _OVERDRAFT, _ARRANGED, ["10 euro/month"]),
    ("The interest rate on arranged overdrafts is 14.9% per year.", _OVERDRAFT, _ARRANGED, ["14.9 percent/year"]),
    ("The interest rate on arranged overdrafts is 9.9% per year.", _OVERDRAFT, _ARRANGED, []),
    ("Arranged overdrafts carry 9.9% per year; unarranged ones 14.9% per year and a fee of 10 EUR per month.",
     _OVERDRAFT, _ARRANGED, []),  # one sentence, its figures told apart by no shared word: not named
    # both figures from the savings passage, to a question on SEPA Instant transfers
    ("The maximum amount of a SEPA Instant transfer is 2.1% interest per year, and 100,000 EUR is the maximum", _SEPA,
     _MAXIMUM, ["2.1 percent", "100000 euro"]),
    ("The maximum amount of a SEPA Instant transfer is 15,000 EUR.", _SEPA, _MAXIMUM, []),
    # the subject asked about ("on a mortgage") is in no passage: the savings account's rate is no answer, but it
    # passes (a known gap): a rule holding a figure given for a subject no passage writes held right answers that
    # restate the question's word where the passage words it otherwise ("car loans" from "Auto loans", below)
    ("The interest rate on a mortgage is 2.1% per annum.", _ACCOUNT, _MORTGAGE, []),
    ("The passages do not say.", _ACCOUNT, _MORTGAGE, []),
    ("The interest rate on the savings account is 2.1% per year.", _ACCOUNT,
     "What is the interest rate on the savings account?", []),
])
def test_a_figure_a_better_matching_sentence_contradicts_is_named(answer, context, question, elsewhere):
    from hguard._guard_scoring import answer_holds
    from hguard.calibrate.judge import misattributed_numbers, unstated_numbers

    assert misattributed_numbers(answer, context, question) == elsewhere
    assert unstated_numbers(answer, context, question) == []  # every figure is stated: the number check passes them
    holds = answer_holds(question, answer, context, None)
    assert bool(holds) == bool(elsewhere), holds
    assert all("states only about something else" in h for h in holds), holds


# A review (13fadc3..c669a0a): a rule holding every figure given for a subject the question names after a preposition
# that no passage writes held right answers restating the question's word where the passage words it otherwise; a
# figure a better-matching statement of the other passage outmatches is still held
_MORTGAGE_RATE = "Our 30-year fixed mortgage rate is currently 6.75% APR, with a minimum down payment of 5%."
_AUTO_RATE = "Auto loans are available at rates from 5.49% APR for terms of up to 72 months."
_HOME_INS = "Homeowners insurance claims must be reported within 30 days of the loss. The standard deductible is $1,000."
_AUTO_INS = "Auto insurance claims must be reported within 14 days. The collision deductible is $500."
_PHONE = "Employees in eligible roles receive a mobile phone stipend of $40 per month, paid with the regular payroll."
_INTERNET = "Remote employees receive a home internet stipend of $60 per month."
_TOP_UP = "Prepaid mobile top-ups start at $10 and are valid for 30 days."
_BROADBAND = "Home broadband installation costs $99, waived on 24-month contracts."
_WIRE_DOM = ("Domestic wire transfers cost $25 per outgoing transfer. Domestic wires submitted before 4:00 PM ET are "
             "processed the same business day.")
_WIRE_INT = ("International wire transfers cost $45 per outgoing transfer. International wires must be submitted before "
             "2:00 PM ET to be processed the same day.")
_RENT = "Rent is $2,150 a month, and the security deposit equals one month's rent."
_TENANT_PARKING = "Tenant parking costs $120 per month per vehicle."


@pytest.mark.parametrize("question, answer, passages, held", [
    ("How much is the fee for sending money abroad by wire?", "Sending a wire abroad costs $45 per transfer.",
     [_WIRE_DOM, _WIRE_INT], False),
    ("How much is the allowance for a cell phone?", "The cell phone stipend is $40 per month.", [_PHONE, _INTERNET],
     False),
    ("How much is the allowance for a cell phone?", "The cell phone stipend is $60 per month.", [_PHONE, _INTERNET],
     True),  # the home internet stipend: "phone" and "stipend" match the mobile phone's sentence better
    ("What is the minimum top-up for a cell phone?", "Top-ups for a cell phone start at $10.", [_TOP_UP, _BROADBAND],
     False),
    ("What is the installation fee for home internet?", "Home internet installation costs $99.", [_TOP_UP, _BROADBAND],
     False),
    ("What is the interest rate on a home loan?", "The rate on a 30-year fixed home loan is 6.75% APR.",
     [_MORTGAGE_RATE, _AUTO_RATE], False),
    ("What is the rate for a car loan?", "Car loans start at 5.49% APR.", [_MORTGAGE_RATE, _AUTO_RATE], False),
    ("What is the rate for a car loan?", "Car loans start at 6.75% APR.", [_MORTGAGE_RATE, _AUTO_RATE], True),
    ("What is the deductible for a house insurance claim?",
     "The standard deductible for a house insurance claim is $1,000.", [_HOME_INS, _AUTO_INS], False),
    ("How long do I have to report a claim on my car insurance?", "Car insurance claims must be reported within 14 days.",
     [_HOME_INS, _AUTO_INS], False),
    ("What is the fee for parking at my apartment?", "Parking at the apartment costs $120 per month per vehicle.",
     [_RENT, _TENANT_PARKING], False),
])
def test_an_answer_restating_the_questions_word_for_the_passages_is_not_held_for_it(question, answer, passages, held):
    from hguard._guard_result import _join_context
    from hguard._guard_scoring import answer_holds

    holds = answer_holds(question, answer, _join_context(passages), None)
    assert bool(holds) == held, holds
    assert all("states only about something else" in h for h in holds), holds


# The guard reads an answer's figures from the passages in the question's language (``stated_in``), but a passage in
# another language may show that the figure belongs to something else (stop 59: read from the English passage alone,
# "Shipping costs $30" was the only sentence stating $30, so a wrong "The Gold Card fee is $30." passed): a figure
# either reading finds stated only about something else is held; where the English passage says it, not
@pytest.mark.parametrize(("question", "answer", "passages", "held"), [
    ("What is the Gold Card fee?", "The Gold Card fee is $30.",
     ["Shipping costs $30 for all orders and arrives within a week.",
      "Die Gold Card kostet 5 Dollar im Monat und die Karte ist kostenlos f\u00fcr Studenten."], True),
    ("What is the Gold Card fee?", "The Gold Card fee is $30.",
     ["Shipping costs $30 for all orders and arrives within a week. The Gold Card is popular.",
      "Die Geb\u00fchr f\u00fcr die Gold Card betr\u00e4gt 5 Dollar im Monat, und die Karte ist f\u00fcr Studenten kostenlos."],
     True),
    ("What is the Gold Card fee?", "The Gold Card fee is $30.",
     ["The Gold Card fee is $30 and shipping is free.",
      "Die Gold Card kostet 30 Dollar und die Karte ist kostenlos f\u00fcr Studenten."], False),
])
def test_a_figure_another_languages_passage_shows_belongs_elsewhere_is_held(question, answer, passages, held):
    from hguard._guard_scoring import answer_holds

    holds = answer_holds(question, answer, "\n\n".join(passages), None, stated_in=passages[0])
    assert any("states only about something else" in h for h in holds) == held, holds
    if held:  # read from the English passage alone, as the number check is, nothing holds it
        assert answer_holds(question, answer, passages[0], None) == []


# --- the words that name a period ----------------------------------------------------------------------------------

# The period words each reading of the number hold read before one table held them all (stop 59), copied from the
# lists they stood in, so that deriving them from the table is pinned to change no reading: a unit after a number
# ("$5 per wk"), an adverb after one ("$5 daily"), a rate after a year-like number ("2000 per month" is no year), a
# rate after a named APR ("The APR is 4% monthly"), a passage's sentence naming the period ("Weekly driving ..."),
# a word after a bare number that leaves it an amount ("25 monthly"), another language's unit after a decimal comma
_OLD_UNIT_WORDS = {"second": "s sec secs second seconds", "minute": "min mins minute minutes", "hour": "h hr hrs hour hours",
                   "day": "day days", "week": "wk wks week weeks", "month": "month months mo mos",
                   "quarter": "quarter quarters", "year": "year years yr yrs annum", "trade": "trade trades",
                   "transaction": "transaction transactions"}
_OLD_ADVERB_PERIODS = {"daily": "day", "weekly": "week", "monthly": "month", "yearly": "year", "annually": "year",
                       "annual": "year", "hourly": "hour", "nightly": "day"}
# the readings stop 59 changed deliberately, after the table, closing the old lists' gaps: "$5 quarterly" is a rate
# and a hotel's "night" is a period of its own (no 24 hours), "nightly" its adverb
_NEW_ADVERB_PERIODS = {**_OLD_ADVERB_PERIODS, "quarterly": "quarter", "nightly": "night"}
_OLD_MONEY_AFTER_PERIODS = {"annual", "annually", "monthly", "weekly", "daily", "yearly", "quarterly", "nightly", "hourly"}
_OLD_RATE_AHEAD = (r"(?![ \t\u00a0]*(?:(?:per|a|an|each|every)[ \t\u00a0]+|/[ \t\u00a0]*)(?:second|minute|hour|day|night|week|month"
                   r"|quarter|year|annum|transaction|trade|person|item|unit|page|share)s?\b|[ \t\u00a0]+(?:daily|nightly|weekly"
                   r"|monthly|quarterly|yearly|annually)\b)")
_OLD_RATE_NAMED_AHEAD = r"(?!\s*(?:/|per\b|an?\s|each\b|every\b|monthly|weekly|daily|annually|yearly))"
# (stop 59, deliberately: each adverb written after a named APR's rate gives its period, "The APR is 4% quarterly")
_NEW_RATE_NAMED_AHEAD = (r"(?!\s*(?:/|per\b|an?\s|each\b|every\b|(?:monthly|weekly|daily|annually|yearly|quarterly|nightly"
                         r"|hourly|annual)\b))")
_OLD_PERIOD_NAMES = {
    "second": r"seconds?|secs?", "minute": r"minutes?|mins?", "hour": r"hours?|hourly|hrs?",
    "day": r"days?|daily|nightly|per\s+diem|overnight|t\u00e4glich|tage|tagen|tages\w*|jours?|quotidien\w*|d\u00edas?|dias?"
           r"|diari[oa]|giorn\w+|dag|dagen|dagelijks",
    "week": r"weeks?|weekly|wks?|woche\w*|w\u00f6chentlich|semaines?|hebdomadaire|semanas?|semanal|settiman\w+|weken"
            r"|wekelijks",
    "month": r"months?|monthly|mos?|p\.\s?m\.|monat\w*|mois|mensuel\w*|mes|meses|mensual\w*|mes[ei]|mensil\w*"
             r"|m\u00eas|mensal|maand\w*",
    "quarter": r"quarters?|quarterly|quartal\w*|trimestr\w*",
    "year": r"years?|yearly|annual|annually|annum|p\.\s?a\.?|pa|yrs?|APR|APY|AER|EAR|jahr\w*|j\u00e4hrlich|ann\u00e9es?|annees?"
            r"|par\s+an|l['\u2019]an"
            r"|annuel\w*|a\u00f1os?|anual\w*|ann[oi]|annu[oa]|anos?|jaar\w*",
    "trade": r"trades?|trading", "transaction": r"transactions?"}
# (stop 59, deliberately: a hotel's "night" is a period of its own, a unit after a number and a passage's word for it)
_NEW_UNIT_WORDS = {**_OLD_UNIT_WORDS, "night": "night nights"}
_NEW_PERIOD_NAMES = {**_OLD_PERIOD_NAMES, "day": _OLD_PERIOD_NAMES["day"].replace("|nightly", ""),
                     "night": r"nights?|nightly"}
# and other languages' units name their period in a passage where they say a rate, after a rate word or an "every"
# ("5 Euro pro Stunde", "par heure", "tous les ans"; alone, "dure 3 ans", "Heure Bleue" name none: German's "Tag" with
# its capital only, not Italian "ore")
_RATE_WORD_BEFORE = (r"(?:(?<![\w-])(?:pro|je|par|por|per|al|tous\s+les|toutes\s+les|chaque|jede[nrs]?|cada|ogni|elke"
                     r"|iedere?)\s+|(?<![\w-])(?:all|[a\u00e0]\s+l)['\u2019]\s*|/\s*)")
_NEW_RATE_PERIOD_NAMES = {"minute": r"minuten", "hour": r"stunden?|heures?|horas?",
                          "day": r"(?-i:Tag)|tage|tagen|jours?|d\u00edas?|dias?|giorn[oi]",
                          "week": r"wochen?|semaines?|semanas?|settiman[ae]", "month": r"monat|monate|monaten|mois|mes|meses|mes[ei]",
                          "year": r"jahr|jahre|jahren|ans|ann\u00e9es?|annees?|a\u00f1os?|ann[oi]"}
_OLD_OTHER_LANGUAGE_UNITS = set(
    "monat monate monaten tag tage tagen woche wochen jahr jahre jahren stunde stunden minuten gramm mois jour jours "
    "semaine semaines ans année années annee annees heure heures grammes mes meses día días dia dias semana semanas año "
    "años hora horas gramo gramos litro litros mese mesi giorno giorni settimana settimane anno anni ore grammi".split())
# words written near a period's, and forms its patterns read or leave, tried with the table's own
_PERIOD_PROBES = ("night nights annums secondss hourlys per diem per  diem p.a. p.a p. a. p.m. p. m. pa apr APR apy aer "
                  "ear par an l'an l\u2019an tageskarte tages quotidienne diario diaria giornaliero wochenende "
                  "settimanale monatlich mensuelle mensuales mensile mesi mese maandelijks quartalsweise trimestrale "
                  "jahrlich jahres annuelle anuales anni anno annuo annua anos jaarlijks trading semi-annually biannual "
                  "mid-year per person item unit page share fortnight decade").split()


def _period_words() -> list[str]:
    from hguard.calibrate.judge import _OTHER_LANGUAGE_UNITS

    words = {w for spelled in _OLD_UNIT_WORDS.values() for w in spelled.split()} | set(_OLD_ADVERB_PERIODS)
    return sorted(words | _OLD_MONEY_AFTER_PERIODS | _OLD_OTHER_LANGUAGE_UNITS | set(_OTHER_LANGUAGE_UNITS)
                  | set(_PERIOD_PROBES))


def test_each_period_word_is_read_by_each_reading_as_before_the_one_table():
    import re

    from hguard.calibrate.judge import (_ADVERB_PERIODS, _ANNUAL_RATE, _MEASURE_UNITS, _MONEY_AFTER, _OTHER_LANGUAGE_UNITS,
                                        _PERIOD_NAMES, _RATE_AHEAD, _RATE_NAMED, _RATE_PERIODS, stated_numbers)

    words = _period_words()
    old_units = {w: period for period, spelled in _NEW_UNIT_WORDS.items() for w in spelled.split()}
    assert {w: unit for w, (unit, _, _) in _MEASURE_UNITS.items() if unit in _RATE_PERIODS} == old_units
    assert _ADVERB_PERIODS == _NEW_ADVERB_PERIODS
    assert set(_MONEY_AFTER.split("|")) & set(words) == {*_OLD_MONEY_AFTER_PERIODS, "min", "per", "an"}  # "min": minimum
    assert set(_OTHER_LANGUAGE_UNITS) == _OLD_OTHER_LANGUAGE_UNITS
    assert set(_PERIOD_NAMES) == set(_NEW_PERIOD_NAMES) == set(_RATE_PERIODS)
    rate_ahead, old_rate_ahead = re.compile(_RATE_AHEAD), re.compile(_OLD_RATE_AHEAD)
    old_named = {p: re.compile(r"(?i)(?<![\w-])(?:" + words + r")(?![\w-])" + (
        r"|" + _RATE_WORD_BEFORE + r"(?:" + _NEW_RATE_PERIOD_NAMES[p] + r")(?![\w-])" if p in _NEW_RATE_PERIOD_NAMES else ""))
        for p, words in _NEW_PERIOD_NAMES.items()}
    old_rate_named = re.compile(r"\b" + _ANNUAL_RATE + r"(?:\s*[:=]\s*|\s+(?:is|was|of|stands at|will be)\s+)"
                                r"(\d[\d.]*\s?%)" + _NEW_RATE_NAMED_AHEAD)
    for word in {*words, *(w.upper() for w in words), *(w.capitalize() for w in words)}:
        for before in ("", " ", "  ", "per ", " per ", " a ", " an ", " each ", " every ", "/", " / "):
            ahead = f"{before}{word} later"
            assert bool(rate_ahead.match(ahead)) == bool(old_rate_ahead.match(ahead)), ahead
        for said in (f"A fee of 5 {word}.", f"{word} fee 5", f"5-{word}", f"5 {word}s", f"({word})", f"5 pro {word}",
                     f"5 €/{word}", f"5/{word}", f"tous les {word}", f"5 all'{word}", f"5 alle {word}"):
            for period, named in _PERIOD_NAMES.items():
                assert bool(named.search(said)) == bool(old_named[period].search(said)), (said, period)
        for said in (f"The APR is 4% {word}", f"APR: 4% per {word}", f"The APR is 4%{word}"):
            assert [m.span() for m in _RATE_NAMED.finditer(said)] == [m.span() for m in old_rate_named.finditer(said)], said
        per, unit = stated_numbers(f"$5 per {word}"), old_units.get(word.lower())
        assert (unit is not None) == (per == [("5", f"dollar/{unit}")]), (word, per)
        after = stated_numbers(f"$5 {word}")
        adverb = _NEW_ADVERB_PERIODS.get(word.lower())
        assert (adverb is not None) == (after == [("5", f"dollar/{adverb}")]), (word, after)


# Each period word of the one table read by each reading (stop 59, after the table): "$5 quarterly" is $5 a quarter
# as "$5 monthly" is $5 a month, and "$50 a quarter", "$0.50 a minute" are rates as "$50 a month" is (each read a
# plain amount before, so that a wrong period passed against the passage's)
@pytest.mark.parametrize(("answer", "context"), [
    ("The fee is $5 quarterly.", "The account has a fee of $5 per month."),
    ("The fee is $5 quarterly.", "The account has a fee of $5 monthly."),
    ("The fee is $50 a quarter.", "The fee is $50 per month."),
    ("Calls cost $0.50 a minute.", "Calls cost $0.50 per hour."),
])
def test_an_adverb_or_a_period_after_a_names_each_period_of_the_table(answer, context):
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context, "What is the fee?")  # held: another period
    right = {"quarterly": "per quarter", "a quarter": "per quarter", "a minute": "per minute"}
    said = next(f"{answer.split(w)[0]}{p}." for w, p in right.items() if w in answer)
    assert unstated_numbers(answer, said, "What is the fee?") == []  # its own period, written with "per", holds it not


# A named APR's rate with an adverb after it is the adverb's period's, as with "monthly" (stop 59): "The APR is 4%
# quarterly" read a yearly 4% and passed against a passage's yearly APR; "The APR is 4% annual" read a rate per year
# per year and was held against "4% per year"
@pytest.mark.parametrize(("answer", "context", "held"), [
    ("The APR is 4% quarterly.", "The loan carries an APR of 4%.", True),
    ("The APR is 4% quarterly.", "The card charges 4% per quarter.", False),
    ("The APR is 4% annual.", "The card charges 4% per year.", False),
    ("The APR is 4% hourly.", "The card charges 4% per hour.", False),
    ("The APR is 4% nightly.", "The loan carries an APR of 4%.", True),
])
def test_an_adverb_after_a_named_apr_gives_its_period(answer, context, held):
    from hguard.calibrate.judge import unstated_numbers

    assert bool(unstated_numbers(answer, context, "What is the rate?")) == held


# A year before a period's abbreviation or "hourly" stays a year (stop 59: read as a rate's amount, "In 2024 per yr
# ..." stated "$2,024 per year", and "Fee: 2000 per yr (USD)" passed "€2,000 per year", its "(USD)" bound to nothing;
# withdrawn): an answer giving the year as an amount, or the number in another currency, is held
@pytest.mark.parametrize(("answer", "context"), [
    ("The fee is $2,024 per year.", "In 2024 per yr the fee was 50 USD."),
    ("The hourly rate is $2,023.", "In 2023 hourly rates rose 4% to $15."),
    ("The wage is $2,023 per hour.", "The 2023 hourly report shows a $15 wage."),
    ("The fee is $2,019 per hour.", "Since 2019 hourly staff have been paid $20."),
    ("The fee is $2,022 per year.", "Data from 2022 per yr are shown; the fee is $75."),
    ("The fee is $1,998 per hour.", "Founded in 1998 hourly staff earn $20."),
    ("The fee is $2,024 per year.", "As of 2024 per yr fees (USD) are 30."),
    ("The hourly wage is $2,024.", "2024 hourly wages: $18"),
    ("The fee is $2,020 per week.", "Since 2020 per wk the fee has been $35."),
    ("The fee is \u20ac2,000 per year.", "Fee: 2000 per yr (USD)"),
    ("The fee is \u00a32,000 per hour.", "Rate: 2000 hourly (USD)"),
])
def test_a_year_before_a_period_abbreviation_or_hourly_states_no_amount(answer, context):
    from hguard._guard_scoring import answer_holds

    assert answer_holds("How much is the fee?", answer, context, None)


# A year after a year's preposition or article ("in", "for", "since", "as of", "the") stays a year before a period's
# noun or adverb too ("per year", "daily", "yearly"): read as a rate's amount, "In 2024 per year the fee was $50."
# stated "$2,024 per year" (an old gap of a review; "In 2024 the fee per year is 150 USD." was held already); a
# number after "limited to" or "a fee of" before one stays a rate's amount
@pytest.mark.parametrize(("answer", "context", "held"), [
    ("The fee is $2,024 per year.", "In 2024 the fee per year is 150 USD.", True),
    ("The fee is $2,024 per year.", "In 2024 per year the fee was $50.", True),
    ("The rate is $2,024 daily.", "The 2024 daily rate is $150.", True),
    ("The fee is $2,024 per year.", "Fees for 2024 per year: $150.", True),
    ("The fee is $2,024 per year.", "In 2024 yearly fees are $150.", True),
    ("The fee is 2,024 USD per year.", "As of 2024 per annum fees are 150 USD.", True),
    ("The fee is $2,024 per month.", "In 2024 monthly fees are $15.", True),
    ("You can withdraw $2,000 per day.", "ATM withdrawals are limited to 2000 per day.", False),
    ("The fee is $2,000 per year.", "There is a fee of 2000 per year.", False),
    ("The fee rose to $2,500 per month.", "The fee rose from 2000 per month to 2500 per month.", False),
    ("In 2024 the fee is $150 per year.", "In 2024 per year the fee was $150.", False),
    # after "for" or "the", a price where its sentence writes no other number (a second review, F26-F28, F34)
    ("The flat rents for $2,000 per month.", "The flat is let for 2000 per month (USD).", False),
    ("The daily limit is $2,000.", "The 2000 per day limit applies to all cards (USD).", False),
    ("The licence costs $1,999 per year.", "The licence is available for 1999 per year (USD).", False),
    ("Rooms cost \u20ac1,950 per night.", "The suite is offered for 1950 per night (EUR).", False),
    ("The licence costs $2,019 per year.", "Pricing for 2019 per year is $1,999.", True),
])
def test_a_year_after_its_preposition_states_no_rate_amount(answer, context, held):
    from hguard._guard_scoring import answer_holds
    from hguard.calibrate.judge import unstated_numbers

    assert bool(answer_holds("How much is the fee?", answer, context, None)) == held
    assert bool(unstated_numbers(answer, context, "How much is the fee?")) == held


# A hotel's "night" is a period of its own (stop 59): "$200 per night" read as a plain $200 (only "nightly" gave a
# period, the day's), so that an answer's nightly rate passed against a passage's weekly one, and a passage's
# "nights" named no period; a night is no 24 hours (read as a day's, "one night" stated "24 hours")
@pytest.mark.parametrize(("answer", "context", "held"), [
    ("The room costs $200 per night.", "The room costs $200 per week.", True),
    ("The room costs $200 a night.", "The room costs $200 per week.", True),
    ("The room costs $200 per night.", "The room costs $200 per night.", False),
    ("The room costs $200 a night.", "The room costs $200 nightly.", False),
    ("The room costs $200 per night.", "Guests pay $200 for each of the 3 nights.", False),
    ("The package covers 24 hours.", "The package covers one night.", True),
])
def test_a_night_is_a_period_of_its_own(answer, context, held):
    from hguard.calibrate.judge import unstated_numbers

    assert bool(unstated_numbers(answer, context, "What does the room cost?")) == held


# Another language's unit names its period in a passage's sentence, as its English noun does (stop 59): an answer
# giving the passage's "5 Euro pro Stunde" as "5 euros per hour" was held, "Stunde", "heure", "hora", "minuten", "ans"
# and "Tag" naming no period there; an English word ("a price tag", "iron ore") names none
@pytest.mark.parametrize(("answer", "context", "held"), [
    ("The fee is 5 euros per day.", "Die Gebühr beträgt 5 Euro pro Tag.", False),
    ("The fee is 5 euros per hour.", "Die Gebühr beträgt 5 Euro pro Stunde.", False),
    ("The rate is 20 euros per hour.", "Le tarif est de 20 euros par heure.", False),
    ("The rate is 20 euros per hour.", "La tarifa es de 20 euros por hora.", False),
    ("The call costs 2 euros per minute.", "Het gesprek kost 2 euro per minuten.", False),
    ("The fee is 50 euros per year.", "Les frais sont de 50 euros tous les ans.", False),
    ("The fee is 5 euros per month.", "Die Gebühr beträgt 5 Euro pro Tag.", True),
    ("The price is $50 per day.", "The price tag is $50.", True),
    ("The price is $50 per hour.", "The mine sold ore at $50.", True),
    ("The fee is 3 euros per day.", "Der Eintritt kostet 3 Euro je Tag.", False),
    ("The fee is 3 euros per day.", "L'ingresso costa 3 euro al giorno.", False),
    ("The fee is 4 euros per hour.", "Le parking co\u00fbte 4 euros \u00e0 l'heure.", False),
    ("The fee is 5 euros per hour.", "Es kostet 5 \u20ac/Stunde.", False),
])
def test_another_languages_unit_names_its_period_in_a_passage(answer, context, held):
    from hguard.calibrate.judge import unstated_numbers

    assert bool(unstated_numbers(answer, context, "What is the fee?")) == held


# ... only where it says a rate (stop 59: read anywhere in the sentence, case-insensitively, a duration, "dure 3 ans",
# "90 Minuten", or a name, "ANS 12", "Heure Bleue spa", named the period an answer invented, which passed)
@pytest.mark.parametrize(("answer", "context"), [
    ("The fee is 500 euros per year.", "Le contrat dure 3 ans et co\u00fbte 500 euros."),
    ("The fee is 15 euros per day.", "Am Tag der Er\u00f6ffnung kostet der Eintritt 15 Euro."),
    ("The fee is 12 euros per hour.", "Le forfait co\u00fbte 12 euros pour 3 heures."),
    ("The fee is 7 euros per hour.", "Parken: 7 Euro f\u00fcr 2 Stunden."),
    ("The fee is 20 euros per minute.", "Der Kurs dauert 90 Minuten und kostet 20 Euro."),
    ("The fee is 10 euros per hour.", "Le prix est de 10 euros, service ouvert 24 heures sur 24."),
    ("The fee is 10 euros per year.", "Le billet co\u00fbte 10 euros pour les enfants de 5 ans."),
    ("The fee is 15 euros per hour.", "La visita dura 2 horas y cuesta 15 euros."),
    ("The fee is 4 euros per hour.", "Das Ticket ist 3 Stunden g\u00fcltig und kostet 4 Euro."),
    ("The fee is $40 per year.", "The fee is $40 (see ANS 12 for details)."),
    ("The fee is $90 per hour.", "The Heure Bleue spa charges a fee of $90."),
    ("The fee is $30 per hour.", "Restaurant Zur Stunde: the fee is $30."),
    ("The fee is $9 per hour.", "The Stunden Caf\u00e9 charges a fee of $9."),
    ("The fee is $12 per hour.", "Horas Bar: the fee is $12."),
    ("The fee is $3 per minute.", "The Minuten app has a fee of $3."),
    ("The fee is $40 per year.", "The fee is $40, payable to Ans Software Ltd."),
])
def test_another_languages_unit_alone_names_no_period(answer, context):
    from hguard._guard_scoring import answer_holds

    assert answer_holds("How much is the fee?", answer, context, None)


@pytest.mark.parametrize("question, answer, context, held", [
    # a legal team's trial: a false premise of the question, restated, passed (the question states the figure)
    ("Since the termination notice period is ninety days, when can I stop performing?",
     "You can stop performing after the notice period is 90 days.",
     "Either party may terminate this Agreement upon 30 days prior written notice to the other party.", ["90 day"]),
    ("Given the $30 monthly fee, what do I pay in a year?", "At $30 per month you pay $360 per year.",
     "The fee is $25 per month.", ["30 dollar/month"]),
    ("As the deposit is 2%, how much is it on a $1,000 rent?", "The deposit is 2%, which is $20.",
     "The security deposit is 5% of the monthly rent.", ["2 percent"]),
    # the question's figure restated where the passage states nothing of that unit, or states it too: no premise to contradict
    ("For the 3 items you bought, what is the return window?", "For your 3 items the return window is 30 days.",
     "Items may be returned within 30 days.", []),
    ("With 90 days notice, can I terminate the agreement?", "Yes, with 90 days notice you can terminate.",
     "Either party may terminate upon 90 days prior written notice.", []),
    ("Since the fee is $30, when is it due?", "The $30 fee is due on the first of the month.",
     "Payment is due on the first of each month.", []),
    # the passage's other figure of that unit is about something else: no premise of the question contradicted
    ("I paid $100 for the item; what refund do I get?", "You paid $100 and refunds are issued up to $50.",
     "Refunds of up to $50 are issued within 14 days.", []),
    # a review: the passage's figure is a threshold or a choice, not the value of what the question's figure is; and an
    # answer that corrects the premise denies the figure it names
    ("My balance is $3,000; what minimum payment applies?",
     "The minimum payment is 2% of your $3,000 balance or $25, whichever is greater.",
     "The minimum payment is 2% of the balance or $25, whichever is greater.", []),
    ("Since I paid a $500 deposit, how much of it is refundable?",
     "All of your $500 deposit is refundable if you cancel more than 30 days before arrival.",
     "Deposits are fully refundable if cancelled more than 30 days before arrival. Deposits above $1,000 are split.", []),
    ("I am claiming $1,200 in travel expenses; what receipts are needed?",
     "For your $1,200 claim, receipts are required for every item over $75.",
     "Receipts are required for every travel expense item over $75.", []),
    ("Given my $2,000 salary, what is the contribution?",
     "Employees contribute 5% of salary; on your $2,000 salary the plan applies.",
     "Employees contribute 5% of salary. The plan covers salaries up to $5,000.", []),
    ("Since the late fee is $40, what happens if I pay late?", "The late fee is $25 rather than $40.",
     "The late fee is $25.", []),
    ("Since the late fee is $40, what happens if I pay late?", "The late fee is $25 instead of the $40 you mention.",
     "The late fee is $25.", []),
    # the trial's pattern in standard drafting: "thirty (30) days'" is one figure of the clause, not cut at its bracket
    ("Since the notice period is 90 days, when can I terminate?", "You can terminate on 90 days' written notice.",
     "Either party may terminate this agreement upon thirty (30) days' prior written notice.", ["90 day"]),
    # a limit's own value is the value of the limit the question names
    ("Given the $2,000 annual contribution limit, how much can I put in?", "You can contribute up to $2,000 per year.",
     "The annual contribution limit is $6,500.", ["2000 dollar/year"]),
    # a review: a question's figure compared with a bound of the passage's clause is the bounded noun's value ("My
    # order is $45" against "Orders under $50"), not what the clause's other figure states (a fee): it was held
    # against the $4.99; and what a question asks for ("What fee ...") is no subject of its figure
    ("My order is $45; what fee do I pay?", "Your $45 order pays a $4.99 fee.", "Orders under $50 pay a $4.99 fee.", []),
    ("My order is $45. What fee do I pay?", "You pay a $4.99 fee on your $45 order.",
     "Orders under $50 pay a $4.99 fee.", []),
    ("What fee applies to a $45 order?", "A $45 order pays a $4.99 fee.", "Orders under $50 pay a $4.99 fee.", []),
    ("My order is $45; what do I pay for shipping?", "Since your order is $45, shipping costs $4.99.",
     "Standard shipping is free on orders over $50. Orders under $50 pay a $4.99 shipping fee.", []),
    ("My order is $60; what do I pay for shipping?", "Your $60 order ships free.",
     "Standard shipping is free on orders over $50. Orders under $50 pay a $4.99 shipping fee.", []),
    ("I want to withdraw $800; what is the fee?", "Withdrawing $800 carries a $25 fee.",
     "Withdrawals of more than $500 a day carry a $25 fee.", []),
    # ... while a premise stating the clause's other figure, or one of another unit than the bound's, is still held
    ("Since orders under $50 pay a $2 fee, what do I pay for my $45 order?", "You pay a $2 fee.",
     "Orders under $50 pay a $4.99 fee.", ["2 dollar"]),
    ("Since the withdrawal fee is $10, how much do I pay for $800?", "The fee for $800 is $10.",
     "Withdrawals of more than $500 a day carry a $25 fee.", ["10 dollar"]),
    ("Since balances over \u00a325,000 earn 2%, what do I earn on \u00a330,000?", "You earn 2% on balances over \u00a325,000.",
     "The Everyday Saver pays 3.25% AER. Balances above \u00a325,000 earn 1.10% AER.", ["2 percent"]),
    # the trial's premise restated in words ("after ninety days"): read as its figure
    ("Since the termination notice period is ninety days, when can I stop performing?", "You can stop after ninety days.",
     "Either party may terminate this Agreement upon 30 days prior written notice to the other party.", ["90 day"]),
])
def test_a_figure_the_answer_takes_from_the_question_is_held_where_the_passage_states_another_of_its_unit(
        question, answer, context, held):
    from hguard._guard_scoring import answer_holds
    from hguard.calibrate.judge import premise_numbers

    assert [f for f, _ in premise_numbers(answer, context, question)] == held
    reasons = [r for r in answer_holds(question, answer, context, None) if "a premise of the question" in r]
    assert len(reasons) == len(held[:1])
    if held:
        assert "the passage contradicts" in reasons[0] and "(the passage: " in reasons[0]
        # a redacting log's reason quotes no figure
        (quiet,) = [r for r in answer_holds(question, answer, context, None, redact=True) if "a premise" in r]
        assert "not quoted" in quiet and held[0].split()[0] not in quiet


def test_a_false_premise_on_a_bound_is_still_held():
    """The premise "orders under $50 pay no fee" over "Orders under $50 pay a $4.99 fee": an answer affirming it is held
    (the question's $45 affirmed, or restated as free where the passage charges), one correcting it is not held for a
    figure."""
    from hguard._guard_scoring import answer_holds

    question, context = "Since orders under $50 pay no fee, my $45 order is free?", "Orders under $50 pay a $4.99 fee."
    for answer in ("Yes.", "Yes, your $45 order is free."):
        assert any("45 dollar" in r for r in answer_holds(question, answer, context, None)), answer
    assert not [r for r in answer_holds(question, "No, orders under $50 pay a $4.99 fee.", context, None)
                if "figure" in r]


@pytest.mark.parametrize("answer, context, missing", [
    # a number written in words before its unit is the answer's figure (it passed: only digits were read)
    ("You can stop after ninety days.", "Either party may terminate upon 30 days prior written notice.", ["90 day"]),
    ("The probation period is three months.", "New hires have a probation period of six months.", ["3 month"]),
    ("Give 5 mL four times daily.", "Give 5 mL three times daily.", ["4 times/day"]),
    ("The fee is thirty dollars.", "The fee is $40.", ["30 dollar"]),
    ("You get twenty-five percent off.", "You get 20% off.", ["25 percent"]),
    ("The CD has a term of twelve months.", "The certificate of deposit has a term of 18 months.", ["12 month"]),
    # "one" before a unit of time, money or count is 1 (it passed, read as the pronoun)
    ("The warranty lasts one year.", "The warranty lasts 2 years.", ["1 year"]),
    ("Refunds arrive within one business day.", "Refunds arrive within 3 business days.", ["1 day"]),
    ("Each transfer costs one dollar.", "Each transfer costs $2.", ["1 dollar"]),
    ("Take one tablet at night.", "Take 2 tablets at night.", ["1 tablet"]),
    # ... read as that figure: stated where the passage states it, in digits, words or another unit of time
    ("The fee is thirty dollars.", "The fee is $30.", []),
    ("You have thirty-five business days.", "You have 35 business days.", []),
    ("Two years from the date of purchase.", "The warranty period is 24 months from the date of purchase.", []),
    ("The warranty lasts 2 years.", "The warranty period is 24 months.", []),
    ("The warranty lasts one year.", "The warranty period is 12 months.", []),
    ("Each transfer costs one dollar.", "Each transfer costs $1.", []),
    ("Cover lasts one year.", "A year of cover is included.", []),  # a sentence's "A year" is 1 year
    # a gloss of a figure the answer writes, a hedged one and a year's part are no figure of their own; nor is a
    # number word without a unit, or "one" but before a unit of time, money or count
    ("Six months (26 weeks) of paid leave.", "Employees get 26 weeks of paid leave.", []),
    ("Paid leave lasts 26 weeks (about six months).", "Employees get 26 weeks of paid leave.", []),
    ("Return within two weeks (15 days).", "Electronics must be returned within 15 days.", []),
    ("500 mg three times a day (every 8 hours).", "Adults: 500 mg every 8 hours.", []),
    ("Income rose in the first six months of 2024.", "Income rose in the first half of 2024.", []),
    ("One of the two plans costs $5.", "The Basic plan costs $5.", []),
    ("Not six context for one year.", "A year of context.", []),
    ("One percent of one mile.", "Half a percent of a mile.", []),
])
def test_a_number_in_words_before_its_unit_is_read_as_a_figure(answer, context, missing):
    from hguard._guard_scoring import answer_holds
    from hguard.calibrate.judge import as_written, unstated_numbers

    assert unstated_numbers(answer, context, "What is it?") == missing
    holds = answer_holds("What is it?", answer, context, None)
    assert bool(holds) == bool(missing), holds
    if missing:  # shown to a reviewer as the answer writes it
        assert as_written(answer, missing)[0].startswith("'") and "(read as " in holds[0], holds


@pytest.mark.parametrize("question, answer, context, missing", [
    # a review (R4): an interval or an idiom of availability the passage says in other words is stated (held once
    # numbers in words were read: "every three months" from "quarterly")
    ("How often are statements sent?", "Statements are issued every three months.", "Account statements are issued quarterly.", []),
    ("How often are cleanings covered?", "Cleanings are covered every six months.", "The plan covers two dental cleanings per year.", []),
    ("How often am I paid?", "You are paid every two weeks.", "Employees are paid biweekly by direct deposit.", []),
    ("When does it renew?", "The contract renews every 12 months.", "The agreement renews automatically each year unless cancelled.", []),
    ("How often?", "Take it every 24 hours.", "Take one tablet daily.", []),
    ("How often?", "Apply every 8 hours.", "Apply 3 times daily.", []),
    ("Is support available on weekends?", "Yes, customer service is available seven days a week.",
     "Our support line is open every day, including weekends and holidays, from 8am to 8pm.", []),
    ("Can I reach a nurse at night?", "Yes, nurses are available twenty-four hours a day.",
     "A nurse advice line is available around the clock at no cost to members.", []),
    ("Can I pay by phone?", "You can pay by phone 24/7.", "Phone payments are available 24 hours a day.", []),
    # a limit's "in 24 hours" is per day ("g" is grams)
    ("What is the maximum dose?", "The maximum is four grams per day.", "Do not exceed 4 g of acetaminophen in 24 hours.", []),
    ("What is the maximum dose?", "The maximum is 4000 mg per day.", "Do not exceed 4 grams in any 24-hour period.", []),
    # ... each still held where the passage gives another interval, another availability or another amount
    ("How often are statements sent?", "Statements are issued every four months.", "Account statements are issued quarterly.", ["4 month"]),
    ("How often are cleanings covered?", "Cleanings are covered every four months.", "The plan covers two dental cleanings per year.", ["4 month"]),
    ("How often am I paid?", "You are paid every two weeks.", "Employees are paid weekly by direct deposit.", ["2 week"]),
    ("How often?", "Apply every 6 hours.", "Apply 3 times daily.", ["6 hour"]),
    ("Is support available on weekends?", "Customer service is available five days a week.",
     "Our support line is open every day, including weekends and holidays, from 8am to 8pm.", ["5 day/week"]),
    ("Can I reach a nurse at night?", "Yes, nurses are available twenty-four hours a day.", "The nurse line is open from 8am to 8pm.", ["24 hour/day"]),
    ("When do nurses call back?", "Nurses are available 24 hours a day.", "Nurses return calls within 24 hours.", ["24 hour/day"]),
    ("What is the maximum dose?", "The maximum is eight grams per day.", "Do not exceed 4 g of acetaminophen in 24 hours.", ["8 g/day"]),
    ("What is the maximum dose?", "The maximum is 4 grams per week.", "Do not exceed 4 g of acetaminophen in 24 hours.", ["4 g/week"]),
    # a count of an amount is no frequency, a deadline's "within 24 hours" no day, a question's words no passage's
    ("How often?", "Take 2 tablets every 12 hours.", "Take 2 tablets per day.", ["12 hour"]),
    ("What does the room cost?", "$189 a night plus a $350/day resort fee.",
     "ER visits carry a $350 copay, waived if admitted within 24 hours. Room rate: $189 per night.", ["350 dollar/day"]),
    ("How often is the fee charged, every year?", "It is charged every 12 months.", "The fee is charged monthly.", ["12 month"]),
    # not read: a rate converted, or months as days (no month is a fixed number of days)
    ("How much is the membership per year?", "The membership costs $120 per year.", "The membership costs $10 per month.", ["120 dollar/year"]),
    ("What is the penalty?", "The penalty is six months of interest.", "Early withdrawal penalty: 180 days of simple interest.", ["6 month"]),
])
def test_an_interval_or_availability_said_in_other_words_is_stated(question, answer, context, missing):
    from hguard._guard_scoring import answer_holds
    from hguard.calibrate.judge import unstated_numbers

    assert unstated_numbers(answer, context, question) == missing
    assert bool(answer_holds(question, answer, context, None)) == bool(missing)


# A review (47f792a): the passage's interval or idiom counts only where its statement is about the answer's subject
# (shares the most of its words and the question's), not another sentence's or passage's
_SUPPORT = "Our technical support team is available around the clock, including holidays."
_BILLING = "The billing department is open Monday to Friday, 8 AM to 6 PM."
_CARD_STATEMENTS = "Credit card statements are issued monthly. Brokerage statements are issued quarterly."


@pytest.mark.parametrize("question, answer, passages, missing", [
    ("When is the billing department available?", "Billing is available 24/7.", [_SUPPORT, _BILLING], ["24", "7"]),
    ("When is technical support available?", "Technical support is available 24/7.", [_SUPPORT, _BILLING], []),
    ("How often are credit card statements issued?", "Credit card statements are issued every three months.",
     [_CARD_STATEMENTS, _CHECKING], ["3 month"]),
    ("How often are brokerage statements issued?", "Brokerage statements are issued every 3 months.",
     [_CARD_STATEMENTS, _CHECKING], []),
    ("How often are account statements issued?", "Statements are issued every three months.",
     [_STATEMENTS, _CHECKING], []),
    # each clause is read against its own subject's statement (number-hold set 2's tu09)
    ("When is the office closed for payment processing?",
     "Online payments made after 8 p.m. ET post the next business day; you can pay by phone 24/7.",
     ["Payments made online after 8:00 PM Eastern Time will post on the next business day. Phone payments are "
      "available 24 hours a day."], []),
])
def test_an_interval_counts_only_from_a_statement_about_the_answers_subject(question, answer, passages, missing):
    from hguard._guard_result import _join_context
    from hguard._guard_scoring import answer_holds
    from hguard.calibrate.judge import unstated_numbers

    context = _join_context(passages)
    assert unstated_numbers(answer, context, question) == missing
    assert bool(answer_holds(question, answer, context, None)) == bool(missing)


def test_a_currency_between_two_numbers_is_not_the_second_ones_where_it_has_a_unit():
    """"A stamp cost 50 dollars 10 years ago.": the 10 is years, not dollars (read as "$10", an answer's "ten years
    ago" was held as stated nowhere)."""
    from hguard.calibrate.judge import stated_numbers, unstated_numbers

    assert stated_numbers("A stamp cost 50 dollars 10 years ago.") == [("50", "dollar"), ("10", "year")]
    assert unstated_numbers("Ten years ago a stamp cost 50 dollars.", "A stamp cost 50 dollars 10 years ago.") == []


def test_a_declarations_language_counts_where_the_prose_leans_to_it():
    """A review (W14): "(en k\u20ac)" is the only French of a short French passage; its prose leans French by one word
    ("de"), so its "1,500 euros" is one and a half euros, and the faithful "1.5 euros" passes."""
    from hguard._guard_scoring import answer_holds

    for context in ("(en k\u20ac) 4\nFrais de dossier : 1,500 euros.",
                    "Chiffres cl\u00e9s (en k\u20ac)\nCapital : 4\nFrais de dossier : 1,500 euros."):
        assert answer_holds("What is the fee?", "The fee is 1.5 euros.", context, None) == []
        assert answer_holds("What is the fee?", "The fee is 1500 euros.", context, None)


@pytest.mark.parametrize("answer, context, question, reason", [
    # a review: the reason credited the answer's own reference to the question ("affirms the yes/no question's 30
    # dollar, section 7"); the answer's own year or reference is listed apart, and alone it is the answer's
    ("Yes, under section 7.", "Section 4: the fee is $25.", "Is the fee $30?",
     "the answer affirms the yes/no question's 30 dollar and states section 7, which the passage does not state"),
    ("It is, as of 2024.", "The fee is $25.", "Is the fee $30?",
     "the answer affirms the yes/no question's 30 dollar and states 2024, which the passage does not state"),
    ("It is.", "The fee is $25.", "Is the fee $30?", "the answer affirms the yes/no question's 30 dollar, which the"),
    ("Yes, under section 7.", "Section 4: the fee is $25.", "Is the fee $25?",
     "the answer states section 7, which neither the passage nor the question states"),
])
def test_an_affirmations_own_year_or_reference_is_named_apart_from_the_questions_figures(answer, context, question,
                                                                                          reason):
    from hguard._guard_scoring import answer_holds

    holds = answer_holds(question, answer, context, None)
    assert len(holds) == 1 and holds[0].startswith(reason), holds
