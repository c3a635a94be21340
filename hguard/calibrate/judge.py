"""Label a model's reply against accepted aliases: correct, hallucinated or refusal.

Calibration trains a detector on these labels, so a lenient judge (one that counts any reply
containing "t" as right) poisons everything downstream. The rules, all deliberate:

- Text is compared after `normalize`: accents stripped (NFKD), casefolded, read as shown
  (:func:`hguard._text.matching_form`: invisible characters dropped, "Gdan\u00adsk" is "gdansk", a Cyrillic or Greek
  look-alike letter in a Latin word read as its Latin letter), punctuation removed,
  the articles a/an/the dropped, whitespace collapsed. "São Paulo" matches "sao paulo". A capital
  "A" inside a sentence is kept as a letter ("vitamin A" is not "vitamin"); a lower-case "a" is
  always taken for the article.
- An alias matches only as whole words: "Paris" does not match "Parisian", "1" does not match
  "1984", "H" matches "The symbol is H." but not "Helium". An alias's last word in the regular English plural or
  singular (-s, -es, -ies/-y) is the alias ("statins" for "statin", "ACE inhibitors" for "ACE inhibitor",
  "infection" for "infections"): only a last word written in lower case, of four letters or more (not a name's,
  "Athens", nor a code's: `_number_forms`; a code's plural is below), not a verb after a pronoun ("It leads to gold."
  names no lead), nor a form that is another choice the question offers. Other inflected or derived forms do not
  match ("Parisian", "antihypertensive"); list them as aliases if they should count.
- Runs of single letters are initials and are joined: "J. R. R. Tolkien" = "J.R.R. Tolkien".
- An alias that reads as an English function word once normalised (a code such as "US", "the US", "U. S.", "IN",
  "AND") matches only where the reply writes it in capitals, dotted or not: "tell us", "Pal and Max" and "located
  in Brazil" do not name the United States, Andorra or India; in a reply in capitals throughout it never matches.
  Written in lower case ("in"), such an alias is ignored beside any other (PopQA lists such codes); as a row's
  only alias it matches as any alias does. The alias "I" is never the pronoun: an "I" followed by a word in lower
  case ("I think it is Xenon.") names no iodine.
- Numbers compare by value: "1,000" = "1000", "3.0" = "3", and number words up to the hundreds
  ("seventy-nine", "one hundred eighteen") equal their digits. A side effect: the word "one"
  reads as 1, so alias "1" matches "the one in Europe"; numeric aliases should be specific.
- An alias written as a code, one token in capitals ("CLP", "USD", "NYSE", "H"), matches only where the reply
  writes that code (case and dots aside: "clp", "U.S.D."; a hyphen's part: "NYSE-listed"), not the currency its
  letters read as, where the question asks for a code (`_ASKS_FOR_CODE`: "What is the ISO code of ...?") or is not
  given: "It is the peso." and "The ISO code for the Chilean peso is CHP." do not name "CLP", "the US dollar" does
  not name "USD". To a question asking for the currency ("What currency is used in Sweden?") its name answers the
  code ("the Swedish krona" names "SEK"), not after another country's adjective ("the Canadian dollar" is no "USD").
  An amount's code still reads as its currency ("5,000 pesos" matches "5000 CLP"). A code of two capitals or more
  in the plural or a possessive is the code ("NSAIDs", "GDPR's"); to a question asking for the thing, so is its name
  written out in capitals with the code's initials ("The New York Stock Exchange." for "NYSE").
- Currencies named alone: a row's generic "dollar" is no "USD", "US$" or "US dollar" where the row or the question
  names another country's dollar; a currency's name that the row's aliases qualify ("pound sterling", "Australian
  dollar") is no other qualified one ("The Egyptian pound.", "the New Zealand dollar"): a qualifier in capitals
  right before it that names another country than the aliases' and the question's (`_COUNTRY_NAMES`:
  `NATION_COUNTRIES`, the currencies' declared adjectives); one naming no country known ("NZ dollar") is no
  evidence; a reply's "\u00a5" is the yen's or the yuan's sign, the one the reply names where it names one.
- Percent and currency signs stay with their number as words ("20%" reads "20 percent", "$5,000" and "5,000
  USD" read "5000 dollar"): alias "20%" does not match "20 days", "$5,000" does not match "5,000 EUR"; an
  alias without a unit ("5000") matches the number with any.
- With the question given, an alias that the question's own words hold (case aside) counts only as the reply,
  not as the question's span said again: not inside a longer run of the question's words ("Czech" in "the
  official language of the Czech Republic"); not written as the question writes it where the alias is written
  otherwise ("It is the central bank of Iceland." for "Central Bank of Iceland" to "What is the name of the central
  bank of Iceland?"); not on the side of an "X is Y" clause made of the question's words only where the other side
  names something of its own, a name right after the "is" or "of" a thing of its own ("The Central Bank of Egypt is
  the Royal Bank of Egypt.", "Anna Karenina is the heroine of War and Peace."), not a description ("... is the UK's
  central bank", "... is a tragedy by Shakespeare"); without an "is", not beside a name of the clause's own and a
  predicate ("Anna Karenina appears in War and Peace."); not at the end of a longer name ("the Royal Bank of Thailand"
  for "Bank of Thailand"; not after a possessive or a region's adjective: "Mary Shelley's Frankenstein", "Southern
  Africa"). The reply naming it counts, on either side: "The central bank of Iceland is the Central Bank of Iceland
  (Seðlabanki Íslands).", "It is the Bank of Thailand.". A question offering choices ("A or B?") is read as before (`_match`).
- A match denied in its clause does not count (a clause ends at , ; : ! ?, a sentence's full stop, a dash, or
  before "but", "however", "rather"...): a negation earlier in the clause ("is not Canberra", "Budgets are never
  approved by the CFO", "Neither Deloitte nor KPMG"), or, to a question that does not itself ask for what is
  not so, a negated verb after the alias whose clause repeats a word of the question ("The CFO does not approve
  budgets" to "Who approves budgets?"; "Canberra is not in New South Wales" still answers "What is the capital
  of Australia?").
- A match offered as one of several alternatives ("either Paris or Lyon", "Lyon or Paris") does
  not count: a hedge that names several candidates is not a right answer, and the reply is labelled
  hallucinated unless the alias also appears elsewhere unhedged (or the reply also abstains, "I'm
  not sure, either Paris or Lyon", which makes it a refusal).
- A match only after a secondary mark ("also", "but also", "and also", "as well as") that follows a primary one
  ("primarily", "mainly", "mostly", "chiefly", "principally", "main", "first and foremost") introducing no alias
  does not count: "Oseltamivir is primarily used to treat COVID-19, but also influenza." gives a wrong main answer
  (`_secondary_only`); "It is primarily used for influenza, but also colds." is right, and "also known as" gives
  another name, no aside.
- A reply that declines ("I don't know", "I'm not sure", "the context does not say", "the author is unknown", or nothing at
  all: :func:`declines`) is a "refusal" whatever the row's kind and whatever else it names. The guard
  abstains on such a reply by rule (it asserts nothing to check), so the risk model is neither fitted
  nor certified on it, and the calibration keeps it out of both classes. On an unanswerable row a
  refusal is the right behaviour (calibration reports count it so in the model's accuracy); "I'm not
  sure, but I think it is Paris" is a refusal too (the guard abstains on it, so accepting it is not
  what the thresholds certify).
- kind "qa": without refusal wording, an unhedged match is "correct"; denying that the real entity
  exists ("X is not a chemical element", "X is fictional") is a false claim and so "hallucinated",
  like anything else.
- kind "unanswerable" (e.g. fabricated entities): denying the premise is "correct", any other
  reply that does not decline is "hallucinated". A "fictional" label followed by a source ("X is a
  fictional city in the Star Wars universe", "a fictional work by ...") and "not an X, but rather a Y"
  are confabulations, not denials.

- A reply that writes a new question instead of answering (it begins with a "Question:" or "Q:" label,
  as a base model continuing its plain frame does: "Question: The brightest star of Orion is") answers
  nothing, whatever it names: "hallucinated" on a kind "qa" row.

The refusal wording list was tuned on what SmolLM2-135M-Instruct says (see calibration/data/README.md).
The judge has known blind spots: a reply naming the right answer next to a wrong one without "or"
("Sydney; Canberra is the largest city") counts as correct, and so does a wrong main answer with the right one
after it without a secondary mark ("used to treat blood disorders caused by heparin, an anticoagulant used to
prevent blood clots").
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

import regex

from hguard._text import (asks_only_yes_no, asks_yes_no, fold_accents, join_digit_groups, language_of, matching_form,
                          opening_no_is_determiner,
                          sentences, states_to_confirm, without_ignorables, words_of, written_in, yes_no_question,
                          yes_or_no_opening)
from hguard.errors import InputError
from hguard.signals._grounding_lexical import _stem, content_tokens

__all__ = [
    "Judgement",
    "normalize",
    "abstains",
    "declines",
    "denies_premise",
    "is_refusal",
    "refusal_phrase",
    "right_reply",
    "judge",
    "judge_contrast",
    "judge_row",
    "judge_yesno",
    "yes_no_taken",
    "hedged_side",
    "contradicts_own_no",
    "asked_kind",
    "YES_NO",
    "ABSTAIN_PATTERNS",
    "DENIAL_PATTERNS",
    "REFUSAL_PATTERNS",
]

_ARTICLES = frozenset({"a", "an", "the"})
_APOSTROPHES = re.compile(r"['\u2019\u2018\u02bb\u02bc`\u00b4]")
# Periods vanish (so "U.S.A." and "USA" agree) except a decimal point between digits.
_PERIOD = re.compile(r"(?<!\d)\.|\.(?!\d)")


def _check_str(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{name} must be a str (got {type(value).__name__}: {value!r}); pass the decoded text")
    return value


# Stand-in for a capital "A" that is a letter, not an article ("vitamin A", "Plan A"): a private-use
# character survives casefolding and the article filter, and turns back into "a" at the end.
_LETTER_A = "\ue000"
_STANDALONE_A = re.compile(r"\bA\b")
_SENTENCE_START = tuple(".!?:;\"'(\n")


def _mark_letter_a(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        before = text[: m.start()].rstrip()
        return "A" if not before or before.endswith(_SENTENCE_START) else _LETTER_A

    return _STANDALONE_A.sub(repl, text)


def normalize(text: str) -> str:
    """Canonical form for comparing answers: see the module docstring (and :mod:`hguard._text` for how it
    differs from the grounding signals' tokens)."""
    _check_str(text, "text")
    # read as shown (after casefolding, so a word in capitals folds as it does in lower case): "I don\u2019t
    # kn\u200bow" is "i dont know", "Gdan\u00adsk" is "gdansk", a Cyrillic "\u0435" in "context" is an "e"
    t = matching_form(_mark_letter_a(fold_accents(text)).casefold())
    t = join_digit_groups(t)
    t = _APOSTROPHES.sub("", t)
    t = _PERIOD.sub("", t)
    t = "".join(" " if (unicodedata.category(c)[0] in "PSZC" and c not in "." + _LETTER_A) else c for c in t)
    return " ".join(w.replace(_LETTER_A, "a") for w in t.split() if w not in _ARTICLES)


_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}


def _below_hundred(words: list[str], i: int) -> tuple[int, int] | None:
    """Parse 'seventy nine' / 'twelve' at words[i]; return (value, next index)."""
    if i < len(words) and words[i] in _TENS:
        value = _TENS[words[i]]
        if i + 1 < len(words) and words[i + 1] in _UNITS and 0 < _UNITS[words[i + 1]] < 10:
            return value + _UNITS[words[i + 1]], i + 2
        return value, i + 1
    if i < len(words) and words[i] in _UNITS:
        return _UNITS[words[i]], i + 1
    return None


def _number_words(words: list[str], i: int) -> tuple[int, int] | None:
    first = _below_hundred(words, i)
    if first is None:
        return None
    value, j = first
    if 0 < value < 10 and j < len(words) and words[j] == "hundred":
        value *= 100
        j += 1
        k = j + 1 if j < len(words) and words[j] == "and" else j
        rest = _below_hundred(words, k)
        if rest is not None and rest[0] > 0:
            value, j = value + rest[0], rest[1]
    return value, j


# an answer's number written in words before its unit ("ninety days", "thirty-five percent", "two million dollars",
# "ten business days"), which `_spelt_figures` writes in digits for the number hold: a number word alone ("one of the
# options", "the two of you") stays no figure, as before
_NUMBER_WORD = r"(?:" + "|".join(sorted((*_UNITS, *_TENS, "hundred"), key=len, reverse=True)) + r")"


def _spelt_figures(text: str) -> str:
    """``text`` with each number written in words before its unit (`_SPELT_FIGURE`) written in digits, as
    `_number_words` reads it ("You can stop after ninety days." -> "... after 90 days."): the number hold reads an
    answer's digits alone, so that an answer writing "ninety days" over a passage of 30 days passed. A run of words
    that does not read as one number ("one and two days") stays as written, as does "zero" (for "no"), and "one" but
    before a unit of time, money or count (`_ONE_UNIT`: "one year", "one dollar", "one tablet" read 1; "one of the
    options", "one percent" stay words: "one" is a pronoun too; the passage's "A year of ..." reads 1 year,
    `_A_AMOUNT`), and a gloss of a figure
    (`_GLOSSED_BEFORE`, `_GLOSSED_AFTER`): one hedged ("about six months", "roughly two weeks"), one in brackets beside a figure or with one in
    brackets after it ("26 weeks (six months)", "two weeks (15 days)", "three times a day (every 8 hours)"), and a
    year's part ("the first six months of 2024", the first half): the figure it glosses is the answer's claim."""
    def digits(m: re.Match[str]) -> str:
        if _GLOSSED_BEFORE.search(text, 0, m.start()) or _GLOSSED_AFTER.match(text, m.end()):
            return m.group(0)
        words = re.split(r"[\s-]+", m.group(0).lower())
        parsed = _number_words(words, 0)
        if parsed is None or parsed[1] != len(words) or parsed[0] < 1 or (parsed[0] == 1 and not _ONE_UNIT.match(text, m.end())):
            return m.group(0)
        return str(parsed[0])

    return _SPELT_FIGURE.sub(digits, text) if _SPELT_FIGURE.search(text) else text


def _canonical_number(word: str) -> str | None:
    if not any(c.isdigit() for c in word):
        return None
    try:
        d = Decimal(word)
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    return format(d.normalize(), "f")


# Units that `normalize` would drop with the other symbols, kept as words (so that "20%" is not "20 days", and
# "$5,000" is not "5,000 EUR"): the symbol and its spelt-out names read as one word.
_UNIT_SYMBOLS = {"%": "percent", "$": "dollar", "\u20ac": "euro", "\u00a3": "pound", "\u00a5": "yenyuan", "\u20b9": "rupee",
                 "\u20ba": "try", "\u20b4": "uah", "\u20bd": "rub", "\u20a9": "krw", "\u20aa": "ils", "\u20ab": "vnd",
                 "\u0e3f": "thb", "\u20a6": "ngn", "\u20b1": "php", "\u00a2": "cent", "\u20bf": "btc",
                 "\u2030": "permille"}
_UNIT_SYMBOL = re.compile("|".join(re.escape(k) for k in _UNIT_SYMBOLS))
_UNIT_WORDS = {"percent": "percent", "percentage": "percent", "pct": "percent",
               "dollar": "dollar", "dollars": "dollar", "usd": "dollar", "euro": "euro", "euros": "euro",
               "eur": "euro", "pound": "pound", "pounds": "pound", "gbp": "pound", "yen": "yen", "jpy": "yen",
               "rupee": "rupee", "rupees": "rupee", "inr": "rupee", "yuan": "cny", "renminbi": "cny",
               "rmb": "cny", **{code: code for code in ("chf", "cad", "aud", "nzd", "cny", "hkd", "sgd", "sek", "nok", "dkk",
                                          "pln", "czk", "huf", "krw", "brl", "mxn", "zar", "ils", "bgn", "uah", "isk",
                                          "thb", "twd", "idr", "myr", "vnd", "aed", "sar", "egp", "ngn", "kes", "clp")},
               # names and abbreviations written beside the number, in their languages too: read as a currency only
               # there ("Kr" alone is krypton, "Lev Tolstoy" a name; `_BY_A_NUMBER`)
               "zł": "pln", "zl": "pln", "zloty": "pln", "zlotys": "pln", "zlotych": "pln", "złoty": "pln",
               "złotych": "pln", "kč": "czk", "forint": "huf", "forints": "huf",
               "kr": "krona", "krona": "krona", "kronor": "krona", "krone": "krona", "kroner": "krona",
               "lei": "ron", "leu": "ron", "lev": "bgn", "leva": "bgn", "lira": "try", "liras": "try", "lire": "try",
               "hryvnia": "uah", "hryvnias": "uah", "hryvnya": "uah", "rouble": "rub", "roubles": "rub",
               "ruble": "rub", "rubles": "rub", "shekel": "ils", "shekels": "ils", "baht": "thb",
               "ευρω": "euro", "يورو": "euro", "евро": "euro", "рублей": "rub", "рубля": "rub", "рубль": "rub",
               "руб": "rub",
               # a sub-unit is its own unit ("35 cents" is not $35); "peso" and "franc" are any peso or franc
               "cent": "cent", "cents": "cent", "penny": "pence", "pence": "pence", "pennies": "pence",
               "peso": "peso", "pesos": "peso", "centavo": "centavo", "centavos": "centavo", "franc": "franc", "francs": "franc", "rs": "rupee",
               "reais": "brl", "bitcoin": "btc", "bitcoins": "btc", "btc": "btc", "ars": "ars", "cop": "cop",
               "xof": "xof", "xaf": "xaf", "permille": "permille"}
_BY_A_NUMBER = frozenset(normalize(w) for w in list(_UNIT_WORDS)[list(_UNIT_WORDS).index("zł"):])
_RATIOS = frozenset({"percent", "permille"})  # the units that are no currency
_CURRENCY_SPELLINGS = tuple(w for w, unit in _UNIT_WORDS.items() if unit not in _RATIOS and len(w) > 1)
_UNIT_WORDS = {normalize(w): unit for w, unit in _UNIT_WORDS.items()}  # as the text reads them: "kč" is "kc"
# codes that are English words too ("try", "Ron", "rub twice daily"), read as currencies only in capitals
_CAPITAL_CODES = re.compile(r"\b(TRY|RON|PHP|RUB)\b")
_CAPITAL_CODE_AS = {"TRY": "\u20ba", "RON": "leu", "PHP": "\u20b1", "RUB": "\u20bd"}
# the three-letter codes among them, which a text may write on the number itself ("USD1,500")
_CURRENCY_CODES = tuple(c for c, unit in _UNIT_WORDS.items() if len(c) == 3 and c.isascii() and unit not in _RATIOS)
_CURRENCIES = frozenset((*_UNIT_WORDS.values(), *_UNIT_SYMBOLS.values())) - _RATIOS
_SCALES = {"thousand": 10**3, "million": 10**6, "mio": 10**6, "mn": 10**6, "mln": 10**6, "mil": 10**6, "billion": 10**9,
           "billions": 10**9, "bn": 10**9,
           "trillion": 10**12, "lakh": 10**5, "lakhs": 10**5, "crore": 10**7, "crores": 10**7,
           # Russian and Ukrainian, abbreviated and spelt out: "4,5 тыс. руб." is 4,500 roubles, "1,5 млн" 1.5 million
           **{w: 10**3 for w in "тыс тысяча тысячи тысяч тысячу тис тисяча тисячі тисяч тисячу".split()},
           **{w: 10**6 for w in "млн миллион миллиона миллионов мільйон мільйона мільйони мільйонів".split()},
           **{w: 10**9 for w in "млрд миллиард миллиарда миллиардов мільярд мільярда мільярди мільярдів".split()},
           **{w: 10**12 for w in "трлн триллион триллиона триллионов трильйон трильйона трильйони трильйонів".split()},
           # German, French, Spanish, Italian, Portuguese, Dutch, Polish and the Nordic languages: "5 Millionen
           # Euro", "2 milliards d'euros", "5 millones de euros", "2,5 Mrd. Euro" (read as 5, 2 and "2 5" before, their
           # scale a word like any other). Spanish "mil millones" is 10**9 (`_THOUSAND_MILLION`). "billion" is 10**9
           # in English and 10**12 in German and French, "mil" a million in English shorthand and a thousand in
           # Spanish and Portuguese: `_scale` reads them as the text's convention says (`_Reading`, `_readings`)
           **{w: 10**3 for w in "tausend mille mila duizend tusen tusind tys".split()},
           **{w: 10**6 for w in ("millionen millions millon millones milione milioni milhao milhoes miljoen miljoenen "
                                 "miljon miljoner millioner milion miliony milionow").split()},
           **{w: 10**9 for w in ("milliard milliards milliarde milliarden mrd miliardo miliardi bilhao bilhoes "
                                 "miljard miljarden miljarder miliard miliardy miliardow mld").split()},
           **{w: 10**12 for w in "billionen billon billones biliao bilioes".split()}}
_SCALES.update({normalize(w): scale for w, scale in list(_SCALES.items())})  # as the text reads them: "мільйон" is "мільион"
_MEASURES = _CURRENCIES | _RATIOS


@dataclass(frozen=True)
class _PeriodWords:
    """A period's words (or a rate's basis's: "per trade"), one row of `_PERIOD_WORDS`. ``nouns``: its English nouns,
    singular, each read with its plural in "-s" (but "annum"); ``abbreviations``: its short forms, read as its unit
    after a number as its nouns are ("5 hrs"); ``adverbs``: its adverbs and adjectives ("daily", "annual");
    ``named``: further words that name it in a passage's sentence only (a pattern: finance's "p.a." and "APR", and the
    words of German, French, Spanish, Italian, Portuguese and Dutch, "Jahresgeb\u00fchr"); ``other_units``: its unit
    as those languages write it after a number ("6,5 Monate": a decimal comma)."""

    nouns: tuple[str, ...]
    abbreviations: tuple[str, ...] = ()
    adverbs: tuple[str, ...] = ()
    named: str = ""
    other_units: tuple[str, ...] = ()

    def units(self) -> tuple[str, ...]:
        """Its spellings read as its unit after a number (`_measure_table`)."""
        return (*self.abbreviations, *self.nouns, *(f"{n}s" for n in self.nouns if n != "annum"))


# The words that name each period a rate is given over (and the bases a fee is given on), in one place: every
# reading of a period is derived from its row (the unit after a number, `_MEASURE_UNITS`; the adverb after one,
# `_ADVERB_PERIODS`; a rate after a year-like number, `_RATE_AHEAD`, or a named APR, `_RATE_NAMED`; a word after a bare
# number leaving it an amount, `_MONEY_AFTER`; a passage's sentence naming the period, `_PERIOD_NAMES`; another
# language's unit after a decimal comma, `_OTHER_LANGUAGE_UNITS`). Not "semi-annually" nor "biannual", which name another period
_PERIOD_WORDS = {
    "second": _PeriodWords(("second",), ("s", "sec", "secs")),
    "minute": _PeriodWords(("minute",), ("min", "mins"), other_units=("minuten",)),
    "hour": _PeriodWords(("hour",), ("h", "hr", "hrs"), ("hourly",),
                         other_units=("stunde", "stunden", "heure", "heures", "hora", "horas", "ore")),
    "day": _PeriodWords(("day",), (), ("daily",),
                        r"per\s+diem|overnight|t\u00e4glich|tage|tagen|tages\w*|jours?|quotidien\w*|d\u00edas?|dias?"
                        r"|diari[oa]|giorn\w+|dag|dagen|dagelijks",
                        ("tag", "tage", "tagen", "jour", "jours", "d\u00eda", "d\u00edas", "dia", "dias", "giorno", "giorni")),
    "night": _PeriodWords(("night",), (), ("nightly",)),  # a hotel's: a period of its own, no 24 hours ("one night's rate")
    "week": _PeriodWords(("week",), ("wk", "wks"), ("weekly",),
                         r"woche\w*|w\u00f6chentlich|semaines?|hebdomadaire|semanas?|semanal|settiman\w+|weken|wekelijks",
                         ("woche", "wochen", "semaine", "semaines", "semana", "semanas", "settimana", "settimane")),
    "month": _PeriodWords(("month",), ("mo", "mos"), ("monthly",),
                          r"p\.\s?m\.|monat\w*|mois|mensuel\w*|mes|meses|mensual\w*|mes[ei]|mensil\w*|m\u00eas|mensal"
                          r"|maand\w*",
                          ("monat", "monate", "monaten", "mois", "mes", "meses", "mese", "mesi")),
    "quarter": _PeriodWords(("quarter",), (), ("quarterly",), r"quartal\w*|trimestr\w*"),
    "year": _PeriodWords(("year", "annum"), ("yr", "yrs"), ("yearly", "annually", "annual"),
                         r"p\.\s?a\.?|pa|APR|APY|AER|EAR|jahr\w*|j\u00e4hrlich|ann\u00e9es?|annees?|par\s+an|l['\u2019]an"
                         r"|annuel\w*|a\u00f1os?|anual\w*|ann[oi]|annu[oa]|anos?|jaar\w*",
                         ("jahr", "jahre", "jahren", "ans", "ann\u00e9e", "ann\u00e9es", "annee", "annees", "a\u00f1o",
                          "a\u00f1os", "anno", "anni")),
    "trade": _PeriodWords(("trade",), named="trading"),
    "transaction": _PeriodWords(("transaction",)),
}
_RATE_PERIODS = tuple(_PERIOD_WORDS)
_PERIOD_ADVERBS = tuple(a for words in _PERIOD_WORDS.values() for a in words.adverbs)


def _measure_table() -> dict[str, tuple[str, Decimal, str]]:
    """Units of measure read after a number: each spelling -> (unit, factor, base), so that "4 g" and "4000 mg",
    "24 hours" and "1 day" are the same amount. Read only right after a number: "h" or "g" alone is a letter."""
    groups: list[tuple[str, str, str, Decimal]] = [  # (spellings, unit, base, factor to the base)
        ("mcg µg μg ug microgram micrograms", "mcg", "mg", Decimal("0.001")),
        ("mg milligram milligrams milligramme milligrammes", "mg", "mg", Decimal(1)),
        ("g gm gram grams gramme grammes", "g", "mg", Decimal(1000)),
        ("kg kilogram kilograms kilo kilos", "kg", "mg", Decimal(10**6)),
        ("lb lbs", "lb", "mg", Decimal("453592.37")),
        ("tonne tonnes ton tons", "tonne", "mg", Decimal(10**9)),
        ("ml millilitre millilitres milliliter milliliters cc", "ml", "ml", Decimal(1)),
        ("cl centilitre centilitres centiliter centiliters", "cl", "ml", Decimal(10)),
        ("dl decilitre decilitres deciliter deciliters", "dl", "ml", Decimal(100)),
        ("l litre litres liter liters", "l", "ml", Decimal(1000)),
        *((" ".join(_PERIOD_WORDS[period].units()), period, base, factor) for period, base, factor in (
            ("second", "second", Decimal(1)), ("minute", "second", Decimal(60)), ("hour", "second", Decimal(3600)),
            ("day", "second", Decimal(86400)), ("night", "night", Decimal(1)), ("week", "second", Decimal(604800)), ("month", "month", Decimal(1)),
            ("quarter", "quarter", Decimal(1)), ("year", "month", Decimal(12)))),
        ("decade decades", "decade", "month", Decimal(120)),  # (a year is 12 months: "one year" from "12 months")
        ("mm millimetre millimetres millimeter millimeters", "mm", "mm", Decimal(1)),
        ("cm centimetre centimetres centimeter centimeters", "cm", "mm", Decimal(10)),
        ("m metre metres meter meters", "metre", "mm", Decimal(1000)),
        ("km kilometre kilometres kilometer kilometers", "km", "mm", Decimal(10**6)),
        ("mile miles", "mile", "mile", Decimal(1)),
        ("ft foot feet", "ft", "mm", Decimal("304.8")),
        ("inch inches", "inch", "mm", Decimal("25.4")),
        ("mph", "mph", "mph", Decimal(1)),
        ("c celsius", "celsius", "celsius", Decimal(1)),
        ("f fahrenheit", "fahrenheit", "fahrenheit", Decimal(1)),
        ("bp bps", "bp", "bp", Decimal(1)),
        # a fee's or a rate's basis, read after "per" as a period is ("0.5% per trade", "$3 per transaction")
        *((" ".join(_PERIOD_WORDS[basis].units()), basis, basis, Decimal(1)) for basis in ("trade", "transaction")),
        ("iu unit units", "iu", "iu", Decimal(1)),  # a dose's "units" are international units
        ("mmol", "mmol", "mmol", Decimal(1)),
        ("x times", "times", "times", Decimal(1)),
        ("tablet tablets", "tablet", "tablet", Decimal(1)),
        ("capsule capsules", "capsule", "capsule", Decimal(1)),
        ("drop drops", "drop", "drop", Decimal(1)),
        ("puff puffs", "puff", "puff", Decimal(1)),
    ]
    return {w: (unit, factor, base) for words, unit, base, factor in groups for w in words.split()}


_MEASURE_UNITS = _measure_table()
# the units `_spelt_figures` reads a number in words before: written out, in Latin letters (not "mg", "x"), not a
# count's ("one quarter of", "two units")
_SPELT_UNITS = sorted((w for w in (*_UNIT_WORDS, *_MEASURE_UNITS) if w.isalpha() and w.isascii() and len(w) > 2
                       and w not in ("annum", "quarter", "quarters", "unit", "units")), key=len, reverse=True)
_SPELT_FIGURE = re.compile(r"(?i)(?<![\w-])" + _NUMBER_WORD + r"(?:[\s-]+(?:and[\s-]+)?" + _NUMBER_WORD + r")*"
                           r"(?=[\s-]+(?:(?:thousand|million|billion)[\s-]+)?(?:(?:business|working|calendar|consecutive|"
                           r"full|clear)\s+)?(?:per\s+cent|" + "|".join(_SPELT_UNITS) + r")(?![\w-]))")
# ... of which "one" only before a unit of time, money or count ("one year", "one business day", "one dollar", "one
# thousand euros", "one tablet": 1; not "one percent", "one mile"): "one" is a pronoun too, read as a figure only where
# a unit makes it one
_ONE_UNIT = re.compile(r"(?i)[\s-]+(?:(?:thousand|million|billion)[\s-]+)?(?:(?:business|working|calendar|consecutive|"
                       r"full|clear)\s+)?(?:" + "|".join(w for w in _SPELT_UNITS if w in _UNIT_WORDS and _UNIT_WORDS[w] not in _RATIOS
                                                    or w in _MEASURE_UNITS and _MEASURE_UNITS[w][0] in (
                                                        *_PERIOD_WORDS, "decade", "times", "tablet", "capsule", "drop",
                                                        "puff")) + r")(?![\w-])")
# a unit written on its number ("500mg", "6h", "3x", "14days"): read as "500 mg"; not "k", "m", "bn" (scales, below)
_GLUED_UNIT = re.compile(r"(?i)(?<![\w.,])(\d+(?:[.,]\d+)?)(" + "|".join(sorted(
    (w for w in _MEASURE_UNITS if w not in ("s", "l", "m", "sec", "secs", "c", "f", "ft", "unit", "units")), key=len,
    reverse=True)) + r")(?![^\W\d_])")
# "per cent" in English and other languages
_PER_CENT = re.compile(r"(?i)\b(?:per[\s-]+cent|pour\s+cent|por\s+cien(?:to)?|por\s+cento|per\s+cento|prozent|procent|procento)\b")
# units as other languages write them, read only to tell a decimal comma ("6,5 Monate", "1,5 gramos") from a list
_OTHER_LANGUAGE_UNITS = [*(w for words in _PERIOD_WORDS.values() for w in words.other_units),
                         *"gramm grammes gramo gramos grammi litro litros".split()]
# a decimal comma: "2,5 mg", "3,5 Prozent", "0,125 mg" ("1,250" stays one thousand two hundred and fifty) and
# "1.000,50" (1000.50); a sentence's period or a comma may follow ("€ 1.200,50." is 1200.50, not 1.2 and 50).
# One or two digits after the comma are a decimal only before a unit, a scale, a currency or a percent, in English or
# another language ("6,5 Monate", "2,5 pour cent"): in English a comma lists ("pages 3,5.", "Chapters 3,4 apply",
# "The score was 2,1.") or ends a clause ("In 2019,20 people": never after a year); nor where a list goes on after it
# ("Clauses 1,2 and 3", "1,2, 3", "Levels 0,1, 2 and 3", "Items 1,2, and 3", "Artikel 1,2 und 3")
# ("(?:,\s*)?" after "\s*", not ",?\s*": two "\s*" side by side tried every split of a run of blanks, quadratic in it)
_LIST_GOES_ON = r"(?!\s*(?:,\s*\d|(?:,\s*)?(?:and|or|und|oder|et|ou|y|o|e|i|en|og|och|&)\s+\d+(?![.,]\d)))"


def _words_ahead(words: tuple[str, ...]) -> str:
    """A look-ahead: a currency or percent sign, or one of ``words`` (or "per cent"), after blanks."""
    return (r"(?=\s*(?:[" + re.escape("".join(_UNIT_SYMBOLS)) + r"]|(?:" + "|".join(sorted({re.escape(w) for w in words},
            key=len, reverse=True)) + r"|" + _PER_CENT.pattern.removeprefix("(?i)") + r")(?![^\W\d_])))")


_MEASURE_AHEAD = _words_ahead((*_MEASURE_UNITS, *_UNIT_WORDS, *_CURRENCY_SPELLINGS, *_SCALES))
_UNIT_AHEAD = _words_ahead((*_MEASURE_UNITS, *_UNIT_WORDS, *_CURRENCY_SPELLINGS, *_SCALES, *_OTHER_LANGUAGE_UNITS))
# (a year before another language's word is a clause's end, "In 2019,20 Tage"; before a unit, a currency, a scale or a
# percent it is an amount: "1999,99 \u20ac", "Es wiegt 1999,5 kg")
_DECIMAL_COMMA = re.compile(r"(?i)(?<![\d.,])(?!(?:1[5-9]\d\d|20\d\d),\d\d?(?!\d)(?!" + _MEASURE_AHEAD.removeprefix("(?=")
                            + r")(\d+),(\d{1,2})(?!\d|,\d)" + _LIST_GOES_ON + _UNIT_AHEAD
                            + r"|(?<![\d.,])0,(\d+)(?!\d|,\d)" + _LIST_GOES_ON)
_GROUPED_DECIMAL_COMMA = re.compile(r"(?<![\d.,])(\d{1,3}(?:\.\d{3})+),(\d+)(?!\d|[,.]\d)")
# thousands grouped by two or more dots ("2.500.000 \u20ac"): no decimal has two points (one group, "1.500", is
# ambiguous: see `_Reading`)
_DOTTED_THOUSANDS = re.compile(r"(?<![\d.,])\d{1,3}(?:\.\d{3}){2,}(?!\d|[.,]\d)")
# one group of three after a dot or a comma, "1.500" and "1,500": fifteen hundred, or one and a half, by the convention
# the text is written in (not "0.500", a decimal in either)
_ONE_DOT_GROUP = re.compile(r"(?<![\d.,])[1-9]\d{0,2}\.\d{3}(?!\d|[.,]\d)")
_ONE_COMMA_GROUP = re.compile(r"(?<![\d.,])[1-9]\d{0,2},\d{3}(?!\d|[.,]\d)")


@dataclass(frozen=True)
class _Reading:
    """How numbers written alike in several conventions are read. ``dot_thousands``: "1.500" is fifteen hundred (German,
    Spanish, Italian, ...: "1.500 \u20ac"), else one and a half (English: "1.500 mg"); ``comma_decimal``: "1,500" is one
    and a half (those languages' decimal comma), else fifteen hundred (English: "$1,500"). ``mil``:
    a million in English shorthand ("$5 mil"), a thousand in Spanish and Portuguese ("5 mil euros"). ``billion``:
    10**9 in English, 10**12 in German and French ("2 Billionen", "2 billions d'euros"). `_readings` says which a text
    calls for; where it cannot tell, a number is checked under each."""

    dot_thousands: bool = False
    comma_decimal: bool = False
    mil: int = 10**6
    billion: int = 10**9


_ENGLISH = _Reading()
# Indian grouping by lakh and crore: "₹12,34,567" is 1234567 (read as 12 and 34,567 before) in a text that names a
# rupee, a lakh or a crore anywhere ("Rs 12,34,567 and the second 15,00,000", "Rs.12,34,567/-"); elsewhere it is
# read as before this session, 12 and 34,567 ("Doses of 5,10,250 mg" may list doses or be 510250 mg: split at every
# comma, "The town has 12,34,567 residents" let "567 residents" pass; read whole, "510250 mg" passed)
_LAKH_GROUPED = re.compile(r"(?<![\d,])(?<!\d\.)\d{1,2}(?:,\d\d)+,\d{3}(?!\d|,\d)")
_RUPEES_NAMED = re.compile(r"(?i)\u20b9|\brs\b|\binr\b|\brupees?\b|\blakhs?\b|\bcrores?\b")
# a currency's code or name, longest first (as written: "zł", "EUR", "kr")
_CURRENCY_NAME = "|".join(sorted(map(re.escape, _CURRENCY_SPELLINGS), key=len, reverse=True))
# a currency's code or name written on its number: "30zł", "1500EUR", "200kr"
_GLUED_CURRENCY = re.compile(r"(?i)(?<![\w.,])(\d+(?:[.,]\d+)?)(" + _CURRENCY_NAME + r")(?![^\W\d_])")
_ENCLOSING_MARK = regex.compile(r"\p{Me}")  # a keycap, a circle drawn around the character before it


def _digits_of(c: str) -> str:
    """One character as the rules read its number: every script's digits as 0-9 ("\u0663" is 3), a number drawn as
    one sign that compatibility forms do not spell ("\u2789", a circled ten) as its digits set apart; else itself."""
    if c.isascii():
        return c
    if c.isdecimal():
        return str(unicodedata.decimal(c))
    if c == "\U0001f51f":  # the keycap ten emoji, a symbol Unicode gives no value
        return " 10 "
    value = unicodedata.numeric(c, None)
    if value is not None and value == int(value) and unicodedata.category(c) == "No" and unicodedata.normalize("NFKC", c) == c:
        return f" {int(value)} "
    return c


# a digit beside a letter of a script written without spaces or with its words on the number ("期限是45天",
# "45дней", "٥٠٠دينار"): the number is a word of its own; beside a Latin letter it stays ("COVID-19", "Q3", "v2")
_SCRIPT_DIGIT = regex.compile(r"(?<=\d)(?=[\p{L}--\p{Latin}])|(?<=[\p{L}--\p{Latin}])(?=\d)", regex.V1)
_ARABIC_MARKS = str.maketrans({"\u066b": ".", "\u066c": ",", "\u066a": "%"})  # decimal, thousands, percent
_FULL_WIDTH: dict[int, int | str] = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}  # "４，５００円" is "4,500円"
_FULL_WIDTH[0x3001] = ", "  # the ideographic comma lists ("100、200、300元" is three amounts; NFKD made it a digit group)
_FULL_WIDTH[0xFFE5] = "\u00a5"  # the full-width yen or yuan sign
# CJK scale characters after digits (the Hangul ones of Korean too, 조 a trillion: not after 제, "제3조" is an article's
# number, and no number after 제 is an amount, "제1회" is the first): one value,
# each group of digits times its characters and the groups summed ("4万5千" is 45,000, "1亿2千万" 120,000,000, "3.5万"
# 35,000, "1,200万" 12,000,000, "1억 2천만" 120,000,000), with the digits after the last character below its unit
# ("4万5000" and "4万5千" are 45,000, "1万零5" 10,005; one digit alone is the next place down, "4万5" is 45,000 as it is
# said, "4万5000." 45,000 at a sentence's end; before a decimal, "4万5000.5" is 40,000 and 5,000.5, and the value is
# set apart from what follows); Chinese numerals without digits ("三十五") are not read. (Each group ends on a
# character and a run of digits is tried from its start only: linear.)
_CJK_SCALES = {"十": 10, "百": 100, "千": 10**3, "万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8, "兆": 10**12,
               "십": 10, "백": 100, "천": 10**3, "만": 10**4, "억": 10**8, "조": 10**12}
_CJK_DIGITS = r"\d+(?:,\d{3})*"
# 조 is a scale only at its word's end or before a currency or digits ("3조 원", "3조원", "1조2천억"): inside a word it is
# no number's ("3조각" is 3 pieces, "3조건" 3 conditions, "3조는" team 3)
_CJK_SCALE_CHAR = r"(?:[" + "".join(c for c in _CJK_SCALES if c != "조") + r"]|조(?![^\W\d_])|조(?=원|달러|유로))"
_CJK_GROUP = _CJK_DIGITS + r"(?:\.\d+)?" + _CJK_SCALE_CHAR + "+"
_MINUS_SIGNS = "-\u2212\u2012\u2013\ufe63"  # a minus, or a dash written for one (not an em dash: `_SIGN`)
# (a number starts at its first digit, not after a grouping comma or a decimal point: "1，2万" is no 2万, "1万，2万" two)
_RANGE_DASHES = "-\u2012\u2013\u2014\ufe63"  # "2-4 mg" is 2 to 4 mg (`_RANGE_DASH`)
# a range with the scale written once, "3-5万元" (30,000 to 50,000 yuan), "3~5억", "3〜5万円", "3至5万": the scale is
# on both ends
_CJK_RANGE = r"(?:(" + _CJK_DIGITS + r"(?:\.\d+)?) ?[" + _RANGE_DASHES + r"~\u301c至到] ?)?"
_CJK_SCALED = re.compile(r"(?<!\d)(?<!\d[.,])(?<!제)(?<!제 )" + _CJK_RANGE + _CJK_GROUP + r"(?: ?零?" + _CJK_GROUP
                         + r")*(?:(零)?(" + _CJK_DIGITS + r")(?!\d|[.,]\d))?")
_CJK_PART = re.compile(r"(?<![\d.,])(" + _CJK_DIGITS + r"(?:\.\d+)?)([" + "".join(_CJK_SCALES) + "]+)")
# a currency written in CJK after its number ("45000円", "2千万元", "100美元", "5만 원"), read as its code
_CJK_CURRENCIES = {"円": "JPY", "日元": "JPY", "日圆": "JPY", "元": "CNY", "圆": "CNY", "圓": "CNY", "人民币": "CNY", "人民幣": "CNY",
                   "美元": "USD", "欧元": "EUR", "歐元": "EUR", "英镑": "GBP", "英鎊": "GBP", "港元": "HKD", "港币": "HKD",
                   "港幣": "HKD", "韩元": "KRW", "韓元": "KRW", "新台币": "TWD", "新台幣": "TWD", "원": "KRW",
                   "ドル": "dollars", "ユーロ": "EUR", "ポンド": "GBP", "달러": "dollars", "유로": "EUR"}
_CJK_CURRENCY = re.compile(r"(?<=\d) ?(" + "|".join(sorted(_CJK_CURRENCIES, key=len, reverse=True)) + ")")
# "\u00a5" is the yen's sign and the yuan's (`_CURRENCY_FAMILIES`), unless the text says which: "\u00a5100 (JPY)",
# "\u00a5100円", "\u00a5100 RMB", "CN\u00a5100" and "JP\u00a5100" are in that currency (the sign replaced by its code,
# never dropped: a number left bare matches any unit). A code or name after the number says so only where no number
# follows it: "\u00a51,000 (CNY 48)" converts, 48 is in yuan and the sign stays the yen or the yuan
_YEN_OR_YUAN = frozenset({"yen", "cny"})
_YEN_OR_YUAN_NAME = "|".join(sorted((w for w, unit in _UNIT_WORDS.items() if unit in _YEN_OR_YUAN), key=len, reverse=True))
_YEN_OR_YUAN_SAID = re.compile(r"(?i)\u00a5 ?(?=\d+(?:[.,]\d+)*\s*\(?\s*(" + _YEN_OR_YUAN_NAME + r")(?![^\W\d_])(?!\s*\d))"
                               r"|\b(?:(CN|RMB|CNY)|(JP|JPY)) ?\u00a5 ?(?=\d)")


def _yen_or_yuan_said(m: re.Match[str]) -> str:
    """The code of the currency a "\u00a5" is read as (`_YEN_OR_YUAN_SAID`), in the sign's place."""
    name, yuan = m.group(1), m.group(2)
    return " CNY " if yuan or (name and _UNIT_WORDS[normalize(name.lower())] == "cny") else " JPY "


def _cjk_scaled(m: re.Match[str]) -> str:
    """The value of a number written with CJK scale characters (`_CJK_SCALED`): within a group the characters multiply
    ("2千万" is 2 x 1,000 x 10,000), a ten thousand or more takes the groups since the last such unit ("1亿3千5百万" is
    100,000,000 + 3,500 x 10,000), or all before it where it is larger than the last ("1万亿" is 10^12). A group that
    does not go down from the one before starts another number ("1万 2万" are two). A range's first end takes the
    characters of the first group ("3-5万" is 30,000-50,000) where that keeps it no higher than the second end."""
    numbers: list[Decimal] = []
    total, section, last, small, scale = Decimal(0), Decimal(0), 0, 10**4, 1
    parts = _CJK_PART.findall(m.group(0))
    for digits, chars in parts:
        first = _CJK_SCALES[chars[0]]
        if (total or section) and (first >= small if first < 10**4 else first >= last):
            numbers.append(total + section)
            total, section, last, small = Decimal(0), Decimal(0), 0, 10**4
        value = Decimal(digits.replace(",", ""))
        for c in chars:
            scale = _CJK_SCALES[c]
            if scale < 10**4:
                value, small = value * scale, scale
                continue
            amount = section + value
            total = (total + amount) * scale if scale > last else total + amount * scale
            section, value, last, small = Decimal(0), Decimal(0), scale, 10**4
        section += value
    low, zero, tail = m.group(1, 2, 3)
    after = ""
    if tail is not None:
        rest = Decimal(tail.replace(",", ""))
        if rest >= scale:  # "1万20000": no part of it
            after = f" {tail}"
        else:
            section += rest * scale / 10 if len(tail) == 1 and zero is None and scale > 10 else rest
    numbers.append(total + section)
    read = " ".join(format(n.normalize(), "f") for n in numbers)
    if low is not None:
        # the low end takes the high end's scale where that keeps it no higher ("3-5万" is 30,000-50,000), else it is
        # read as written where it is below the high end ("8000-1万" is 8,000-10,000, never 80,000,000-10,000); above
        # it even so, the two are no range ("20000-1万": 20,000 and 10,000, the unit on the second only)
        low_value = Decimal(low.replace(",", ""))
        scaled = low_value
        for c in parts[0][1]:
            scaled *= _CJK_SCALES[c]
        if scaled <= numbers[0] or low_value < numbers[0]:
            read = format((scaled if scaled <= numbers[0] else low_value).normalize(), "f") + "-" + read
        else:
            read = f"{low}, {read}"
    # set apart from what follows: "4万5000.5" is 40,000 and 5,000.5, never "400005000.5"
    apart = "" if m.string[m.end():m.end() + 1].isspace() else " "
    return read + after + apart


def _plain_digits(text: str) -> str:
    """``text`` with its numbers written as the rules below read them: every script's digits as 0-9 ("٣٠", "３０"),
    full-width punctuation and the Arabic decimal, thousands and percent signs as their ASCII forms, invisible
    characters dropped (a zero-width joiner inside "1\u200d000"), a number set apart from the letters of another
    script, currency codes that are English words read in capitals ("30 TRY"), and a currency written on its
    number set apart from it; the ideographic comma separates ("100、200、300元" lists three amounts); "\u00a5" is
    replaced by its code where a code or name beside it says whether it is the yen or the yuan ("\u00a5100 (JPY)" is
    "JPY 100 (JPY)")."""
    text = without_ignorables(text).translate(_FULL_WIDTH).translate(_ARABIC_MARKS)
    if not text.isascii():
        text = _ENCLOSING_MARK.sub("", text)  # a keycap "3\u20e30\u20e3" shows as 3 and 0 side by side: "30"
        text = "".join(_digits_of(c) for c in text)
        text = _CJK_CURRENCY.sub(lambda m: f" {_CJK_CURRENCIES[m.group(1)]} ", _CJK_SCALED.sub(_cjk_scaled, text))
        text = _YEN_OR_YUAN_SAID.sub(_yen_or_yuan_said, text)
        text = _SCRIPT_DIGIT.sub(" ", text)
    text = _CAPITAL_CODES.sub(lambda m: _CAPITAL_CODE_AS[m.group(1)], text)
    text = _GLUED_CURRENCY.sub(r"\1 \2", text)
    # a plain space groups digits before a currency ("25 000 euros", "1 500 kr", "1 200,50 \u20ac") or after its sign
    # ("$1 250", "\u20ac 1 250 000"), not before a unit of measure ("take 1 500 mg tablet" is one tablet of 500 mg) nor
    # between numbers with no currency ("in 2019 250 customers", "page 3 250"); a no-break or thin space groups them
    # anywhere (_SPACED_THOUSANDS)
    # After its sign, only where the groups end the amount (the line's end, a sentence's punctuation, a cell's "|", a
    # currency or scale word, a decimal part): "$20 500-piece puzzle", "$5 365 days a year", "$5 100 times" are two
    # numbers; and only where no number follows in its line or cell and no line above may be a table's header
    # (`_first_header_end`): "Item Price Qty\nBlue widget $12 250" is a price and a quantity
    text = _SPACE_GROUPED.sub(lambda m: m.group(1) + m.group(2).replace(" ", ""), text)

    def glued(m: re.Match) -> str:
        if _NUMBER_FOLLOWS.match(text, m.end()) or _in_table_row(text, m.start()):
            return m.group(0)
        return m.group(1) + m.group(2).replace(" ", "")

    return _SIGN_SPACE_GROUPED.sub(glued, text)


# a number after the amount's groups (its decimal part aside) in the same line or cell ("$12 250 7", "$1 250 and 300")
_NUMBER_FOLLOWS = re.compile(r"(?:[.,]\d{1,2}(?!\d))?+[^\d\n|\t]*+\d")
_SENTENCE_END = re.compile(r"[.!?;:]\s*$")


def _in_table_row(text: str, at: int) -> bool:
    """Whether position ``at`` of ``text`` lies in a row of a table whose columns a space separates ("Item Price
    Qty\nBlue widget $12 250": a price and a quantity, never glued across the space): its line ends without a
    sentence's punctuation, and a line above it in its block or the block above may be the table's header
    (three or more fields holding no digit, no sentence's punctuation at its end). A sentence ("The wire fee is $1
    250.") or a block with no such line above (a title, an opening sentence: a third review) is no row: its amount is
    read whole."""
    start, end = text.rfind("\n", 0, at) + 1, text.find("\n", at)
    if _SENTENCE_END.search(text[start: len(text) if end < 0 else end]):
        return False
    block = "\n".join(text[:start].rsplit("\n\n", 2)[-2:]).split("\n")  # its block and the one above (a header
    # a blank line apart: "Item Price Stock\n\nWidget $12 250")
    return any(sum(not any(c.isdigit() for c in f) for f in line.split()) >= 3 and not _SENTENCE_END.search(line)
               for line in block if line.strip())


# digits grouped by a plain space: one to three, then groups of exactly three (and a decimal part of one or two digits)
_SPACE_GROUPS = r"(?<![\d.,])(\d{1,3})((?: \d{3})+)(?=(?:[.,]\d{1,2})?(?![\d.,]\d)(?!\d)"
_CURRENCY_SIGNS = "".join(k for k, v in _UNIT_SYMBOLS.items() if v not in _RATIOS)
_SPACE_GROUPED = re.compile(_SPACE_GROUPS + r"\s*(?:[" + re.escape(_CURRENCY_SIGNS) + r"]|(?:" + _CURRENCY_NAME
                            + r")(?![^\W\d_])))", re.IGNORECASE)
_LEADING_SIGNS = re.escape(_CURRENCY_SIGNS.replace("\u00a2", ""))  # "\u00a2" is written after its number only
# after its sign, a space or a minus between ("$1 250", "\u20ac 1 250 000", "$-1 250", "\u20ac -1 250")
_SCALE_NAME = "|".join(sorted((re.escape(w) for w in _SCALES if w.isascii() and w.isalpha()), key=len, reverse=True))
# what ends an amount after its groups: a decimal part, then the line's end, a cell's "|", a tab, a sentence's
# punctuation (not before a digit, a letter or a hyphen: "$20 500-piece"), or a currency or scale word
_AMOUNT_ENDS = (r"(?=(?:[.,]\d{1,2})?(?![\d.,]\d)(?:[ \t]*(?:\r|\n|\Z|\|)|\t|[.,;:!?)\]](?![\w-])|\s+(?:"
                + _CURRENCY_NAME + "|" + _SCALE_NAME + r")(?![^\W\d_])))")
_SIGN_SPACE_GROUPED = re.compile("(?:" + "|".join(f"(?<=[{_LEADING_SIGNS}]{between})" for between in (
    "", "[ \u00a0\u202f\u2009]", f"[{_MINUS_SIGNS}]", f" [{_MINUS_SIGNS}]")) + ")" + _SPACE_GROUPS + ")"
    + _AMOUNT_ENDS, re.IGNORECASE)


# a number word that is a count of times ("twice daily") or a half ("half a tablet")
_TIMES_WORDS = {"once": "1", "twice": "2", "thrice": "3"}


def _decimal_commas(text: str, reading: _Reading = _ENGLISH) -> str:
    if _RUPEES_NAMED.search(text) is not None:
        text = _LAKH_GROUPED.sub(lambda m: m.group(0).replace(",", ""), text)
    text = _GROUPED_DECIMAL_COMMA.sub(lambda m: m.group(1).replace(".", "") + "." + m.group(2), text)
    text = _DOTTED_THOUSANDS.sub(lambda m: m.group(0).replace(".", ""), text)
    if reading.dot_thousands:  # "1.500" is fifteen hundred
        text = _ONE_DOT_GROUP.sub(lambda m: m.group(0).replace(".", ""), text)
    if reading.comma_decimal:  # "1,500" is one and a half
        text = _ONE_COMMA_GROUP.sub(lambda m: m.group(0).replace(",", "."), text)
    return _DECIMAL_COMMA.sub(lambda m: f"{m.group(1)}.{m.group(2)}" if m.group(1) else f"0.{m.group(3)}", text)


# Ways of writing numbers, rewritten before the text is normalised, so that each reads as its value wherever it
# stands (both sides of a comparison alike): fractions, clock times, dates, currencies and scales written on their
# number, ranges, units joined by "/".
_FRACTION_CHARS = {"\u00bd": ".5", "\u00bc": ".25", "\u00be": ".75"}
_FRACTION = re.compile(r"(?<!\d)(\d*)([\u00bd\u00bc\u00be])")
_SLASH_FRACTION = re.compile(r"(?<![\d/.,])([13])/([24])(?![\d/])")  # "1/2 a tablet" (not "24/7", "1/2/2024")
_SLASH_FRACTIONS = {("1", "2"): "0.5", ("1", "4"): "0.25", ("3", "4"): "0.75"}
_DIMENSION = re.compile(r"(?<=\d)\s*[x\u00d7]\s*(?=\d)")  # "120x80 cm": 120 by 80
_CLOCK_12 = re.compile(r"(?i)(?<![\w:.])(\d{1,2})(?:[:.](\d{2}))?\s*([ap])\.?\s?m\b\.?")  # "2 pm", "8.30am", "10 a.m."
_CLOCK_24 = re.compile(r"(?<![\w:.])(\d{1,2}):(\d{2})(?![\d:]|[.,]\d)")  # "14:00", "08:30" (not a ratio's "1:10,000")
# noon and midnight, with their 12 ("12 noon", "12:00 midnight") or alone ("at noon", "midday": read as a time in a
# passage or a question only, `_written_numbers`)
_NOON = re.compile(r"(?i)(?<![\w:.])(?:(12)(?:[:.]00)?\s*)?\b(noon|midday|midnight)\b")
_DOTTED_DATE = re.compile(r"(?<![\d.])(\d{1,2})\.(\d{1,2})\.(\d{4})(?!\d)")  # "16.03.2025"
_QUARTER = re.compile(r"(?i)\bq([1-4])\b")  # "Q3 2024"
_CURRENCY_PREFIX = re.compile(r"(?i)\b(US|HK|NZ|AU|CA|MX|NT|C|A|S|R)\$")  # "HK$5" is not "$5"
_PREFIX_CODES = {"us": "USD", "hk": "HKD", "nz": "NZD", "au": "AUD", "a": "AUD", "ca": "CAD", "c": "CAD", "s": "SGD",
                 "mx": "MXN", "nt": "TWD", "r": "BRL"}
# "$2.5B", "$2.5MM", "1.2M customers" (not "35MM film", "apartment 4B": an integer with no currency)
_CAPITAL_SCALE = re.compile(r"(?:(?<=[$\u20ac\u00a3\u00a5]\d)|(?<=[$\u20ac\u00a3\u00a5]\d\d)|(?<=[$\u20ac\u00a3\u00a5]\d\d\d)"
                            r"|(?<=\.\d)|(?<=\.\d\d))(MM|M|BN|Bn|B)\b")
_RANGE_DASH = re.compile(r"(?<=\d)\s*[" + _RANGE_DASHES + r"]\s*(?=\d)")  # "2-4 mg" is 2 to 4 mg
_SPACED_THOUSANDS = re.compile(r"(?<=\d)[\u00a0\u202f\u2009](?=\d{3}(?!\d))")  # "10\u202f000"
_PER_MILLE = re.compile(r"(?i)\bper\s+mille\b")  # not "per mile"
_CENTS_ON_THE_DOLLAR = re.compile(r"(?i)\bcents?\s+on\s+the\s+dollar\b")  # "50 cents on the dollar" is 50%
_BASIS_POINTS = re.compile(r"(?i)\bbasis\s+points?\b")
_VERSION = re.compile(r"(?i)\bv(?=\d)")  # "v2.1"
_SLASH_UNIT = re.compile(r"(?i)(?<=[\w\u00b5\u03bc" + re.escape("".join(_UNIT_SYMBOLS)) + r"])\s*/\s*(" + "|".join(sorted(
    (re.escape(w) for w in _MEASURE_UNITS if len(w) > 1 or w in ("h", "d", "l", "g")), key=len, reverse=True))
    + r")(?![^\W\d_])")  # "mg/kg", "km/h", "$2.50/kg", "67\u00a2/mile", "4%/year": per
# a rate's period as finance writes it: "4% p.a.", "4 per cent p.a." and "$50,000 p.a." (per annum), "4% p.m." (per
# month; after a digit, "5 p.m." is a time), "4% APR", "4% (APR)" (an annual rate; in capitals, or "apr" and "pa" in
# lower case right after a percent: "4% Apr 2024" is April), "The APR is 4%"
_ANNUAL_RATE = r"(?-i:APR|APY|AER|EAR)"
_PER_ANNUM = re.compile(r"(?i)(?:(?<=[\d%])|(?<=percent))\s*p\.\s?a\b\.?|(?<=%)\s*(?:" + _ANNUAL_RATE + r"|\(\s*"
                        + _ANNUAL_RATE + r"\s*\)|(?-i:pa|apr)\b\.?)")
_PER_MONTH = re.compile(r"(?i)(?:(?<=%)|(?<=percent))\s*p\.\s?m\b\.?")
# "The APR is 4%", "APR: 19.9%" (unless a period is written after the rate: "The APR is 4% quarterly" is a quarter's)
_RATE_NAMED = re.compile(r"\b" + _ANNUAL_RATE + r"(?:\s*[:=]\s*|\s+(?:is|was|of|stands at|will be)\s+)(\d[\d.]*\s?%)"
                         r"(?!\s*(?:/|per\b|an?\s|each\b|every\b|(?:" + "|".join(_PERIOD_ADVERBS) + r")\b))")
# number words the passage may use: "a week", "a dozen", ordinals ("the third business day", "twenty-fifth")
# "within a week", "the notice period is a month", a sentence's "A year of cover ..." (not "once a day", "one tablet a
# day": a rate, no amount)
_A_AMOUNT = re.compile(r"(?i)(?:(?<=\bwithin )|(?<=\bfor )|(?<=\bafter )|(?<=\bin )|(?<=\bover )|(?<=\bis )|(?<=\bof )"
                       r"|(?<=\bthan )|(?<=\babout )|(?<=\bare )|(?<=\bwas )|(?<=\bwere )|(?<=\bbe )|^|(?<=[.!?;:] )|(?<=\n))(?:a|an)\s+(dozen|hundred|thousand|million|billion|week|month|hour|"
                       r"day|year|minute|fortnight|quarter of an hour)\b")
_A_AMOUNTS = {"dozen": "12", "hundred": "100", "thousand": "1000", "million": "1 million", "billion": "1 billion",
              "fortnight": "2 weeks", "quarter of an hour": "15 minutes"}
_ORDINAL_WORDS = {"first": "one", "third": "three", "fourth": "four", "fifth": "five", "sixth": "six",
                  "seventh": "seven", "eighth": "eight", "ninth": "nine", "tenth": "ten", "eleventh": "eleven",
                  "twelfth": "twelve", "thirteenth": "thirteen", "fourteenth": "fourteen", "fifteenth": "fifteen",
                  "sixteenth": "sixteen", "seventeenth": "seventeen", "eighteenth": "eighteen",
                  "nineteenth": "nineteen", "twentieth": "twenty", "thirtieth": "thirty"}
# an ordinal word only before its unit ("the third business day", "the fourth day"): alone ("the third failed
# login") it is no figure, and read as one it matched any number of the answer. "second" after a number is the unit
# ("a 30 second delay"); else it is read wherever the other ordinals are, so that an alias "second quarter" and an
# answer's "in the second quarter" read alike
_ORDINAL_WORD = re.compile(r"(?i)\b(" + "|".join(_ORDINAL_WORDS) + r"|(?<!\d )(?<!\d-)second)\b(?=\s+(?:(?:business|working|"
                           r"calendar|school|banking)\s+)?(?:day|week|month|year|hour|quarter|dose|time|tablet)s?\b|\s+of\s+(?:each|every|the)\s+month\b)")


# a rate written without "per", within one sentence: "3 days a week", "£30k a year", "twice daily", "1000 IU daily"
_RATE_AFTER = (r"(?i)((?<![\w.,])\d[\d.,]*[kmx]?|%|\b(?:" + "|".join(sorted(
    (re.escape(w) for w in (*_MEASURE_UNITS, *_UNIT_WORDS, *_TIMES_WORDS)), key=len, reverse=True)) + r"))\s+")
# (each noun of `_PERIOD_WORDS`: "$50 a quarter", "$0.50 a minute", "$200 a night", "$3 a trade"; not "12.9% a year
# earlier", "5 days a week ago": a time, not a rate)
_A_PERIOD = re.compile(_RATE_AFTER + r"(?:a|an|each|every)\s+(" + "|".join(
    n for words in _PERIOD_WORDS.values() for n in words.nouns) + r")\b"
                       r"(?!\s+(?:earlier|ago|later|before|after|old|from|since|prior)\b)")
_ADVERB_PERIODS = {a: period for period, words in _PERIOD_WORDS.items() for a in words.adverbs}
_ADVERB_PERIOD = re.compile(_RATE_AFTER + r"(" + "|".join(_ADVERB_PERIODS) + r")\b")


# A figure's label, read by the number hold only (`stated_numbers`; the judge's alias matching reads text as before): a
# reference ("Note 12", "section 7", "§ 4", "clause 9.2", "page 5", "No. 5", "#12") and a year ("2025") are labels,
# not amounts. Each is given a unit of its own, written as a word after its number (`_LABEL_WORDS`), so that the
# reference's number states the same reference only ("see Note 12" does not state a tax rate of 12%, nor a bare 12)
# and the year's a year or a bare number, never an amount in a currency or a percentage ("$2,025" from "Effective 1
# January 2025"). A trial of a bank's annual reports: "The effective tax rate was 12%." passed from "21% (see Note
# 12)", "$2,025" from a year. A reference's number is one or a list ("Notes 12 and 13", "sections 7 to 9", "§§ 4, 5"),
# written without a unit after it ("Item 3 USD 5" is an amount), and never a year ("Table 2023" is a year); words that
# also name a quantity's kind are none ("3-phase 480 V", "a noise level 85 dB", "line 5000").
_REFERENCE_KINDS = {
    "note": "note", "notes": "note", "section": "section", "sections": "section", "sec.": "section", "§": "section",
    "§§": "section", "article": "article", "articles": "article", "art.": "article", "clause": "clause",
    "clauses": "clause", "paragraph": "paragraph", "paragraphs": "paragraph", "para.": "paragraph", "page": "page",
    "pages": "page", "pp.": "page", "item": "item", "items": "item", "schedule": "schedule", "schedules": "schedule",
    "exhibit": "exhibit", "exhibits": "exhibit", "table": "table", "tables": "table", "figure": "figure",
    "fig.": "figure", "appendix": "appendix", "annex": "annex", "chapter": "chapter", "chapters": "chapter",
    "tier": "tier", "stage": "stage", "no.": "no.", "nos.": "no.", "nr.": "no.", "#": "no."}
# the word written after a label's number for each unit: short ("zqa", "zqb", ...), since every word added is read
# again by each later rule (on a long table of "Line item 1", "Line item 2", ... a long word cost a tenth of a second)
_LABEL_WORD = "zq"
_LABEL_WORDS = {unit: f"{_LABEL_WORD}{chr(ord('a') + i)}" for i, unit in enumerate(dict.fromkeys(
    ["#year", "#half", *(f"#{kind}" for kind in _REFERENCE_KINDS.values()), "#clock"]))}
_LABEL_UNITS = {word: unit for unit, word in _LABEL_WORDS.items()}
_REFERENCE_UNITS = frozenset(f"#{kind}" for kind in _REFERENCE_KINDS.values())
_REFERENCE_NUMBER = r"(?!(?:19|20)\d\d(?!\d))\d+(?:\.\d+)*"
_NO_UNIT_AHEAD = "(?!" + _MEASURE_AHEAD.removeprefix("(?=")  # no unit, currency, scale or percent after it
# a word, an abbreviation or a sign before a number (found so, then looked up: one alternation of the words, tried at
# every character, took as long as the rest of the labels' reading on a long table)
_REFERENCE = re.compile(r"(?<![\w.\u00a7#-])([^\W\d_]+\.?|\u00a7\u00a7?|#)([ \t\u00a0]*)(?=\d)")
_REFERENCE_LIST = re.compile("(?i)" + _REFERENCE_NUMBER + r"(?:[ \t\u00a0]*(?:,|and|or|&|to|through|-|\u2013)[ \t\u00a0]*"
                             + _REFERENCE_NUMBER
                             + r")*(?![\w%\u2030]|[.,]\d)" + _NO_UNIT_AHEAD)
_REFERENCE_PART = re.compile(r"\d+(?:\.\d+)*")
_RATE_BASIS = re.compile(r"(?i)(?:\bper|\beach|\bevery|/)[ \t\u00a0]*$")
_REFERENCE_DASH = re.compile(r"[ \t\u00a0]*[-\u2013][ \t\u00a0]*")
# a year: four digits from 1900 to 2099, no thousands separator ("2,025" is an amount), no unit, currency, scale or
# percent after it nor a currency before it ("$2025", "USD 2025"), no part of a date or a range in digits ("2025-03-04")
# ... nor a rate's amount ("limited to 2000 per day", "2000 a month", "1950/year", "2000 daily")
# (its nouns only, not "per yr" nor "2000 hourly" or "2000 annual": "In 2024 per yr ...", "2023 hourly rates" are years)
_RATE_AHEAD = (r"(?![ \t\u00a0]*(?:(?:per|a|an|each|every)[ \t\u00a0]+|/[ \t\u00a0]*)(?:" + "|".join(
    (*(n for words in _PERIOD_WORDS.values() for n in words.nouns), "person", "item", "unit", "page", "share"))
               + r")s?\b|[ \t\u00a0]+(?:" + "|".join(a for a in _PERIOD_ADVERBS if a not in ("hourly", "annual")) + r")\b)")
# ... unless a year's preposition or article is right before it ("In 2024 per year the fee was $50.", "The 2024 daily
# rate is $150.", "Fees for 2024 per year: $150."): a year, or the wrong "$2,024 per year" passed on it read as a
# rate's amount (a review's old gap; "limited to 2000 per day", "a fee of 2000 per year", "rose from 2000 per month"
# and "grew by 2000 per year" stay amounts). "for" and "the" write a price as often ("The flat is let for 2000 per
# month (USD).", "The 2000 per day limit applies (USD)."): after them it is a year only where its sentence writes
# another number, the rate's amount (`_labelled`; a second review's F26-F28, F34 were held)
_YEAR_BEFORE = "|".join(f"(?<=\\b{w}[ \t\u00a0])" for w in ("in", "since", "until", "till", "during", "before", "after",
                                                           "through", "as of"))
_YEAR_OR_PRICE_BEFORE = "|".join(f"(?<=\\b{w}[ \t\u00a0])" for w in ("for", "the"))
_RATE_FOLLOWS = re.compile("(?i)(?=" + _RATE_AHEAD.removeprefix("(?!"))
_SENTENCE_BOUND = re.compile(r"[.!?](?=[ \t\u00a0]|$)|\n")
_YEAR_LIKE = re.compile(r"(?i)(?:(?:" + _YEAR_BEFORE + r"|(?:" + _YEAR_OR_PRICE_BEFORE + r")(?P<price>))(?P<said>)|)(?<!["
                        + _MINUS_SIGNS
                        + r"\w.,/:'\u2019\u00a7#])(?:19|20)\d\d(?![\w%\u2030]|[" + _MINUS_SIGNS
                        + r".,/:]\d)(?![ \t\u00a0]*" + _LABEL_WORD + r"[a-z]\b)" + _NO_UNIT_AHEAD + "(?(said)|" + _RATE_AHEAD + ")")
_CURRENCY_BEFORE = re.compile(r"(?:[" + re.escape(_CURRENCY_SIGNS) + r"]|\b(?i:" + "|".join(_CURRENCY_CODES) + r"))[ \t\u00a0]?$")


# Period and tenor labels written on their digits, read as figures (a bank's trial: "FY2022", "3Q24", "2Y" and "H2"
# were skipped, so a wrong fiscal year, quarter, tenor or half passed): a fiscal or calendar year "FY2022", "FY22",
# "FY'22", "FY2022/23", "CY2023" is that year ("fiscal 2022" too, read as a year already); a quarter "Q3 2024",
# "3Q24", "Q3'24", "Q3 FY24" the quarter's number in quarters, as "third quarter" reads, and its year; a half "H2",
# "2H23", "H1 2024", "first half" its number as a half (`_LABEL_UNITS`) and its year; a tenor "2Y", "10y" that many
# years, "6M", "3W" (before a rate's or an instrument's name: "6M Euribor"; "6M" alone may be six million) that many
# months or weeks
_LABEL_YEAR = (r"(?:[ \t]*,?[ \t]*(?:FY[ \t]?)?['\u2019]?(?P<y4>(?:19|20)\d\d)|[ \t]?(?:FY[ \t]?)?['\u2019](?P<y2>\d\d)"
               r"|(?<=[QH])(?P<yg>\d\d)|[ \t]?FY[ \t]?(?P<yf>\d\d))?(?![\w%\u2030]|[.,\u2013-]\d)")
_FISCAL_YEAR = re.compile(r"(?i)(?<![\w.])(?:FY|CY)[ \t]?['\u2019]?(\d{4}|\d\d)(?:[ \t]?[/\u2013-][ \t]?(\d{4}|\d\d))?"
                          r"(?![\w%\u2030]|[.,]\d)")
_QUARTER_LABEL = re.compile(r"(?<![\w.])(?:Q([1-4])|([1-4])Q)" + _LABEL_YEAR)  # in capitals: "q4-6h" is a dose's interval
_HALF_LABEL = re.compile(r"(?<![\w.])(?:H([12])|([12])H)" + _LABEL_YEAR)
_HALF_WORDS = re.compile(r"(?i)\b(first|second|1st|2nd)[ \t-]+half\b")
_TENOR_NAMES = (r"LIBOR|SOFR|EURIBOR|SONIA|ESTR|\u20acSTR|TONA|SARON|BBSW|CDOR|CORRA|HIBOR|SIBOR|TIBOR|OIS|FRA|IRS|T-?bills?"
                r"|bills?|swaps?|deposits?|CDs?|terms?|tenors?|forwards?|fixed|floating|Treasur(?:y|ies)|bonds?|notes?|gilts?"
                r"|bunds?|yields?|rates?|paper|futures?|loans?|maturit(?:y|ies)|funding|money")
_TENOR = re.compile(r"(?<![\w.$\u20ac\u00a3\u00a5])(\d{1,2})(?:([Yy])|([MW])(?=[ \t]*(?i:" + _TENOR_NAMES
                    + r")\b))(?![\w%\u2030]|[.,]\d)")
_TENOR_UNITS = {"y": "years", "m": "months", "w": "weeks"}


def _four_digits(year: str) -> str:
    """A year written with two digits as four ("22" is 2022, "99" 1999)."""
    return year if len(year) == 4 else f"{20 if int(year) < 70 else 19}{year}"


def _period_label(m: re.Match[str], unit: str) -> str:
    """A quarter's or a half's label (`_QUARTER_LABEL`, `_HALF_LABEL`) as its number, its unit and its year."""
    year = m.group("y4") or m.group("y2") or m.group("yg") or m.group("yf")
    return f"{m.group(1) or m.group(2)} {unit}" + (f" {_four_digits(year)}" if year else "") + " "


def _labelled(text: str) -> str:
    """``text`` with a unit word after each number that is a label (`_FISCAL_YEAR`, `_QUARTER_LABEL`, `_HALF_LABEL`,
    `_TENOR`, `_REFERENCE`, `_YEAR_LIKE`)."""

    def references(text: str) -> str:
        out: list[str] = []
        done = 0
        for m in _REFERENCE.finditer(text):
            kind = _REFERENCE_KINDS.get(m.group(1).lower())
            if kind is None or (m.group(1).isalpha() and not m.group(2)) or m.start() < done:
                continue  # not a reference's word; a word written on its number ("Note12")
            if kind in ("page", "item") and _RATE_BASIS.search(text, max(0, m.start() - 7), m.start()):
                continue  # a price's basis: "per page 0.10", "Price per item 25" (not "per Section 9.1", "per § 14")
            numbers = _REFERENCE_LIST.match(text, m.end())
            if numbers is None:
                continue
            word = f" {_LABEL_WORDS['#' + kind]} "
            listed = _REFERENCE_DASH.sub(" to ", numbers.group(0))  # "sections 7-9": 7 to 9, each a reference
            out += [text[done:numbers.start()], _REFERENCE_PART.sub(r"\g<0>" + word, listed)]
            done = numbers.end()
        return "".join(out) + text[done:] if out else text

    def tenor(m: re.Match[str]) -> str:
        if _CURRENCY_BEFORE.search(text, max(0, m.start() - 6), m.start()):
            return m.group(0)  # "USD 5M loan": five million dollars, no five-month tenor
        return f"{m.group(1)} {_TENOR_UNITS[(m.group(2) or m.group(3)).lower()]}"

    def year(m: re.Match[str]) -> str:
        if _CURRENCY_BEFORE.search(text, max(0, m.start() - 6), m.start()) or _data_cell(text, m.start(), m.end()):
            return m.group(0)
        if m.group("price") is not None and _RATE_FOLLOWS.match(text, m.end()):
            start = max((b.end() for b in _SENTENCE_BOUND.finditer(text, 0, m.start())), default=0)
            bound = _SENTENCE_BOUND.search(text, m.end())
            if not any(c.isdigit() for c in text[start:m.start()] + text[m.end():bound.start() if bound else len(text)]):
                return m.group(0)  # "let for 2000 per month (USD).": its sentence's only amount
        return f"{m.group(0)} {_LABEL_WORDS['#year']} "

    if any(c.isdigit() for c in text):
        text = _FISCAL_YEAR.sub(lambda m: " ".join(_four_digits(y) for y in m.groups() if y) + " ", text)
        text = _QUARTER_LABEL.sub(lambda m: _period_label(m, "quarter"), text)
        text = _HALF_LABEL.sub(lambda m: _period_label(m, _LABEL_WORDS["#half"]), text)
        text = _TENOR.sub(tenor, text)
        text = references(text)
        text = _YEAR_LIKE.sub(year, text)
    return _HALF_WORDS.sub(lambda m: f"{1 if m.group(1).lower() in ('first', '1st') else 2} {_LABEL_WORDS['#half']}", text)


_CELL_OPENS = re.compile(r"[|\t][ \t]*$")
_CELL_CLOSES = re.compile(r"[ \t]*(?:[|\t]|\r?$)", re.MULTILINE)
_ROW_REACH = 500  # how far back a row's start and the row above it are looked for (a longer row is read as no table's)


def _data_cell(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is a whole cell of a table ("|" or tab separated) that is neither its row's first
    cell (the row's label: "| 2024 | 2,150 |") nor in the table's first row (its header: "| Item | 2024 | 2023 |"): an
    amount, not a year ("| Premium | 1950 |"). Read within `_ROW_REACH` characters of it only."""
    if not _CELL_OPENS.search(text, max(0, start - 8), start) or not _CELL_CLOSES.match(text, end):
        return False
    row = text.rfind("\n", max(0, start - _ROW_REACH), start) + 1
    if row == 0 or not text[row:start].strip(" \t|"):  # the text's first line (no row above it), or the row's label
        return False
    above = text[text.rfind("\n", max(0, row - 1 - _ROW_REACH), row - 1) + 1:row - 1]
    return "|" in above or "\t" in above


def _written_numbers(text: str, number_words: bool, figures: bool = False) -> str:
    """``text`` with the ways of writing numbers above rewritten as plain numbers (and, with ``number_words``,
    "a week", "a dozen" and ordinal words as numbers too; with ``figures``, a label's number followed by its unit word:
    `_labelled`)."""
    if figures:
        text = _labelled(text)
    text = _FRACTION.sub(lambda m: (m.group(1) or "0") + _FRACTION_CHARS[m.group(2)], text)
    text = _SLASH_FRACTION.sub(lambda m: _SLASH_FRACTIONS.get((m.group(1), m.group(2)), m.group(0)), text)
    text = _DIMENSION.sub(" x ", text)
    text = _SPACED_THOUSANDS.sub("", text)
    if figures:
        text = _NOON.sub(lambda m: _clock(0 if m.group(2).lower() == "midnight" else 12, None, figures)
                         if m.group(1) or number_words else m.group(0), text)
    text = _CLOCK_12.sub(lambda m: _clock(int(m.group(1)) % 12 + (12 if m.group(3).lower() == "p" else 0), m.group(2),
                                          figures), text)
    text = _CLOCK_24.sub(lambda m: _clock(int(m.group(1)), m.group(2), figures), text)
    text = _DOTTED_DATE.sub(lambda m: f"{int(m.group(1))} {int(m.group(2))} {m.group(3)}", text)
    # a month's name stays a word: read as a number, it matched any figure of the answer ("3 March" for "15 March",
    # "10 days" beside "October")
    text = _QUARTER.sub(r"q \1", text)
    text = _CURRENCY_PREFIX.sub(lambda m: _PREFIX_CODES[m.group(1).lower()] + " ", text)
    text = _CAPITAL_SCALE.sub(lambda m: " billion" if m.group(1).upper().startswith("B") else " million", text)
    text = _PER_CENT.sub("percent", _BASIS_POINTS.sub("bp", _VERSION.sub("v ", text)))
    text = _CENTS_ON_THE_DOLLAR.sub("percent", _PER_MILLE.sub("permille", text))
    text = _PER_MONTH.sub(" per month", _PER_ANNUM.sub(" per annum", text))
    text = _RATE_NAMED.sub(lambda m: f"{m.group(0)} per annum", text)
    text = _SLASH_UNIT.sub(r" per \1", _RANGE_DASH.sub(" to ", text))
    text = _ADVERB_PERIOD.sub(lambda m: f"{m.group(1)} per {_ADVERB_PERIODS[m.group(2).lower()]}",
                              _A_PERIOD.sub(r"\1 per \2", text))
    if number_words:
        text = _A_AMOUNT.sub(lambda m: _A_AMOUNTS.get(m.group(1).lower(), f"1 {m.group(1)}"), text)
        text = _ORDINAL_WORD.sub(lambda m: _ORDINAL_WORDS.get(m.group(1).lower(), "two"), text)
    return text


def _clock(hour: int, minutes: str | None, figures: bool = False) -> str:
    """A time of day as its hour on the 24-hour clock, and its minutes unless they are 0: "2 pm" and "14:00" both read 14.
    With ``figures`` (the number hold's reading), one number with the time's label (`_LABEL_WORDS`), its minutes
    after a point ("9:30" reads ("9.3", "#clock"), shown "9:30": `_shown`): a time states a time only, or a bare
    number ("12:00" was stated by a passage's "12 months"), and a bare number of the answer is stated by it, as before."""
    if figures:
        return f" {hour}{f'.{int(minutes):02d}' if minutes and int(minutes) else ''} {_LABEL_WORDS['#clock']} "
    return f"{hour}" + (f" {int(minutes)}" if minutes and int(minutes) else "")


#: a version or an address, "1.2.3", "10.0.0.1" (what is left dotted once dates and grouped thousands are read)
_DOTTED_ID = re.compile(r"\d+(?:\.\d+){2,}")


def stated_numbers(text: str, number_words: bool = True, reading: _Reading = _ENGLISH) -> list[tuple[str, str | None]]:
    """The numbers ``text`` states, each as (value, unit): the value in one canonical digit form with a scale word
    applied ("$1.2 million" and "1,200,000 dollars" both read ("1200000", "dollar")), the unit its currency or
    "percent" when one goes with it ("5%", "five percent"), else None. Dates read as their parts ("2024-03-03" and
    "March 3, 2024" both hold 2024 and 3). Units of measure read the same way ("500mg", "500 mg" and "500
    milligrams" read ("500", "mg"); "twice" reads ("2", "times")), and a decimal comma as a decimal point ("2,5 mg",
    "0,125 mg"; "1,250" is 1250). A label's number has its label for unit (`_labelled`: "Note 12" reads ("12",
    "#note"), a year ("2025", "#year")). ``number_words``: read "five", "twice" and "half" as numbers too; ``reading``: how
    a number written alike in several conventions is read (`_Reading`; English by default: "1,250" is 1250)."""
    return _numbers_of(_tokens(text, number_words, reading, figures=True))


def _numbers_of(toks: list[str]) -> list[tuple[str, str | None]]:
    """The numbers of a text's tokens (`_tokens`), with their units, as :func:`stated_numbers` reads them."""
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(toks):
        value = toks[i]
        if _canonical_number(value) is None:
            if _DOTTED_ID.fullmatch(value):  # compared whole, with no unit (no amount to convert)
                out.append((value, None))
            i += 1
            continue
        if i + 1 < len(toks) and toks[i + 1] == value:
            i += 1  # one number written twice, "thirty (30) days": read once, with its unit
            continue
        unit, nxt = _unit_at(toks, i + 1)
        if unit is None and i + 3 < len(toks) and toks[i + 1] == "to" and _canonical_number(toks[i + 2]) is not None:
            unit = _unit_at(toks, i + 3)[0]  # "2 to 4 mg": the range's unit is both ends'
            nxt = i + 1
        out.append((value, unit))
        i = nxt if unit else i + 1
    return out


_PER_TIME = re.compile(r"(?:/(?:" + "|".join(_RATE_PERIODS) + r"))+$")  # a rate's periods (or its basis: "per trade")
# words that may stand between a number and its unit: "10 business days" are days
_QUALIFIERS = frozenset({"business", "working", "calendar", "school", "banking", "consecutive", "full", "clear"})


def _unit_at(toks: list[str], j: int) -> tuple[str | None, int]:
    """The unit read at ``toks[j]`` (after a number) and where reading goes on: a currency or percent, a unit of
    measure ("mg"; "business days" are days), with what it is per ("mg per kg" is "mg/kg", "dollar per year"
    "dollar/year"); None for none, or for an "x" before a number ("3 x 500 mg": a multiplication sign)."""
    if j < len(toks) and toks[j] in _LABEL_UNITS:  # a label's ("Note 12", "2025"): no rate
        return _LABEL_UNITS[toks[j]], j + 1
    if j < len(toks) and toks[j] in _QUALIFIERS and j + 1 < len(toks) and toks[j + 1] in _MEASURE_UNITS:
        j += 1
    t = toks[j] if j < len(toks) else None
    if t in _MEASURES:
        unit = t
    elif t in _MEASURE_UNITS and not (t == "x" and j + 1 < len(toks) and _canonical_number(toks[j + 1]) is not None):
        unit = _MEASURE_UNITS[t][0]
    else:
        return None, j
    j += 1
    while j + 1 < len(toks) and toks[j] in ("per", "every", "each") and toks[j + 1] in _MEASURE_UNITS:
        unit, j = f"{unit}/{_MEASURE_UNITS[toks[j + 1]][0]}", j + 2  # "units/kg/hour": iu/kg/hour
    return unit, j


_UNIT_BASE = {unit: (factor, base) for unit, factor, base in _MEASURE_UNITS.values()}
_UNIT_BASE.update({"cent": (Decimal("0.01"), "dollar"), "pence": (Decimal("0.01"), "pound")})  # "67 cents" is $0.67


def _amount(value: str, unit: str | None) -> tuple[str, str | None]:
    """(value, unit) in its unit's base, so that "4 g" and "4000 mg" compare equal ("2 g/day" and "2000 mg/day" too)."""
    head, per = (unit.split("/", 1) + [""])[:2] if unit else (unit, "")
    if head not in _UNIT_BASE:
        return value, unit
    factor, base = _UNIT_BASE[head]
    return format((Decimal(value) * factor).normalize(), "f"), base + (f"/{per}" if per else "")


# a date written in digits, read whole: year first ("2024-03-04"), day first ("04.03.2024"), or day or month first
# ("03/04/2024", "03-04-2024")
_NUMERIC_DATE = re.compile(r"(?<![\d./-])(?:(\d{4})([-/.])(\d{1,2})\2(\d{1,2})|(\d{1,2})([-/.])(\d{1,2})\6(\d{4}))"
                           r"(?!\d|[./-]\d)")


_MONTHS = {m: i for i, names in enumerate((
    "january jan", "february feb", "march mar", "april apr", "may", "june jun", "july jul", "august aug",
    "september sep sept", "october oct", "november nov", "december dec"), start=1) for m in names.split()}
_MONTH = r"(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
# a whole date with its month's name and year: "3 April 2024", "3rd of April, 2024", "April 3, 2024", and the days of a
# range or list before it, "1-3 March 2024", "2, 9 and 16 May 2024", "March 1-3, 2024" (a month's name alone, or
# without a year, is not read as a date: it matched any figure). At most 31 days before the last: a longer run
# ("1,2,1,2,..." or "-1-1-1...") was read again from each of its numbers, quadratic in its length.
_DAYS = r"((?:\d{1,2}(?:st|nd|rd|th)?\s*(?:-|\u2013|\u2014|,|&|and|to)\s*(?:and\s+)?){0,31})"
_WORD_DATE = re.compile(r"(?i)\b(?:" + _DAYS + r"(\d{1,2})(?:st|nd|rd|th)?\.?\s+(?:of\s+)?" + _MONTH + r",?\s+(\d{4})"
                        r"|" + _MONTH + r"\s+" + _DAYS + r"(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4}))(?!\d)")
# a day and month without a year ("5 April", "April 5th", "28 February to 3 March 2024"'s first)
_DAY_MONTH = re.compile(r"(?i)\b(?:(\d{1,2})(?:st|nd|rd|th)?\.?\s+(?:of\s+)?" + _MONTH + r"|" + _MONTH
                        + r"\s+(\d{1,2})(?:st|nd|rd|th)?)(?![\w\d])")


# a month's name and year without a day: "March 2019", "March of 2019" (a capital first letter: "march 2000 strong" and
# "may 2019" are verbs; a year from 1800 to 2199: "April 2500 patients" is a count), read where no whole date is ("3
# March 2024" is a date, and its month is compared with its day). The months of a list or range before it ("March
# and April 2024", "March through June 2024") are read from a short window before each match, in linear time.
_MONTH_YEAR = re.compile(r"(?<![\w.])([A-Z][A-Za-z]{2,8})\.?,?\s+(?:of\s+)?((?:18|19|20|21)\d\d)(?![\d,.]\d|\d)")
_RANGE_WORDS = r"to|through|thru|until|till|-|\u2013|\u2014"
_MONTH_RUN = re.compile(r"((?:[A-Z][A-Za-z]{2,8}\.?\s*(?:,|&|and|or|/|" + _RANGE_WORDS + r")\s*)+)$")
_MONTH_STEP = re.compile(r"([A-Z][A-Za-z]{2,8})\.?\s*(,|&|and|or|/|" + _RANGE_WORDS + r")\s*")


def _month_years(plain: str) -> list[tuple[str, frozenset[tuple[int, int]]]]:
    """The months ``plain`` (a text :func:`_plain_digits` rewrote, its whole dates taken out) names with a year but
    no day: (as written, each (year, month) it names; a range's months between its ends too)."""
    out = []
    for m in _MONTH_YEAR.finditer(plain):
        if m.group(1).lower() not in _MONTHS:
            continue
        year, start = int(m.group(2)), m.start()
        run = _MONTH_RUN.search(plain[max(0, start - 120):start])
        steps = [(s.group(1), s.group(2)) for s in _MONTH_STEP.finditer(run.group(1))] if run else []
        while steps and steps[0][0].lower() not in _MONTHS:  # the run began before the months did
            steps.pop(0)
        if any(name.lower() not in _MONTHS for name, _ in steps):
            steps = []  # a capitalised word among them: not a list of months
        names = [*(name for name, _ in steps), m.group(1)]
        months = [_MONTHS[n.lower()] for n in names]
        named = set(months)
        for (_, sep), a, b in zip(steps, months, months[1:]):
            if re.fullmatch(_RANGE_WORDS, sep) and a < b:
                named.update(range(a, b + 1))
        written = (run.group(1)[run.group(1).find(steps[0][0]):] if steps and run is not None else "") + m.group(0)
        out.append((written, frozenset((year, mo) for mo in named)))
    return out


def _numeric_dates(text: str) -> list[tuple[str, str, tuple[int, int, int], frozenset[tuple[int, int, int]]]]:
    """The dates ``text`` writes whole: (as written, how it orders its parts, the parts, each (year, month, day) it
    may mean). "03/04/2024" may be 3 April or 4 March; "04.03.2024" is 4 March; "3 April 2024" and "April 3, 2024"
    are 3 April."""
    return _dates_in(_plain_digits(text))


def _dates_in(plain: str) -> list[tuple[str, str, tuple[int, int, int], frozenset[tuple[int, int, int]]]]:
    """:func:`_numeric_dates` of a text :func:`_plain_digits` has already rewritten."""
    out = []
    for m in _WORD_DATE.finditer(plain):
        days, day, month, year = (m.group(1, 2, 3, 4) if m.group(2) else (m.group(6), m.group(7), m.group(5), m.group(8)))
        for d in [*re.findall(r"\d{1,2}", days or ""), day]:
            parts = (int(year), _MONTHS[month.lower()], int(d))
            if 1 <= parts[2] <= 31:
                out.append((m.group(0), "words", parts, frozenset({parts})))
    for m in _NUMERIC_DATE.finditer(plain):
        if m.group(1):
            parts, order = (int(m.group(1)), int(m.group(3)), int(m.group(4))), "ymd"
            readings = {parts}
        else:
            a, b, y = int(m.group(5)), int(m.group(7)), int(m.group(8))
            parts, order = (a, b, y), ("dmy" if m.group(6) == "." else "dmy or mdy")
            readings = {(y, b, a)} if order == "dmy" else {(y, b, a), (y, a, b)}
        readings = {r for r in readings if 1 <= r[1] <= 12 and 1 <= r[2] <= 31}
        if readings:
            out.append((m.group(0), order, parts, frozenset(readings)))
    return out


def _dates_against(answer: str, said: str) -> tuple[list[str], list[str]]:
    """The whole dates ``answer`` writes (in digits, or with its month's name and year) that the whole dates ``said``
    writes do not hold (none when it writes none: then only their numbers are compared), and those it does hold (as
    :func:`_plain_digits` writes them: their numbers need no comparison of their own, "2025-03-15" for "15 March
    2025", whose 3 is a month's name). A date written in the same order must be the same ("04.03.2024" is not
    "03.04.2024"; "04/03/2024" is not "03/04/2024": one document writes one order); in another, one of its meanings
    must be ("2024-03-04" is "04.03.2024" and "4 March 2024", and may be "03/04/2024")."""
    plain = _plain_digits(said)  # read once: the dates, the days and months without a year, and the years
    dates = _dates_in(plain)
    # a day and month the passage writes without their year ("opened on 5 April", "from 28 February to 3 March
    # 2024"), with that year among its numbers: such a date is compared by its numbers, as before whole dates were read
    rest = _WORD_DATE.sub(" ", plain)
    partial = {(_MONTHS[(m.group(2) or m.group(3)).lower()], int(m.group(1) or m.group(4))) for m in _DAY_MONTH.finditer(rest)}
    years = set(re.findall(r"(?<!\d)\d{4}(?!\d)", plain))
    missing: list[str] = []
    held: list[str] = []
    plain_answer = _plain_digits(answer)
    answered = _dates_in(plain_answer)
    # where the passage writes no whole date, its days and years: its numbers of 1 to 4 digits
    numbers = {int(n) for n in re.findall(r"(?<!\d)\d{1,4}(?!\d)", plain)} if answered and not dates else set()
    for written, order, parts, readings in answered:
        if not dates:
            # a passage writing no whole date: the answer's is compared by its numbers, as before, and named as the
            # date it is where they are not all stated ("Yes, from 1 January 2024." over "The fee is $30." states
            # the date 1 January 2024, not a figure 1 and a year)
            if not all({y, d} <= numbers for y, _, d in readings):
                missing.append(f"date {written}")
        elif any(parts == p if order == o else readings & r for _, o, p, r in dates):
            held.append(written)
        elif not any((mo, d) in partial and str(y) in years for y, mo, d in readings):
            missing.append(f"date {written}")
    # a month and year the answer names without a day ("took effect in March 2019") is one the passage names, with or
    # without a day, where the passage names months of that year ("April 2019" and "1 April 2019" do not hold "March
    # 2019"; its year alone matched before). A passage that names no month of that year is compared by the year
    # alone ("the 2019 policy took effect in March", "März 2019", "2019-03" are not read as a month and year).
    months = {(y, mo) for *_, r in dates for y, mo, _ in r} | {(int(y), mo) for mo, _ in partial for y in years}
    months |= {ym for _, named in _month_years(rest) for ym in named}
    years_with_months = {y for y, _ in months}
    for written, named in _month_years(_WORD_DATE.sub(" ", plain_answer)):
        if any((y, mo) not in months and y in years_with_months for y, mo in named):
            missing.append(f"date {written}")
    return list(dict.fromkeys(missing)), held  # a date written twice is one figure missing


# "kr" is the Swedish, Norwegian, Danish or Icelandic krona: the passage's "200 kr" is any of them ("200 SEK" is
# not another amount), and its "200 SEK" is "200 kr"; a "peso" or "franc" likewise
_CURRENCY_FAMILIES = {"krona": frozenset({"sek", "nok", "dkk", "isk"}),
                      "peso": frozenset({"mxn", "clp", "php", "ars", "cop"}), "franc": frozenset({"chf", "xof", "xaf"}),
                      # "\u00a5" is the yen's sign and the yuan's: "\u00a5100" is "100円" or "100元"
                      "yenyuan": _YEN_OR_YUAN}
_FAMILY_OF = {code: name for name, codes in _CURRENCY_FAMILIES.items() for code in codes}
# a currency named alone ("Sweden uses the krona", "the franc"): each code's own name (its family's other codes share
# the family's name in an amount only, `_find`), with the adjectives of the countries whose currency it is; another
# country's before the name is another currency ("the French franc" is no CHF, "the Swedish krona" no NOK)
_KRONA, _KRONE, _PESO, _FRANC = (frozenset({"krona", "kronor"}), frozenset({"krone", "kroner"}),
                                 frozenset({"peso", "pesos"}), frozenset({"franc", "francs"}))
_CODE_NAMES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "sek": (_KRONA, frozenset({"swedish"})), "nok": (_KRONE, frozenset({"norwegian"})),
    "dkk": (_KRONE, frozenset({"danish"})), "isk": (frozenset({"krona", "kronur"}), frozenset({"icelandic"})),
    "mxn": (_PESO, frozenset({"mexican"})), "clp": (_PESO, frozenset({"chilean"})),
    "php": (_PESO, frozenset({"philippine"})), "ars": (_PESO, frozenset({"argentine", "argentinian", "argentinean"})),
    "cop": (_PESO, frozenset({"colombian"})), "chf": (_FRANC, frozenset({"swiss"})),
    "xof": (_FRANC, frozenset({"cfa", "african"})), "xaf": (_FRANC, frozenset({"cfa", "african"})),
    "yen": (frozenset({"yen"}), frozenset({"japanese"})), "cny": (frozenset({"cny"}), frozenset({"chinese"}))}
# the words that name the yen or the yuan (not its sign "\u00a5", which is either): a reply naming one says which its "\u00a5" is
_YEN_OR_YUAN_WORDS = {c: frozenset({c, *(normalize(w) for w, code in _CJK_CURRENCIES.items() if code.lower() == {"yen": "jpy"}.get(c, c))})
                      for c in _YEN_OR_YUAN}
_CURRENCY_ADJECTIVES = frozenset().union(*(adjectives for _, adjectives in _CODE_NAMES.values())) | frozenset(
    "french belgian luxembourgish comorian congolese guinean malagasy rwandan burundian djiboutian cuban dominican "
    "uruguayan faroese korean".split())
# Nationalities and the names of their countries: the bundled literature rows' (their answers are built from this table
# by calibration/build_datasets.py, which looks up its authors' nationalities only), and those of the countries whose
# currency shares its name with another country's (pound, dollar, peso, franc, rupee, krona, lira, rouble, leu): a
# reply's "British pound" is the pound of a row asking of the United Kingdom, its "Egyptian pound" another pound
NATION_COUNTRIES: dict[str, list[str]] = {
    "English": ["England", "United Kingdom", "Britain", "UK"], "British": ["United Kingdom", "Britain", "UK", "England"],
    "Scottish": ["Scotland"], "Welsh": ["Wales"], "Irish": ["Ireland"], "American": ["United States", "USA", "America"],
    "Russian": ["Russia"], "Soviet": ["Soviet Union", "USSR"], "Spanish": ["Spain"], "French": ["France"],
    "Polish": ["Poland"], "Norwegian": ["Norway"], "Canadian": ["Canada"], "Swiss": ["Switzerland"],
    "Italian": ["Italy"], "Czech": ["Czech Republic", "Czechia", "Bohemia"], "Austrian": ["Austria"], "Bohemian": ["Bohemia"],
    "Algerian": ["Algeria"], "Colombian": ["Colombia"], "German": ["Germany"], "Nigerian": ["Nigeria"],
    "Afghan": ["Afghanistan"], "Brazilian": ["Brazil"], "Greek": ["Greece"], "Florentine": ["Florence"],
    # the countries of a shared currency name
    "Egyptian": ["Egypt"], "Lebanese": ["Lebanon"], "Syrian": ["Syria"], "Sudanese": ["Sudan"],
    "South Sudanese": ["South Sudan"], "Cypriot": ["Cyprus"], "Maltese": ["Malta"], "Falkland": ["Falkland Islands"],
    "Gibraltar": ["Gibraltar"], "Australian": ["Australia"], "New Zealand": ["New Zealand"],
    "Hong Kong": ["Hong Kong"], "Singaporean": ["Singapore"], "Taiwanese": ["Taiwan"], "Jamaican": ["Jamaica"],
    "Bahamian": ["Bahamas"], "Barbadian": ["Barbados"], "Belizean": ["Belize"], "Bermudian": ["Bermuda"],
    "Bruneian": ["Brunei"], "Fijian": ["Fiji"], "Guyanese": ["Guyana"], "Liberian": ["Liberia"],
    "Namibian": ["Namibia"], "Zimbabwean": ["Zimbabwe"], "Trinidadian": ["Trinidad and Tobago", "Trinidad"],
    "East Caribbean": ["East Caribbean"], "Mexican": ["Mexico"], "Argentine": ["Argentina"],
    "Argentinian": ["Argentina"], "Chilean": ["Chile"], "Cuban": ["Cuba"], "Dominican": ["Dominican Republic"],
    "Philippine": ["Philippines"], "Filipino": ["Philippines"], "Uruguayan": ["Uruguay"], "Belgian": ["Belgium"],
    "Luxembourgish": ["Luxembourg"], "Congolese": ["Congo"], "Guinean": ["Guinea"], "Rwandan": ["Rwanda"],
    "Burundian": ["Burundi"], "Djiboutian": ["Djibouti"], "Comorian": ["Comoros"], "Malagasy": ["Madagascar"],
    "Indian": ["India"], "Pakistani": ["Pakistan"], "Sri Lankan": ["Sri Lanka"], "Nepalese": ["Nepal"],
    "Nepali": ["Nepal"], "Mauritian": ["Mauritius"], "Seychellois": ["Seychelles"], "Swedish": ["Sweden"],
    "Danish": ["Denmark"], "Icelandic": ["Iceland"], "Faroese": ["Faroe Islands"], "Turkish": ["Turkey"],
    "Belarusian": ["Belarus"], "Romanian": ["Romania"], "Moldovan": ["Moldova"],
}
# units as a reason shows them where the word read is no reader's ("300 \u00a5 (yen or yuan)", not "300 yenyuan")
_UNIT_SHOWN = {"yenyuan": "\u00a5 (yen or yuan)"}
_LIST_MARKER = re.compile(r"(?m)^\s*\d+[.)](?=\s)|\[\d+\]")  # "1. ..." at a line's start, a citation "[1]"


# How often a thing happens, read as the interval between two times (`_said_as_interval`): a period's adverb
# ("quarterly": 3 months; `_PERIOD_WORDS`'s, and the two-period ones below), "every"/"each"/"once a" period (1 of
# it), or a count over a period ("two dental cleanings per year", "twice a year", "3 times daily": the period over the
# count). An answer's "every three months" counts as stated where its passage gives that interval in one of these ways
# ("every 12 months" from "each year", "every 24 hours" from "daily"); not "$120 per year" from "$10 per month" (a
# rate converted: a passage may price a year apart, "or $100 per year") nor "six months" from "180 days" (no month is
# a fixed number of days), which stay held. An idiom of availability, "7 days a week", "24 hours a day", "24/7", "365
# days a year", counts as stated where the passage says the same in other words ("every day", "around the clock").
_TWO_PERIOD_ADVERBS = {"biweekly": ("2", "week"), "bi-weekly": ("2", "week"), "fortnightly": ("2", "week"),
                       "semiannually": ("6", "month"), "semi-annually": ("6", "month"), "semiannual": ("6", "month"),
                       "semi-annual": ("6", "month"), "half-yearly": ("6", "month"), "half yearly": ("6", "month")}
_INTERVAL_ADVERBS = {**{a: ("1", period) for period in ("hour", "day", "week", "month", "quarter", "year")
                        for a in _PERIOD_WORDS[period].adverbs}, **_TWO_PERIOD_ADVERBS}
_INTERVAL_PERIOD = r"(hours?|hrs?|days?|weeks?|wks?|fortnights?|months?|mos?|quarters?|years?|yrs?)"
_COUNT = r"(\d+(?:\.\d+)?|once|twice|thrice|" + _NUMBER_WORD + r"(?:[\s-]+(?:and[\s-]+)?" + _NUMBER_WORD + r")*)"
_EVERY_FIGURE = re.compile(r"(?i)(?<![\w-])(?:once\s+)?every\s+(\d+(?:\.\d+)?)\s+(?:calendar\s+)?" + _INTERVAL_PERIOD
                           + r"(?![\w-])")
# a count over a period, with up to three words of what is counted between ("two dental cleanings per year")
_COUNT_OVER = re.compile(r"(?i)(?<![\w.,$\u20ac\u00a3\u00a5-])" + _COUNT + r"((?:\s+[a-z-]+){0,3}?)\s+(?:(?:per|a|an|each|every)\s+"
                         + _INTERVAL_PERIOD + "|(" + "|".join(sorted(map(re.escape, _INTERVAL_ADVERBS), key=len, reverse=True)) + r"))(?![\w-])")
_ONE_PERIOD = re.compile(r"(?i)(?<![\w-])(?:(?:every|each)\s+(other\s+)?|once\s+(?:a|an|per|every|each)\s+)"
                         + _INTERVAL_PERIOD + r"(?![\w-])|(?<![\w-])(" + "|".join(
                             sorted(map(re.escape, _INTERVAL_ADVERBS), key=len, reverse=True)) + r")(?![\w-])")
_COUNTS = {"once": 1, "twice": 2, "thrice": 3}
_ALL_DAY = (r"a?round[\s-]the[\s-]clock|24\s*(?:/|x|-)\s*7|twenty[\s-]four\s+seven|day\s+(?:and|or)\s+night"
            r"|night\s+(?:and|or)\s+day|at\s+all\s+hours|all\s+hours"
            r"|24\s+hours\s+(?:a|per|each|every)\s+day|twenty[\s-]four\s+hours\s+(?:a|per|each|every)\s+day"
            r"|24-hour\s+(?:[a-z]+\s+)?(?:line|service|support|access|hotline|helpline|care|coverage|availability|assistance)")
_EVERY_DAY = (r"every\s+day|each\s+day|(?:open|available|staffed|operat\w*)\s+daily|(?:7|seven)\s+days\s+(?:a|per|each|every)\s+week|365\s+days"
              r"|all\s+year(?:\s+(?:round|long))?|year[\s-]round|" + _ALL_DAY)
# the idioms an answer writes (after `_spelt_figures`), each with what its passage says for it
_AVAILABILITY = ((re.compile(r"(?i)(?<![\w/.-])(?:24\s*(?:/|x)\s*7(?:\s*/\s*365)?|24\s+hours\s+(?:a|per|each|every)\s+day)"
                             r"(?![\w/-])"), re.compile(r"(?i)(?<![\w-])(?:" + _ALL_DAY + r")(?![\w-])")),
                 (re.compile(r"(?i)(?<![\w/.-])(?:7\s+days\s+(?:a|per|each|every)\s+week|365\s+days\s+(?:a|per|each|every)"
                             r"\s+year)(?![\w/-])"), re.compile(r"(?i)(?<![\w-])(?:" + _EVERY_DAY + r")(?![\w-])")))


def _interval(count: str, period: str, times: Decimal = Decimal(1)) -> tuple[str, str | None]:
    """``count`` ``period``s over ``times`` as an amount in its unit's base (`_amount`: "24 hours" and "1 day" alike,
    "12 months" and "1 year"); a quarter is 3 months, a fortnight 2 weeks."""
    value, period = Decimal(count) / times, period.lower()
    if period.rstrip("s") in ("quarter", "fortnight"):
        value, period = (value * 3, "month") if period.startswith("q") else (value * 2, "week")
    return _amount(format(value.normalize(), "f"), _MEASURE_UNITS[period][0])


def _count_of(words: str) -> Decimal | None:
    """The count ``words`` write ("3", "twice", "two"), or None."""
    if words.lower() in _COUNTS:
        return Decimal(_COUNTS[words.lower()])
    if any(c.isdigit() for c in words):
        return Decimal(words)
    split = re.split(r"[\s-]+", words.lower())
    parsed = _number_words(split, 0)
    return Decimal(parsed[0]) if parsed is not None and parsed[1] == len(split) and parsed[0] > 0 else None


def _intervals(text: str) -> set[tuple[str, str | None]]:
    """The intervals ``text`` says a thing happens at (see above), each as `_interval` gives it. A count of an amount
    is no frequency ("2 tablets per day", "$10 per month", "20 days per year" say no interval)."""
    out: set[tuple[str, str | None]] = set()
    for m in _COUNT_OVER.finditer(text):
        count = _count_of(m.group(1))
        nouns = m.group(2).split()
        if not count or any((w.lower() in _MEASURE_UNITS and w.lower() not in ("times", "x")) or normalize(w) in _UNIT_WORDS
                            for w in nouns[-1:]):
            continue
        if m.group(3):
            out.add(_interval("1", m.group(3), count))
        else:
            one, period = _INTERVAL_ADVERBS[m.group(4).lower()]
            out.add(_interval(one, period, count))
        text = text[:m.start()] + " " * (m.end() - m.start()) + text[m.end():]  # its period is no "every year" too
    for m in _ONE_PERIOD.finditer(text):
        if m.group(2):
            out.add(_interval("2" if m.group(1) else "1", m.group(2)))
        else:
            out.add(_interval(*_INTERVAL_ADVERBS[m.group(3).lower()]))
    return out


def _said_as_interval(answer: str, said: str, question: str = "") -> str:
    """``answer`` (its numbers in words written in digits: `_spelt_figures`) less the intervals and idioms of
    availability that ``said`` (its passage) gives in other words (see above): "every 3 months" where
    ``said`` has "quarterly", "7 days a week" where it has "every day"; each as it is where ``said`` does not. Each
    clause of ``answer`` (`_CLAUSE_END`: "...; you can pay by phone 24/7.") is read against the passage's
    statements (`_statements`) that share the most of its content words and ``question``'s, as the misattribution
    check matches them (:func:`misattributed_numbers`; the interval's own words aside): another subject's
    "quarterly" or "around the clock" says nothing of the answer's ("Credit card statements are issued every three
    months." from "Credit card statements are issued monthly. Brokerage statements are issued quarterly."; "Billing
    is available 24/7." from a support team's "around the clock"). Where no statement shares a word, the whole
    passage is read."""
    if not _EVERY_FIGURE.search(answer) and not any(idiom.search(answer) for idiom, _ in _AVAILABILITY):
        return answer
    statements = [(said[start:end], _about(said[start:end]) or about) for start, end, about in _statements(said)
                  if about is not None]
    asked = _about(question)
    parts: list[str] = []
    at = 0
    before: frozenset[str] = frozenset()
    for sentence in sentences(answer):
        start = answer.find(sentence, at)
        if start < 0:
            continue
        parts.append(answer[at:start])
        ends = [(m.start(), m.end()) for m in _CLAUSE_END.finditer(sentence)] + [(len(sentence), len(sentence))]
        done = 0
        for end, after in ends:  # each clause, its separator kept as written
            clause = sentence[done:end]
            plain = _EVERY_FIGURE.sub(" ", clause)
            for idiom, _ in _AVAILABILITY:
                plain = idiom.sub(" ", plain)
            own = _about(plain) or before  # "That is every 3 months." goes on with the clause before it
            before = own
            words = own | asked
            shared = [len(about & words) for _, about in statements]
            best = max(shared, default=0)
            source = "\n".join(text for (text, _), n in zip(statements, shared) if n == best) if best else said
            parts += [_interval_struck(clause, source), sentence[end:after]]
            done = after
        at = start + len(sentence)
    return "".join(parts) + answer[at:]



def _interval_struck(answer: str, said: str) -> str:
    """``answer`` less the intervals and idioms of availability ``said`` gives in other words (`_said_as_interval`)."""
    for idiom, same in _AVAILABILITY:
        if idiom.search(answer) and same.search(said):
            answer = idiom.sub(" ", answer)
    if _EVERY_FIGURE.search(answer):
        intervals = _intervals(said)
        answer = _EVERY_FIGURE.sub(lambda m: " " if _interval(m.group(1), m.group(2)) in intervals else m.group(0), answer)
    return answer


def unstated_numbers(answer: str, context: str, question: str = "") -> list[str]:
    """The numbers ``answer`` writes in digits that neither ``context`` nor ``question`` states (see
    `_unstated_numbers`), each text read in the convention it is written in (`_readings`: a German passage and an
    English answer each in their own; a text that says nothing of its own, as the others say, all such texts alike).
    Where no text says which ("1.500" with no other sign of German or English), a number counts as stated only if it
    is under each reading: "1,5 \u20ac" is not stated by "1.500 \u20ac", which is fifteen hundred euros in a German
    passage. To a question that asks yes or no ("Is the charge 3%?", "The fee is $15 a month, right?", "Beträgt die
    Gebühr 3 %?"), an answer states the question's figures on its own unless it denies them (`_takes_question`): they
    count as stated only where the passage states them ("Yes, the charge is 3%." or "The charge is 3%, which cannot be
    waived." to "Is the charge 3%?" from a passage of 1% is held; "No, it is 1%." and "It is 1%, not 3%." are not). An
    affirming answer that writes no figure ("Yes.", "It is.", "That's right.": `_AFFIRMING`) says the question's: those
    the passage does not state are returned. A number the answer writes in words before its unit ("ninety days",
    "thirty percent") is read as its digits (`_spelt_figures`); a number word alone is no figure."""
    answer = _spelt_figures(answer)
    asked = question
    if _takes_question(answer, question):
        if _opening(answer) == "yes" and not _writes_own_figure(answer):
            # "Yes.", "It is.", "That's right." to "Is the fee $30?": it says the question's figures without writing
            # them, so they are its own, stated only where the passage states them; so does one writing a year or a
            # reference alone ("It is, as of 2024.", "That's right (see section 2)."), which are read as written too
            affirmed = unstated_numbers(question, context)
            if any(c.isdigit() for c in answer):
                affirmed += [f for f in unstated_numbers(answer, f"{context}\n{question}") if f not in affirmed]
            return affirmed
        question = ""
    # (the passage's words alone: not a question's "every year" echoed; the question's words match its sentences)
    answer = _said_as_interval(answer, context, asked)
    texts = (answer, context, question)
    if not any(_ambiguous(t) for t in texts):  # every reading is English's: no text's convention to read
        return _unstated_numbers(answer, context, question, (_ENGLISH, _ENGLISH, _ENGLISH))
    signs = [_signs(t, _LANGUAGE_MARGIN) for t in texts]
    own = [any(s) for s in signs]
    said = [s for s, o in zip(signs, own) if o]
    languages = {s[2] for s in said if s[2]}
    inherited = (any(s[0] for s in said), any(s[1] for s in said), languages.pop() if len(languages) == 1 else None)
    for shared in _comma_options(inherited[0], inherited[1]):  # the texts that say nothing read alike
        readings = [_readings(t, s if o else inherited, None if o else shared) for t, s, o in zip(texts, signs, own)]
        for read_answer in readings[0]:
            for read_context in readings[1]:
                for read_question in readings[2]:
                    missing = _unstated_numbers(answer, context, question, (read_answer, read_context, read_question))
                    if missing:
                        return missing
    return []


def affirms_question(answer: str, question: str) -> bool:
    """Whether ``answer`` affirms the figures of ``question``, a yes/no question that writes some, writing none of its
    own (a year or a reference alone aside: `_writes_own_figure`): "Yes.", "It is.", "It is, as of 2024." to "Is the
    fee $30?". :func:`unstated_numbers` reads the question's figures as such an answer's."""
    answer = _spelt_figures(answer)  # "Yes, after ninety days." writes a figure of its own
    return _takes_question(answer, question) and _opening(answer) == "yes" and not _writes_own_figure(answer)


def _writes_own_figure(answer: str) -> bool:
    """Whether ``answer`` writes a figure of its own: a number in digits that is neither a year, a date nor a reference
    ("as of 2024", "from 1 January 2024", "since 2024-01-01", "see section 2", "page 3" are not: "It is, as of 2024."
    to "Is the fee $30?" affirms the question's $30, and passed where the passage said "As of 2024 the fee is $25.",
    its year read as the answer's only figure; "Yes, from 1 January 2024." likewise, its day read as a count of its
    own). The date itself is still compared with the passage's (:func:`unstated_numbers`)."""
    if not any(c.isdigit() for c in answer):
        return False
    plain = _plain_digits(_LIST_MARKER.sub(" ", answer))
    plain = _DAY_MONTH.sub(" ", _NUMERIC_DATE.sub(" ", _WORD_DATE.sub(" ", plain)))  # a date's day is no count
    return any(unit != "#year" and unit not in _REFERENCE_UNITS for _, unit in stated_numbers(plain, number_words=False))


def premise_numbers(answer: str, context: str, question: str, *, unstated: list[str] | None = None,
                    ) -> list[tuple[str, list[str]]]:
    """The figures ``answer`` takes from ``question`` alone (:func:`unstated_numbers` counts them stated by the question)
    where ``context`` states another figure of that unit about the same thing, each with those figures of the passage,
    as shown: a premise of the question the passage contradicts ("Since the notice period is ninety days, when can I
    stop?" over "... upon 30 days' prior written notice" -> "... after 90 days": ``[("90 day", ["30 day"])]``). The
    same thing: the question's clause stating the figure shares a content word (`_about`) with the passage's clause
    stating the other ("notice"); "I paid $100, can I get a refund?" over "Refunds of up to $50 are issued" is no
    premise contradicted (what was paid is not what is refunded). A figure of the question the passage states nothing
    of that unit about stays the question's to restate ("For the 3 items you bought ..."); one the answer affirms as a
    yes/no question's is :func:`unstated_numbers`' to hold. ``unstated``: what :func:`unstated_numbers` gave for these
    three texts, where the caller has it (as :func:`misattributed_numbers` takes it). The answer's numbers in words
    before their unit count as its digits (`_spelt_figures`: "after ninety days")."""
    answer = _spelt_figures(answer)
    if not any(c.isdigit() for c in question) and not stated_numbers(question):
        return []
    alone = unstated_numbers(answer, context)
    if not alone:
        return []
    exempted = set(alone) - set(unstated_numbers(answer, context, question) if unstated is None else unstated)
    if not exempted:
        return []

    # what a question's clause asks for is no subject of its figure ("What fee applies to a $45 order?": an order's
    # amount, not a fee; `_ASKED`)
    asked = [(c, stated_numbers(c), _about(_ASKED.sub(" ", c))) for c in _CLAUSE.split(question)
             if c and any(ch.isalnum() for ch in c)]
    # the passage's figures of a bound or limit ("Orders over $50", "up to $5,000", "2% or $25, whichever is greater")
    # are no value of the thing the question's figure is ("My order was $45"); nor, to a question's figure of the
    # bound's unit (one compared with it), is what the clause's other figures state about the noun the bound bounds
    # (`_bounded`: "Orders under $50 pay a $4.99 fee" states a fee, not an order's amount)
    stated = [_bounded(c) for c in _CLAUSE.split(_LIMIT.sub(lambda m: " " if _CHOICE.fullmatch(m.group(0)) else m.group(0),
                                                            context)) if c and any(ch.isalnum() for ch in c)]
    found: dict[str, list[str]] = {}
    for clause in _CLAUSE.split(answer):
        if _NEGATION.search(clause):  # "$25 rather than $40", "not $40": the answer denies the question's figure
            continue
        for value, unit in dict.fromkeys(stated_numbers(clause, number_words=False)):
            shown_as = _shown(value, unit)
            if unit is None or shown_as not in exempted or shown_as in found:
                continue
            head = unit.split("/")[0]
            subject = frozenset().union(*(about for _, said, about in asked if (value, unit) in said or any(
                v == value and (u or "").split("/")[0] == head for v, u in said)))
            others = [_shown(v, u) for said, about, unbounded, bounds in stated
                      if (unbounded if head in bounds else about) & subject
                      for v, u in said if u is not None and u.split("/")[0] == head and _shown(v, u) != shown_as]
            if others:
                found[shown_as] = list(dict.fromkeys(others))
    return list(found.items())


# where `premise_numbers` cuts a text into clauses: a comma, semicolon or colon before a space, a spaced dash, a
# sentence's end, a line (not "1,500", "12:30" or "thirty (30) days")
_CLAUSE = re.compile(r"[,;:](?=\s)|\s[-\u2013\u2014]\s|(?<=[.!?])\s+|\n")
# a bound a passage states a figure as ("Orders over $50", "salaries up to $5,000", "more than 30 days", "mehr als 30
# Tage"), blanked with the figure before `premise_numbers` reads the passage's figures: a threshold, not the value of
# the thing a question's figure is ("My order was $45"); and a clause choosing between figures ("2% of the balance or
# $25, whichever is greater"), blanked whole. A limit's own value ("a minimum balance of \u00a3500", "capped at $40") stays
_LIMIT = re.compile(r"(?i)(?:\b(?:up\s+to|(?:more|less|fewer|greater|higher|lower)\s+than|at\s+(?:least|most)|over|above|under|"
                    r"below|beyond|exceed(?:s|ing)?|not\s+exceed(?:ing)?|bis\s+zu|mehr\s+als|weniger\s+als|[uü]ber|unter|"
                    r"jusqu['\u2019]\s*[aà]|plus\s+de|moins\s+de|hasta|m[aá]s\s+de|menos\s+de)\s+[^\s;]+(?:\s+[^\s,;.]+)?"
                    r"|[^.;\n]*\bwhichever\b[^.;\n]*)")


# a question's clause opening with what it asks for, up to the preposition before its figure: "What fee applies to" of
# "What fee applies to a $45 order?", "How much is the fee for" (not "Which plan costs $10?": no preposition before it)
_ASKED = re.compile(r"(?i)^\s*(?:what|which|how(?:\s+(?:much|many|long))?)\b[^\d.!?]*?\b(?:for|on|to|of|with|at|from)\b"
                    r"(?=[^\d.!?]*\d)")
_CHOICE = re.compile(r"(?i)[^.;\n]*\bwhichever\b[^.;\n]*")  # `_LIMIT`'s clause choosing between figures, blanked whole
# words between a noun and the bound after it that say nothing of what is bounded ("a balance that falls below $500")
_BOUND_VERBS = frozenset("falls fall drops drop dips dip stays stay remains remain goes go runs run totals total "
                         "totalling totaling amounts amount valued priced costing worth".split())


def _bounded(clause: str) -> tuple[list[tuple[str, str | None]], frozenset[str], frozenset[str], frozenset[str]]:
    """A passage's clause as `premise_numbers` reads it: the figures it states, its bounds (`_LIMIT`) blanked; what it
    is about (`_about`), so blanked; what it is about with each bound's noun blanked too (the content word before it,
    `_BOUND_VERBS` aside: "Orders" of "Orders under $50 pay a $4.99 fee"); and the units of its bounds ("dollar").
    To a question's figure of a bound's unit ("My order is $45"), which is compared with the bound, the clause's
    other figures state what is left ("pay a $4.99 fee": a fee, no order's amount): the clause is about that alone."""
    blanked: list[str] = []
    unbounded: list[str] = []
    units: set[str] = set()
    at = 0
    for m in _LIMIT.finditer(clause):
        units.update(u.split("/")[0] for _, u in stated_numbers(m.group(0)) if u is not None)
        start = m.start()
        for w in reversed(list(re.finditer(r"[^\W\d_]+", clause[at:m.start()]))):
            if any(c.isdigit() for c in clause[at + w.end():m.start()]):
                break
            if content_tokens(w.group(0)) and w.group(0).lower() not in _BOUND_VERBS:
                start = at + w.start()
                break
        blanked.append(clause[at:m.start()])
        unbounded.append(clause[at:start])
        at = m.end()
    blanked.append(clause[at:])
    unbounded.append(clause[at:])
    text = " ".join(blanked)
    return stated_numbers(text), _about(text), _about(" ".join(unbounded)), frozenset(units)


# a question put as a statement to confirm: "The fee is $15 a month, right?", "..., isn't it?", "..., is that correct?"
_CONFIRMING_TAG = re.compile(r"(?i)[,\s](?:right|correct|true|yes|no|is\s+that\s+(?:right|correct|true|so)|am\s+i\s+right"
                             r"|(?:is|isn't|isnt|are|aren't|arent|does|doesn't|doesnt|do|don't|dont|did|didn't|didnt|was|"
                             r"wasn't|wasnt|will|won't|wont|can|can't|cant)\s+(?:it|they|there|that|i|we|you))\s*\?+\s*$")


def _takes_question(answer: str, question: str) -> bool:
    """Whether ``answer`` states the figures of ``question``, a yes/no question that writes one, on its own
    (`_asks_to_confirm`), so that they count as stated only where the passage states them: unless it opens with a no
    ("No, ...", "Nein, ...": `_opening`) or writes "not" (or "rather than", "instead of", "nicht", "pas") right before
    one of them ("It is 1%, not 3%."). An answer opening with a yes takes them; so does any other, a negation elsewhere
    in it notwithstanding ("The charge is 3%, which cannot be waived.": a review found it read as a denial)."""
    if not any(c.isdigit() for c in question) or not _asks_to_confirm(question, answer):
        return False
    side = _opening(answer)
    figures = {value for value, _ in stated_numbers(question, number_words=False)}
    if side == "no":  # "No, it's higher than 5%.": the bound, its only figure, is the answer's own ("No, it is 3%,
        # less than 5%." corrects it: not)
        if not {value for value, _ in stated_numbers(answer, number_words=False)} <= figures:
            return False
        return any(figures & {value for value, _ in stated_numbers(_CLAUSE_END.split(answer[m.end():m.end() + 40],
                                                                                     maxsplit=1)[0], number_words=False)}
                   for m in _BOUND.finditer(answer))
    if side is not None:
        return True
    for m in _NEGATION.finditer(answer):
        if _BOUND.match(answer, m.end()):  # "not less than 5%", "isn't above $500", "pas moins de 5 %": a bound
            continue
        clause = _CLAUSE_END.split(answer[m.end():m.end() + 60], maxsplit=1)[0]
        if figures & {value for value, _ in stated_numbers(clause, number_words=False)}:
            return False
    return True


def _asks_to_confirm(question: str, answer: str) -> bool:
    """Whether ``question`` asks yes or no: it opens with an auxiliary (:func:`hguard._text.asks_yes_no`), ends with a
    tag (`_CONFIRMING_TAG`), is another language's question asking for no content (:func:`yes_no_question` does not
    read it as one: "Beträgt die Gebühr 3 %?", "¿La comisión es del 3 %?"), or an English statement put as a question
    (:func:`states_to_confirm`: "The charge is 3%?"); or ``answer`` opens with a yes, which only such a question takes."""
    return (asks_yes_no(question) or bool(_CONFIRMING_TAG.search(question)) or yes_no_question(question) is not False
            or states_to_confirm(question) or _opening(answer) == "yes")


# an answer's yes or no, read from its first word alone: English's ("Yes", "Correct", "No", "Nope"; not "No problem")
# and other languages' (`yes_or_no_opening`: "Ja", "Oui", "Sí", "Nein", "Non")
_OPENING_YES = frozenset({"yes", "yeah", "yep", "yup", "true", "correct", "indeed", "right", "sure", "exactly",
                          "absolutely", "certainly", "affirmative"})
_OPENING_NO = frozenset({"no", "nope", "false", "incorrect", "wrong"})
# a bare affirmation without a yes, a clause of its own (a stop, a comma or the end after it): "It is.", "That's right.",
# "It does.", "So ist es.", "Das stimmt.", "C'est exact.", "En effet.", "Así es.", "Es correcto.", "That's right (see
# section 2)."; a hedged one ("I believe so.", "I think it is.", "C'est ça.", "Ich glaube schon.", "Creo que sí.": a
# wrong figure passed on them, an old gap); read as a yes, folded
# as `_opening` reads (not "It is 1%.", "It is not.", "That's right at the limit")
_AFFIRMING = re.compile(
    r"(?i)\s*(?:(?:it|that|this|they|he|she|you)(?:\s+(?:is|does|was|are|do|did|will|can|has|have|were)|['\u2019]s)"
    r"(?:\s+indeed)?|indeed(?:\s+it\s+(?:is|does|was))?|(?:that|this|it)(?:\s+is|['\u2019]s)\s+(?:right|correct|true|"
    r"so|the\s+case)|(?:you|you['\u2019]re|you\s+are)\s+right|quite\s+(?:right|so)|that['\u2019]s\s+it|of\s+course"
    r"|i\s+(?:believe|think|guess|suppose|reckon)\s+(?:so|it\s+(?:is|does|was)|that['\u2019]s\s+(?:right|correct))"
    r"|das\s+(?:stimmt|ist\s+(?:richtig|korrekt|so))|so\s+ist\s+es|genau|korrekt|ganz\s+genau|allerdings"
    r"|ich\s+(?:glaube|denke|meine)\s+(?:schon|ja)|je\s+(?:crois|pense)\s+(?:que\s+oui|bien)"
    r"|c['\u2019]est\s+(?:exact|correct|juste|vrai|(?:bien\s+)?(?:ca|cela))|exactement|en\s+effet|effectivement|tout\s+a\s+fait"
    r"|absolument|asi\s+es|es\s+(?:correcto|cierto|asi)|exacto|efectivamente|claro|creo\s+que\s+si)\s*(?:[.!,;:(]|$)")
# a hedged yes or no, a clause of its own (a stop, a comma or the end after it): it leans to a side, and takes it
# ("Probably.", "I'd say so.", "I believe so.", "Most likely."; "Probably not.", "I don't think so.", "I doubt it.",
# "Unlikely."), where an even-odds hedge ("Maybe.", "Perhaps.", "Possibly.", "It depends": `_HEDGE`) takes none and
# declines. Read as `_opening` reads (folded, its case aside)
_HEDGE_END = r"\s*(?:[.!,;:(]|$)"
_HEDGED_YES = re.compile(
    r"(?i)\s*(?:(?:(?:most|very|quite|highly)\s+)?(?:probably|likely)(?:\s+(?:yes|so))?"
    r"|i(?:['\u2019]d|\s+would)\s+(?:say|think|guess)\s+(?:so|yes)"
    r"|i\s+(?:believe|think|guess|suppose|reckon|expect)\s+(?:so|yes))" + _HEDGE_END)
_HEDGED_NO = re.compile(
    r"(?i)\s*(?:(?:(?:most|very|quite|highly)\s+)?(?:probably|likely)\s+(?:not|no)|unlikely|not\s+really"
    r"|i(?:['\u2019]d|\s+would)\s+(?:say|think|guess)\s+not|i\s+(?:believe|think|guess|suppose|reckon|expect)\s+not"
    r"|i\s+(?:don['\u2019]?t|do\s+not)\s+(?:think|believe|suppose|reckon|expect)\s+so|i\s+doubt\s+(?:it|that|so))"
    + _HEDGE_END)


def hedged_side(answer: str) -> str | None:
    """"yes" or "no" where ``answer`` opens with a hedged yes or no, a clause of its own ("Probably.", "I'd say so.",
    "I believe so."; "Probably not.", "I don't think so."), else None. A hedge that leans takes its side: the judge
    labels it by that side (:func:`judge_yesno`), a reviewed reply's side is it (:func:`yes_no_taken`), and the number
    hold reads a hedged yes to "Is the fee $30?" as affirming $30 (`_opening`); an even-odds hedge ("Maybe.",
    "Perhaps.", "It depends.") takes none and declines (:func:`declines`)."""
    folded = fold_accents(answer)
    return "yes" if _HEDGED_YES.match(folded) else "no" if _HEDGED_NO.match(folded) else None


# a negation right before a figure it denies, in its clause (`_CLAUSE_END`): "not 3%", "isn't $30", "$25 rather than $30"
_NEGATION = re.compile(r"(?i)(?:\bnot|n['\u2019]t|\bnever|\brather\s+than|\binstead\s+of|\bother\s+than|\bnicht|\bpas)\b")
# a comparison that makes a figure a bound, after a negation ("not less than 5%", "isn't above $500", "never below",
# "pas moins de 5 %") or alone ("higher than 5%", "at least 7%"): it states the figure as the answer's own, no denial
_BOUND = re.compile(r"(?i)\s*(?:(?:\b(?:less|fewer|more|lower|higher|greater|smaller|larger|under|over|above|below|"
                    r"beneath|exceed(?:s|ed|ing)?)\b)(?:\s+than)?|\bat\s+(?:least|most)\b|\b(?:moins|plus)\s+(?:de|d['\u2019]|que)"
                    r"|\b(?:weniger|mehr)\s+als\b|\b(?:menos|m[a\u00e1]s)\s+de\b|\b(?:meno|pi[u\u00f9])\s+di\b)")


def _opening(answer: str) -> str | None:
    """"yes" or "no" where ``answer``'s first word says it (`_OPENING_YES`, `_OPENING_NO`, `yes_or_no_opening`) or it
    opens with an affirmation or a hedged yes or no (`_AFFIRMING`, :func:`hedged_side`), else None ("No problem, ..."
    says neither, nor does a determiner "No": "No refunds are given after 30 days.",
    :func:`hguard._text.opening_no_is_determiner`)."""
    folded = fold_accents(answer)
    first = _FIRST_WORD.match(folded)
    lead = first.group(1).lower() if first else ""
    if hedged := hedged_side(answer):  # "Probably.", "I'd say so." as "I believe so." was; "Probably not." a no
        return hedged
    if lead in _OPENING_YES or _AFFIRMING.match(folded):
        return "yes"
    if lead in _OPENING_NO:
        if lead == "no" and opening_no_is_determiner(answer):  # "No refunds are given ...": no reply word
            return None
        after = _FIRST_WORD.match(folded, first.end()) if first else None
        return None if after is not None and after.group(1).lower() in _NO_IDIOMS else "no"
    return yes_or_no_opening(answer)


_WORD = re.compile(r"\S+")
# a number in words that glosses a figure (`_spelt_figures`): after a hedge or an opening bracket ("about six months",
# "(six months)"), before a bracket with a figure after its unit ("two weeks (15 days)", "three times a day (every 8
# hours)"), or a part of a year ("the first six months of 2024")
_GLOSSED_BEFORE = re.compile(r"(?i)(?:\b(?:about|approximately|approx|roughly|around|nearly|almost|some|circa|c\.|~)|\()"
                             r"\s*$|(?<![\w-])(?:first|last|final)\s+$")
_GLOSSED_AFTER = re.compile(r"(?i)[\w\s-]{0,40}?(?:\(\s*[^()\d]{0,20}\d|\s+of\s+(?:fy\s*)?(?:19|20)\d\d\b)")
_SPELT_WORD = re.compile(r"(?i)" + _NUMBER_WORD + r"(?:-" + _NUMBER_WORD + r")?")  # "ninety", "twenty-five"
_WRITTEN_EDGES = "\"'\u201c\u201d\u2018\u2019.,;:!?"


def as_written(answer: str, figures: list[str]) -> list[str]:
    """Each figure of ``figures`` (as :func:`unstated_numbers` gives them for ``answer``) with the words ``answer``
    writes it in, where they read otherwise than it shows: "'$12,340 million' (read as 12340000000 dollar)", "'1/4'
    (read as 0.25)", "'Q2 2024' (read as 2 quarter)"; as given where the answer writes it so or no words of it read as
    it (a date is shown as written already). For a reviewer: a figure shown only as read ("0.25", "2") may not be
    found in the answer. Read only for a held answer: a few words around each number, the shortest that read as it."""
    words = list(_WORD.finditer(answer))
    numbered = [i for i, w in enumerate(words) if any(c.isdigit() for c in w.group(0))
                or _SPELT_WORD.fullmatch(w.group(0).strip(_WRITTEN_EDGES))]
    out = []
    for figure in figures:
        found = None
        if not figure.startswith("date "):
            spans = sorted({(b - a, a, b) for i in numbered for a in range(max(0, i - 2), i + 1)
                            for b in range(i, min(len(words), i + 5))})
            for _, a, b in spans:
                written = answer[words[a].start():words[b].end()].strip(_WRITTEN_EDGES)
                if written.count("(") != written.count(")"):
                    written = written.strip("()")
                read = stated_numbers(_LIST_MARKER.sub(" ", _spelt_figures(written)), number_words=False)
                if any(_shown(v, None if u == "#year" else u) == figure for v, u in read):
                    found = written
                    break
        out.append(figure if found is None or found == figure else f"{found!r} (read as {figure})")
    return out


# what says a text writes decimals with a comma (beside `_DECIMAL_COMMA` and grouped forms), and with a point
_EURO_ONE_DOT_GROUP = re.compile(_ONE_DOT_GROUP.pattern + r"\s*(?:\u20ac|eur\b|euros?\b)|(?:\u20ac|\beur)\s*"
                                 + _ONE_DOT_GROUP.pattern, re.IGNORECASE)
_POINT_DECIMAL = re.compile(r"(?<![\d.,])\d+\.\d{1,2}(?!\d|[.,]\d)|(?<![\d.,])\d{1,3}(?:,\d{3})+\.\d+(?!\d)"
                            r"|(?<![\d.,])\d{1,3}(?:,\d{3}){2,}(?!\d|[.,]\d)")
# a dollar, a pound, a yen or a won beside "1,500": the English convention ("$1,500", "\u00a31,500", "\u00a51,000", "USD
# 1,500", "USD (1,250)"; not "$1.500", written so in Latin America)
_DOLLAR_ONE_COMMA_GROUP = re.compile(r"(?:[$\u00a3\u00a5\u20a9]\s?\(?|\b(?:USD|GBP)\s?\(?)" + _ONE_COMMA_GROUP.pattern + "|"
                                     + _ONE_COMMA_GROUP.pattern + r"\s?(?:USD|GBP)\b")
_MIL = re.compile(r"(?i)\d\s*mil\b")
_BILLION = re.compile(r"(?i)\d\s*billions?\b")
#: the languages that write "1.500,50" (a decimal comma, thousands grouped by a dot or a space)
_COMMA_DECIMAL_LANGUAGES = frozenset({"german", "spanish", "italian", "portuguese", "dutch", "danish", "norwegian",
                                      "swedish", "finnish", "french", "catalan", "indonesian", "turkish", "greek",
                                      "romanian", "polish", "czech", "slovak", "hungarian", "russian", "ukrainian",
                                      "bulgarian", "vietnamese"})
#: how many more function words a text's language must have than any other's to say its numbers' convention
_LANGUAGE_MARGIN = 2


def _signs(text: str, margin: int) -> tuple[bool, bool, str | None]:
    """What says ``text``'s convention: (a decimal comma, a decimal point, its language by ``margin``). Its language is
    read without its declarations of scale (`_declared`): "(en M\u20ac)" or "Chiffres (en M\u20ac)" says a decimal comma
    only for the bare numbers of the block it heads (`_declares_in_another_language`), and its "en" made "(en M\u20ac)
    12\nRate: 4.125%." French, so the wrong "4,125%" passed (a review, R08). Where the prose says no language of its
    own and the declaration's words make it a decimal comma's ("(en k\u20ac) 4\nFrais de dossier : 1,500 euros."), the
    declaration's language is that of the prose that leans to it by one word ("de"), and where the prose leans to none
    ("Taux d'int\u00e9r\u00eat : 2,125 %") both readings are tried: read as English alone, the wrong "1500 euros" and
    "2125%" passed (a review, W14, W63, W64)."""
    prose = words_of(_undeclared(text))
    language = written_in(prose, margin=margin)
    both = False
    if language is None:
        declared = written_in(words_of(text), margin=margin)
        if declared in _COMMA_DECIMAL_LANGUAGES:
            leaning = written_in(prose, margin=1)
            language, both = (declared, False) if leaning == declared else (None, True)
    commas = both or language in _COMMA_DECIMAL_LANGUAGES or any(p.search(text) is not None for p in (
        _DECIMAL_COMMA, _GROUPED_DECIMAL_COMMA, _DOTTED_THOUSANDS, _EURO_ONE_DOT_GROUP))
    commas = commas or _declares_in_another_language(text)
    points = (both or language == "english" or _POINT_DECIMAL.search(text) is not None
              or _DOLLAR_ONE_COMMA_GROUP.search(text) is not None)
    return commas, points, language


def _undeclared(text: str) -> str:
    """``text`` with its declarations of scale and currency (`_declared`) blanked."""
    if not any(c.isdigit() for c in text):
        return text
    out = list(text)
    for start, end, *_ in _declared(text):
        out[start:end] = " " * (end - start)
    return "".join(out)


def _ambiguous(text: str) -> bool:
    """Whether ``text`` writes a number that conventions read apart ("1.500", "1,500", "5 mil", "2 billion")."""
    return any(p.search(text) is not None for p in (_ONE_DOT_GROUP, _ONE_COMMA_GROUP, _MIL, _BILLION))


def _comma_options(commas: bool, points: bool) -> list[tuple[bool, bool]]:
    """The readings of "1.500" and "1,500" (``dot_thousands``, ``comma_decimal``) the signs of a decimal comma and of a
    decimal point allow: the one they say; both where they say both; where they say neither, "1.500" either way and
    "1,500" as fifteen hundred (a decimal comma with three decimals is rare in any language, "1.500" for fifteen hundred
    is German's, Spanish's, ... way: "Employees: 4,200" restated "4200" was held)."""
    if commas != points:
        return [(commas, commas)]
    return [(False, False), (True, True)] if commas else [(False, False), (True, False)]


def _readings(text: str, signs: tuple[bool, bool, str | None], comma_decimal: tuple[bool, bool] | None
              ) -> list[_Reading]:
    """The conventions to read ``text`` under, by ``signs`` (`_signs`: its own, or, where it says nothing of its own,
    "Version 1.500 applies.", those of the texts beside it): the one they say (a decimal comma "1,5", "1.500 \u20ac" or a
    German text: "1.500" is fifteen hundred; "$1,500", "1,500,000", "1.5" or an English text: "1.500" is one and a
    half), each of them where they say neither or both; ``comma_decimal``: the reading of "1.500" given (the one the
    texts that say nothing share). A language says so by two function words or more (one is no sign: "Take 1500 mg."
    read as Czech, "take"; "Net income, USD (1,250)" as Polish). "mil" and "billion" read as English's unless the text
    may be Spanish or Portuguese, German or French (by one word: both readings; by two: theirs)."""
    if not _ambiguous(text):
        return [_ENGLISH]
    dots = _ONE_DOT_GROUP.search(text) is not None or _ONE_COMMA_GROUP.search(text) is not None
    mil, billion = _MIL.search(text) is not None, _BILLION.search(text) is not None
    commas, points, language = signs
    maybe = written_in(words_of(text), margin=1) if language is None else language

    def options(english: int, theirs: int, languages: tuple[str, ...]) -> list[int]:
        return [theirs] if language in languages else [english, theirs] if maybe in languages else [english]

    readings = ([comma_decimal] if comma_decimal is not None else _comma_options(commas, points)) if dots else [
        (False, False)]
    if dots and not (commas or points) and maybe in _COMMA_DECIMAL_LANGUAGES and (True, True) not in readings:
        readings.append((True, True))  # one word of German, Spanish, ...: "1,500" may be one and a half too
    mils = options(10**6, 10**3, ("spanish", "portuguese", "catalan")) if mil else [10**6]
    billions = options(10**9, 10**12, ("german", "french")) if billion else [10**9]
    return [_Reading(d, c, m, b) for d, c in readings for m in mils for b in billions]


# A passage that declares the scale or the currency of its amounts ("Segment results (in $ millions)", "(EUR m)",
# "(USD thousands)", "($000s)", "('000)", "(\u20ac bn)", "(Dollars in millions)", "All amounts are in thousands of US
# dollars", a table's header
# cell "| USD m |"): its bare numbers (a table's cells) are amounts at that scale and in that currency. A bank's trial:
# under "(in $ millions)" the right "$12,340 million" was held and a wrong "$12,340" passed (a bare cell matched any
# unit and scale). Such a passage's bare number now states a bare number of the answer, and an amount only at the
# declared scale and currency (`_passage_numbers`); where the passage declares several, each number takes the
# declaration above it (the first for those above every declaration).
_DECLARED_SIGN = r"(?:(?:US|U\.S\.|HK|NZ|AU|CA|A|C|S|R)\$|[$\u20ac\u00a3\u00a5\u20b9])"
_DECLARED_CODE = r"(?-i:" + "|".join(c.upper() for c in _CURRENCY_CODES) + r")"
_DECLARED_ADJECTIVES = {"us": "usd", "u.s.": "usd", "american": "usd", "canadian": "cad", "australian": "aud",
                        "new zealand": "nzd", "hong kong": "hkd", "singapore": "sgd", "swiss": "chf", "japanese": "jpy"}
_DECLARED_NAME = (r"(?:(?:" + "|".join(re.escape(a) for a in sorted(_DECLARED_ADJECTIVES, key=len, reverse=True))
                  + r")\s+)?(?:dollars?|euros?|pounds?(?:\s+sterling)?|sterling|yen|yuan|renminbi|francs?|rupees?)")
_DECLARED_CURRENCY = r"(?:" + _DECLARED_SIGN + "|" + _DECLARED_CODE + r"\b|" + _DECLARED_NAME + r"\b)"
_DECLARED_ON_SCALE = r"(?:" + _DECLARED_SIGN + "|" + _DECLARED_CODE + "|" + _DECLARED_NAME + r"\b)"  # "EURm", "\u00a3bn"
_LONG_SCALES = {"thousand": 10**3, "thousands": 10**3, "million": 10**6, "millions": 10**6, "billion": 10**9,
                "billions": 10**9, "bn": 10**9, "mio": 10**6, "mio.": 10**6, "mrd": 10**9, "mrd.": 10**9}
_SHORT_SCALES = {"k": 10**3, "m": 10**6, "mn": 10**6, "mln": 10**6, "mm": 10**6, "b": 10**9}
_DECLARED_LONG = r"(?:thousands?|millions?|billions?|bn|mio\.?|mrd\.?|'000s?|\u2019000s?|000s|000's)"
_DECLARED_SCALE = r"(?:" + _DECLARED_LONG[3:-1] + r"|mm|mln|mn|m|k|b)"
_DECLARED_SAID = r"(?:(?:all\s+)?(?:amounts|figures|numbers|values)\s+(?:are\s+)?(?:(?:stated|expressed|presented|shown|reported|given)\s+)?)?"
# German, French, Spanish and Italian declarations (a user trial: under "Umsatzerlöse (in TEUR) 12.340" the wrong
# "12.340 Euro" passed and the right "12,34 Mio. Euro" was held): a scale word before its currency ("(in Millionen
# Euro)", "(en milliers d'euros)", "(en miles de euros)", "(in migliaia di euro)"); a scale alone in parentheses ("(in
# Tausend)", "(en millions)"; not "miles", a distance in English); a scale's letter on its currency ("TEUR", "T\u20ac",
# "k\u20ac", "M\u20ac", "Mio. \u20ac", "Tsd. \u20ac", "Md\u20ac") in parentheses, after "in"/"en" or alone in a table's cell, never
# after a number ("340 M\u20ac" is an amount). In prose a spelt-out scale declares only after "Angaben", "Beträge",
# "montants", "importes", "importi", ... ("Angaben in Millionen Euro"; "des pertes en millions d'euros" heads nothing)
_FOREIGN_SCALES = {"t": 10**3, "tausend": 10**3, "tsd": 10**3, "tsd.": 10**3, "milliers": 10**3, "miles": 10**3,
                   "migliaia": 10**3, "millionen": 10**6, "millones": 10**6, "milioni": 10**6, "mio": 10**6, "mio.": 10**6,
                   "milliarden": 10**9, "milliards": 10**9, "miliardi": 10**9, "miles de millones": 10**9, "md": 10**9,
                   "mds": 10**9, "mds.": 10**9, "mrd": 10**9, "mrd.": 10**9}
_FOREIGN_WORD = (r"(?:tausend|tsd\.?|millionen|milliarden|mio\.?|mrd\.?|milliers|millions|milliards|mds\.?|"
                 r"miles\s+de\s+millones|millones|migliaia|milioni|miliardi|mln\.?)")
_FOREIGN_SCALE = r"(?:" + _FOREIGN_WORD[3:-1] + r"|miles)"
_FOREIGN_OF = r"(?:\s+(?:de|di|der)\s+|\s+d['\u2019]\s*|\s*)"  # "milliers d'euros", "miles de euros", "Millionen Euro"
_FOREIGN_CURRENCY = r"(?:[\u20ac$\u00a3]|" + _DECLARED_CODE + r"\b|euros?\b|dollars?\b)"
_COMPACT_SCALE = r"(?-i:T|k|K|M|Md|Mds|Mrd\.?|Mio\.?|Tsd\.?)"
_COMPACT_CURRENCY = r"(?-i:\u20ac|EUR|CHF|USD|GBP)(?!\w)"
_FOREIGN_SAID = (r"(?:angaben|betr[äa]ge|werte|zahlen|montants|chiffres|importes|cifras|importi|valori|dati)")
_DECLARED = re.compile(
    r"(?i)\(\s*" + _DECLARED_SAID + r"(?:(?:" + _FOREIGN_SAID + r")\s+)?(?:(?:in|en)\s+)?(?:(?P<c1>" + _DECLARED_ON_SCALE + r")\s*(?P<s1>" + _DECLARED_SCALE
    + r")|(?P<s2>" + _DECLARED_SCALE + r")(?:\s+of)?\s*(?P<c2>" + _DECLARED_CURRENCY + r")|(?P<c9>" + _DECLARED_CURRENCY
    + r")\s+in\s+(?P<s9>" + _DECLARED_SCALE + r")|(?P<s10>" + _COMPACT_SCALE + r")\s?(?P<c10>" + _COMPACT_CURRENCY
    + r")|(?P<s11>" + _FOREIGN_SCALE + r")" + _FOREIGN_OF + r"(?P<c11>" + _FOREIGN_CURRENCY + r")|(?P<c3>" + _DECLARED_SIGN
    + "|" + _DECLARED_CODE + r")|(?P<s3>" + _DECLARED_LONG + r")|(?P<s12>" + _FOREIGN_WORD + r"))\s*(?P<x>[,;][^()\n]{0,80})?\)"
    # in prose: "All amounts are in thousands of US dollars", "figures in EUR million", "(in) millions of euros"
    r"|\b(?:in|of)\s+(?P<s4>thousands|millions|billions)\s+of\s+(?P<c4>" + _DECLARED_NAME + r")\b"
    r"|\b(?:amounts|figures|numbers|values)\b[^.\n(]{0,40}?\bin\s+(?:(?P<c5>" + _DECLARED_CURRENCY + r")\s*(?P<s5>"
    + _DECLARED_SCALE + r")|(?P<s6>" + _DECLARED_LONG + r")(?:\s+of)?(?:\s+(?P<c6>" + _DECLARED_CURRENCY + r"))?)(?![\w'])"
    # in prose, another language's: "Umsatzerlöse in Tsd. \u20ac: 12.340", "en M\u20ac", "Angaben in Millionen Euro"
    r"|(?<![\w.,])(?:in|en)\s+(?P<s13>" + _COMPACT_SCALE + r")\s?(?P<c13>" + _COMPACT_CURRENCY + r")"
    r"|\b" + _FOREIGN_SAID + r"\b[^.\n(]{0,40}?\b(?:in|en)\s+(?P<s14>" + _FOREIGN_SCALE + r")" + _FOREIGN_OF + r"(?P<c14>"
    + _FOREIGN_CURRENCY + r")(?![\w'])"
    r"|(?m:(?:^|(?<=\|)))[ \t]*(?:(?:in|en)[ \t]+)?(?P<s15>" + _COMPACT_SCALE + r")[ \t]?(?P<c15>" + _COMPACT_CURRENCY
    + r")(?=[ \t]*(?:\||\r?\n|\Z))"
    # a table's header cell that is a currency and a scale alone: "| USD m |", "| EURm |", "| $ millions |"
    r"|(?m:(?:^|(?<=\|)))[ \t]*(?P<c8>" + _DECLARED_SIGN + "|" + _DECLARED_CODE + r")[ \t]*(?P<s8>" + _DECLARED_SCALE
    + r")\.?(?=[ \t]*(?:\||\r?\n|\Z))")
# "$000s", "\u00a3'000", "'000": thousands, with the currency before them if any (found by their digits, then looked
# back from: an optional currency before them, tried at every character, took most of the declarations' reading)
_THOUSANDS_MARK = re.compile(r"['\u2019]000s?(?!\w)|(?<=[$\u20ac\u00a3\u00a5])000'?s(?!\w)")
_CURRENCY_ENDS = re.compile(r"(?i)(?:" + _DECLARED_SIGN + "|" + _DECLARED_CODE + r")\s?$")
_BARE_ONLY = "#bare"  # a bare number of a passage that declares its amounts' scale: it states a bare number only


_Declaration = tuple[int, int, Decimal, str | None, frozenset[str]]
# the words of a declaration's exceptions that name no kind of row ("(in $ millions, except per share data and
# ratios)": "share" and "ratio" do)
_EXCEPTION_FILLER = frozenset("except excluding unless otherwise where when noted stated indicated shown data amounts "
                              "figures information items values number numbers other which that those with from".split())


@functools.lru_cache(maxsize=4)
def _declared(text: str) -> tuple[_Declaration, ...]:
    """The declarations of scale and currency ``text`` makes (`_DECLARED`): (where it starts and ends, the scale, the
    currency's unit or None where it names none, the words of the rows it excepts: "(in $ millions, except per share
    data and ratios)" excepts rows naming a share or a ratio). Kept for the last few passages: each reading of a
    passage (`_readings`) and the period rule (`_periods_named`) read it again."""
    out: list[_Declaration] = []
    for m in _DECLARED.finditer(text):
        found = {k[0]: v for k, v in m.groupdict().items() if v is not None}
        if m.group("c3") and re.search(r"\d[ \t]*$", text[max(0, m.start() - 4):m.start()]):
            continue  # "\u00a5100 (JPY)": the currency of the amount before it
        scale = found.get("s", "").lower().replace("\u2019", "'")
        scale = " ".join(scale.split())
        factor = (10**3 if "000" in scale else _LONG_SCALES.get(scale) or _FOREIGN_SCALES.get(scale)
                  or _SHORT_SCALES.get(scale, 1))
        excepted = frozenset(w.removesuffix("s") for w in re.findall(r"[a-z]{4,}", found.get("x", "").lower())
                             if w not in _EXCEPTION_FILLER)
        out.append((m.start(), m.end(), Decimal(factor), _declared_currency(found["c"]) if "c" in found else None,
                    excepted))
    for m in _THOUSANDS_MARK.finditer(text):
        currency = _CURRENCY_ENDS.search(text, max(0, m.start() - 5), m.start())
        start = m.start() if currency is None else currency.start()
        out.append((start, m.end(), Decimal(1000), None if currency is None else _declared_currency(currency.group(0).strip()),
                    frozenset()))
    kept: list[_Declaration] = []
    for d in sorted(out, key=lambda d: d[0]):
        if not kept or d[0] >= kept[-1][1]:  # one declaration read by two rules ("($000s)") once
            kept.append(d)
    return tuple(kept)


_COMPACT_GROUPS = ("s10", "s13", "s15")
_FOREIGN_CONNECTOR = re.compile(r"(?i)\b(?:en|de|di|der)\s|\bd['\u2019]")


def _declares_in_another_language(text: str) -> bool:
    """Whether ``text`` declares its amounts' scale in German, French, Spanish or Italian ("(in TEUR)", "(en milliers
    d'euros)", "Angaben in Mio. \u20ac") over every number it writes that conventions read apart ("1.500", "1,500"): a
    sign that it writes a decimal comma ("12.340" is twelve thousand three hundred and forty), as its words would be.
    The sign reaches only the bare numbers of the block such a declaration heads (`_declared_block`, the numbers it
    scales): where another is written outside one, or with a unit of its own ("| Item | k\u20ac |\n| Revenue | 40 |\n\n
    The fee is 3.125 USD.", "k\u20ac\nFee: 2.200 USD", "(en M\u20ac) 12\nRate: 4.125%."), the text gives no sign (a
    review found "3,125 USD" passing from "3.125 USD", read as three thousand), and both readings are tried."""
    if not any(c.isdigit() for c in text):
        return False
    heads = []
    for m in _DECLARED.finditer(text):
        scale = next((v for k, v in m.groupdict().items() if k[0] == "s" and v is not None), "")
        heads.append((m.start(), m.end(), bool(any(m.group(g) for g in _COMPACT_GROUPS)
                                                or " ".join(scale.lower().split()) in _FOREIGN_SCALES
                                                or _FOREIGN_CONNECTOR.search(m.group(0)))))
    if not any(foreign for *_, foreign in heads):
        return False
    blanked = list(text)
    for start, end, _ in heads:
        blanked[start:end] = " " * (end - start)
    plain = "".join(blanked)
    blocks = [(end, _declared_block(plain, end, heads[i + 1][0] if i + 1 < len(heads) else len(plain)))
              for i, (_, end, foreign) in enumerate(heads) if foreign]
    for p in (_ONE_DOT_GROUP, _ONE_COMMA_GROUP):
        for n in p.finditer(plain):
            if (not any(a <= n.start() < b for a, b in blocks) or _CURRENCY_ENDS.search(plain, max(0, n.start() - 6),
                                                                                          n.start()) is not None
                    or _BARE_AFTER.match(plain, n.end()) is None):
                return False  # outside a foreign declaration's block, or with a unit of its own: no sign
    return True


# what follows a bare number in a declared block: nothing but a stop before its cell's or line's end
_BARE_AFTER = re.compile(r"[ \t.,;:)]*(?:\||\r?\n|$)")


@functools.lru_cache(maxsize=256)
def _declared_currency(written: str) -> str:
    """The unit a declaration's currency reads as ("$", "USD" and "US dollars" as "dollar", "CAD" and "Canadian
    dollars" as "cad"); one no rule reads is a unit of its own, matching no answer's currency (not any)."""
    words = written.lower().split()
    if words == ["sterling"]:
        written = "GBP"
    adjective = next((a for a in sorted(_DECLARED_ADJECTIVES, key=len, reverse=True) if written.lower().startswith(a + " ")),
                     None)
    said = stated_numbers(f"1 {_DECLARED_ADJECTIVES[adjective].upper() if adjective else written}")
    unit = said[0][1] if said else None
    return unit if unit in _CURRENCIES else f"declared {' '.join(words)}"


# how a span of a declaring passage reads its bare numbers: as in one declaring nothing (None), at a scale and in a
# currency, or in a row's own units, unscaled
_SpanReading = tuple[Decimal, str | None] | list[str | None] | None


def _passage_numbers(text: str, reading: _Reading) -> list[tuple[str, str | None]]:
    """`stated_numbers` of a passage, where it declares its amounts' scale or currency (`_DECLARED`) with the bare
    numbers of the block each declaration heads (`_declared_block`) read as amounts at that scale and currency, and as
    bare numbers only (`_BARE_ONLY`); a scale that names no currency gives its amounts none (they state a bare number:
    "(in millions) | Europe | 45 |" states "45 million", not "\u00a345 million"), and a row that names a unit of its
    own or one the declaration excepts is read unscaled in that unit (`_own_unit_rows`). A number above every
    declaration, or after the block it heads, is read as in a passage that declares nothing; a year is no amount (a
    table's data cell is: `_data_cell`). The declarations themselves are no figures (their currency was given to the
    number after them: "(in millions of Canadian dollars): 5,000" read $5,000)."""
    declared = _declared(text) if any(c.isdigit() for c in text) else []
    if not declared:
        return stated_numbers(text, reading=reading)
    original, blanked = text, list(text)
    for start, end, *_ in declared:
        blanked[start:end] = " " * (end - start)
    text = "".join(blanked)
    # a currency alone in a row's label under a declared scale ("(in millions)\nRevenue ($) 120") names the row's
    # currency, not a block of its own at no scale: the row keeps the block's scale
    heads: list[_Declaration] = []
    currencies: dict[int, str] = {}
    for d in declared:
        if (heads and d[2] == 1 and d[3] is not None and heads[-1][2] != 1
                and text[text.rfind("\n", 0, d[0]) + 1:d[0]].strip(" \t|")
                and d[0] < _declared_block(text, heads[-1][1], len(text))):
            currencies[d[0]] = d[3]
        else:
            heads.append(d)
    spans: list[tuple[int, int, _SpanReading]] = []
    done = 0
    for i, (start, end, scale, currency, excepted) in enumerate(heads):
        block = _declared_block(text, end, heads[i + 1][0] if i + 1 < len(heads) else len(text))
        line = text.rfind("\n", 0, start) + 1
        before = _NUMBER_BEFORE.search(text, max(line, start - 40), start)
        if (before is not None and original[start] == "(" and not _TABLE_ROW.search(text, line, block)
                and text.find("\n", end, block) == -1):
            # in prose, after its number ("Revenue was 120 (in millions) and the firm employs 45 people."): it
            # governs that number only
            spans += [(done, before.start(), None), (before.start(), start, (scale, currency))]
            done = end
            continue
        spans.append((done, start, None))  # above it (or after the block above it): declared by none
        spans += _own_unit_rows(text, start, block, (scale, currency), excepted, currencies)
        done = block
    spans.append((done, len(text), None))
    out: list[tuple[str, str | None]] = []
    scaled: list[tuple[int, str, str]] = []  # where a bare number's scaled amount is in ``out``, its digits, currency
    scaled_at: set[int] = set()  # where any scaled amount is in ``out``
    for (_, _, how), numbers in zip(spans, _stated_spans(text, [b for _, b, _ in spans[:-1]], reading)):
        for value, unit in numbers:
            if how is None or unit is not None:  # undeclared, or a unit's or a label's number: read as it is
                out.append((value, unit))
                continue
            try:
                number = Decimal(value)
            except InvalidOperation:  # a dotted number ("2.3.1 Basis of preparation", a version, an address): whole
                out.append((value, unit))
                continue
            if isinstance(how, list):  # a row of its own unit: unscaled
                out += [(value, u) for u in how]
            else:
                scale, currency = how
                out += [(value, _BARE_ONLY), (format((number * scale).normalize(), "f"), currency or _BARE_ONLY)]
                scaled_at.add(len(out) - 1)
                if currency is not None and scale != 1:
                    scaled.append((len(out) - 1, value, currency))
    # a bare number whose digits the passage states in the declared currency, unscaled ("| Posten | TEUR |\n| Umsatz |
    # 9 |\n\nDie Gebühr beträgt 9 Euro pro Besuch."): an answer's scaled amount ("The fee is 9 thousand euros.") may be
    # that amount with a scale added, so the scaled one states nothing (its row's own words are not read against the
    # answer's across languages: a review, R09, held at be4c44d, where the "TEUR" cell was not read). Only what the
    # passage states unscaled counts, not another row's scaled amount ("| Share capital | 12 |" under "\u20ac thousands"
    # is 12000 euro, which dropped "| Revenue | 12,000 |"'s \u20ac12 million: a second review, F15)
    unscaled = {(value, unit) for i, (value, unit) in enumerate(out)
                if unit is not None and unit != _BARE_ONLY and i not in scaled_at}
    dropped = {i for i, value, currency in scaled if (value, currency) in unscaled}
    return [figure for i, figure in enumerate(out) if i not in dropped] if dropped else out


_SPAN_MARK = f"{_LABEL_WORD}span"  # a word between two spans of a text read whole (`_stated_spans`)


def _stated_spans(text: str, cuts: list[int], reading: _Reading) -> list[list[tuple[str, str | None]]]:
    """`stated_numbers` of each span of ``text`` between ``cuts`` (a declaration's start, a line's end), read as one
    text, so that what reads a number from the text around it (a table's header and caption for accounting
    parentheses) reads it as in the whole passage, and a number at a span's end takes no unit from the next."""
    pieces: list[str] = []
    done = 0
    inline = f" {_SPAN_MARK} "
    for cut in cuts:
        cut = cut - 1 if cut > done and text[cut - 1] == "\n" else cut
        # at a line's end, a row of its own (no text after a number on its line, a table's rows still rows); else (a
        # declaration's start) a word, written over the declaration's blanks where they hold it (no longer text to read)
        if text[cut:cut + 1] in ("\n", ""):
            pieces += [text[done:cut], f"\n|{_SPAN_MARK}"]
        else:
            pieces += [text[done:cut], inline]
            cut += len(inline) if text.startswith(" " * len(inline), cut) else 0
        done = cut
    pieces.append(text[done:])
    toks = _tokens("".join(pieces), True, reading, figures=True)
    if toks.count(_SPAN_MARK) != len(cuts):  # a mark read into a word: each span read on its own
        return [stated_numbers(piece, reading=reading) if any(c.isdigit() for c in piece) else [] for piece in pieces[::2]]
    out: list[list[tuple[str, str | None]]] = []
    part: list[str] = []
    for t in toks:
        if t == _SPAN_MARK:
            out.append(_numbers_of(part))
            part = []
        else:
            part.append(t)
    return [*out, _numbers_of(part)]


_TABLE_ROW = re.compile(r"[|\t]")
_NUMBER_BEFORE = re.compile(r"(?<![\w.,])[$\u20ac\u00a3\u00a5]?\d[\d,]*(?:\.\d+)?[ \t]*$")
_BLANK = re.compile(r"[ \t\r]*$")


def _declared_block(text: str, end: int, stop: int) -> int:
    """Where the block that a declaration ending at ``end`` heads ends (at most ``stop``, the next declaration): the
    rest of its line, and the lines after it up to a blank line or, after a table's rows, the first line that is no
    row (the prose after a table is not its); blank lines between a title and its table are skipped. Where this is
    unclear a number is left undeclared, so it states no scaled amount (fail closed)."""
    line_end = text.find("\n", end, stop)
    if line_end == -1:
        return stop
    own = text[text.rfind("\n", 0, end) + 1:line_end]
    table = bool(_TABLE_ROW.search(own))
    content = any(c.isalnum() for c in text[end:line_end])  # a title's declaration has nothing after it on its line
    pos = line_end + 1
    while pos < stop:
        nxt = text.find("\n", pos, stop)
        nxt = stop if nxt == -1 else nxt
        if _BLANK.match(text, pos, nxt):
            if content:
                return pos
        elif _TABLE_ROW.search(text, pos, nxt):
            table = content = True
        elif table:
            return pos
        else:
            content = True
        pos = nxt + 1
    return stop


# a table row's label naming its values' own unit, which a declared scale does not reach ("| CET1 ratio (%) | 13.2 |",
# "| Diluted EPS | 3.45 |", "| Days past due | 45 |"): a per-share amount (in the declared currency, unscaled), a
# percentage or a ratio, basis points; a count of days, months or years only in a label with no number of its own
# ("Loans due after 5 years" is an amount)
_ROW_LABEL = re.compile(r"[ \t]*\|?[ \t]*([^|\t\n]+)[|\t]")
_ROW_UNITS = (
    (re.compile(r"(?i)per[ -]share|\b[ED]PS\b"), "#currency"),
    (re.compile(r"(?i)%|\bper ?cent|\bpercentage"), "percent"),
    (re.compile(r"(?i)\bratios?\b"), "percent times"),
    (re.compile(r"(?i)\bbps\b|\bbasis points?\b"), "bp"),
    (re.compile(r"(?i)^\D*\bdays?\b\D*$"), "day"),
    (re.compile(r"(?i)^\D*\bmonths?\b\D*$"), "month"),
    (re.compile(r"(?i)^\D*\byears?\b\D*$"), "year"),
)
_ROW_WORDS = re.compile(r"[a-z]{4,}")


# a row label's own unit in parentheses that is no currency: a count ("Headcount (people)", "Stores (count)",
# "(number)") or a measure ("Area (sq ft)"): its row states that count or measure, not an amount at a declared scale
_COUNT_UNIT = re.compile(r"(?i)^\s*(?:numbers?|no\.?|#|counts?|people|persons|employees|staff|headcount|heads|FTEs?|units|"
                         r"customers|clients|users|members|accounts|stores|branches|sites|locations|outlets|"
                         r"sq\.? ?(?:ft|m|km|mi)|square (?:feet|foot|met(?:re|er)s?|miles?|kilomet(?:re|er)s?)|acres|hectares|ha|"
                         r"m2|m\u00b2|ft2|ft\u00b2|tonnes|tons|barrels|boe|mwh|gwh|kwh|mw|gw)\s*$")
_LABEL_UNIT = re.compile(r"\(([^()\d\n]{1,30})\)")
# a row label that is itself a count ("| Headcount | 120 |", "Number of branches", "Employees"): its row states that
# count, not an amount at a declared scale (under "GBP thousands" the wrong "Staff costs were \u00a3120,000." passed on
# "| Headcount | 120 |": an old gap of a review); the whole label only ("Staff costs" is an amount), and only a label
# that names no payer, channel or cost alone: "Staff", "Clients" (a French balance sheet's receivables), "Customers",
# "Users", "Members", "Stores", "Subscribers", "Sites", "Locations", "Outlets" are amount rows as often (a second
# review: "| Staff | 1,200 |" under "EUR thousands" held the faithful "EUR 1.2 million")
_COUNT_LABEL = re.compile(r"(?i)^\s*(?:(?:total|average|avg\.?|closing|year-end|period-end)\s+)?(?:(?:number|no\.?|#)\s+of"
                          r"\s+[^\d|\t\n(]+|headcount|employees|FTEs?|full[ -]time\s+equivalents?|branches|people|persons)"
                          r"\s*:?\s*$")
_COUNT_CUES = ("headcount", "employee", "fte", "full", "branch", "people", "person", "number", "no", "#")
# a row written without "|" or tabs ("Headcount (people) 500", "Stores (count)    12"): its label is its text before its
# first number
_PLAIN_ROW_LABEL = re.compile(r"[ \t]*([^\d|\t\n]+?)[ \t]*(?=[-\u2212(]?[$\u20ac\u00a3\u00a5]?\d)")
# a bare number ("45", "1,250", "2.5"), and the words after one that leave it no count of a noun ("45 per card", "18 of
# the 20"): read alike by `_COUNTED` and `_COUNT_OF` (which passes over more words: `_MONEY_AFTER`)
_BARE_NUMBER = r"(?<![\w.,])\d[\d,]*(?:\.\d+)?"
_NOT_COUNTING = ("and|or|in|at|on|of|for|from|to|by|as|was|were|is|are|vs|versus|compared|against|with|than|the|a|an|per|"
                 "each")
# in a block's prose (a line that is no table row), a sentence whose bare number counts the word after it ("The firm
# had 45 staff."): a count of its own, not an amount at the declared scale
_COUNTED = re.compile(r"(?i)" + _BARE_NUMBER + r"[ \t]+(?!(?:" + _NOT_COUNTING + r")\b)[a-z][a-z-]+")
_PROSE_SENTENCE = re.compile(r"[^.!?;\n]*(?:[.!?;](?!\d)|$)", re.MULTILINE)
# a bare number of a passage that counts the noun after it ("The bank has 18 branches.", "1.5 million customers"):
# a count, no amount of money (`_counted_only`). The word after it is what it counts unless it is a word an amount
# written without its currency is followed by ("a 25 fee", "25 plus interest", "25 upfront", "25 per card") or one
# `stated_numbers` reads as its unit or scale
_MONEY_AFTER = (_NOT_COUNTING + "|be|been|every|plus|minus|less|only|up|down|upfront|flat|net|gross|total|extra|more|"
                "max|maximum|min|minimum|if|unless|when|until|before|after|including|inclusive|incl|excluding|exclusive|excl|apiece|then|"
                "but|so|which|that|it|this|cash|back|off|outright|tax|taxes|vat|gst|hst|now|instead|respectively|will|"
                "would|can|may|must|shall|should|could|has|have|had|does|do|did|not|also|once|overall|altogether|"
                "combined|" + "|".join(_PERIOD_ADVERBS) + "|where|while|via|into|"
                "under|over|above|below|within|without|between|about|around|approximately|due|payable|owed|paid|"
                "charged|billed|refundable|deductible|fees?|charges?|surcharges?|deposits?|payments?|refunds?|credits?|"
                "bonus(?:es)?|penalt(?:y|ies)|fines?|discounts?|rebates?|premiums?|prices?|costs?|rents?|balances?|"
                "allowances?|stipends?|salar(?:y|ies)|wages?|budgets?|limits?|caps?|rewards?|cashback|vouchers?|tips?|"
                "tolls?|fares?|dues|payouts?|reimbursements?|grants?|loans?|advances?|install?ments?|co-?pays?|"
                "deductibles?|excess|bucks|quid|grand|cents?|pence|pennies")
_COUNT_OF = re.compile(r"(?i)" + _BARE_NUMBER + r"(?:[ \t]+(?:thousand|million|billion|trillion))?[ \t]+(?!(?:"
                       + _MONEY_AFTER + "|" + _SCALE_NAME + r")(?![\w-]))[a-z][a-z-]+")


@functools.lru_cache(maxsize=64)
def _row_cue(excepted: frozenset[str]) -> re.Pattern[str]:
    """What may mark a row of its own unit (`_ROW_UNITS`, a unit in parentheses: `_LABEL_UNIT`) or one of
    ``excepted``'s kinds, found in a block at once and loosely (its first letters first: a long table's rows are not each
    read), then read in its row's label."""
    words = ["share", "[ed]ps", "%", "cent", "ratio", "bps", "basis", "day", "month", "year", r"\(",
             *map(re.escape, _COUNT_CUES), *map(re.escape, sorted(excepted))]
    first = "".join(sorted({"e", "d", *(w[0] if w[0] != "\\" else w[1] for w in words if w[0] != "[")}))
    return re.compile(rf"(?i)(?=[{re.escape(first)}])(?:{'|'.join(words)})")


@functools.lru_cache(maxsize=1024)
def _unit_named(written: str) -> str | None:
    """The unit ``written`` (a row label's parentheses) names, as :func:`stated_numbers` reads "1 <written>", or None."""
    said = stated_numbers(f"1 {written}")
    return said[0][1] if len(said) == 1 and said[0][0] == "1" else None


def _label_units(label: str, declared: tuple[Decimal, str | None],
                 excepted: frozenset[str]) -> _SpanReading | None:
    """How a row labelled ``label`` in a block ``declared`` at a scale in a currency reads its bare numbers, where its
    label says so: in a unit of its own (`_ROW_UNITS`), unscaled; as a count or a measure its parentheses name
    (`_COUNT_UNIT`: "(people)", "(number)", "(sq ft)") or that the label is (`_COUNT_LABEL`: "Headcount"), unscaled, a
    bare number only; at the declared scale in the
    currency its parentheses name ("(EUR)" written as no declaration: "(dollars)"); as an excepted kind (a word of
    ``excepted``), unscaled in the declared currency (in any where it names none). None where it says nothing."""
    units: list[str | None] = [u for pattern, said in _ROW_UNITS if pattern.search(label) for u in said.split()]
    for m in _LABEL_UNIT.finditer(label):
        said = _unit_named(m.group(1).strip().lower())
        if said in _CURRENCIES and not units:
            return declared[0], said
        if said is not None and said not in _CURRENCIES and said != _BARE_ONLY:
            units.append(said)
        elif _COUNT_UNIT.match(m.group(1)):
            units.append(_BARE_ONLY)
    if not units and excepted and excepted & {w.removesuffix("s") for w in _ROW_WORDS.findall(label.lower())}:
        units = ["#currency"]
    if not units and _COUNT_LABEL.match(label):
        units = [_BARE_ONLY]
    if not units:
        return None
    return list(dict.fromkeys([*(declared[1] if u == "#currency" else u for u in units), _BARE_ONLY]))


def _own_unit_rows(text: str, start: int, end: int, declared: tuple[Decimal, str | None],
                   excepted: frozenset[str], currencies: dict[int, str] | None = None) -> list[tuple[int, int, _SpanReading]]:
    """``text[start:end]`` (a block ``declared`` at a scale in a currency) cut into spans: (start, end, ``declared``)
    for those it reads, and (start, end, how) for each row whose label (its first cell; a row written without "|" or
    tabs: its text before its first number) says how its numbers read (`_label_units`), or names a currency its own
    declaration gave (``currencies``: where "($)" starts, its currency; the row keeps the block's scale); and a
    sentence of the block's prose whose number counts the word after it ("45 staff": `_COUNTED`) is read as in a
    passage declaring nothing."""
    currencies = currencies or {}
    found: list[tuple[int, int, _SpanReading]] = []
    read = start  # the rows read so far
    cues = sorted([*(c.start() for c in _row_cue(excepted).finditer(text, start, end)),
                   *(at for at in currencies if start <= at < end)])
    for at in cues:
        if at < read:
            continue
        row = text.rfind("\n", start, at) + 1 or start
        row_end = text.find("\n", at, end)
        read = row_end = end if row_end == -1 else row_end
        m = _ROW_LABEL.match(text, row, row_end) or _PLAIN_ROW_LABEL.match(text, row, row_end)
        if m is None or not m.start(1) <= at < (m.end() if at in currencies else m.end(1)):  # not in a row's first cell
            continue
        how = _label_units(m.group(1), declared, excepted)
        own = next((c for a, c in currencies.items() if row <= a < m.end()), None)
        if own is not None and not isinstance(how, list):
            how = declared[0], own
        if how is not None:
            found.append((row, row_end, how))
    for m in _COUNTED.finditer(text, start, end):
        row = text.rfind("\n", start, m.start()) + 1 or start
        row_end = text.find("\n", m.start(), end)
        row_end = end if row_end == -1 else row_end
        if _TABLE_ROW.search(text, row, row_end):
            continue
        sentence = next((s for s in _PROSE_SENTENCE.finditer(text, row, row_end) if s.start() <= m.start() < s.end()), None)
        if sentence is not None and sentence.end() > sentence.start():
            found.append((sentence.start(), sentence.end(), None))
    spans: list[tuple[int, int, _SpanReading]] = []
    done = start
    for a, b, how in sorted(found, key=lambda f: f[0]):
        if a < done:
            continue
        spans += [(done, a, declared), (a, b, how)]
        done = b
    return [*spans, (done, end, declared)]


def _unstated_numbers(answer: str, context: str, question: str,
                      reading: tuple[_Reading, _Reading, _Reading]) -> list[str]:
    """The numbers ``answer`` writes in digits that neither ``context`` nor ``question`` states, with their unit: a
    value the passage lacks ("2024-03-04" from a passage of 2024-03-03), or one it holds in another currency or as a
    percentage where the answer says otherwise ("25,000 EUR" from "$25,000", "12%" from "$12"), or in another unit
    of measure ("500 ml" from "500 mg"; "4000 mg" from "4 g" is the same amount). A number the passage states
    without a unit matches any unit, but a currency where it only counts the noun after it ("$18" from "18
    branches": `_counted_only`); the passage's number words count ("five percent" for "5%", "twice" for "2
    times"), the answer's do not (a stray "one" is no figure), nor its list numbering and citation marks. Shown as
    read, e.g. "25000 euro" (a unit in `_UNIT_SHOWN` by its label: "300 \u00a5 (yen or yuan)"). ``reading``: how the
    answer, the passage and the question are each read (`_Reading`)."""
    held = _passage_numbers(context, reading[1]) + stated_numbers(question, reading=reading[2])
    held += [(value, other) for value, unit in held if unit is not None
             for other in _CURRENCY_FAMILIES.get(unit, {_FAMILY_OF[unit]} if unit in _FAMILY_OF else ())]
    units_of: dict[str, set[str | None]] = {}
    for value, unit in held:
        units_of.setdefault(value, set()).add(unit)
    amounts = {_amount(value, unit) for value, unit in held if unit is not None}
    missing = []
    said: dict[tuple[str, str], bool] = {}
    counts: list[re.Match[str] | None] = []  # the passage's counts (`_COUNT_OF`), found once, if needed
    counted: dict[str, bool] = {}

    def loose(value: str, unit: str | None, units: set[str | None]) -> bool:  # a bare figure stating ``unit`` too
        if None not in units:
            return False
        if unit is None or not (unit.split("/")[0] in _CURRENCIES or unit.startswith("declared ")):
            return True
        if not counts:
            counts.extend(list(_COUNT_OF.finditer(context)) or [None])
        if value not in counted:
            counted[value] = _counted_only(value, context, counts, held, reading[1])
        return not counted[value]

    def named(value: str, unit: str | None, periods: tuple[str, ...]) -> bool:  # `_periods_named`, once, if needed
        if not periods or unit is None:  # no period added (the periods are the unit's)
            return True
        if (value, unit) not in said:
            said[(value, unit)] = _periods_named(context, value, unit, periods, reading[1])
        return said[(value, unit)]

    dates_missing, dates_held = _dates_against(answer, f"{context}\n{question}")
    rest = _plain_digits(answer)
    for written in [*dates_held, *(d.removeprefix("date ") for d in dates_missing)]:
        rest = rest.replace(written, " ")  # a date held or missing is one figure: its day is no count of its own
    for value, unit in dict.fromkeys(stated_numbers(_LIST_MARKER.sub(" ", rest), number_words=False, reading=reading[0])):
        units = units_of.get(value)
        if unit == "#year":
            unit = None  # the answer's year is read as a bare number ("in 2023" from "USD (2023)")
        if unit is not None and _amount(value, unit) in amounts:
            continue
        # a period the answer gives a figure the passage states without it ("$999 per month" from "a one-off fee of
        # $999", "0.5% per annum" from "0.5% per trade"): stated only where a sentence of the passage that states the
        # figure names that period ("56 hrs per week" from "Weekly driving is capped at 56 hours", "$95 per year" from
        # "The annual fee of $95"; `_periods_named`)
        periods = tuple(p for p in unit.split("/")[1:] if p in _RATE_PERIODS) if unit is not None else ()
        head = unit.split("/")[0] if unit is not None and "/" in unit else None  # "56 hours per week" from "56 hours"
        if head is not None and ((units is not None and head in units) or _amount(value, head) in amounts) and named(value, unit, periods):
            continue
        if unit is not None and "/" not in unit and units is not None and unit in {_PER_TIME.sub("", u or "") for u in units}:
            continue  # "an annual fee of $95" from "$95 per year": the period said elsewhere (not "10 mg" from "10 mg/kg")
        bare = _PER_TIME.sub("", unit) if unit is not None else None
        if bare != unit and units is not None and (bare in units or _amount(value, bare) in amounts) and named(value, unit, periods):
            continue  # "1.6 mcg/kg/day" from "1.6 micrograms per kilogram of body weight per day": a period added
        if units is None or (unit is not None and unit not in units and not loose(value, unit, units)) or (
                unit is None and units <= _REFERENCE_UNITS) or (  # a bare 12 from "Note 12" alone
                unit is not None and unit not in units and not named(value, unit, periods)):  # "$999 per month" from a bare "999"
            missing.append(_shown(value, unit))
    return missing + dates_missing


def _counted_only(value: str, context: str, counts: list[re.Match[str] | None], held: list[tuple[str, str | None]],
                  reading: _Reading) -> bool:
    """Whether the passage ``context`` states ``value`` bare (no unit) only as a count of the noun after it
    (``counts``: its `_COUNT_OF` matches, "18 branches", "1.5 million customers", in a sentence read as English:
    `_in_english`), and bare nowhere else (``held``: the figures the passage and the question state): such a figure
    states no amount of money ("$18" is held), while a bare one that counts nothing ("Fee: 25") states any amount,
    as before, and one the passage gives a currency, or declares one for ("Fees (USD)", "Price ($)"), that amount."""
    digits = _significant(value)
    found = 0
    for m in counts:
        if m is None or re.sub(r"\D", "", m.group(0)).strip("0") != digits:  # (read only where its digits may be the figure's)
            continue
        said = stated_numbers(m.group(0), number_words=False, reading=reading)
        # the word after it is no unit or scale, and an English noun ("25 pro Monat", "25 al mes" count nothing)
        found += len(said) == 1 and said[0] == (value, None) and _in_english(context, m.start(), m.end())
    return found > 0 and found >= sum(1 for v, unit in held if v == value and unit is None)


def _in_english(text: str, start: int, end: int) -> bool:
    """Whether the sentence of ``text`` around ``text[start:end]`` (200 characters either side at most) reads as
    English: it holds a word of `_ENGLISH_ONLY` (the stop lists' English holds "la", "de", "es" and "al", so "La
    tarifa es de 25 al mes." read as English) and reads as English (:func:`hguard._text.language_of`)."""
    left = max(0, start - 200, *(text.rfind(c, max(0, start - 200), start) + 1 for c in ".!?;\n"))
    right = min([len(text), end + 200, *(i for i in (text.find(c, end, end + 200) for c in ".!?;\n") if i != -1)])
    words = words_of(text[left:right])
    return not _ENGLISH_ONLY.isdisjoint(words) and language_of(words) == "english"


# English function words that German, French, Spanish, Italian, Portuguese and Dutch do not write as theirs (not "a",
# "an", "in", "on", "or", "of", "is", "was", "will"), one of which a sentence holds to be read as English by
# `_in_english` (with :func:`hguard._text.language_of` reading it so too)
_ENGLISH_ONLY = frozenset("the and are were be been has have had does did can may must would could should not it its "
                          "this that these those there their they our we you your with which who by from to at than each "
                          "every".split())


# the words that name a rate's period or basis in a passage's sentence (`_periods_named`): "monthly", "a 12-month
# term", "per annum", "p.a.", "APR", "3,5 Prozent pro Jahr", "Jahresgebühr" (`_PERIOD_WORDS`; a letter alone, "5 h",
# names none); another language's unit only where it says a rate, after a rate word of its language or an "every"
# ("5 Euro pro Stunde", "20 euros par heure", "por hora", "al giorno", "all'ora", "€/Tag", "tous les ans", "jedes
# Jahr"): alone it is as often a duration ("dure 3 ans", "für 2 Stunden", "90 Minuten", "enfants de 5 ans") or a name
# ("Heure Bleue", "Stunden Café", "ANS 12"), which would name the period an answer invented. German's "Tag" with its
# capital only ("per tag": a label's price); not Italian "ore" ("per ore": for hours)
_RATE_WORD_BEFORE = (r"(?:(?<![\w-])(?:pro|je|par|por|per|al|tous\s+les|toutes\s+les|chaque|jede[nrs]?|cada|ogni|elke"
                     r"|iedere?)\s+|(?<![\w-])(?:all|[a\u00e0]\s+l)['\u2019]\s*|/\s*)")


def _period_name(words: _PeriodWords) -> re.Pattern[str]:
    """The pattern of a period's words naming it in a passage's sentence (`_PERIOD_NAMES`)."""
    named = r"(?<![\w-])(?:" + "|".join((*(re.escape(w) for w in (*words.units(), *words.adverbs) if len(w) > 1),
                                          *filter(None, [words.named]))) + r")(?![\w-])"
    rates = ["(?-i:Tag)" if w == "tag" else re.escape(w) for w in words.other_units if w != "ore"]
    if rates:
        named += r"|" + _RATE_WORD_BEFORE + r"(?:" + "|".join(rates) + r")(?![\w-])"
    return re.compile(r"(?i)" + named)


_PERIOD_NAMES = {period: _period_name(words) for period, words in _PERIOD_WORDS.items()}
# a day named as its hours, for an amount's period ("4 g per day" from "no more than 4 g in 24 hours", "4 g in any
# 24-hour period"): a limit's "in 24 hours" or "per", "every", "in any" 24 hours; not a deadline's ("a $350 copay,
# waived if admitted within 24 hours" says no "$350/day"), nor for a figure in hours or days itself ("24 hours a day"
# is not said by "every 24 hours")
_TWENTY_FOUR_HOURS = r"(?:24|twenty[\s-]four)[\s-]*(?:hours?|hrs?|h)(?![\w-])"
_DAY_AS_HOURS = re.compile(r"(?i)(?<![\w-])(?:(?:per|every|each)\s+|(?:in|over|during)\s+(?:any|a|one|each|every)\s+)"
                           + _TWENTY_FOUR_HOURS + r"|(?<![\w-])(?:exceed\w*|more\s+than|maximum|max|up\s+to|at\s+most|limit\w*)"
                           r"(?![\w-]).*?(?<![\w-])(?:in|over)\s+" + _TWENTY_FOUR_HOURS)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?;])\s+(?=\S)")


def _significant(value: str) -> str:
    """A number's digits without its sign, point and leading or trailing zeros: 12,000,000 and 12 are "12", 0.25 and
    250 "25" (the same figure at another scale or in another unit)."""
    return value.lstrip("-").replace(".", "").strip("0")


def _periods_named(text: str, value: str, unit: str, periods: tuple[str, ...], reading: _Reading) -> bool:
    """Whether a sentence of ``text`` that states the answer's figure, ``value`` in ``unit`` (the same amount in that
    unit, or the same bare number, as written or at a scale the passage declares), names each of ``periods``
    (`_PERIOD_NAMES`); a table's row is read with its block's first line, its header. Read only where an answer gives
    a figure a period the passage does not state with it. Not a figure of another value with the same digits ("$50"
    for "$500", "5 days" for "500 mg") nor of another unit ("a term of 5 years" for "5% per year")."""
    digits = _significant(value)
    want, number = _amount(value, unit.split("/")[0]), Decimal(value)
    duration = want[1] in ("second", "month")  # a figure of hours, days, weeks, months or years

    def names(period: str, piece: str) -> bool:
        return bool(_PERIOD_NAMES[period].search(piece) or (period == "day" and not duration and _DAY_AS_HOURS.search(piece)))

    scales: set[Decimal] | None = None
    blocks = _BLANK_LINES.split(text)
    for block in blocks:
        lines = block.split("\n")
        for line in lines:
            if digits not in re.sub(r"\D", "", line):
                continue
            row = "|" in line or "\t" in line
            for piece in ([f"{lines[0]}\n{line}"] if row else _SENTENCE_BREAK.split(line)):
                if digits not in re.sub(r"\D", "", piece) or not all(names(p, piece) for p in periods):
                    continue
                for v, u in stated_numbers(piece, reading=reading):
                    if _canonical_number(v) is None:
                        continue
                    if u is not None and u != _BARE_ONLY:
                        if _amount(v, u.split("/")[0]) == want:
                            return True
                        continue
                    if scales is None:
                        scales = {Decimal(1), *(scale for _, _, scale, *_ in _declared(text))}
                    if any(Decimal(v) * scale == number for scale in scales):
                        return True
    return False


# ------------------------------------------------------------------- a figure the passage states about something else

# the words a figure comes with, which say nothing of what it is about: its unit, currency, scale, period and their
# qualifiers ("30 days" of a sentence on claiming credits shares "days" with any answer in days)
_FIGURE_WORDS = (*_UNIT_WORDS, *_UNIT_WORDS.values(), *_MEASURE_UNITS, *_SCALES, *_UNIT_SYMBOLS.values(), *_RATE_PERIODS,
                 *_ADVERB_PERIODS, *_QUALIFIERS, "annum", "percentage", "per", "cent", "cents", "basis", "point", "points")


@functools.cache
def _figure_words() -> frozenset[str]:
    """`_FIGURE_WORDS` as `_about` reads words (read once, on the first answer that needs them)."""
    return frozenset(_stem(t) for w in _FIGURE_WORDS for t in content_tokens(str(w)))


def _about(text: str) -> frozenset[str]:
    """What ``text`` is about, as the number hold compares an answer's sentence with a passage's: the stems of its
    content words (:func:`hguard.signals._grounding_lexical.content_tokens`, ``_stem``: "contracts" and "contract"
    alike), less numbers and `_FIGURE_WORDS`."""
    return frozenset(_stem(t) for t in content_tokens(text) if not any(c.isdigit() for c in t)) - _figure_words()


_ROW = re.compile(r"[|\t]")  # a table's row (as `_periods_named` reads one)
_BLANKED = re.compile(r"[^\n|\t]")  # what blanking a piece of a passage removes: a row's cells stay cells


def _statements(context: str) -> list[tuple[int, int, frozenset[str] | None]]:
    """The pieces of ``context`` that state its figures, each as (start, end, what it is about: `_about`): a table's
    row with its header's words (its block's lines down to its first row, which are no statement: None, never
    blanked), and a sentence of prose (:func:`hguard._text.sentences` of each line) with the words of the one before it
    on its line, whose subject it often goes on with ("The agreement lasts 180 days." after "The listing agreement
    sets ..."); a sentence with no content word of its own (a fragment, "2.3, P = 0.003).") is about what the one
    before it is, and None where that is nothing either (what it is about is not known)."""
    out: list[tuple[int, int, frozenset[str] | None]] = []
    for block in re.finditer(r"[^\n]+(?:\n[^\n]*\S[^\n]*)*", context):
        lines = []
        at = block.start()
        for line in block.group(0).split("\n"):
            lines.append((at, line))
            at += len(line) + 1
        first_row = next((k for k, (_, line) in enumerate(lines) if _ROW.search(line)), None)
        header = frozenset().union(*(_about(line) for _, line in lines[:first_row + 1])) if first_row is not None else None
        for k, (start, line) in enumerate(lines):
            if first_row is not None and k <= first_row:
                out.append((start, start + len(line), None))
            elif header is not None and _ROW.search(line):
                out.append((start, start + len(line), _about(line) | header))
            else:
                before: frozenset[str] = frozenset()
                at = 0
                for sentence in sentences(line):
                    at = line.find(sentence, at)
                    own = _about(sentence) or before
                    out.append((start + at, start + at + len(sentence), (own | before) or None))
                    at += len(sentence)
                    before = own
    return out


def misattributed_numbers(answer: str, context: str, question: str = "", *, unstated: list[str] | None = None) -> list[str]:
    """The figures ``answer`` writes in digits that ``context`` states, but only about something else: each is stated
    (:func:`unstated_numbers` lists it not), yet no sentence or table row of the passage that states it
    (`_statements`) shares a content word (`_about`: no number, unit or period) with the answer's sentence holding it
    or with ``question`` (whose words count on the answer's side: "It is 30 days." answers in them), while one that
    shares a word states another figure. "The answer is 30 days." to "How long are customer contracts retained?" from
    passages that say "Customer contracts are retained for seven (7) years" and "Credits must be claimed within 30
    days." is held (a legal team's trial: the wrong figure came from another retrieved passage); "7 years" is not.
    Where no sentence of the passage shares a word with the answer's, the rule does not apply: nothing says what the
    passage states about the answer's subject ("You can borrow up to $35,000." from "Personal loans are available up
    to $35,000."). A passage's declaration of scale or currency ("(in $ millions)") is read wherever it stands. Not
    told apart: two figures of one sentence, or of rows that share the answer's words ("The Gold card's annual fee is
    $0." from "The Standard card has an annual fee of $0. The Gold card has an annual fee of $150."). Named too, where
    sentences that state it do share a word (a finance team's trial, two passages retrieved: each stated figure shared
    "transfer", "overdraft" or "instant" with the answer): a figure that a statement matching the claim's subject
    better outmatches, stating another figure (`_outmatched`: "12:00 CET" to a question on domestic wire transfers,
    the cut-off of transfers in other currencies). Not named: a figure given for a subject no passage writes ("The
    interest rate on a mortgage is 2.1%." from a savings account's "2.1% interest": a known gap), since an answer
    often restates the question's word where its passage words it otherwise ("car loans" from "Auto loans", "cell
    phone" from "mobile phone", "home loan" from "mortgage"). The claim's subject: the question's
    words the answer's sentence restates, or, for an answer of one sentence restating none, the question's. Shown as
    :func:`unstated_numbers` shows them. ``unstated``: what :func:`unstated_numbers` gave for these three texts, where
    the caller has it (for an answer of one sentence it is not read again). Read only for an answer's sentences with
    digits, and against the passage again only where a statement shares no word with them."""
    _check_str(answer, "answer")
    _check_str(context, "context")
    _check_str(question, "question")
    answer = _spelt_figures(answer)  # "thirty dollars" as "30 dollars", as `unstated_numbers` reads it
    if not any(c.isdigit() for c in answer):
        return []
    if _takes_question(answer, question):  # its figures count only where the passage states them (`unstated_numbers`)
        question_states = ""
    else:
        question_states = question
    asked = _about(question)
    statements: list[tuple[int, int, frozenset[str] | None]] | None = None
    declared: list[tuple[int, int]] = []
    out: list[str] = []
    before: frozenset[str] = frozenset()
    said_in = sentences(answer)
    for said in said_in:
        own = _about(said) or before  # "That is 30 days." goes on with the sentence before it
        before = own
        if not any(c.isdigit() for c in said):
            continue
        if statements is None:
            statements = _statements(context)
            declared = [(a, b) for a, b, *_ in _declared(context)] if any(c.isdigit() for c in context) else []
        words = own | asked
        related = any(about & words and any(c.isdigit() for c in context[start:end])
                      for start, end, about in statements if about is not None)
        if not related:
            continue
        found: list[str] = []
        missing = unstated_numbers(said, _kept(context, statements, declared,
                                         {k for k, (_, _, about) in enumerate(statements) if about and about & words}),
                                   question_states) if any(about is not None and not about & words
                                                           for _, _, about in statements) else []
        # the claim's subject: the question's words its sentence restates (all of them for an answer of one sentence
        # restating none: "It is 12:00 CET."); a sentence of several restating none may be about something else
        claim = (own & asked) or (asked if len(said_in) == 1 else frozenset())
        # read alone as against the whole passage (a sentence read apart may read a figure otherwise)
        stated_anyway = unstated if unstated is not None and len(said_in) == 1 else None
        if missing:
            if stated_anyway is None:
                stated_anyway = unstated_numbers(said, context, question_states)
            found += [figure for figure in missing if figure not in stated_anyway]
        if claim:
            found += _outmatched(said, context, statements, declared, claim, own | claim, question_states, stated_anyway)
        out += found
    return list(dict.fromkeys(out))


def _kept(context: str, statements: list[tuple[int, int, frozenset[str] | None]], declared: list[tuple[int, int]],
          keep: set[int]) -> str:
    """``context`` with its statements (`_statements`) blanked but those whose index ``keep`` holds (a header's lines,
    about None, are never blanked), and every declaration of scale or currency kept wherever it stands."""
    parts: list[str] = []
    done = 0
    for k, (start, end, about) in enumerate(statements):
        if about is None or k in keep:
            continue
        parts += [context[done:start], _BLANKED.sub(" ", context[start:end])]
        done = end
    kept = "".join(parts) + context[done:]
    for a, b in declared:  # "(in $ millions)" holds for every row under it, wherever it stands
        kept = kept[:a] + context[a:b] + kept[b:]
    return kept


_DIGIT_RUN = re.compile(r"\d[\d,.]*")  # a number as a statement writes it, for its digits alone

def _contrasted(word: str, about: frozenset[str]) -> bool:
    """Whether a statement about ``about`` names the opposite of ``word`` ("unarranged" of "arranged", "nonresident"
    of "resident"): it is then no statement about ``word``'s subject."""
    return f"un{word}" in about or f"non{word}" in about


def _outmatched(said: str, context: str, statements: list[tuple[int, int, frozenset[str] | None]],
                declared: list[tuple[int, int]], claim: frozenset[str], words: frozenset[str], question_states: str,
                unstated: list[str] | None) -> list[str]:
    """The figures of the answer's sentence ``said`` that the passage states, but only in statements that another
    statement matching the claim better outmatches. Each statement is matched by the words of ``words`` (the answer
    sentence's and the claim's) it shares (what it is about, `_statements`, less a word whose opposite it names and the
    answer's sentence does not: "Unarranged overdrafts ..." is no statement on arranged ones); a figure is named where
    one statement with a figure of its own, not this one, outmatches every statement stating it: it shares a strict
    superset of their words of ``claim`` (the subject) and more of ``words``, and stands in another passage (a block
    apart, as retrieval joins them) or they name the opposite of a claim's word ("The cut-off time for same-day
    domestic wire transfers is 12:00 CET." from "Domestic wire transfers submitted before 16:00 CET ..." and, in
    another passage, "Transfers in other currencies must be submitted before 12:00 CET."; not "... and transfers in
    other currencies by 12:00 CET", whose own words match the latter; nor figures of one passage's sentences, which
    share the words of its one subject unevenly: "Rent is $2150 a month, the security deposit is one month's rent").
    ``unstated``: the sentence's figures the passage does not state (left to :func:`unstated_numbers`; None: read here
    where needed). Statements sharing the same words are not told apart; nor is a figure the question states (it is
    stated wherever the question is read)."""
    gaps = [m.end() for m in _BLANK_LINES.finditer(context)]  # where each passage (a block) after the first starts
    groups: dict[tuple[frozenset[str], int, bool], list[int]] = {}  # (words shared, passage, an opposite named)
    figured: set[tuple[frozenset[str], int, bool]] = set()  # those of statements with a figure of their own
    for k, (start, end, about) in enumerate(statements):
        if about is None:
            continue
        key = words & about
        opposite = any(_contrasted(w, about) and not _contrasted(w, words) for w in key)
        if opposite:
            key = frozenset(w for w in key if not _contrasted(w, about) or _contrasted(w, words))
        group = (key, bisect.bisect_right(gaps, start), opposite)
        groups.setdefault(group, []).append(k)
        if key & claim and any(c.isdigit() for c in context[start:end]):
            figured.add(group)

    def outmatches(b: tuple[frozenset[str], int, bool], f: tuple[frozenset[str], int, bool]) -> bool:
        # within one passage only a statement naming the opposite of the claim's words: a passage's sentences on one
        # subject share its words unevenly ("Rent is $2150 a month, the security deposit is one month's rent")
        return f[0] & claim < b[0] & claim and len(f[0]) < len(b[0]) and (f[1] != b[1] or f[2])

    # only where one statement outmatches another can a figure be outmatched
    if not any(outmatches(b, f) for b in figured for f in groups):
        return []
    figures = unstated_numbers(said, "", question_states)  # each figure of the sentence (the question's aside)

    # a statement outmatching others, and the figures it may not state: no number it writes has their digits (at any
    # scale, `_significant`, where the passage declares one; read again below: a long table's rows, which state the
    # answer's figure, are not read apart)
    def digits(number: str) -> str:
        return _significant(re.sub(r"\D", "", number)) if declared else re.sub(r"\D", "", number).lstrip("0")

    beaters = []
    for b in figured:
        if any(outmatches(b, f) for f in groups):
            written = {digits(n) for k in groups[b] for n in _DIGIT_RUN.findall(context[statements[k][0]:statements[k][1]])}
            if apart := [f for f in figures if digits(f) not in written]:
                beaters.append((b, apart))
    if not beaters:
        return []
    if unstated is None:
        unstated = unstated_numbers(said, context, question_states)

    def missing(kept: list[int]) -> set[str]:  # the sentence's figures these statements alone do not state
        return set(unstated_numbers(said, _kept(context, statements, declared, set(kept)), question_states))

    out: list[str] = []
    for b, apart in beaters:
        if not (apart := [f for f in apart if f not in unstated and f not in out]):
            continue
        apart = [f for f in apart if f in missing(groups[b])]
        others = [k for g, ks in groups.items() if g != b and not outmatches(b, g) for k in ks]
        if apart and others:  # every statement that it does not outmatch states no such figure either
            apart = [f for f in apart if f in missing(others)]
        outmatched = [k for g, ks in groups.items() if outmatches(b, g) for k in ks]
        if apart:  # ... and those it outmatches state it, as read apart
            stated = missing(outmatched)
            out += [f for f in apart if f not in stated]
    return out


def _shown(value: str, unit: str | None) -> str:
    """A figure as a reason shows it: "25000 euro", "300 \u00a5 (yen or yuan)/month" (`_UNIT_SHOWN`), "note 12", a
    year as its number."""
    if unit is None or unit == "#year":
        return value
    if unit == "#half":
        return f"H{value}"
    if unit == "#clock":  # "9.3" is 9:30
        hour, _, minutes = value.partition(".")
        return f"{hour}:{(minutes + '00')[:2]}"
    if unit in _REFERENCE_UNITS:
        return f"{unit[1:]} {value}"
    return f"{value} {'/'.join(_UNIT_SHOWN.get(u, u) for u in unit.split('/'))}"


# "-0.5%", "-$200", "\u20133.2%" (an en dash a word processor made of a minus; a figure dash or a small hyphen-minus
# likewise); not "2-5" or "2\u20134" (ranges, read before), nor an em dash ("\u201412 patients improved" is a list's
# bullet, "Dose: \u20145 mg" a dash)
_SIGN = re.compile(r"(?:^|(?<=[\s(]))[" + _MINUS_SIGNS + r"](?=[$\u20ac\u00a3\u00a5\u20b9]?\d)")
# a minus written after its currency sign, as spreadsheets export it ("$-1,250", "\u20ac-3.5 million", "$ -40"): put
# before the sign, where `_SIGN` reads it (not after a prefix's letters, "US$-1,250", which `_CURRENCY_PREFIX` writes
# "USD -1,250")
_SIGN_AFTER_CURRENCY = re.compile(r"(?<![^\W\d_])([$\u20ac\u00a3\u00a5\u20b9])[ \t]?([" + _MINUS_SIGNS + r"])(?=\d)")
# accounting notation: an amount in parentheses is negative. On its currency ("$(1,250)", "US$(1,250)", "EUR
# (1,250)", "Rs (1,250)", "$(1.2 million)"), always; with its unit after the parentheses ("(1,250) dollars",
# "(3.2)%"), unless a number comes before them ("fifty (50) dollars" writes one amount twice); "($1,250)" where it
# stands as the figure itself (at a line's start, after a colon, "=", a table's "|" or a tab, or after a verb such as
# "was" or "returned"), not where it restates one ("one month's rent ($2,150)", "equal to ($2,150)"); "(3.2%)" only
# after a verb of finance ("returned", "fell") or a verb after a finance noun ("the return was (3.2%)"), never in a
# table or after a colon ("| 12 | (8%) |", "Nausea: (8%) of patients": a share restated). Where "loss" or "deficit"
# is the figure's own noun, right before it, its currency or its verb, the sign is said already: "a net loss of
# ($1,250)", "Net loss was $(1,250)" and "Net loss: USD (1,250)" are a loss of $1,250 (not "Operating income (loss)
# was ($1,250)"). A year or a heading's parentheses after a code written apart are no amount ("USD (2022): 65,000");
# after a sign written on them they are ("Net result: $(2020)"). A bare amount, with no currency or unit ("(1,250)"),
# is a minus only where it is plainly a statement's figure, a cell or a value of its own. With a thousands separator
# or decimals ("(1,250)", "(3.5)"): after a table's "|", a tab, a comma, a colon or "=", or alone on its line, and
# ended there (a "|", ",", ";", tab, line break or full stop after it: "| Net income | (1,250) |", "Net
# income\t(1,250)", "Cash flow from operations: (1,250)"); or after a verb, as "($1,250)" is ("was (1,250) thousand";
# not after "of", "at", "to" or "by": "a total of (1,250) units"). A whole number ("(1250)", "(3)") only as a table's
# cell, after "|", a tab or a comma with no space ("Net income,(1250)": CSV) and ended there, and never a year ("| FY
# | (2019) |"). Prose parentheses stay as written: a year or a note's number after a word ("(2019)", "see note (3)"),
# a list's marker before its text ("(1) Apply ...", "Steps: (1), (2)": a comma and a space), a count restated ("is
# (30) days"). "Net loss | (1,250)" and "Net loss,(1250)" are a loss of 1,250, as "Net loss: (1,250)" is. Each "(" is
# decided from a bounded window of the text before it, so reading is linear in the text's length (a run of blank
# lines or tabs was quadratic).
_ACCOUNTING_AFTER = frozenset({"was", "were", "is", "are", "be", "been", "of", "at", "to", "by", "returned", "reported",
                               "posted", "recorded", "showed", "yielded", "totalled", "totaled", "changed", "grew",
                               "fell"})
_RESTATED_TO = frozenset({"equal", "equals", "equivalent", "amounting", "up", "close", "compared", "relative", "similar"})
_RATE_VERBS = frozenset({"returned", "yielded", "grew", "fell", "changed", "declined", "rose", "dropped", "gained",
                         "posted", "recorded", "totalled", "totaled"})
_FINANCE_NOUN = re.compile(r"(?i)\b(?:returns?|yields?|growth|change|margins?|income|revenues?|profits?|earnings|ebitda"
                           r"|performance|sales|eps|results?)\b")
# the sign said by the noun the figure belongs to, right before it or its verb ("Net loss was", "a loss of", "Deficit:";
# not "Operating income (loss) was", "Profit/(loss) for the year:", "Despite the loss of a client, net income was")
_SIGN_SAID = re.compile(r"(?i)(?<![(/])\b(?:loss|losses|deficits?|shortfalls?)(?:\s+(?:" + "|".join(sorted(_ACCOUNTING_AFTER))
                        + r"))?\s*[:=|,]?$")
_ACCOUNTING_PAREN = re.compile(r"(?i)\(\s?(?P<cur>[$\u20ac\u00a3\u00a5\u20b9]\s?)?(?P<num>\d[\d.,]*(?:\s?(?:thousand|million"
                               r"|billion|bn|mn|mln)\b)?)(?P<pct>\s?%)?\s?\)(?P<unit>\s?%|[ \t](?:" + _CURRENCY_NAME
                               + r")(?![^\W\d_]))?")
_ACCOUNTING_CURRENCY = re.compile(r"(?:[$\u20ac\u00a3\u00a5\u20b9]|\b(?i:US|HK|NZ|AU|CA|MX|NT|C|A|S|R)\$|\b(?:"
                                  + "|".join(c.upper() for c in _CURRENCY_CODES) + r"|Rs\.?))[ \t]?$")
_NUMBER_WORDS = frozenset((*_UNITS, *_TENS, "hundred", *_SCALES))
_YEAR = re.compile(r"(?:19|20)\d\d")
_CELL_END = re.compile(r"[ \u00a0]*(?:[|,;\t\r\n]|\.?$|\.\s)")  # a cell's or a value's end after it


# A bare "(3)" or "(2.5)" is a minus only beside a financial cue: its own thousands separator ("(1,250)"), a currency
# sign or code, or a statement's row label ("net income", "loss", "cash flow", "total", "balance", ...) in its line,
# in its table's header (the first line of its block, however far above) or in a caption one blank line above it;
# never one of a list of parenthesised references ("Sections: (1.1), (1.2)") nor a list's marker opening a line
# ("\t(1)\tThe tenant shall ..."). A review: "Supported version: (2.5)", CSV "Widget,(3)", a statute's "(1)" and a
# list of sections were read as minus signs. A second review: the header was read from 400 characters before the
# number only, so a long table's lower rows lost it ("(215)" read as 215), and a caption above a blank line was not read.
_STATEMENT_LABEL = re.compile(
    r"(?i)\b(?:net|income|loss(?:es)?|profits?|revenues?|sales|earnings|ebit(?:da)?|expenses?|costs?|cash|flows?"
    r"|totals?|balances?|assets?|liabilit(?:y|ies)|equity|deficits?|surplus|margins?|operating|tax(?:es)?"
    r"|depreciation|amorti[sz]ation|dividends?|gains?|adjustments?|amounts?|thousands|millions|budget|variance"
    r"|p&l|pnl|debits?|credits?|proceeds|payments?|receivables?|payables?|other\s+items|write-?offs?)\b")
_FINANCE_MARK = re.compile(r"[$\u20ac\u00a3\u00a5\u20b9]|\b(?:" + "|".join(c.upper() for c in _CURRENCY_CODES) + r")\b")
_THOUSANDS = re.compile(r"\d,\d{3}(?!\d)")
_PAREN_LIST_AFTER = re.compile(r"[ \t]*,[ \t]+(?:and[ \t]+|or[ \t]+)?\(\s?\d|[ \t]+(?:and|or)[ \t]+\(\s?\d")
_PAREN_LIST_BEFORE = re.compile(r"\d\s?\)[ \t]*(?:,[ \t]+|[ \t]+(?:and|or)[ \t]+|,[ \t]+(?:and|or)[ \t]+)$")
_LINE_START = re.compile(r"(?:^|\n)[ \t]*$")  # only blanks before it on its line
_MARKER_AFTER = re.compile(r"[ \t]*[^\W\d_]")  # text after it on its line: a list's marker


_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n)+")  # a run of blank lines: where a block (a table, a paragraph) ends


def _financial_cue(text: str, m: re.Match, gaps: list[re.Match], gap_ends: list[int]) -> bool:
    """Whether the bare parenthesised number ``m`` of ``text`` has a financial cue (see `_STATEMENT_LABEL`): in its line,
    in the first line of its block (a table's header, however far down the table it stands) or in a caption just above
    that block across one blank line ("Table 3: Net income by segment (USD thousands)"). ``gaps`` are the runs of blank
    lines of ``text`` (`_BLANK_LINES`) and ``gap_ends`` their ends, found once, so that each number's block is found by
    bisection and reading stays linear in the text's length."""
    if _THOUSANDS.search(m.group("num")):
        return True
    window = text[max(0, m.start() - 400):m.start()]
    line_end = text.find("\n", m.end(), m.end() + 200)
    line = window[window.rfind("\n") + 1:] + text[m.start():line_end if line_end >= 0 else m.end() + 200]
    k = bisect.bisect_right(gap_ends, m.start()) - 1
    start = gaps[k].end() if k >= 0 else 0
    first_end = text.find("\n", start, min(m.start(), start + 400))
    cues = [line]
    if first_end >= 0:  # its line is not its block's first: that first line is its header
        cues.append(text[start:first_end])
        if k >= 0 and gaps[k].group(0).count("\n") == 2:  # one blank line between it and a caption above
            above = text[max(0, gaps[k].start() - 200):gaps[k].start()]
            caption = above[above.rfind("\n") + 1:]
            if ("\n" in above or gaps[k].start() <= 200) and not re.search(r"[|\t]", caption):
                cues.append(caption)  # a caption is one short line, no table's row
    return any(_FINANCE_MARK.search(x) or _STATEMENT_LABEL.search(x) for x in cues)


def _accounting(text: str) -> str:
    """``text`` with the amounts accounting notation writes in parentheses as negative ("$(1,250)" is "minus $1,250"):
    see `_ACCOUNTING_PAREN` above for where parentheses are read so."""
    out: list[str] = []
    done = 0
    gaps: list[re.Match] | None = None
    gap_ends: list[int] = []
    for m in _ACCOUNTING_PAREN.finditer(text):
        window = text[max(0, m.start() - 80):m.start()]
        clause = re.split(r"[.;!?\n](?:\s|$)|\|", window)[-1]
        before = window.rstrip(" \u00a0")
        words = re.findall(r"\w+", before[-40:])
        last = words[-1].lower() if words and re.search(r"\w$", before) else ""
        after_number = bool(last) and (last[-1].isdigit() or last in _NUMBER_WORDS)
        # the figure's verb ("was ($1,250)"; not a restatement, "equal to ($2,150)")
        verb = last in _ACCOUNTING_AFTER and not (last == "to" and len(words) > 1 and words[-2].lower() in _RESTATED_TO)
        currency = _ACCOUNTING_CURRENCY.search(window) if m.group("cur") is None else None
        start = m.start()
        if currency is not None and m.group("pct") is None and m.group("unit") is None:
            apart = currency.group(0)[-1] in " \t"  # "USD (2022)", not "$(2020)"
            if apart and (_YEAR.fullmatch(m.group("num")) or re.match(r"[ \t]{0,3}:", text[m.end():m.end() + 4])):
                continue  # "USD (2022): 65,000": a year, or a heading's parentheses
            if _SIGN_SAID.search(window[:currency.start()].rstrip(" \u00a0")):
                continue  # "Net loss was $(1,250)": a loss of $1,250
            start -= len(currency.group(0))  # "US$(1,250)": its currency, then the amount
            if start < done:
                continue
            prefix = currency.group(0)
        elif _SIGN_SAID.search(before):
            continue  # "net loss was ($1,250)": a loss of $1,250 ("$(1,250)" is read so wherever it stands)
        elif m.group("cur") is None and m.group("pct") is None and m.group("unit") is not None:
            if after_number:  # "fifty (50) dollars"
                continue
            prefix = ""
        elif m.group("cur") is not None and m.group("pct") is None:
            if not (not before or before[-1] in ":|=\t\n" or verb):
                continue
            prefix = ""
        elif m.group("cur") is None and m.group("pct") is not None and m.group("unit") is None:
            if not (last in _RATE_VERBS or (last in _ACCOUNTING_AFTER and _FINANCE_NOUN.search(clause))):
                continue
            prefix = ""
        elif m.group("cur") is None and m.group("pct") is None:  # a bare "(1,250)": a cell or a value of its own
            if gaps is None:
                gaps = list(_BLANK_LINES.finditer(text))
                gap_ends = [g.end() for g in gaps]
            if not _financial_cue(text, m, gaps, gap_ends) or _PAREN_LIST_AFTER.match(text, m.end()) or _PAREN_LIST_BEFORE.search(window) \
                    or (_LINE_START.search(window) and _MARKER_AFTER.match(text, m.end())):
                continue  # "Sections: (1.1), (1.2)", "\t(1)\tThe tenant shall ...", "version: (2.5)", "Widget,(3)"
            ends = _CELL_END.match(text, m.end()) is not None
            if re.search(r"[.,]\d", m.group("num")):
                cell = ends and (not before or before[-1] in ":|=\t\n,")
                if not (cell or (verb and last not in ("of", "at", "to", "by"))):
                    continue
            elif not ends or _YEAR.fullmatch(m.group("num")) or not (before[-1:] in ("|", "\t")
                                                                   or text[m.start() - 1:m.start()] == ","):
                continue
            prefix = ""
        else:
            continue
        out += [text[done:start], " minus ", prefix, m.group("cur") or "", m.group("num"), m.group("pct") or "",
                m.group("unit") or "", " "]
        done = m.end()
    return "".join(out) + text[done:] if out else text


# a scale written on its number: "5k", "2bn"; "9.5m" (and "mn", "mln") only beside a currency, since "5m" may be metres
_SUFFIX_SCALES = {"k": 10**3, "m": 10**6, **{w: _SCALES[w] for w in ("mn", "mln", "bn")}}
_MONEY_ONLY = frozenset({"m", "mn", "mln"})
_SUFFIXED = re.compile(r"(\d+(?:\.\d+)?)(" + "|".join(sorted(_SUFFIX_SCALES, key=len, reverse=True)) + ")")
_BARE_DECIMAL = re.compile(r"(?<![\w.])\.(?=\d)")  # ".5%" is 0.5%, not 5%
_ORDINAL = re.compile(r"(\d+)(?:st|nd|rd|th)")  # "3rd" is 3
_CODE_ON_NUMBER = re.compile(r"(?i)\b(" + "|".join(_CURRENCY_CODES) + r"|rs\.)(?=\d)")  # "USD1,500", "Rs.500"


# A currency before its number is moved after it ("USD 500", "Rs 500", "$500"). A name spelled out stays with a
# number written before it ("50 dollars 10 years ago" is $50, not $10) unless ",", ":" or ";" stands between ("In
# 2023, dollars 5 million") or that number is a year ("In 2023 dollars 5 million"), and is given to the number after
# it too (which of the two it belongs to is not known: "Plan B 2 euros 5 per month", "Items 1, 2 and 3 dollars 5
# each" left 5 bare, matching any currency); a code or "Rs" always goes with the number after it ("In 2023 USD 5
# million", "Option 2: USD 500", "Item 3 USD 5"). A word never written before its number ("50 cents 10 years ago")
# is never moved, nor the sign "¢"; "€" written after a number and apart from the next ("12 € 2024", "children under
# 12 € 5") is given to both, unless the first is a year ("In 2023 € 5 million"); any other sign is moved wherever
# ("In 2023 $5 million").
_AFTER_ITS_NUMBER = frozenset({"cent", "cents", "penny", "pence", "pennies", "peso", "pesos", "franc", "francs",
                               "bitcoin", "bitcoins", "centavo", "centavos"})
_NAMED_AFTER = frozenset(normalize(w) for w in (
    "dollar dollars euro euros pound pounds yen rupee rupees yuan renminbi zloty zlotys zlotych złoty złotych forint "
    "forints krona kronor krone kroner lei leu lev leva lira liras lire hryvnia hryvnias hryvnya rouble roubles ruble "
    "rubles shekel shekels baht reais ευρω يورو евро рублей рубля рубль").split())
_SIGN_WORD = "currencysignword"
_SIGN_AFTER_WORD = "currencysignafterword"  # "¢", or "€" after its number ("12 € 2024")
_BREAK_WORD = "clausebreakword"
_CLAUSE_BREAK = re.compile(r"(?=[,;:]\s*[^\d\s])")  # a comma, colon or semicolon before a word or a sign


def _sign_word(text: str, m: re.Match[str]) -> str:
    """The word that stands for the currency sign ``m`` in ``text`` in `_tokens`'s list of signs."""
    before = text[max(0, m.start() - 6):m.start()]
    after = m.group(0) == "\u00a2" or (m.group(0) == "\u20ac" and not text[m.end():m.end() + 1].isdigit()
                                        and re.search(r"\d\s?$", before) is not None
                                        and re.search(r"(?<![\d.,])(?:19|20)\d\d\s?$", before) is None)
    return f" {_SIGN_AFTER_WORD if after else _SIGN_WORD} "


def _breaks(marked: list[str], n: int) -> list[bool]:
    """For each of ``n`` words, whether `_BREAK_WORD` stood before it in ``marked`` (the same words with it put in
    where a comma, colon or semicolon stood); each True where the words are not the same (a break assumed)."""
    out: list[bool] = []
    pending = False
    for w in marked:
        if w == _BREAK_WORD:
            pending = True
        else:
            out.append(pending)
            pending = False
    return out if len(out) == n else [True] * n


def _is_number_word(word: str) -> bool:
    """Whether ``word`` (a normalised word) is a number: in digits, or a number or scale word ("fifty", "million")."""
    return any(c.isdigit() for c in word) or word in _NUMBER_WORDS


# a scale's letters between a number and its currency sign or code: "3 M\u20ac", "500 k\u20ac", "1,5 Mrd. \u20ac", "2 Md\u20ac"
# (the metre's "M" before: "3 M\u20ac" read 3 metres)
_SCALE_LETTERS = {"k": "thousand", "K": "thousand", "M": "million", "MM": "million", "Mio": "million", "Mn": "million",
                  "Md": "billion", "Mds": "billion", "Mrd": "billion", "Bn": "billion"}
_SCALE_ON_SIGN = re.compile(r"(?<=\d)[ \u00a0]?(" + "|".join(sorted(_SCALE_LETTERS, key=len, reverse=True))
                            + r")\.?[ \u00a0]?(?=[\u20ac$\u00a3\u00a5\u20b9]|(?:EUR|USD|GBP|CHF|JPY)\b)")


# a thousand millions written as two scale words, next to each other: "5 mil millones", "5 mil milhões", "5 thousand
# million" are 5 * 10**9 (read as 5,000 or 5 * 10**12 before; scale words apart, "3 thousand. Millions of ...", are
# two figures' own)
_THOUSAND_MILLION = re.compile(r"(?i)\b(?:mil|thousand)[ \u00a0]+(?:millones|milhões|milhoes|million|millions)\b")


def _tokens(text: str, number_words: bool = True, reading: _Reading = _ENGLISH, figures: bool = False) -> list[str]:
    """Normalised words with numbers (digits or words) rewritten to one canonical digit form, with their sign
    ("-0.5%" is not "0.5%") and their scale word ("$5 million" is 5000000, not 5), and units (`_UNIT_WORDS`) to one
    word after their number ("$5,000", "5,000 dollars" and "USD 5 thousand" all read "5000 dollar"). ``figures``: a
    label's number is followed by its unit word (`_labelled`; the number hold's reading, not the judge's)."""
    text = _SCALE_ON_SIGN.sub(lambda m: f" {_SCALE_LETTERS[m.group(1).rstrip('.')]} ", _plain_digits(text))
    text = _THOUSAND_MILLION.sub(" milliard ", text)
    text = _SIGN_AFTER_CURRENCY.sub(r"\2\1", _accounting(_decimal_commas(text, reading)))
    text = _written_numbers(text, number_words, figures)
    text = _CODE_ON_NUMBER.sub(r"\1 ", _BARE_DECIMAL.sub("0.", _SIGN.sub(" minus ", text)))
    text = _GLUED_UNIT.sub(r"\1 \2", text)
    named = _UNIT_SYMBOL.sub(lambda m: f" {_UNIT_SYMBOLS[m.group(0)]} ", text)
    written = normalize(named).split()
    # which words were currency signs ("$", not "dollars"), in the same words (a sign is one word either way), and
    # which came after a comma, colon or semicolon (where these words are not the same, none is read as such)
    signs = normalize(_UNIT_SYMBOL.sub(lambda m: _sign_word(text, m), text)).split()
    # (a scale word between counts as its number's: "5 тыс. руб.", "2 mln zł")
    words = [w if w in _BY_A_NUMBER and not any(c.isdigit() for c in (
        written[i - 2] if i > 1 and written[i - 1] in _SCALES else written[i - 1] if i else "") + "".join(written[i + 1:i + 2]))
             else _UNIT_WORDS.get(w, w) for i, w in enumerate(written)]
    broken = _breaks(normalize(_CLAUSE_BREAK.sub(" " + _BREAK_WORD + " ", named)).split(), len(words))
    i = 0
    both: set[int] = set()  # a currency between two numbers: after these (the second) too
    while i < len(words) - 1:  # a currency before its number goes after it
        if words[i] in _CURRENCIES and any(c.isdigit() for c in words[i + 1]):
            sign = signs[i] if len(signs) == len(words) and signs[i] in (_SIGN_WORD, _SIGN_AFTER_WORD) else None
            after_number = i > 0 and _is_number_word(words[i - 1]) and not broken[i] and not _YEAR.fullmatch(words[i - 1])
            if sign is not None:
                between = sign == _SIGN_AFTER_WORD and written[i] != "cent" and after_number
                stays = sign == _SIGN_AFTER_WORD and (written[i] == "cent" or after_number)
            else:
                between = written[i] in _NAMED_AFTER and after_number
                stays = written[i] in _AFTER_ITS_NUMBER or between
            if between and not (i + 2 < len(words) and len(words[i + 2]) > 1 and words[i + 2] in _MEASURE_UNITS):
                both.add(i + 1)  # (not to a number with a unit of its own: "50 dollars 10 years ago")
            if not stays:
                words[i], words[i + 1] = words[i + 1], words[i]
                i += 1
        i += 1
    if both:
        words = [u for k, w in enumerate(words) for u in ((w, words[k - 1]) if k in both else (w,))]
    out: list[str] = []
    i = 0
    while i < len(words):
        parsed = _number_words(words, i) if number_words else None
        if parsed is not None:
            half = words[parsed[1]:parsed[1] + 2] == ["and", "half"]  # "one and a half" ("a" is gone by now)
            out.append(str(parsed[0] + 0.5) if half else str(parsed[0]))
            i = parsed[1] + (2 if half else 0)
            continue
        if number_words and words[i] in _TIMES_WORDS:  # "twice daily": 2 times
            out += [_TIMES_WORDS[words[i]], "times"]
            i += 1
            continue
        if number_words and words[i] == "half" and (i + 1 == len(words) or _canonical_number(words[i + 1]) is None):
            out.append("0.5")  # "half a tablet" (not "half 2", which is no amount)
            i += 1
            continue
        ordinal = _ORDINAL.fullmatch(words[i])
        num = _canonical_number(ordinal.group(1) if ordinal else words[i])
        if num is not None:
            out.append(num)
            i += 1
            continue
        # Runs of single letters are initials: "J. R. R. Tolkien" and "J.R.R. Tolkien" must agree.
        j = i
        while j < len(words) and len(words[j]) == 1 and words[j].isalpha():
            j += 1
        if j - i >= 2:
            out.append("".join(words[i:j]))
            i = j
            continue
        out.append(words[i])
        i += 1
    return _scaled(out, reading)


def _scale(word: str, reading: _Reading) -> int:
    """The scale ``word`` (one of `_SCALES`) stands for, as ``reading`` reads it."""
    return reading.mil if word == "mil" else reading.billion if word in ("billion", "billions") else _SCALES[word]


def _scaled(tokens: list[str], reading: _Reading = _ENGLISH) -> list[str]:
    """``tokens`` with a number's sign ("minus") and scale word (after it, or after its unit) folded into it."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        m = _SUFFIXED.fullmatch(t)
        money = i + 1 < len(tokens) and tokens[i + 1] in _CURRENCIES
        if m and (m.group(2) not in _MONEY_ONLY or money):
            t = format((Decimal(m.group(1)) * _SUFFIX_SCALES[m.group(2)]).normalize(), "f")
        if t == "minus" and i + 1 < len(tokens) and _canonical_number(tokens[i + 1]) is not None:
            i += 1
            t = format((-Decimal(tokens[i])).normalize(), "f")
        if _canonical_number(t) is not None:
            unit = tokens[i + 1] if i + 1 < len(tokens) and tokens[i + 1] in _MEASURES else None
            at = i + 2 if unit else i + 1
            if at < len(tokens) and tokens[at] in _SCALES:
                t = format((Decimal(t) * _scale(tokens[at], reading)).normalize(), "f")
                out += [t, unit] if unit else [t]
                i = at + 1
                continue
        out.append(t)
        i += 1
    return out


# Patterns run on normalize()d text: lower case, no apostrophes ("dont", "im"), no articles.
# Two kinds, because they mean different things on a question about a real entity:
# - abstaining ("I don't know"): the model declines; it is a refusal whatever the question.
# - denying the premise ("X does not exist", "X is a fictional character"): right for a fabricated
#   entity, but a false claim about a real one. SmolLM2-135M-Instruct says "The element with the
#   symbol Fe is not a chemical element itself" and "The Messiah is a fictional character", so on
#   "qa" rows such replies are hallucinations, not refusals.
ABSTAIN_PATTERNS: tuple[str, ...] = (
    r"\bi (?:do not|dont|did not|didnt|really dont) know\b",
    r"\b(?:i am|im|i was) not (?:sure|certain|aware|familiar)\b",
    r"\bnot (?:aware|familiar) (?:of|with)\b",
    r"\b(?:i|we) (?:cannot|cant|can not|could not|couldnt|am unable to|was unable to) "
    r"(?:find|provide|answer|determine|confirm|verify|say|tell|identify|locate|help)\b",
    r"\b(?:im|i am) unable to\b",
    r"\bunable to (?:find|provide|answer|determine|confirm|verify|locate|identify)\b",
    r"\b(?:i|we) (?:do not|dont) have (?:any )?(?:information|access|data|details|knowledge|record)\b",
    r"\bthere (?:is|are|was|were|seems to be|appears to be) no (?:record|records|information|evidence|data|mention|reference)\b",
    r"\bno (?:information|record|records|data|evidence|mention|reference|details) (?:of|about|on|for|regarding)\b",
    r"\b(?:answer|it|this) (?:is|remains) unknown\b",
    # "The answer is not possible to determine.", "It cannot be determined from the study."
    r"\b(?:not possible|impossible) to (?:determine|say|tell|know|conclude|answer)\b",
    r"\bcannot be (?:determined|answered|concluded)\b",
    # "The author is unknown.", "Its population is not known." (not "a little-known author", "is known for")
    r"\b(?:is|are|was|were|remains?) (?:still |currently |largely |as yet )?(?:unknown|not known)\b(?! (?:for|as|to|by)\b)",
    r"\b(?:is|are|was|were) not (?:specified|stated)\b",  # "The capital of Veltrai is not specified."
    # the whole reply opening so: "The answer is not provided." ("The answer to the question whether the policy
    # covers X is not provided" may be a plain no to a question about a document)
    r"^(?:answer is:? )*(?:answer|information) (?:is|was) not (?:provided|given|available)\b",  # (said twice)
    r"^(?:answer is:? )*(?:answer|information) to (?:(?:this|that|your|my) )?question (?:is|was) not (?:provided|given|available)\b",
    r"\bas (?:an )?ai\b",
    r"\bno one knows\b",
    # Answers with context: saying that the passage does not answer the question is abstaining.
    r"\b(?:context|passage|text|document|policy|clause|information provided|guidelines?|study|article|abstract|sources?) "
    r"(?:does not|doesnt|did not|didnt|do not|dont) "
    r"(?:explicitly |clearly |specifically |directly |expressly )?"
    r"(?:say|state|mention|answer|specify|provide|contain|include|address|tell|indicate|cover|discuss)\b",
    r"\b(?:context|passage|text|document|policy|clause|agreement|contract|section) (?:is|are|remains) silent "
    r"(?:on|about|regarding|as to)\b",
    # "... is not explicitly mentioned in the provided information."
    r"\bnot (?:explicitly |clearly |specifically |directly )?(?:mentioned|stated|specified|provided|given|answered|addressed|"
    r"covered|found) in (?:context|passage|text|document|(?:provided |given |available )?(?:information|sources?))\b",
    r"\b(?:context|passage|text|document) (?:has|contains|gives|provides) no (?:information|answer|mention)\b",
)
_ENTITY = r"(?:country|nation|state|element|chemical element|author|writer|book|novel|company|corporation|person|place|city|entity|thing|character|name)"
DENIAL_PATTERNS: tuple[str, ...] = (
    r"\bthere (?:is|are|was|were|seems to be|appears to be) no (?:such|known|real|official)\b",
    r"\bthere (?:is|are|was|were) no " + _ENTITY + r" (?:called|named|known as)\b",
    r"\b(?:does|do|did) not (?:appear to |seem to )?exist\b",
    r"\b(?:doesnt|dont|didnt|never) (?:appear to |seem to )?exist(?:ed)?\b",
    r"\b(?:is|are|was|were) not (?:a )?real\b",
    r"\b(?:isnt|arent|wasnt|werent) (?:a )?real\b",
    r"\bno (?:such|known) " + _ENTITY + r"\b",
    r"\b(?:is|are|was|were|be|seems to be|appears to be) (?:\w+ )?(?:fictional|fictitious|imaginary|made up|hypothetical|nonexistent|non existent)\b",
    r"\b(?:fictional|fictitious|imaginary|made up|hypothetical|nonexistent|non existent) " + _ENTITY + r"\b",
    r"\bnot (?:a )?(?:recognized|recognised|known|real|valid|actual|chemical) " + _ENTITY + r"\b",
    r"\b(?:is|are|was|were) not (?:a |an )?" + _ENTITY + r"\b",
)
REFUSAL_PATTERNS: tuple[str, ...] = ABSTAIN_PATTERNS + DENIAL_PATTERNS
_ABSTAIN_RE = [re.compile(p) for p in ABSTAIN_PATTERNS]
_DENIAL_RE = [re.compile(p) for p in DENIAL_PATTERNS]


# "Fictional" is a denial only when it stops there: "Nefouadia is a fictional city in the Star Wars
# universe", "... a fictional work by the French author Jean-Baptiste Baudelaire" place the invented
# entity in an invented source, which is a confabulation (SmolLM2-135M-Instruct's usual reply to an
# invented entity), not a denial. Nor is "X is not a place, but rather a city" (or "but a city").
_FICTIONAL = re.compile(r"\b(?:fictional|fictitious|imaginary|made up|hypothetical)\b")
_EXISTENCE = frozenset({"exist", "existed", "real", "such", "known"})
_ATTRIBUTION = frozenset({"in", "from", "by", "of", "created", "written", "featured", "set", "appearing", "universe",
                          "franchise", "series", "film", "movie", "novel", "game", "show", "story", "book"})


# "... named after Halcyra, a fictional city", "based on a fictional character": the invented thing is where the
# entity's name or story comes from, which the reply asserts, not the entity it was asked about
_SOURCE_OF = frozenset({"after", "named", "called", "based", "inspired", "like"})


def _confabulated_denial(norm: str, m: re.Match[str]) -> bool:
    if _FICTIONAL.search(m.group(0)) and _SOURCE_OF & set(norm[:m.start()].split()[-3:]):
        return True
    after = norm[m.end():].split()
    if after[:2] == ["but", "rather"]:
        return True
    # "X is not a place, but a city": the entity's kind is corrected, its existence never questioned
    # ("Veltoria does not exist, but ..." and "... is not a place, but a fictional one" still deny it)
    if after[:1] == ["but"] and not _EXISTENCE & set(m.group(0).split()) and not _FICTIONAL.search(" ".join(after[1:6])):
        return True
    return bool(_FICTIONAL.search(m.group(0))) and bool(_ATTRIBUTION & set(after[:5]))


def _refusal(answer: str) -> tuple[Literal["empty", "abstain", "denial"], str] | None:
    _check_str(answer, "answer")
    norm = normalize(answer)
    if not norm and not _UNIT_SYMBOL.search(answer):  # a sign alone ("\u00a5", "%") says its unit: not empty
        return "empty", ""
    for rx in _ABSTAIN_RE:
        m = rx.search(norm)
        if m:
            return "abstain", m.group(0)
    for rx in _DENIAL_RE:
        for m in rx.finditer(norm):
            if not _confabulated_denial(norm, m):
                return "denial", m.group(0)
    return None


def refusal_phrase(answer: str) -> str | None:
    """The first refusal wording (abstaining or denying the premise) in the normalised answer, or None.

    An empty or whitespace-only reply returns "" (it says nothing, which counts as abstaining).
    """
    found = _refusal(answer)
    return None if found is None else found[1]


# A question about a document ("Does the clause discuss dispute resolution?") is answered, not declined,
# by "The clause does not discuss dispute resolution.": see `declines`.
_DOCUMENT_NOUNS = frozenset({"agreement", "clause", "context", "contract", "document", "passage", "policy", "section",
                             "segment", "terms", "text", "guideline", "guidelines", "study", "article", "abstract",
                             "source", "sources"})
# A reply to a yes/no question that opens by hedging ("Maybe.", "It depends on the patient.", "The evidence is
# mixed, ...", "This is a controversial topic") takes no side: it declines, whatever yes/no word follows later.
_HEDGE = re.compile(
    r"^(?:well )?(?:maybe|perhaps|possibly|it depends|depends on|that depends|this depends)\b"
    r"|\b(?:controversial|debated|topic of debate|matter of debate|subject of debate|topic of ongoing debate|"
    r"inconclusive|evidence is (?:mixed|conflicting|unclear|limited|insufficient)|mixed (?:evidence|results|findings)|"
    r"conflicting (?:evidence|results|findings)|(?:is|are|remains?) (?:unclear|uncertain|not clear|not (?:yet )?known|"
    r"not (?:yet )?established))\b")


def declines(answer: str, question: str | None = None) -> str | None:
    """The wording with which the reply declines to answer ("i dont know", "context does not say"), ""
    for an empty reply, or None when it does not decline.

    Denying a premise ("there is no such country") is a claim, not declining. With ``question``: to a
    question about a document ("Does the clause discuss dispute resolution?"), a wording about the
    document ("The clause does not discuss dispute resolution.") is a plain no, not a refusal, when the
    words after it name what the question asks about and do not open with "whether" or "if" ("The policy does not
    say whether it collects location" takes no side; "I don't know ..." still declines; to a question
    that does not ask for yes or no, such as "What is needed to assign the agreement?", the wording declines). A reply that
    opens with yes or no and says there is no evidence of something ("No, there is no evidence that
    statins cause it.") takes a side, unless it speaks of the document ("No, there is no evidence in the
    passage."). To a yes/no question, a reply whose first sentence hedges before any yes or no ("Maybe.", "It
    depends on the patient.", "The evidence is mixed, ...", "This is a controversial topic") declines. The guard
    abstains on a reply that declines, and calibration labels it "refusal" (see the module doc), so both
    read a reply through this one function.
    """
    return _declines(answer, question, _refusal(answer))


# Replies to a yes/no question that say neither: a lead-in with nothing after it ("The answer to this question is:"),
# the question restated as a topic ("The question is asking whether ...", "The study aimed to investigate whether
# ..."), or a question instead of an answer (the question itself, a paper's title ending in "?").
_LEAD_IN = re.compile(r"^(?:(?:answer|response)(?: to (?:this|that|your|my) question)? (?:is|would be)\s*)+")
_RESTATES = re.compile(
    r"^(?:question (?:is|asks|was|being asked)|this question (?:is|asks)|you are asking|you asked"
    r"|(?:study|paper|article|research|trial|authors?|researchers|investigators|abstract) (?:aimed|aims|sought|seeks|"
    r"set out|wanted|wants|tried|was designed|were designed|is designed) to"
    r"|(?:this|present|current) (?:study|paper|article|research|trial) (?:aimed|aims|sought|investigated|investigates|"
    r"examined|examines|evaluated|evaluates|assessed|assesses|explored|explores|asks|asked|addresses|addressed))\b")
_RESULT_WORDS = re.compile(r"\b(?:found|finds|find|show|shows|showed|shown|suggest|suggests|suggested|concluded|concludes|"
                           r"demonstrat\w*|indicat\w*|reveal\w*|confirm\w*|support\w*|result\w*|conclusion\w*)\b")


_TITLE_SPLIT = re.compile(r"[:\uff1a]\s+")
_ASKS_WHICH = re.compile(r"\s*(?:who|whom|whose|what|which)\b", re.IGNORECASE)


def _titled_yes_no(question: str) -> bool:
    """Whether ``question`` puts a yes/no question after a title or a subject line: a clause after one of its ": "
    opens with an auxiliary verb and asks ("Processing fluency effects: can the content of information sheets
    influence recruitment?", "Re: Re: can I take ibuprofen with this?", "Quick check: is a ratio of 3: 1 safe?"),
    and the title does not itself ask who or what ("Who said: is it over?" asks who). A reply to it is read for a
    hedge only (:func:`_hedges`): such a clause may also be text to work on ("Translate into French: Is it raining in
    Paris?"), whose reply is itself a question. The relevance features the mergers were fitted on read the
    question's shape as :func:`asks_yes_no` does."""
    if _ASKS_WHICH.match(question):
        return False
    for m in _TITLE_SPLIT.finditer(question):  # the longest clause first: a colon inside it is its own
        clause = question[m.end():]
        if asks_yes_no(clause) and clause.rstrip().endswith(("?", "\uff1f")):
            return True
    return False


def _hedges(answer: str, question: str | None, yes_no: bool = False) -> str | None:
    """The hedge with which a reply to a yes/no question opens (its first sentence, before any yes or no), or the
    way it says neither (a bare lead-in, the question restated, a question instead of an answer), or None.
    ``yes_no``: the row is judged yes/no whatever its question's shape (a question after an article's title, "Title:
    can ...?", or a noun phrase, "Title: a new risk factor?"); else the question must open with an auxiliary verb."""
    if question is None:
        return None
    asked = yes_no or asks_yes_no(_check_str(question, "question"))
    if not (asked or _titled_yes_no(question)):
        return None
    first = re.split(r"(?<=[.!?;])\s", answer.strip(), maxsplit=1)[0]
    norm = normalize(first)
    if not norm or norm.split()[0] in _YES_WORDS | _NO_WORDS:
        return None
    m = _HEDGE.search(norm)
    if m and (asked or not first.rstrip().endswith(("?", "\uff1f"))):  # a titled clause's reply that asks is its
        return m.group(0)  # rewrite ("Perhaps you could send me the report?" for "Rewrite politely: can you ...?")
    if not asked:  # a titled clause: a hedge is read, the reply's shape is not ("Pleut-il à Paris ?" translates it)
        return None
    whole = normalize(answer)
    if set(whole.split()) & (_YES_WORDS | _NO_WORDS):
        return None
    rest = _LEAD_IN.sub("", whole).strip()
    if not rest:
        return "a lead-in with no answer after it"
    if _RESTATES.match(rest) and not _RESULT_WORDS.search(rest):
        return "restates the question without answering it"
    # every sentence a question (not by its first word: "Will Smith starred in ..." answers; nor "Is it safe? The
    # study found it safe.", which answers after asking)
    if all(s.rstrip().endswith("?") for s in re.split(r"(?<=[.!?;])\s+", answer.strip()) if s.strip()):
        return "asks a question instead of answering"
    return None


def _declines(answer: str, question: str | None, found: tuple[str, str] | None) -> str | None:
    """:func:`declines` given the reply's refusal wording (``_refusal(answer)``, read once by the caller)."""
    if found is None:
        return _hedges(answer, question)
    if found[0] == "denial":
        return None
    if found[0] == "empty":
        return ""
    norm = normalize(answer)
    after = norm[norm.find(found[1]) + len(found[1]) :].split()
    rest = set(after)
    if (question is not None and found[1].split()[0] in _DOCUMENT_NOUNS
            and (asks_yes_no(_check_str(question, "question")) or _titled_yes_no(question))):
        asked = normalize(question).split()
        # "The policy does not say whether it collects X" takes no side, unless the question asked whether it says so
        undecided = after[:1] in (["whether"], ["if"]) and not {"whether", "if"} & set(asked)
        if not undecided and _DOCUMENT_NOUNS & set(asked) and rest & {w for w in asked if len(w) > 3 and w not in _DOCUMENT_NOUNS}:
            return None
    if "evidence" in found[1].split() and norm.split()[0] in _YES_WORDS | _NO_WORDS and not rest & _DOCUMENT_NOUNS:
        return None  # "No, there is no evidence that X causes Y." takes a side; "... no evidence in the passage" does not
    return found[1]


def denies_premise(answer: str) -> str | None:
    """The wording with which the reply denies the question's premise ("there is no country called"), or None (also
    for a reply that declines first: :func:`declines` reads that one). Not declining: the guard scores such a reply
    as a claim, and on an unanswerable row the judge counts it right."""
    found = _refusal(answer)
    return found[1] if found is not None and found[0] == "denial" else None


def abstains(answer: str, question: str | None = None) -> bool:
    """Whether the reply declines to answer or says nothing (:func:`declines` is not None)."""
    return declines(answer, question) is not None


def asked_kind(kind: str, meta: dict | None) -> str:
    """The kind a reply's rightness is counted under (:func:`right_reply`): a reviewed row whose right
    answer is unknown (``meta.answers_unknown``; written as kind "unanswerable" so that the judge needs no
    alias, see :mod:`hguard.review.export`) asks a question that has an answer, so declining it is not right."""
    return "qa" if (meta or {}).get("answers_unknown") else kind


def right_reply(label: str, kind: str) -> bool:
    """Whether a judged reply was the right one: "correct", or a refusal to an unanswerable row (the
    model's accuracy counts it right; the risk model leaves it out like every refusal)."""
    return label == "correct" or (label == "refusal" and kind == "unanswerable")


def is_refusal(answer: str) -> bool:
    """True when the reply declines ("I don't know") or denies the premise ("there is no such ...").

    Empty replies count as refusals. The phrase lists are ABSTAIN_PATTERNS and DENIAL_PATTERNS.
    """
    return _refusal(answer) is not None


@dataclass(frozen=True)
class Judgement:
    """label: the verdict; matched: the alias that made it correct (None otherwise); reason: why."""

    label: Literal["correct", "hallucinated", "refusal"]
    matched: str | None
    reason: str


_NEGATIONS = frozenset({"not", "isnt", "arent", "wasnt", "werent", "never", "nor", "neither", "doesnt", "dont", "didnt",
                        "cannot", "cant", "wont", "hasnt", "havent", "hadnt", "wouldnt", "couldnt", "shouldnt"})
_AUXILIARIES = frozenset({"is", "are", "was", "were", "do", "does", "did", "can", "could", "will", "would", "should",
                          "has", "have", "had", "may", "might", "must"})
_HEDGE_BEFORE = frozenset({"or", "either"})
_HEDGE_AFTER = frozenset({"or"})
# Where a negation stops reaching: a clause ends at , ; : ! ? (not a digit group's comma or a time's colon), at a
# sentence's full stop (not an initial's: "J. R. R. Tolkien"), at a dash, and before a contrasting word ("... not
# Sydney but Canberra").
_CLAUSE_END = re.compile(r"[,;:!?](?=\s|$)|(?<=[a-z0-9)\]\"'])\.(?=\s|$)|\s[-\u2013\u2014]+\s|\u2014"
                         r"|\b(?=(?i:but|however|whereas|while|although|though|instead|rather)\b)")
_QUESTION_WORDS = frozenset({"what", "which", "where", "when", "whom", "whose", "does", "that", "this", "with", "from",
                             "have", "there", "their", "they", "into", "about"})


def _clauses(answer: str) -> tuple[list[str], list[int]]:
    """The answer's tokens (`_tokens`, read clause by clause) and the clause each one is in."""
    tokens: list[str] = []
    clause: list[int] = []
    for k, part in enumerate(_CLAUSE_END.split(answer)):
        words = _tokens(part)
        tokens += words
        clause += [k] * len(words)
    return tokens, clause


def _stems(words: list[str]) -> set[str]:
    return {w[:5] for w in words if len(w) > 3 and w not in _QUESTION_WORDS and not w.isdigit()}


def _negated(ans_tok: list[str], clause: list[int], start: int, end: int, q: list[str]) -> bool:
    """Whether the alias at ``ans_tok[start:end]`` is denied: a negation before it in its clause ("Budgets are never
    approved by the CFO", "Neither Deloitte nor KPMG"), or, to a question that is not itself negative, its clause
    going on to deny what the question asks ("The CFO does not approve budgets" to "Who approves budgets?";
    "Canberra is not the largest city" still answers "What is the capital of Australia?")."""
    here = clause[start]
    if any(ans_tok[i] in _NEGATIONS for i in range(start) if clause[i] == here):
        return True
    if not q or _NEGATIONS & set(q):
        return False
    rest = [ans_tok[i] for i in range(end, len(ans_tok)) if clause[i] == clause[end - 1]]
    if rest[:1] and rest[0] in _NEGATIONS:
        tail = rest[1:]
    elif len(rest) > 1 and rest[0] in _AUXILIARIES and rest[1] in _NEGATIONS:
        tail = rest[2:]
    else:
        return False
    return bool(_stems(tail) & _stems(q))


def _find(seq: list[str], sub: list[str], yen_or_yuan: frozenset[str] = _YEN_OR_YUAN) -> list[int]:
    """Where ``sub`` stands in ``seq``; in an amount, a currency of a family matches the family's name ("¥500" is "500
    yen" and "500元", "200 kr" is "200 SEK"), as the number hold reads them (`_CURRENCY_FAMILIES`): only beside a
    number in both. Named alone, a code matches its own currency's name (`_CODE_NAMES`: "SEK" the krona, "CHF" the
    franc, "¥" the yen or the yuan, ``yen_or_yuan`` where the other aliases say which), not after another country's
    adjective ("the Swedish krona" is no "NOK", "the French franc" no "CHF"); `_match` then keeps such a match for
    a sign ("¥") only where the question asks for a code or is not given: an alias written as a code in capitals
    ("SEK", "USD") names that code there (`_written_as_code`)."""
    n, m = len(seq), len(sub)
    if not any(t in _FAMILY_OF or t in _CURRENCY_FAMILIES for t in sub):
        return [i for i in range(n - m + 1) if seq[i : i + m] == sub]
    # the reply's own "¥" is the sign of the yen or the yuan, the one the reply names where it names one ("The yuan
    # (¥)." is no yen), either where it names neither or both
    signs = frozenset(c for c in _YEN_OR_YUAN if set(seq) & _YEN_OR_YUAN_WORDS[c]) or _YEN_OR_YUAN

    def in_amount(words: list[str], k: int) -> bool:
        return any(_canonical_number(w) is not None for w in words[max(0, k - 1):k] + words[k + 1:k + 2])

    def named(i: int, k: int) -> bool:
        codes = yen_or_yuan if sub[k] == "yenyuan" else (sub[k],)
        own = [_CODE_NAMES[c] for c in codes if c in _CODE_NAMES
               and (seq[i + k] in _CODE_NAMES[c][0] or (seq[i + k] == "yenyuan" and c in signs))]
        before = seq[i - 1] if k == 0 and i > 0 else ""
        return any(before not in _CURRENCY_ADJECTIVES or before in adjectives for _, adjectives in own)

    def same(i: int, k: int) -> bool:
        a, b = seq[i + k], sub[k]
        if a == b == "yenyuan":  # the sign in both: the row's currency unless the reply says it is the other one
            return in_amount(seq, i + k) or bool(signs & yen_or_yuan)
        return a == b or ((_FAMILY_OF.get(a) == b or _FAMILY_OF.get(b) == a) and in_amount(seq, i + k) and in_amount(sub, k)) or named(i, k)

    return [i for i in range(n - m + 1) if all(same(i, k) for k in range(m))]


_RUN_STOPWORDS = frozenset({"of", "in", "on", "at", "to", "by", "for", "and", "is", "are", "was", "were", "it", "its"})


def _cased(text: str, tokens: list[str]) -> list[str] | None:
    """The words of ``text`` as written (case kept, punctuation around them dropped), one per token of ``tokens``
    (its `_tokens`), or None where the two do not align word for word (numbers, initials)."""
    out: list[str] = []
    folded: list[str] = []
    for raw in text.split():
        for t in normalize(raw).split():
            folded.append(t)
            out.append(raw.strip(".,;:!?\"'()[]{}"))
    return out if folded == tokens else None


def _echoed(ans_tok: list[str], start: int, n: int, q: list[str], ans_cased: list[str] | None = None,
            q_cased: list[str] | None = None) -> bool:
    """Whether the answer's tokens ``[start, start + n)`` lie inside a longer run of words that the question
    (its tokens ``q``) itself holds: an alias inside the question's own entity ("Czech" in "the official
    language of the Czech Republic is ...") names nothing the answer added. The run must add a word other than
    "of", "in", "is" and the like, and, where both texts' words are known as written, be written as in the
    question: "It is the central bank of Japan." answers "Which country is the Bank of Japan the central bank
    of?" (its "bank of Japan" is not the question's "Bank of Japan")."""
    grams = {tuple(q[i:j]) for i in range(len(q)) for j in range(i + n + 1, len(q) + 1)}

    def written_as_in_question(a: int, b: int) -> bool:
        # word for word as the question writes it, or capitalised where the question is not ("Canton of Gordes"
        # for "canton of Gordes": a sentence's or a title's capitals), or in capitals throughout; not lower case
        # where the question capitalises a name ("bank of Japan" is not "Bank of Japan"), unless the question
        # capitalises every word (a title, or capitals throughout), which says nothing of its names
        if ans_cased is None or q_cased is None:
            return True
        if all(v[:1].isupper() or not v[:1].isalpha() for v in q_cased):
            return True
        run = ans_cased[a:b]

        def same(w: str, v: str) -> bool:
            return w == v or (w.lower() == v.lower() and (not v[:1].isupper() or (w.isupper() and len(w) > 1)))

        return any(all(same(w, v) for w, v in zip(run, q_cased[i:i + len(run)]))
                   for i in range(len(q) - len(run) + 1) if q[i:i + len(run)] == ans_tok[a:b])

    for a in range(max(0, start - len(q)), start + 1):
        for b in range(start + n, min(len(ans_tok), a + len(q)) + 1):
            if b - a <= n or tuple(ans_tok[a:b]) not in grams:
                continue
            if not set(ans_tok[a:start] + ans_tok[start + n:b]) - _RUN_STOPWORDS:
                continue
            if not written_as_in_question(a, b):
                continue
            return True
    return False


_COPULAS = frozenset({"is", "are", "was", "were"})
# words that name nothing of their own on a copula's side ("It is ...", "Its name is ...")
_PLACEHOLDERS = _RUN_STOPWORDS | frozenset({"this", "that", "these", "those", "they", "he", "she", "name", "answer"})
# a region's adjective before a name ("Southern Africa"), which makes it no longer name than the one it qualifies
_REGION_WORDS = frozenset({"northern", "southern", "eastern", "western", "northeastern", "northwestern", "southeastern",
                           "southwestern", "north-eastern", "north-western", "south-eastern", "south-western"})
# the small words inside a name ("Bank of England", "War and Peace", "Banco de México")
_NAME_JOINS = frozenset({"of", "and", "de", "del", "des", "du", "la", "le", "von", "van", "da", "di"})


def _possessives(text: str, tokens: list[str]) -> list[bool] | None:
    """For each token of ``text`` (its `_tokens`), whether the word it comes from is written as a possessive
    ("Shelley's", "Dickens'", "Thailand’s"), aligned as `_cased` aligns them, or None where they do not align."""
    out: list[bool] = []
    folded: list[str] = []
    for raw in text.split():
        word = raw.rstrip(".,;:!?\"()[]{}")
        owner = word.endswith(("'s", "\u2019s", "'", "\u2019")) and not word.startswith(("'", "\u2018"))
        for t in normalize(raw).split():
            folded.append(t)
            out.append(owner)
    return out if folded == tokens else None


# words after a capital "I" that leave it a symbol, not the pronoun ("I and Br", "I is its symbol", "I stands for ...")
_SYMBOL_I_BEFORE = frozenset({"and", "or", "is", "was", "stands", "represents", "denotes", "for", "in", "on", "to"})


def _pronoun_i(text: str, tokens: list[str]) -> list[bool] | None:
    """For each token of ``text`` (its `_tokens`), whether it is the pronoun "I": the word "I" followed, in its
    sentence, by a word in lower case that no symbol takes ("I think it is Xenon.", not "The symbol is I.", "I
    (iodine)", "I and Br are halogens"), aligned as `_cased` aligns them, or None where they do not align."""
    raws = text.split()
    out: list[bool] = []
    folded: list[str] = []
    for k, raw in enumerate(raws):
        after = raws[k + 1] if k + 1 < len(raws) else ""
        pronoun = (raw == "I" and after[:1].islower() and after.strip(".,;:!?\"'()").lower() not in _SYMBOL_I_BEFORE)
        for t in normalize(raw).split():
            folded.append(t)
            out.append(pronoun)
    return out if folded == tokens else None


def _held_at(q: list[str], al: list[str]) -> int | None:
    """Where the question's tokens ``q`` hold the alias's tokens ``al`` as a run (the first place), or None."""
    n = len(al)
    return next((i for i in range(len(q) - n + 1) if q[i:i + n] == al), None)


def _names_rival(ans_tok: list[str], ans_cased: list[str], owners: list[bool] | None, other: list[int], first: int,
                 q: list[str]) -> bool:
    """Whether the side ``other`` of an "X is Y" clause (token indices; ``first`` the clause's first, which a sentence
    capitalises) names something of its own that the question (its tokens ``q``) does not, rather than
    describing what the other side names: a proper name right after the copula ("the Royal Bank of Egypt", "the
    Landsbanki"), or a name of its own "of" or "in" a thing the question does not say so ("the heroine of War and Peace", "the hero of
    Gulliver's Travels"). Not a description: a possessive's ("Thailand's central bank", "the UK's central bank",
    "Shakespeare's tragedy"), a name's adjective ("the Thai central bank"), "by" an author ("by Shakespeare", "a
    tragedy by Shakespeare"), or the question's own words "of" a place ("the central bank of the United Kingdom" to
    "What is the central bank of England called?"; "a character in War and Peace" is no question's "character in")."""
    asked = set(q)

    def own(i: int) -> bool:
        return ans_tok[i] not in asked and ans_tok[i] not in _PLACEHOLDERS and ans_cased[i][:1].isupper() and i != first

    def capital(i: int) -> bool:
        return ans_cased[i][:1].isupper()

    def name_at(k: int) -> list[int]:  # the name that starts at other[k]: capitalised words and the joins inside it
        run: list[int] = []
        for i in other[k:]:
            if not (capital(i) or (run and ans_tok[i] in _NAME_JOINS)):
                break
            run.append(i)
        while run and not capital(run[-1]):
            run.pop()
        return run

    if not other:
        return False
    if capital(other[0]):
        run = name_at(0)
        if owners is not None and any(owners[i] for i in run):
            return False  # "Thailand's central bank": a possessive's description
        after = other[len(run)] if len(run) < len(other) else None
        if len(run) == 1 and after is not None and not capital(after) and ans_tok[after] not in _RUN_STOPWORDS:
            return False  # "the Thai central bank": a name's adjective
        return any(own(i) for i in run)
    # "the heroine of War and Peace": what it is, in words of its own, of or in a name of its own
    k = next((k for k, i in enumerate(other) if ans_tok[i] in ("of", "in") or capital(i)), None)
    if k is None or k == 0 or capital(other[k]) or k + 1 >= len(other):
        return False
    if _held_at(q, [ans_tok[i] for i in other[:k + 1]]) is not None or all(ans_tok[i] in _PLACEHOLDERS for i in other[:k]):
        return False  # the question's own words ("the central bank of the United Kingdom"): a description
    return any(own(i) for i in name_at(k + 1))


def _restates(ans_tok: list[str], clause: list[int], start: int, n: int, q: list[str], ans_cased: list[str] | None,
              q_cased: list[str] | None, alias: str, owners: list[bool] | None = None) -> bool:
    """Whether the alias at ``ans_tok[start:start + n]``, which the question's own words hold (case and word form
    aside: "central bank of Iceland" holds "Central Bank of Iceland"), is only the question's span said again, not
    the reply. Where the question writes it otherwise than the alias does, the answer writing it as the question does
    restates it ("The Icelandic Monetary Authority is the central bank of Iceland."); in a clause "X is Y" whose
    other side names something the question does not (`_names_rival`: "The Central Bank of Egypt is the Royal Bank of
    Egypt.", "Anna Karenina is the heroine of War and Peace."), the side made of the question's words only is the
    question's, whatever its case, while one that only describes it ("The Bank of England is the UK's central bank.",
    "Macbeth is by Shakespeare.") leaves it the reply; and the alias at the end of a longer name ("the Royal Bank of
    Thailand" for "Bank of Thailand") is that name, not after a possessive ("Mary Shelley's Frankenstein", ``owners``:
    `_possessives`) or a region's adjective ("Southern Africa"). The reply naming the alias stays an answer: "The
    central bank of Iceland is the Central Bank of Iceland (Seðlabanki Íslands).", "It is the Bank of Thailand.", "The
    capital of Luxembourg is Luxembourg.". Where the reply's words as written are unknown (``ans_cased`` None:
    `_cased`), a word of the other side's own, any case, names something."""
    at = _held_at(q, ans_tok[start:start + n])
    if at is None:
        return False
    end = start + n
    if ans_cased is not None and q_cased is not None and not all(v[:1].isupper() or not v[:1].isalpha() for v in q_cased):
        # the question's case says something of its names: the answer writing the alias as the question does (and
        # not as the alias does) says the question's words again
        alias_cased = _cased(alias, _tokens(alias))
        asked = q_cased[at:at + n]
        if alias_cased is not None and asked != alias_cased and ans_cased[start:end] == asked:
            return True
    here = clause[start]
    words = [i for i in range(len(ans_tok)) if clause[i] == here]
    if ans_cased is not None and start > words[0]:
        before = ans_cased[start - 1]
        if (before[:1].isupper() and ans_tok[start - 1] not in _PLACEHOLDERS and not before.isupper()
                and not (owners is not None and owners[start - 1]) and before.lower() not in _REGION_WORDS):
            return True  # "the Royal Bank of Thailand": a longer name
    copula = next((i for i in words if ans_tok[i] in _COPULAS), None)
    if copula is None:
        # no "is": the alias restated beside a name of the clause's own, on either side, with a word of a predicate
        # ("Anna Karenina appears in War and Peace.", "War and Peace features Anna Karenina."), is the question's; not
        # beside a name only ("The Central Bank of Iceland (Seðlabanki Íslands)."); where the words as written are
        # unknown, it stays the reply
        other = [i for i in words if not start <= i < end]
        if ans_cased is None or not any(not ans_cased[i][:1].isupper() and ans_tok[i] not in _NAME_JOINS
                                        and ans_tok[i] not in _PLACEHOLDERS for i in other):
            return False
        return _names_rival(ans_tok, ans_cased, owners, other, words[0], q)
    if start < copula < end:
        return False
    side = [i for i in words if (i < copula) == (start < copula) and i != copula]
    other = [i for i in words if (i < copula) != (start < copula) and i != copula]
    asked_words = set(q)
    if any(ans_tok[i] not in asked_words and ans_tok[i] not in _PLACEHOLDERS for i in side):
        return False  # the alias's side says more than the question: the reply
    if ans_cased is None:
        return any(ans_tok[i] not in asked_words and ans_tok[i] not in _PLACEHOLDERS for i in other)
    # "The Central Bank of Kenya is the official central bank of Kenya." names nothing of its own
    return _names_rival(ans_tok, ans_cased, owners, other, words[0], q)


def _match(answer: str, aliases: list[str], question: str | None = None
           ) -> tuple[str | None, str | None, str | None, str | None]:
    """(alias with a clean match, alias seen only hedged or negated, alias seen only echoing the question, alias seen
    only as a secondary answer after another main one: `_secondary_only`) over all aliases; with ``question``, an alias seen only inside a longer run of the question's own words
    does not match, unless the question offers choices ("caused by a virus, a bacterium or a fungus?") and
    the answer names no other choice before it: "Rabies is caused by a virus." picks the virus by
    repeating the question's words, "Ross Lynch is older Glenn Hughes." picks Ross Lynch. The choices are
    the words on either side of each "or"."""
    ans_tok, clause = _clauses(answer)
    q = _tokens(question) if question else []
    # a code spelling a word ("US", "the US"); one written in lower case is here only as a row's sole alias ("in" for a
    # question whose answer is that word), which matches as any alias does
    codes = {a for a in aliases if a != a.lower() and _word_code(a)}
    # a code in capitals ("CLP", "USD", "NYSE", "H"): matched as that code, not as the currency name it would read as,
    # where the question asks for a code or is not given; to a question asking for the currency ("What currency is
    # used in Sweden?") its name answers it ("the Swedish krona" for "SEK")
    literal = {a for a in aliases if _CODE_ALIAS.fullmatch(a.strip())} if not question or _ASKS_FOR_CODE.search(question) else set()
    ans_cased = _cased(answer, ans_tok) if q or codes or literal or len(aliases) > 1 else None  # the reply's words as written, read once
    q_cased = _cased(question, q) if question else None
    owners = _possessives(answer, ans_tok) if q else None
    choices = {q[j] for i, w in enumerate(q) if w == "or" for j in (i - 1, i + 1) if 0 <= j < len(q)}
    spoiled: str | None = None
    echoed: str | None = None
    # "¥" among the aliases is the yen or the yuan the others name, either where they name neither or both
    yen_or_yuan = frozenset(t for a in aliases for t in _tokens(a) if t in _YEN_OR_YUAN) or _YEN_OR_YUAN
    # a row asking for another country's dollar: its alias "dollar" or "$" is that dollar, not the US's
    other_dollar = _other_dollar_asked(aliases, q)
    qualified = _qualified_names(aliases)  # the currency names the row's aliases qualify ("British pound")
    said = {tuple(_tokens(a)) for a in aliases}
    hits: list[tuple[str, list[str], set[tuple[int, int]]]] = []
    for alias in aliases:
        al = _tokens(alias)
        found = {(i, len(al)) for i in _find(ans_tok, al, yen_or_yuan)}
        for form in _number_forms(alias, al, said, choices):  # "statins" for "statin", "ACE inhibitors"
            found |= {(i, len(form)) for i in _find(ans_tok, form)
                      if not (len(form) == 1 and i > 0 and ans_tok[i - 1] in _SUBJECTS)}  # "it leads" is a verb
        if ans_cased is not None and alias not in codes and _CODE_ALIAS.fullmatch(alias.strip()):
            found |= {(i, 1) for i, w in enumerate(ans_cased) if _code_form(w, alias.strip())}
            if q and alias not in literal:  # a code's name written out, to a question asking for the thing named
                found |= set(_spelt_out(ans_tok, ans_cased, alias.strip()))
        hits.append((alias, al, found))
    named_at = {start for _, _, found in hits for start, _ in found}  # where the reply names any of the aliases
    secondary: str | None = None
    for alias, al, found in hits:
        for start, n in sorted(found):
            if alias in codes and not _in_capitals(answer, ans_cased, start, alias):  # "tell us", "and": words
                continue
            if al == ["i"] and alias in codes and (pronouns := _pronoun_i(answer, ans_tok)) is not None and pronouns[start]:
                continue  # "I think it is Xenon." names no iodine
            if alias in literal and not _written_as_code(answer, ans_cased, start, alias):  # "the peso" is no "CLP"
                continue
            if alias not in literal and _CODE_ALIAS.fullmatch(alias.strip()) and _other_countrys(ans_tok, start, alias):
                continue  # "the Canadian dollar" is no "USD"
            if al == ["dollar"] and other_dollar and _us_dollar_at(answer, ans_tok, start):
                continue  # "USD" is no Canadian dollar
            if len(al) == 1 and _qualified_otherwise(answer, ans_cased, ans_tok, start, al[0], qualified, aliases, q):
                continue  # "the Egyptian pound" is no "pound sterling"
            if q and _echoed(ans_tok, start, n, q, ans_cased, q_cased) and (not choices or (choices - set(al)) & set(ans_tok[:start])):
                echoed = echoed or alias
                continue
            if q and not choices and _restates(ans_tok, clause, start, n, q, ans_cased, q_cased, alias, owners):
                echoed = echoed or alias
                continue
            before = ans_tok[start - 1] if start > 0 else ""
            after = ans_tok[start + n] if start + n < len(ans_tok) else ""
            if before in _HEDGE_BEFORE or after in _HEDGE_AFTER or _negated(ans_tok, clause, start, start + n, q):
                spoiled = spoiled or alias
                continue
            if _secondary_only(ans_tok, start, named_at):  # "primarily used for COVID-19, but also influenza"
                secondary = secondary or alias
                continue
            return alias, None, None, None
    return None, spoiled, echoed, secondary


# a reply's main answer ("primarily", "mainly", "first and foremost") and one it adds second ("but also", "as well as")
_PRIMARY_MARKS = (("primarily",), ("mainly",), ("mostly",), ("chiefly",), ("principally",), ("main",),
                  ("first", "and", "foremost"))
_SECONDARY_MARKS = (("also",), ("as", "well", "as"))
# an "also" that gives another name, not a second answer ("also known as", "also called")
_ANOTHER_NAME = frozenset({"known", "called", "named", "spelled", "spelt", "referred", "termed", "titled"})


def _secondary_only(ans_tok: list[str], start: int, named_at: set[int]) -> bool:
    """Whether the alias at token ``start`` comes only after a secondary mark ("also", "but also", "and also", "as
    well as"), and that mark after a primary one ("primarily", "mainly", "mostly", "chiefly", "principally", "main",
    "first and foremost") that does not itself introduce an alias (none of ``named_at``, where the reply names any,
    lies between the two): "Oseltamivir is primarily used to treat COVID-19, but also influenza." gives a wrong main
    answer and the right one as an aside. "It is primarily used for influenza, but also colds." introduces it, and an
    "also known as" is another name, no aside."""

    def ends(marks: tuple[tuple[str, ...], ...], upto: int) -> list[tuple[int, int]]:
        return [(i, i + len(m)) for m in marks for i in range(upto - len(m) + 1) if tuple(ans_tok[i:i + len(m)]) == m]

    seconds = [(i, j) for i, j in ends(_SECONDARY_MARKS, start)
               if not (ans_tok[i] == "also" and j < len(ans_tok) and ans_tok[j] in _ANOTHER_NAME)]
    if not seconds:
        return False
    second = max(i for i, _ in seconds)  # the last secondary mark before the alias
    firsts = [j for _, j in ends(_PRIMARY_MARKS, second)]
    if not firsts:
        return False
    first = max(firsts)  # the last primary mark before it
    return not any(first <= k < second for k in named_at)


# English words a code can spell ("US", "IN", "AND", "the US", "U. S."): such an alias names its entity only where the
# reply writes it in capitals; written in lower case (a code lower-cased), it is ignored beside any other alias
_FUNCTION_WORDS = frozenset("a am an and any are as at be but by can do for go had has he her his i if in is it its "
                            "me my not of on one or our she so the to up us was we who why you".split())


def _word_code(alias: str) -> bool:
    """Whether ``alias`` reads, once normalised, as one English function word ("US", "the US", "U. S.", "IN")."""
    tokens = _tokens(alias)
    return len(tokens) == 1 and tokens[0] in _FUNCTION_WORDS


def _in_capitals(answer: str, cased: list[str] | None, start: int, alias: str) -> bool:
    """Whether the reply writes the word-code ``alias`` matched at token ``start`` in capitals ("US", "U.S.", "U. S.",
    not "us"): at that place where the reply's words as written (``cased``: :func:`_cased`) align with its tokens,
    else anywhere in it. Never in a reply without a lower-case letter (in capitals throughout, "IN" and "US" are its
    words as much as codes)."""
    if not any(c.islower() for c in answer):
        return False
    if cased is not None:
        word = [c for c in cased[start] if c.isalpha()]
        return bool(word) and all(c.isupper() for c in word)
    letters = [c for c in "".join(_tokens(alias)).upper()]
    pattern = r"[.\s\u2010-\u2015-]*".join(re.escape(c) for c in letters) + r"\.?"  # "U.S.", "U. S.", "U.–S."
    return re.search(rf"(?<![\w.]){pattern}(?!\w)", answer) is not None


# a code alias: one token in capitals (an ISO currency or country code, a ticker, a chemical symbol in capitals)
_CODE_ALIAS = re.compile(r"[A-Z][A-Z0-9]{0,5}")
# a question asking for a code, not for the thing it stands for ("What is the ISO code of the Chilean peso?")
_ASKS_FOR_CODE = re.compile(r"(?i)(?<![\w-])(?:codes?|iso|symbols?|tickers?|abbreviat\w*|acronyms?|initials?|initialism"
                            r"|(?:two|three|four|2|3|4)[\s-]letters?|stands?\s+for|short\s+for|short\s+form)(?![\w-])")


# a country's adjective before its currency's name ("the Canadian dollar"), with that currency's code (`_find` reads
# the krona's, the peso's and the franc's)
_ADJECTIVE_CODES = {tuple(_tokens(adjective)): code for adjective, code in _DECLARED_ADJECTIVES.items()}


def _other_countrys(ans_tok: list[str], start: int, alias: str) -> bool:
    """Whether the code ``alias`` matched as its currency's name at token ``start`` ("dollar" for "USD") follows another
    country's adjective ("the Canadian dollar", "the Australian dollar": `_DECLARED_ADJECTIVES`)."""
    code = normalize(alias)
    return any(_ADJECTIVE_CODES.get(tuple(ans_tok[start - k:start]), code) != code for k in (1, 2) if start >= k)


# the dollars other than the US's, by their codes as tokens read them ("CAD", "C$", "NZ$"): a row naming one asks for
# that dollar, which "USD" or "the US dollar" does not name
_OTHER_DOLLARS = frozenset(code.lower() for code in _PREFIX_CODES.values()) & frozenset(_UNIT_WORDS) - {"usd", "mxn", "brl"}
_US_DOLLAR = re.compile(r"(?i)(?<![\w.$])(?:USD|U\.?S\.?[ \t]?\$)(?![\w$])")  # "USD", "US$", "U.S. $" (not "$" alone)


def _other_dollar_asked(aliases: list[str], q: list[str]) -> bool:
    """Whether a row asks for another country's dollar than the US's: an alias naming one ("CAD", "C$", "Canadian
    dollar") or the question's tokens ``q`` naming one ("The Canadian dollar's code?"), and no alias naming the US's."""
    named: set[str] = set()
    for words in (*(_tokens(a) for a in aliases), q):
        named |= {w for w in words if w in _OTHER_DOLLARS}
        named |= {_ADJECTIVE_CODES.get(tuple(words[i - k:i]), "") for i, w in enumerate(words) if w == "dollar"
                  for k in (1, 2) if i >= k}
    usd = any(_US_DOLLAR.search(a) or _ADJECTIVE_CODES.get(tuple(_tokens(a)[:-1])) == "usd" for a in aliases)
    return bool(named & _OTHER_DOLLARS) and not usd


def _us_dollar_at(answer: str, ans_tok: list[str], start: int) -> bool:
    """Whether the reply's "dollar" at token ``start`` is the US dollar by its writing: "USD", "US$" (both read as a
    bare "dollar"), or after the US's adjective ("the US dollar", "the American dollar": `_DECLARED_ADJECTIVES`)."""
    if any(_ADJECTIVE_CODES.get(tuple(ans_tok[start - k:start])) == "usd" for k in (1, 2) if start >= k):
        return True
    if not _US_DOLLAR.search(answer):
        return False
    marked = _tokens(_US_DOLLAR.sub(f" {_LABEL_WORD}usd ", answer))
    if len(marked) != len(ans_tok):  # not aligned word for word: the reply writes the US dollar somewhere
        return True
    return marked[start] == f"{_LABEL_WORD}usd"


def _qualified_names(aliases: list[str]) -> dict[str, frozenset[str]]:
    """The currency names (`_CURRENCIES`: "pound", "dollar", or a code read as its name) that the row's aliases qualify
    ("British pound", "pound sterling", "Hong Kong dollar"), each with every word of the row's aliases: the words the
    row says of them."""
    said = [_tokens(a) for a in aliases]
    words = frozenset(w for t in said for w in t)
    return {w: words for t in said if len(t) > 1 for w in t if w in _CURRENCIES}


# the qualifiers known to name a country, as tokens, each with the names of its country as tokens: a nationality or a
# country of `NATION_COUNTRIES` ("british": "united kingdom", "uk", "britain", "england"), or a currency's adjective
# with its code (`_DECLARED_ADJECTIVES`: "hong kong" with "hkd"; `_CODE_NAMES`: "swedish" with "sek"). A code stays
# as written (the tokens read "USD" as "dollar", which names no country)
def _country_names() -> dict[tuple[str, ...], frozenset[tuple[str, ...]]]:
    groups: list[list[tuple[str, ...]]] = [[tuple(_tokens(n)) for n in (nation, *countries)]
                                           for nation, countries in NATION_COUNTRIES.items()]
    by_code: dict[str, list[tuple[str, ...]]] = {}
    for adjective, code in _DECLARED_ADJECTIVES.items():
        by_code.setdefault(code, [(code,)]).append(tuple(_tokens(adjective)))
    for code, (_, adjectives) in _CODE_NAMES.items():
        by_code.setdefault(code, [(code,)]).extend((a,) for a in adjectives)
    groups += by_code.values()
    groups += ([(a,)] for a in _CURRENCY_ADJECTIVES)
    names: dict[tuple[str, ...], frozenset[tuple[str, ...]]] = {}
    for group in groups:
        for name in group:
            names[name] = names.get(name, frozenset()) | frozenset(group)
    return names


_COUNTRY_NAMES = _country_names()
_LONGEST_COUNTRY_NAME = max(map(len, _COUNTRY_NAMES))


def _qualified_otherwise(answer: str, cased: list[str] | None, ans_tok: list[str], start: int, name: str,
                         qualified: dict[str, frozenset[str]], aliases: list[str], q: list[str]) -> bool:
    """Whether the reply's currency name ``name`` at token ``start``, one the row's aliases qualify (`_qualified_names`),
    is written right after a qualifier in capitals that names another country ("Egyptian pound", "New Zealand
    dollar": `_COUNTRY_NAMES`) than the row's: one whose country the aliases and the question (its tokens ``q``) do
    not name, by that word or another of its country ("British" or "UK" to a question of the United Kingdom, "Hong
    Kong" to a row's "HKD"). "The Egyptian pound." names another pound than a row's "pound sterling", "the New
    Zealand dollar" another dollar than a row's "Australian dollar". Only on that evidence: a qualifier naming no
    country known ("NZ dollar", "the Kiwi dollar", "GB pound") may be the row's own and is no other currency; nor
    where the reply's words as written are unknown (``cased`` None)."""
    if name not in qualified or start == 0 or cased is None:
        return False
    k = next((k for k in range(min(start, _LONGEST_COUNTRY_NAME), 0, -1)
              if tuple(ans_tok[start - k:start]) in _COUNTRY_NAMES), 0)
    if not k:
        return False
    words, written = tuple(ans_tok[start - k:start]), cased[start - k:start]
    if not all(w[:1].isupper() for w in written) or all(w in qualified[name] for w in words):
        return False
    joined = r"[ \t\u00a0-]+".join(map(re.escape, (*written, cased[start])))
    if not re.search(rf"(?<![\w-]){joined}(?![\w-])", answer):
        return False  # not written as one name ("In Britain, the pound")
    said = [*(_tokens(a) for a in aliases), q]
    grams = {tuple(t[i:j]) for t in said for i in range(len(t)) for j in range(i + 1, min(len(t), i + _LONGEST_COUNTRY_NAME) + 1)}
    grams |= {(a.strip().lower(),) for a in aliases}  # a code as written ("HKD")
    return not _COUNTRY_NAMES[words] & grams


# pronouns before a word in -s that make it a verb, not a plural ("It leads to ..." names no lead)
_SUBJECTS = frozenset({"it", "he", "she", "this", "that", "which", "who", "what"})
# a word's endings that are no plural's -s ("glass", "virus", "analysis", "physics": no "glas", "viru", "physic")
_NO_PLURAL_S = ("ss", "us", "is", "ics")
_SIBILANT = re.compile(r"(?:s|x|z|ch|sh)$")


def _number_forms(alias: str, al: list[str], said: set[tuple[str, ...]], choices: set[str]) -> list[list[str]]:
    """The alias's tokens ``al`` with its last word in the regular English plural or singular ("statin": "statins";
    "ACE inhibitor": "ACE inhibitors"; "SSRIs": see `_code_form`; "proton pump inhibitors": "proton pump inhibitor";
    "-y"/"-ies", "-es" after s, x, z, ch, sh), which a reply naming a class or a kind writes as often as the alias's own
    form. Only a last word written in lower case, of letters, four or more (a common noun: not a name, "Athens" or
    "Paris", whose plural or singular is no such form, nor a code, "Cs" for caesium, nor a unit or a currency, which
    `_tokens` reads; "new" has no "news"), and a singular of four letters or more that is no function word; not a form
    that is itself another alias (it matches as that alias) or a choice the question offers ("A or B?": the other
    choice is a wrong answer the question knows)."""
    written = re.findall(r"[^\W\d_]+", alias)
    last = al[-1] if al else ""
    if (not written or not written[-1].islower() or normalize(written[-1]) != last or not last.isalpha() or len(last) < 4
            or last in _UNIT_WORDS or last in _CURRENCIES):
        return []
    forms: set[str] = set()
    if last.endswith("s") and not last.endswith(_NO_PLURAL_S):  # a plural: its singular
        forms.add(last[:-3] + "y" if last.endswith("ies") else last[:-1])
        if last.endswith("es") and _SIBILANT.search(last[:-2]):
            forms.add(last[:-2])  # "boxes", "classes"
        forms = {f for f in forms if len(f) >= 4 and f not in _FUNCTION_WORDS and f not in _PLACEHOLDERS}
    elif re.search(r"[^aeiou]y$", last):
        forms.add(last[:-1] + "ies")
    else:
        forms.add(last + "es" if _SIBILANT.search(last) else last + "s")
    return [[*al[:-1], f] for f in sorted(forms) if tuple([*al[:-1], f]) not in said and f not in choices]


_CODE_SUFFIXES = ("s", "'s", "\u2019s", "s'", "s\u2019")


def _code_form(written: str, code: str) -> bool:
    """Whether the reply's word ``written`` is the code ``code`` (`_CODE_ALIAS`) in the plural or a possessive, in
    capitals but for its ending ("NSAIDs", "GDPR's", "ETFs'"), which the tokens read as another word ("nsaids"). Only
    a code of two capitals or more: "Cs" is caesium, no plural of carbon's "C", and "As" a word."""
    return (sum(c.isupper() for c in code) >= 2 and code == code.upper()
            and any(written == code + suffix for suffix in _CODE_SUFFIXES))


_SPELT_JOINS = _NAME_JOINS | frozenset({"for", "on", "&"})  # small words inside a name its initials skip


def _spelt_out(ans_tok: list[str], cased: list[str], code: str) -> list[tuple[int, int]]:
    """Where the reply writes the name that the code ``code`` (`_CODE_ALIAS`: letters only, two or more) abbreviates,
    as (first token, tokens): a run of words in capitals, with the small words of a name between them ("of", "and":
    `_SPELT_JOINS`), whose initials are the code and which the next word does not go on ("The New York Stock
    Exchange." for "NYSE", "the Federal Bureau of Investigation" for "FBI"). A function word in capitals ("In", "It")
    starts no run and goes on none."""
    if not (code.isalpha() and len(code) >= 2):
        return []

    def capital(i: int) -> bool:
        return cased[i][:1].isupper() and ans_tok[i] not in _FUNCTION_WORDS

    out: list[tuple[int, int]] = []
    for i in range(len(cased)):
        if not capital(i):
            continue
        initials, j = "", i
        while j < len(cased) and (capital(j) or (ans_tok[j] in _SPELT_JOINS and j + 1 < len(cased) and capital(j + 1))):
            if capital(j):
                initials += cased[j][0].upper()
            j += 1
        if initials == code:
            out.append((i, j - i))
    return out


def _written_as_code(answer: str, cased: list[str] | None, start: int, alias: str) -> bool:
    """Whether the reply writes the code ``alias`` (`_CODE_ALIAS`) matched at token ``start`` as that code, case and
    dots aside ("CLP", "U.S.D."), not as a word its tokens share: the currency reading folds "USD" into "dollar" and
    a peso named alone into "CLP" (`_find`), so "It is the peso." or "The code is the dollar." would name the code.
    At that place where the reply's words as written (``cased``: :func:`_cased`) align with its tokens, else
    anywhere in it."""
    code = normalize(alias)
    if cased is not None:  # the word as written, or one of its hyphen's parts ("NYSE-listed", "GDPR-compliant")
        written = normalize(cased[start])
        return written.replace(" ", "") == code or code in written.split() or _code_form(cased[start], alias.strip())
    pattern = r"[.\s\u2010-\u2015-]*".join(re.escape(c) for c in code) + r"\.?"  # "U.S.D.", "U. K."
    return re.search(rf"(?i)(?<![\w.]){pattern}(?!\w)", matching_form(fold_accents(answer))) is not None


def judgeable(alias: str) -> bool:
    """Whether ``alias`` keeps a word after normalisation (so it can ever match a reply)."""
    return bool(_tokens(alias))


_NEW_QUESTION = re.compile(r"\s*(?:question|q)\s*:", re.IGNORECASE)


def judge(answer: str, aliases: list[str], kind: str = "qa", question: str | None = None) -> Judgement:
    """Label `answer` against the accepted `aliases` for a row of the given kind (see module doc);
    ``question`` lets :func:`declines` read a plain no about a document."""
    _check_str(answer, "answer")
    if kind not in ("qa", "unanswerable"):
        raise InputError(f"kind must be 'qa' or 'unanswerable' (got {kind!r}); use the row's kind field")
    if isinstance(aliases, str) or not isinstance(aliases, (list, tuple)) or not all(isinstance(a, str) for a in aliases):
        raise InputError(f"aliases must be a list of strings (got {aliases!r}); wrap a single answer as [answer]")
    # An alias that normalises to nothing ("", "?", or only articles such as "A" or "The The")
    # would match every reply containing an article, so it is ignored.
    usable = [a for a in aliases if judgeable(a)]
    usable = [a for a in usable if not (_word_code(a) and a == a.lower())] or usable
    if kind == "qa" and not usable:
        raise InputError(
            f"a 'qa' question needs at least one alias with a word other than a/an/the (got {aliases!r});"
            " write aliases with context (e.g. 'vitamin A'), or mark the row kind 'unanswerable'"
        )

    found = _refusal(answer)
    wording = _declines(answer, question, found)
    if wording is not None:
        if not wording:
            return Judgement("refusal", None, "empty answer")
        alias = _match(answer, usable)[0] if usable else None
        named = f"; names accepted alias {alias!r} but declines, so the guard abstains on it" if alias else ""
        return Judgement("refusal", None, f"declines ({wording!r}){named}")
    # what is left of ``found`` is a denial of the premise, or nothing
    if kind == "unanswerable":
        if found is None:
            return Judgement("hallucinated", None, "answered an unanswerable question without declining or denying its premise")
        return Judgement("correct", None, f"denied the premise of an unanswerable question ({found[1]!r})")

    if _NEW_QUESTION.match(answer):
        return Judgement("hallucinated", None, "writes a new question instead of answering")
    alias, spoiled, echoed, secondary = _match(answer, usable, question)
    if alias is not None:
        note = f" despite denial wording {found[1]!r}" if found else ""
        return Judgement("correct", alias, f"answer contains accepted alias {alias!r}{note}")
    if found is not None:
        return Judgement(
            "hallucinated", None,
            f"no accepted alias; denies the premise of a question with a known answer ({found[1]!r})",
        )
    if spoiled is not None:
        return Judgement(
            "hallucinated", None, f"alias {spoiled!r} appears only negated or hedged among alternatives ('or'/'either')"
        )
    if echoed is not None:
        return Judgement("hallucinated", None, f"alias {echoed!r} appears only inside words the answer repeats from the "
                                               "question, not as an answer")
    if secondary is not None:
        return Judgement("hallucinated", None, f"alias {secondary!r} appears only as a secondary answer after another "
                                               "main one ('primarily X, but also Y')")
    return Judgement("hallucinated", None, "no accepted alias in the answer and no refusal wording")


# ------------------------------------------------------------------------------ yes / no answers

#: The aliases a yes/no row's answers hold: ["yes"] or ["no"] (True/False in the upstream sets).
YES_NO = ("yes", "no")
_YES_WORDS = frozenset({"yes", "true", "correct", "indeed", "yeah", "yep"})
_NO_WORDS = frozenset({"no", "false", "incorrect", "nope"})
_NO_IDIOMS = frozenset({"problem", "problems", "worries", "worry", "doubt", "question"})
# a reply that names both and picks neither: "The answer is not 'yes' or 'no'.", "neither yes nor no", "yes or no"
_FIRST_WORD = re.compile(r"\s*([^\W\d_]+)(?![\w-])")  # a whole first word: not "non" of "non-compete"
_NEITHER = re.compile(r"\b(?:yes|no)\s+(?:or|nor)\s+(?:yes|no)\b")
_NEGATED_VERB = re.compile(r"\b(?:does not|doesnt|do not|dont|is not|isnt|are not|arent|did not|didnt|will not|wont|"
                           r"cannot|cant|can not|was not|wasnt|has not|hasnt|have not|havent|never|not)\b")


def judge_yesno(answer: str, truth: str, question: str | None = None) -> Judgement:
    """Label a reply to a yes/no question whose right answer is ``truth`` ("yes" or "no").

    The reply's polarity is its first yes/no word ("Yes, ...", "No.", "True", "False"; not the "no" of "no
    problem" or "no doubt"); without one,
    a negated verb ("it does not", "is not") reads as no and a plain statement as yes. Abstaining
    ("the context does not say", "No, the context does not provide information about ...") is a
    refusal, and so is an empty reply; to a question about a document, a reply whose abstain-like
    wording goes on to name what the question asks about ("The clause does not discuss dispute
    resolution." to "Does the clause discuss dispute resolution?") is a plain no (:func:`declines`). A hedged
    reply that leans takes its side ("Probably not.", "I'd say so.": :func:`hedged_side`); an even-odds one
    ("Maybe.") declines. A determiner "No" ("No refunds are given ...") is no reply word: the sentence's negation
    reads it. A "No," that says the question's claim back unnegated ("No, the fee is $5." to "Is the fee $5?")
    contradicts itself and is hallucinated whatever ``truth`` is (:func:`contradicts_own_no`).
    """
    _check_str(answer, "answer")
    if truth not in YES_NO:
        raise InputError(f"truth must be 'yes' or 'no' (got {truth!r}); map True/False to 'yes'/'no'")
    said, how, _ = _polarity(answer, question)
    if said is None:
        return Judgement("refusal", None, how)
    if question is not None and contradicts_own_no(answer, question):
        return Judgement("hallucinated", None, "contradicts itself: opens with no, then says the question's claim back "
                                               "unnegated; right neither way")
    if said == truth:
        return Judgement("correct", said, f"{how}: {said}, the right answer")
    return Judgement("hallucinated", None, f"{how}: {said}, but the right answer is {truth}")


def yes_no_taken(answer: str, question: str) -> str | None:
    """"yes" or "no" where the reply takes that side plainly, else None: ``question`` asks for yes or no and nothing
    else (:func:`hguard._text.asks_only_yes_no`: not "Can you tell me who wrote Hamlet?", "Is it Sydney or
    Canberra?" or "Does the policy say which providers get my data?"), and the reply opens with yes or no ("No.",
    "Yes, it does.") or restates the question's own claim, negated or not: every content word of it is one of the
    question's ("The policy does not allow children under 13 to sign up." to "Does the policy allow children under
    13 to sign up?" is no). Stricter than :func:`judge_yesno`, which reads any statement without a negation as yes
    ("Lyon is the capital of France." to "Is Paris the capital of France?"): where a reply's yes or no stands for the
    reply (a reviewed answer's calibration row), a wrong reading would label every reply with that polarity."""
    _check_str(answer, "answer")
    if not asks_only_yes_no(_check_str(question, "question")):
        return None
    said, _, opens = _polarity(answer, question)
    if said is None or contradicts_own_no(answer, question):  # "No, the fee is $5." to "Is the fee $5?": neither
        return None
    if opens:
        return said
    from hguard.signals.relevance import adds_no_word

    # the question's claim said back, its negation aside: "The policy does not allow ..." adds no word to "Does the
    # policy allow ...?", and "Lyon is the capital of France." adds "Lyon" to "Is Paris the capital of France?"; so is
    # a determiner "No" ("No refunds are given after 30 days." to "Are refunds given after 30 days?")
    text = normalize(answer)
    if opening_no_is_determiner(answer):
        text = text.partition(" ")[2]
    if _SCOPE_WORDS & set(text.split()) - set(normalize(question).split()):
        return None  # "No refunds are given after 30 days." to "Are refunds given within 30 days?": another claim
    return said if adds_no_word(question, _NEGATED_VERB.sub(" ", text)) else None


# words that set a claim's scope, which :func:`hguard.signals.relevance.adds_no_word` reads as no content: a reply
# writing one the question does not says another claim than the question's ("after 30 days" for "within 30 days")
_SCOPE_WORDS = frozenset({"after", "before", "within", "over", "under", "above", "below", "more", "less", "fewer",
                          "than", "until", "since", "only", "except", "unless", "outside", "beyond"})


# words that qualify or negate what a "No," reply goes on to say: it corrects or narrows the question's claim
_QUALIFYING = frozenset({"no", "none", "nothing", "nobody", "neither", "nor", "without", "unless", "except", "only",
                         "just", "but", "however", "although", "though", "rather", "instead", "if", "when", "until",
                         "before", "after"}) | _NO_WORDS


# words that bound or compare a claim's figure or time ("more than 7 years", "over $1,000", "$12 before 1 March"): a
# "No," whose reply drops one or writes another ("No, ... for 7 years.", "No, ... $12 from 1 March.") answers the
# bound, not the claim, so it does not say the claim back
_BOUNDS = frozenset({"more", "less", "fewer", "than", "over", "under", "above", "below", "least", "most", "exceed",
                     "exceeds", "exceeding", "greater", "higher", "lower", "earlier", "later", "before", "after", "from",
                     "until", "till", "since", "within", "beyond", "through", "minimum", "maximum"})


def _dates_named(text: str) -> frozenset[tuple[int, int, int]]:
    """The dates ``text`` writes, each as (year, month, day) it may mean, 0 for a part it leaves out: a whole date
    (`_dates_in`), a day and month ("1 March"), a month and year ("March 2025"), a year alone."""
    plain = _plain_digits(text)
    named = {r for *_, readings in _dates_in(plain) for r in readings}
    rest = _WORD_DATE.sub(" ", plain)
    named |= {(0, _MONTHS[(m.group(2) or m.group(3)).lower()], int(m.group(1) or m.group(4)))
              for m in _DAY_MONTH.finditer(rest)}
    named |= {(year, month, 0) for _, months in _month_years(rest) for year, month in months}
    named |= {(int(y), 0, 0) for y in re.findall(r"(?<![\d.,])(?:18|19|20|21)\d\d(?![\d,.]\d|\d)", rest)}
    return frozenset(named)


def contradicts_own_no(answer: str, question: str) -> bool:
    """Whether ``answer`` opens with the reply word "No" and then says the claim of ``question`` back unnegated: "No,
    the fee is $5." to "Is the fee $5?", "No, the policy allows children under 13 to sign up." to "Does the policy
    allow children under 13 to sign up?". ``question`` asks for yes or no alone (:func:`hguard._text.asks_only_yes_no`)
    and negates nothing ("Isn't the fee $5?" makes "No, it is $5." English's yes); after the "No" every content word is
    the question's (:func:`hguard.signals.relevance.adds_no_word`) and none negates or qualifies (`_QUALIFYING`: "No,
    only the fee is $5."); it writes the question's bound or comparison words (`_BOUNDS`) and dates, no fewer and no
    others ("No, statements are kept online for 7 years." to "... for more than 7 years?", "No, the monthly fee is $12
    from 1 March 2025." to "Is the monthly fee $12 before 1 March 2025?" answer the bound: a plain no). Such a reply contradicts itself, so it is right neither way: the judge labels it
    hallucinated (:func:`judge_yesno`), it takes no side for a reviewed row (:func:`yes_no_taken`), and the guard holds
    it ("No, the fee is $5." passed over a passage of $5, its opener left aside, and over one of $10, its $5 the
    question's own figure). A "No," that corrects ("No, the fee is $10.") or restates a negation ("No, the fee is not
    $5.") is a plain no; a determiner "No" ("No fee is charged.") is no reply word
    (:func:`hguard._text.opening_no_is_determiner`)."""
    first = _FIRST_WORD.match(fold_accents(answer))
    if first is None or first.group(1).lower() not in ("no", "nope") or opening_no_is_determiner(answer):
        return False
    if not asks_only_yes_no(question) or _NEGATED_VERB.search(normalize(question)):
        return False
    rest = normalize(answer[first.end():])
    if not rest or _NEGATED_VERB.search(rest) or _QUALIFYING & set(rest.split()) or _NO_IDIOMS & set(rest.split()[:1]):
        return False
    if _BOUNDS & set(rest.split()) != _BOUNDS & set(normalize(question).split()):
        return False
    if _dates_named(answer[first.end():]) != _dates_named(question):
        return False
    from hguard.signals.relevance import adds_no_word

    return adds_no_word(question, rest)


def _polarity(answer: str, question: str | None) -> tuple[str | None, str, bool]:
    """The reply's yes or no and how it was read, or None and why it says neither (:func:`judge_yesno`), and
    whether the reply opens with its yes or no (:func:`yes_no_taken`)."""
    wording = declines(answer, question)
    if wording is None and question is not None and not asks_yes_no(question):
        # a yes/no row whose question does not open with an auxiliary (PubMedQA writes 298 of its 1,000 after the
        # article's title): a reply that says it back or asks instead was read as an affirmative "yes"
        wording = _hedges(answer, question, yes_no=True)
    if wording is not None:
        return None, f"declines ({wording!r})" if wording else "empty answer", False
    words = normalize(answer).split()
    if _NEITHER.search(" ".join(words)):
        return None, "says neither yes nor no", False
    if hedged := hedged_side(answer):  # "Probably not." leans to no and takes it (an even-odds "Maybe." declined above)
        return hedged, f"hedged {hedged} ({answer.strip()[:40]!r})", True
    first = _FIRST_WORD.match(fold_accents(answer))  # folded first: a decomposed "Não" is one word, not "Na"
    lead = first.group(1).lower() if first else ""
    # a reply whose first word is yes or no in another language ("Nein.", "Oui, ...", "Нет, ...", "不是"): only there,
    # since inside an English reply these words are others ("non-compete", "ja" in a name); English's own below ("No
    # problem, ..." says neither)
    said = yes_or_no_opening(answer) if lead not in _YES_WORDS | _NO_WORDS else None
    if said is not None:
        opening = lead or answer.strip()[:2]
        return said, f"first word {opening!r}", True
    for i, w in enumerate(words):
        if w == "no" and words[i + 1 : i + 2] and words[i + 1] in _NO_IDIOMS:
            continue  # "No problem, you can approve it." says neither yes nor no with its "no"
        if i == 0 and w == "no" and opening_no_is_determiner(answer):
            # "No refunds are given after 30 days.": its subject's determiner negates the sentence, no reply word
            return "no", f"negated statement ({' '.join(words[:2])!r}: a determiner, not the reply word)", False
        if w in _YES_WORDS or w in _NO_WORDS:
            return ("yes" if w in _YES_WORDS else "no"), f"first yes/no word {w!r}", i == 0
    m = _NEGATED_VERB.search(normalize(answer))
    return ("no", f"negated statement ({m.group(0)!r})", False) if m else ("yes", "affirmative statement", False)


# --------------------------------------------------------- a right and a misleading reference answer


def _content(text: str) -> set[str]:
    stop = {"is", "are", "was", "were", "of", "in", "on", "at", "to", "and", "or", "it", "its", "by", "for",
            "with", "as", "that", "this", "be", "has", "have", "had", "from", "which", "who", "what"}
    return {t for t in _tokens(text) if t not in stop}


#: How :func:`judge_contrast` says a reply followed the misleading passage (its reason starts with it).
FOLLOWS_MISLEADING = "follows the misleading passage"


def followed_misleading(row: dict) -> bool:
    """Whether a judged RAG row (``condition``, ``label``, ``judge_reason``) followed its misleading
    passage against the truth (not merely named neither answer)."""
    return (row.get("condition") == "misleading" and row.get("label") == "hallucinated"
            and str(row.get("judge_reason", "")).startswith(FOLLOWS_MISLEADING))


def judge_contrast(answer: str, right: str, misleading: str, question: str | None = None) -> Judgement:
    """Label a reply given a misleading passage: "correct" when it holds more words of the right
    reference answer than of the misleading one (counting only words the two do not share),
    "hallucinated" when it follows the misleading one or names neither, "refusal" when it abstains."""
    _check_str(answer, "answer")
    wording = declines(answer, question)
    if wording is not None:
        return Judgement("refusal", None, f"declines ({wording!r})" if wording else "empty answer")
    said = _content(answer)
    r, m = _content(right), _content(misleading)
    hit_r, hit_m = len(said & (r - m)), len(said & (m - r))
    if hit_r > hit_m:
        return Judgement("correct", right, f"{hit_r} word(s) of the right answer, {hit_m} of the misleading one")
    if hit_m > hit_r:
        return Judgement("hallucinated", None, f"{FOLLOWS_MISLEADING} ({hit_m} word(s) of its answer, {hit_r} of the right one)")
    return Judgement("hallucinated", None, f"names neither the right nor the misleading answer ({hit_r} word(s) each)")


def says_what_reviewed(answer: str, reviewed: str, question: str | None = None) -> bool:
    """Whether ``answer`` says only what ``reviewed`` (an answer a reviewer gave or marked right, a whole sentence)
    says beyond the question: its words past the question's are some, and all, of the reviewed answer's ("Paris." or
    "Paris is the capital of France." for a reviewed "The capital of France is Paris."); a word the reviewed answer
    lacks (another name, a negation, an alternative) is not."""
    asked = _content(question or "") | _LEAD_WORDS
    said = _content(answer) - asked
    return bool(said) and said <= _content(reviewed) - asked


_LEAD_WORDS = frozenset({"answer", "response", "result"})  # "The answer is 7." says 7


def judge_row(answer: str, aliases: list[str], kind: str = "qa", meta: dict | None = None,
              question: str | None = None) -> Judgement:
    """The judge a calibration row asks for: ``meta.judge = "yesno"`` (answers ["yes"] or ["no"]),
    ``meta.misleading_answer`` (a misleading passage's answer: :func:`judge_contrast` against
    ``meta.right_answer``), else :func:`judge`. A reviewed row (``meta.source = "review"``, see
    :mod:`hguard.review.export`) answered otherwise than the reviewer saw: its accepted answer is a whole sentence,
    so an answer saying the same in fewer or other-ordered words is right (:func:`says_what_reviewed`); and one whose
    right answer is unknown (``meta.answers_unknown``) asks a question that has an answer, so denying its premise is
    not right."""
    meta = meta or {}
    # a row answered from its own passage may name the misleading answer (to pair it with its misleading row): a wrong
    # reply there gives that answer, it does not follow a passage that said it (a medical team's trial)
    misled = meta.get("condition") == "misleading"  # a row that says no condition is its own passage's, as calibration reads it
    if meta.get("judge") == "yesno":
        j = judge_yesno(answer, aliases[0] if aliases else "", question)
        misleading = normalize(str(meta.get("misleading_answer") or ""))  # "No." is no
        if (misled and j.label == "hallucinated" and misleading in YES_NO
                and misleading != normalize(aliases[0] if aliases else "")):
            # a yes/no row with a misleading passage: the wrong reply is the passage's (the reason says so, as the
            # contrast judge's does; read without it, no reply followed one, and the knowledge-conflict detector
            # was silently not fitted, "for too few misleading rows")
            return Judgement("hallucinated", None, f"{FOLLOWS_MISLEADING} (replies {misleading!r} as it does: {j.reason})")
        return j
    if meta.get("misleading_answer"):
        j = judge_contrast(answer, str(meta.get("right_answer") or aliases[0]), str(meta["misleading_answer"]), question)
        if not misled and j.reason.startswith(FOLLOWS_MISLEADING):
            return Judgement(j.label, j.matched, "gives the misleading answer, which its own passage does not say"
                                                 + j.reason[len(FOLLOWS_MISLEADING):])
        return j
    j = judge(answer, aliases, kind, question)
    if meta.get("answers_unknown") and j.label == "correct":  # "X does not exist" of a question a reviewer saw answered
        return Judgement("hallucinated", None, f"{j.reason}, but a reviewer said the question has an answer (one the "
                                               "model got wrong): denying its premise is not right")
    if (meta.get("source") == "review" and kind == "qa" and j.label == "hallucinated" and j.matched is None
            and any(says_what_reviewed(answer, a, question) for a in aliases)):
        return Judgement("correct", aliases[0], "says what the reviewed answer says, in other words (its words beyond "
                                                "the question's are all the reviewed answer's)")
    return j
