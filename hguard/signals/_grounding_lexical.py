"""The text side of the grounding signals: input checks, tokens, sentences and the lexical, phrase and
proximity supports. See :mod:`hguard.signals.grounding`."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Any

import regex

from hguard._text import (_SPELLING_MARK, UNSPACED, UNSPACED_LETTER, fold_accents, function_words, join_digit_groups, japanese_grammar,
                          opening_no_is_determiner,
                          language_of,
                          script_words, words_of, written_in)
from hguard.errors import InputError

# --------------------------------------------------------------------------------------- validation


def _check_text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise InputError(
            f"{name} must be a str, got {type(value).__name__}: {value!r:.80}; pass the text as a string"
        )
    return value


def _context_text(context: Any) -> str:
    """The context as one string: a str as is, a list/tuple of passages joined by blank lines."""
    if isinstance(context, str):
        return context
    if isinstance(context, (list, tuple)):
        for i, p in enumerate(context):
            if not isinstance(p, str):
                raise InputError(
                    f"context passage {i} is {type(p).__name__} ({p!r:.80}), not str; pass the "
                    "context as a str or a list of str passages"
                )
        return "\n\n".join(context)
    raise InputError(
        f"context must be a str or a list of str passages, got {type(context).__name__}: "
        f"{context!r:.80}; join or convert the retrieved passages to strings first"
    )


# ------------------------------------------------------------------------------------- tokenising

STOP_WORDS = frozenset(
    """
    a about above after again against all also am an and any are aren as at be because been before
    being below between both but by can cannot could did do does doing don down during each either
    few for from further had has have having he her here hers herself him himself his i if in into
    is isn it its itself just let me more most my myself neither no nor not now of off on once only
    or other ought our ours ourselves out over own per same she should so some such than that the
    their theirs them themselves then there these they this those though through to too under until
    up upon us very via was wasn we were weren while with within without would you your yours
    yourself yourselves yes actually really called named known one ones another s t d ll m re ve
    """.split()
)
QUESTION_WORDS = frozenset("who whom whose what which when where why how".split())
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
# A letter of a script other than Latin (whose tokens keep to ASCII letters, as the shipped calibrations read them)
# and the unspaced scripts (read as bigrams): Cyrillic, Greek, Arabic, Hebrew, Devanagari, Hangul, Thai ...
_OTHER_LETTER = rf"[\p{{L}}--[\p{{Latin}}\p{{Common}}\p{{Inherited}}{UNSPACED}]]"
_ASCII_TOKEN = r"[a-z0-9]+(?:\.[0-9]+)?"  # Latin letters (accents folded) and digits, exactly as before other scripts were read
_ASCII_TOKEN_RE = re.compile(_ASCII_TOKEN)  # ASCII text (English, most of it): the standard re, several times faster
_TOKEN_RE = regex.compile(
    _ASCII_TOKEN +
    rf"|[{UNSPACED}]+"  # Chinese and Japanese: a run, read as its character bigrams (hguard._text.script_words)
    rf"|{_OTHER_LETTER}(?:{_OTHER_LETTER}|{_SPELLING_MARK})*",  # a word of another script, its vowel signs inside
    regex.V1,
)
_SCRIPT_DIGIT = regex.compile(r"[\p{Nd}--[0-9]]", regex.V1)
_LETTER = regex.compile(r"\p{L}")


def _normalise(text: str) -> str:
    # the token form; hguard._text says how it differs from the judge's canonical answer string
    text = fold_accents(text).lower().replace("\u2019", "'").replace("`", "'")
    text = re.sub(r"'s\b", "", text)
    if text.isascii():
        return join_digit_groups(text)
    # every script's digits as 0-9 ("٤٥", "४५" are 45), as the judge reads them
    text = _SCRIPT_DIGIT.sub(lambda m: str(unicodedata.decimal(m.group(0))), text)
    return join_digit_groups(text)


def tokens(text: str) -> list[str]:
    """Lower-cased, accent-folded word and number tokens (``1,000`` -> ``1000``, possessives dropped).

    Words of every script are read: Latin letters as ASCII (accents folded; a letter no accent folds to ASCII,
    "ß", "ø", splits the word, as it always did), a run of Chinese or Japanese characters as its overlapping character
    bigrams, a word of another script whole with its vowel signs and case-folded (Greek "ς" is "σ"), every script's
    digits as 0-9."""
    text = _normalise(text)
    if text.isascii():
        return _ASCII_TOKEN_RE.findall(text)
    out: list[str] = []
    for m in _TOKEN_RE.finditer(text):
        word = m.group(0)
        # another script's word case-folded, the form function_words() holds (Greek final "ς" is "σ": "τους" is
        # the list's "τουσ"); an ASCII one lower-cased, as always
        out.extend((word,) if word.isascii() else script_words(word.casefold()))
    return out


@lru_cache(maxsize=8192)
def _reads_letter(c: str) -> bool:
    return _TOKEN_RE.search(_normalise(c)) is not None


def unread_letters(text: str) -> list[str]:
    """The letters of ``text`` :func:`tokens` reads no token from (Latin letters with no ASCII form, "Þ", "ß", "ø";
    IPA; modifier letters), each once, in order; none in ASCII text."""
    if text.isascii():
        return []
    return [c for c in dict.fromkeys(text) if _LETTER.match(c) and not _reads_letter(c)]


def unread(text: str) -> bool:
    """Whether ``text`` holds letters :func:`tokens` reads nothing from (:func:`unread_letters`) and no content token
    beside them ("Þæð ßø", "Þæð ßø a"): the lexical signals cannot say whether such an answer is supported, so they
    are NaN, never "no evidence" (0.5, which passed the grounding floor with a stray "a" read)."""
    return bool(unread_letters(text)) and not content_tokens(text)


def _is_number(tok: str) -> bool:
    return any(c.isdigit() for c in tok)


def content_tokens(text: str) -> list[str]:
    """Tokens that carry content: no stop words, no question words, no one-letter words.

    Number words up to twenty become digits so ``three`` matches ``3``. A word of another script is dropped when it is
    one of the function words of the language the text is in (:func:`hguard._text.language_of`; none when that is
    not known), a one-letter word unless it is a Chinese or Japanese character, and Japanese grammar written in
    hiragana (:func:`hguard._text.japanese_grammar`: "でき", "きま" of "できます" are in every Japanese passage; a
    content word in hiragana, "おにぎり", is kept).
    """
    out = []
    foreign: frozenset[str] | None = None
    for t in tokens(text):
        if not t.isascii():
            if foreign is None:
                lang = language_of(words_of(text))
                foreign = function_words()[lang] if lang != "english" else frozenset()
            if t in foreign or (len(t) < 2 and not UNSPACED_LETTER.match(t)) or japanese_grammar(t):
                continue
            out.append(t)
            continue
        t = _NUMBER_WORDS.get(t, t)
        if t in STOP_WORDS or t in QUESTION_WORDS:
            continue
        if len(t) < 2 and not t.isdigit():
            continue
        out.append(t)
    return out


def _stem(tok: str) -> str:
    """A light suffix stripper (enough to match plural/verb forms); numbers are left alone."""
    if _is_number(tok) or len(tok) <= 3:
        return tok
    for suf, rep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""), ("ly", "")):
        if tok.endswith(suf) and len(tok) - len(suf) >= 3:
            return tok[: len(tok) - len(suf)] + rep
    return tok


def by_initial(vocab: set[str]) -> dict[str, list[str]]:
    """The words of ``vocab`` a fuzzy match may pair (five letters or more, no number), by their first character:
    :func:`_word_matches` reads only those of its token's (both of its rules need it), so a long question against a
    long passage is not every word against every word (2,000 words against 20,000 took 83 s)."""
    out: dict[str, list[str]] = {}
    for w in vocab:
        if len(w) >= 5 and not _is_number(w):
            out.setdefault(w[0], []).append(w)
    return out


def _word_matches(tok: str, vocab: set[str], stems: set[str], fuzzy: bool,
                  initials: dict[str, list[str]] | None = None) -> bool:
    """Whether ``tok`` is in ``vocab`` in some form: itself, its stem (``stems``: those of ``vocab``), and with
    ``fuzzy`` a shared opening or a close spelling; ``initials``: :func:`by_initial` of ``vocab``, where the caller
    matches many tokens against it."""
    if tok in vocab:
        return True
    if _is_number(tok):  # digits match only the same digits
        return False
    if _stem(tok) in stems:
        return True
    if not fuzzy or len(tok) < 5:
        return False
    for w in (initials if initials is not None else by_initial(vocab)).get(tok[0], ()):
        if abs(len(w) - len(tok)) > 4:
            continue
        # a shared prefix of 6+ characters (america/american, catholic/catholicism) ...
        n = min(len(w), len(tok))
        if n >= 6 and w[:6] == tok[:6] and (w.startswith(tok) or tok.startswith(w)):
            return True
        # ... or a close spelling (transliterations, typos)
        close = SequenceMatcher(None, tok, w)  # its cheap upper bounds first
        if close.real_quick_ratio() >= 0.85 and close.quick_ratio() >= 0.85 and close.ratio() >= 0.85:
            return True
    return False


# -------------------------------------------------------------------------------------- sentences

# a month's name after a day written as an ordinal, "am 31. Mai", "den 1. juni": no sentence's end (German, the Nordic
# languages; a reversal after it, "... am 31. Mai nicht automatisch.", was compared in halves)
_MONTH = (r"(?:Januar|Jänner|Februar|März|Maerz|April|Mai|Juni|Juli|August|September|Oktober|November|Dezember|[Jj]anuar"
          r"|[Ff]ebruar|[Mm]arts|[Mm]ars|[Aa]pril|[Mm]aj|[Jj]uni|[Jj]uli|[Aa]ugust|[Ss]eptember|[Oo]ktober|[Nn]ovember"
          r"|[Dd]ecember|[Dd]esember)\b")
_SENT_SPLIT_RE = re.compile(
    r"(?<=[.!?])(?!(?<=\b\d\.)\s+" + _MONTH + r")(?!(?<=\b\d\d\.)\s+" + _MONTH
    + r")[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])"  # ". Next"
    r"|(?<=[a-z0-9)][.!?])(?=[A-Z][a-z])"  # "century.First" (HaluEval glues paragraphs)
    r"|\n\s*\n"  # blank line between passages
)


def split_sentences(text: str, *, max_words: int = 64) -> list[str]:
    """Split ``text`` into sentences; sentences over ``max_words`` words are cut into windows."""
    out: list[str] = []
    for part in _SENT_SPLIT_RE.split(text):
        part = (part or "").strip()
        if not part:
            continue
        words = part.split()
        if len(words) <= max_words:
            out.append(part)
        else:
            step = max_words // 2
            for i in range(0, len(words) - step, step):
                out.append(" ".join(words[i : i + max_words]))
    return out


# ---------------------------------------------------------------------------------------- lexical


def _evidence_tokens(answer: str, question: str | None) -> list[str]:
    ans = content_tokens(answer)
    if question:
        q = set(content_tokens(question))
        qs = {_stem(t) for t in q}
        ans = [t for t in ans if t not in q and _stem(t) not in qs]
    # keep order, drop duplicates
    return list(dict.fromkeys(ans))


def lexical_support(
    answer: str,
    context: str | Sequence[str],
    question: str | None = None,
    *,
    fuzzy: bool = True,
    per_sentence: bool = False,
    empty: float = 0.5,
) -> float:
    """Share of the answer's evidence tokens that the context contains, in [0, 1].

    Evidence tokens are the answer's content tokens (normalised; stop words and question words
    removed) that are *not* already in the question: repeating the question is no evidence. A token of
    digits matches only the same digits (units, scales and currencies are not compared here; the guard's
    number hold does that); words match exactly, by a light stem, a shared prefix of 6+ characters or a
    close spelling (``fuzzy=True``). ``per_sentence=True`` takes the best single context sentence
    instead of the whole context (measured worse on HaluEval, where answers combine sentences).
    An answer with no evidence tokens at all (empty, or only words from the question) scores
    ``empty`` (0.5: no evidence either way); an answer or context whose letters :func:`tokens` cannot read
    (:func:`unread`) NaN: not "no evidence", which let any such answer pass.
    """
    answer = _check_text(answer, "answer")
    ctx = _context_text(context)
    if question is not None:
        _check_text(question, "question")
    if unread(answer) or unread(ctx):
        return math.nan
    ev = _evidence_tokens(answer, question)
    if not ev:
        return float(empty)
    units = split_sentences(ctx) if per_sentence else [ctx]
    best = 0.0
    for unit in units or [""]:
        vocab = set(content_tokens(unit)) | set(tokens(unit))
        stems = {_stem(t) for t in vocab}
        initials = by_initial(vocab) if fuzzy else None
        hit = sum(_word_matches(t, vocab, stems, fuzzy, initials) for t in ev)
        best = max(best, hit / len(ev))
    return float(best)


def _plain_tokens(text: str) -> list[str]:
    """All tokens (stop words kept), number words up to twenty as digits."""
    return [_NUMBER_WORDS.get(t, t) for t in tokens(text)]


_ARTICLES = ("the", "a", "an")


def phrase_support(answer: str, context: str | Sequence[str], question: str | None = None) -> float:
    """Share of the answer's word bigrams found verbatim in the context, in [0, 1].

    Checks the answer as a *phrase*, word order and stop words included ("Lord Black of London" is
    not supported by a context that says "Lord Black of Crossharbour" and "Green Park, London", though
    each word is there). A leading article is dropped; a one-word answer scores 1 when the context
    has the word, else 0; an empty answer 0.5; an answer or context it cannot read (:func:`unread`) NaN. Japanese
    grammar is no phrase (:func:`hguard._text.japanese_grammar`): a pair of its bigrams is left out, and an answer of
    grammar alone scores 0.
    ``question`` is accepted for a uniform signature and not used: a phrase copied from the question is
    rare in an answer and still has to be in the context.
    """
    answer = _check_text(answer, "answer")
    ctx = _context_text(context)
    if unread(answer) or unread(ctx):
        return math.nan
    at = _plain_tokens(answer)
    while at and at[0] in _ARTICLES:
        at = at[1:]
    if not at:
        return 0.5
    if all(japanese_grammar(t) for t in at):  # Japanese grammar alone ("はい、できます。"), as every Japanese passage has it
        return 0.0
    ct = _plain_tokens(ctx)
    if len(at) == 1:
        return 1.0 if at[0] in set(ct) else 0.0
    cb = set(zip(ct, ct[1:]))
    # two bigrams of grammar (a particle or an inflection: "できます" is でき, きま, ます) are no phrase of the
    # passage's: left out, as a content word is beside them
    ab = [b for b in zip(at, at[1:]) if not (japanese_grammar(b[0]) and japanese_grammar(b[1]))]
    return sum(b in cb for b in ab) / len(ab)


PROXIMITY_WINDOW = 5


def proximity_support(
    answer: str, context: str | Sequence[str], question: str | None = None, *, window: int = PROXIMITY_WINDOW
) -> float:
    """Share of the question's content words that stand near the answer in the context, in [0, 1].

    For every place the context mentions one of the answer's evidence tokens (see
    :func:`lexical_support`), count the question's content words (stemmed) within ``window`` tokens
    either side; the best place wins. A right answer sits next to what the question asks about
    ("directed by Robert Zemeckis"); a distractor from the same context usually does not ("written by
    Neil Gaiman"). 0 when the context never mentions the answer's evidence; 0.5 when there is no
    question or the answer has no evidence tokens (nothing to measure); NaN when the answer or the context
    holds letters it cannot read (:func:`unread`).
    """
    answer = _check_text(answer, "answer")
    ctx = _context_text(context)
    if unread(answer) or unread(ctx):
        return math.nan
    if question is None:
        return 0.5
    _check_text(question, "question")
    ev = _evidence_tokens(answer, question)
    q = {_stem(t) for t in content_tokens(question)}
    if not ev or not q:
        return 0.5
    ev_stems = {_stem(t) for t in ev}
    ct = [_stem(t) for t in _plain_tokens(ctx)]
    best = 0.0
    for i, t in enumerate(ct):
        if t in ev_stems:
            near = set(ct[max(0, i - window) : i + window + 1])
            best = max(best, len(q & near) / len(q))
    return float(best)


# -------------------------------------------------------------------------------------- reversed claims

#: words that negate the sentence they are in (after "n't" is read as "not"); "unless" and "except" count as one
#: too, so that "cannot ... unless" (two) restates "can ... only if" (none)
NEGATIONS = frozenset("not no never none nor neither cannot without nothing nobody nowhere unless except".split())
# "no later than", "no more than" set a bound, "not only" adds, ", not later." and ", no exceptions." stress: no negation
_NO_NEGATION = re.compile(r"\b(?:no|not)\s+(?:later|more|less|fewer|sooner|earlier|greater|longer|shorter)\s+than\b"
                          r"|\bnot\s+(?:only|just|merely)\b|\bno\s+matter\b|\bno\s+doubt\b"
                          # a contract's "including but not limited to": a list left open ("not limited to" after
                          # "including" only: "Coverage is not limited to in-network providers." is negated, a review)
                          r"|(?<=including),?\s+but\s+not\s+limited\s+to\b|\bwithout\s+limiting\b"
                          # "without limitation", "without restriction", "without exception" where no "on", "to",
                          # "of", "as" follows: "freely", "in every case" ("without limitation on the number of
                          # devices" is negated, a review)
                          r"|\bwithout\s+(?:any\s+)?(?:limitations?|restrictions?|exceptions?)\b(?!\s+(?:on|to|of|as)\b)"
                          # a governing-law clause's "without regard to its conflict of law provisions": boilerplate
                          r"|\bwithout\s+(?:regard|reference)\s+to\b|\bwithout\s+giving\s+effect\s+to\b"
                          r"|,\s*(?:and\s+)?(?:not|no)\s+(?:later|earlier|sooner|before|after|more|less|exceptions?)\W*$",
                          re.IGNORECASE)
_NOT = re.compile(r"n[\u2019']t\b", re.IGNORECASE)
#: "without (undue) delay" qualifies when a claim is done ("promptly"; "shall notify ... without undue delay and in any
#: event within 48 hours"), not whether: no negation (`_negated`), unless the other sentence words a delay otherwise
#: ("may delay notifying ..." reverses it); "without notice", "without consent" state a condition and stay negations
#: ("may share data with consent" reverses "may share data without consent")
_WITHOUT_DELAY = re.compile(r"\bwithout\s+(?:(?:any|undue|unreasonable|unnecessary|further)\s+)?delay\b", re.IGNORECASE)
_DELAY = re.compile(r"\bdelay", re.IGNORECASE)
#: "rarely", "seldom", "hardly ever": a negation against "always" in the other sentence only ("The company always
#: approves ..." reverses "The company rarely approves ...", a review), not against a plain claim or another adverb
_RARELY = re.compile(r"\b(?:rarely|seldom|hardly\s+ever|scarcely\s+ever)\b", re.IGNORECASE)
_ALWAYS = re.compile(r"\balways\b", re.IGNORECASE)
# a yes or no opening the answer answers the question; the claim after it is what is compared. A leading "No" that is
# the determiner of its subject is not ("No refunds are given." is its claim whole, negated by it: `opening_no_is_determiner`;
# a review: read as the reply, that reversal passed)
_ANSWER_OPENER = re.compile(r"^\W*(?:yes|no|true|false)\b[\s,.;:!-]*", re.IGNORECASE)
#: the fewest content words (by stem) an answer's sentence shares with a passage sentence for the two to be compared;
#: a claim of two shares both ("No refunds are given." of "Refunds are given within 30 days.")
MIN_SHARED = 3


# a title or a quotation: its words are not the claim's ("I Still Haven't Found What I'm Looking For")
_QUOTED = re.compile(r"\"[^\"\n]{1,200}\"|\u201c[^\u201d\n]{1,200}\u201d")


#: other languages' negations, read by their presence in a sentence written in another language than English (these
#: languages repeat a negation where English would not: "no hay nada", "ne ... jamais", "non ... mai"); French "ne"
#: goes with its "pas", "jamais", ... and is not read; "mai" (a month too) is not among them
OTHER_NEGATIONS = frozenset(
    "nicht kein keine keinen keinem keiner keines nie niemals ohne "  # German
    "niet geen nooit zonder "  # Dutch
    "pas jamais aucun aucune sans "  # French
    "no nunca ningun ninguna ninguno jamas sin "  # Spanish
    "non nessun nessuna nessuno senza "  # Italian
    "nao nenhum nenhuma sem "  # Portuguese
    "inte aldrig ingen inget utan ikke aldri uten ikkje "  # Swedish, Danish, Norwegian
    "nie nigdy zaden zadna bez".split())  # Polish


#: a restrictive covenant's name, "non-compete", "non-solicit", "non-disclosure": an obligation not to (one negation;
#: "The non-compete lasts one year." restates "... shall not compete ... for one year", a legal team's trial), read so
#: only where the other sentence has its verb ("compete") outside such a name; else it names a thing ("sign a
#: non-disclosure agreement" is "sign an NDA", a review); another "non-" word ("non-affiliated") is no negation, as before
_COVENANT = re.compile(r"\bnon-?(compet|solicit|disclos|disparag|circumvent)\w*", re.IGNORECASE)
#: a prohibition ("is prohibited from competing", "shall refrain from soliciting", "is banned"): one negation, where the
#: other sentence words none ("Smoking is banned." restates "Smoking is prohibited.", "should avoid" "must refrain from";
#: "prohibitively expensive" is none)
_PROHIBITION = re.compile(r"\b(?:prohibit(?:s|ed|ing|ion)?|forb[ia]d\w*|ban(?:s|ned|ning)?)\b|\brefrain\w*\s+from\b"
                          r"|\b(?:precluded|barred)\s+from\b", re.IGNORECASE)
_AVOID = re.compile(r"\bavoid\w*", re.IGNORECASE)  # no negation itself ("to avoid late fees, pay ..."), a prohibition's word
#: a cap worded as one ("capped at", "limited to", "maximum", "max", "at most", "within") or as a bound not to exceed
#: ("shall not exceed", "in no event shall ... exceed", "should not take more than"): against a sentence wording a cap,
#: and none "exceed" or "more than", "exceed" and "more than" are one negation each ("not capped") where they bound the
#: claim's predicate, not another quantity (`_bounds_the_cap`), so that "shall not exceed X" restates "is capped at X"
#: and "may exceed X" or "is not capped" reverses it (a review: "capped at" was held against "shall not exceed", "is not
#: capped" passed); `_CAP_STEMS` pairs the two words' stems
_CAP = re.compile(r"\b(?:cap(?:s|ped|ping)?|limited\s+to|max(?:imum)?|at\s+most|within)\b", re.IGNORECASE)
_EXCEED = re.compile(r"\bexceed(?:s|ed|ing)?\b|\bmore\s+than\b", re.IGNORECASE)
#: a figure a few words after a cap or a bound ("within 30 days", "The maximum weight for checked bags is 23 kg",
#: "more than $50"): its digits, without thousands separators
_FIGURE_AFTER = re.compile(r"(?:\W*[^\W\d]+){0,6}?\W*?(\d[\d,]*(?:\.\d+)?)")
#: the clause marks that end a bound's clause (`_bounds_predicate`)
_CLAUSE_MARK = re.compile(r"[,;:()\[\]\u2013\u2014]")
#: the stems of "cap", "caps", "capped" read as "exceed"'s where sentences are paired (`reversed_claims`)
_CAP_STEMS = dict.fromkeys(("cap", "capp"), _stem("exceed"))
#: a qualifier: "except", "unless" or "without" and the words after it up to a comma, a semicolon, a bracket or the
#: sentence's end ("except as required by law", "unless the balance is zero", "without the prior written consent")
_QUALIFIER = re.compile(r"\b(?:except|unless|without)\b[^,;:()\[\]]*", re.IGNORECASE)
#: a condition stated without a negation ("only if the landlord agrees", "needs the landlord's permission", "requires
#: consent"; not "even if"): a sentence stating one restates the other's qualifier in its own words
_CONDITION = re.compile(r"\b(?:only|(?<!even\s)if|needs?|needed|requir\w*)\b", re.IGNORECASE)


def _figure_after(text: str, words: int) -> str | None:
    """The figure at most ``words`` words after the start of ``text`` (`_FIGURE_AFTER`), or None."""
    m = _FIGURE_AFTER.match(text)
    if m is None or len(_english_words(text[: m.start(1)])) > words:
        return None
    return m.group(1).replace(",", "")


def _bounds_predicate(text: str, bound: re.Match[str]) -> bool:
    """Whether ``bound`` (an "exceed" or "more than" of ``text``) bounds its clause's predicate ("shall not exceed",
    "can exceed", "may not work more than", "will late fees exceed"), not a noun ("purchases of more than $50", "bags
    weighing more than 23 kg", "amounts exceeding", "claims that exceed", "Patients with a fever of more than 38 C
    should ...": a "more than" before its clause's first auxiliary is its subject's)."""
    words = _english_words(_CLAUSE_MARK.split(text[: bound.start()])[-1])
    if bound.group(0).lower() == "exceeding" or (words and (words[-1] in ("of", "that", "which", "who")
                                                            or words[-1].endswith("ing"))):
        return False
    return bound.group(0).lower().startswith("exceed") or not _AUXILIARIES.isdisjoint(words)


def _bounds_the_cap(text: str, bound: re.Match[str], caps: set[str], negated_besides: bool) -> bool:
    """Whether ``bound`` (an "exceed" or "more than" of ``text``) bounds the quantity the other sentence caps (whose
    figures after a cap word are ``caps``), so that it reads as a negation (`_negated`): it bounds its clause's
    predicate (`_bounds_predicate`), or a noun of a claim ``text`` negates besides with the cap's figure where both
    have one ("Refunds of more than $200 are not allowed." caps refunds at $200). A "more than" qualifying another
    quantity was read as one ("Returns are accepted within 30 days for purchases of more than $50." held "Returns are
    accepted within 30 days.", a review)."""
    if _bounds_predicate(text, bound):
        return True
    figure = _figure_after(text[bound.end():], 3)
    return negated_besides and (not caps or figure is None or figure in caps)


def _stems(text: str) -> set[str]:
    return {_stem(t) for t in content_tokens(text) if t not in NEGATIONS}


def _restated(qualifier: str, other: set[str]) -> bool:
    """Whether the other sentence (``other``: its content stems) restates ``qualifier``: holds two of its content
    words, or all of them where it has fewer (none: always, as every negation was counted before); its "unless",
    "except", "without" are not among them."""
    own = _stems(qualifier)
    return len(own & other) >= min(2, len(own))


def _count(words: list[str]) -> int:
    """The negations among ``words``; "nor", or "and neither", after one continues it ("neither ... nor ...", "may not
    ..., and neither may ...": one; "Except as provided herein, neither party ...": two)."""
    count = 0
    for i, w in enumerate(words):
        if w in NEGATIONS and not ((w == "nor" or (w == "neither" and i and words[i - 1] == "and")) and count):
            count += 1
    return count


def _english_words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", fold_accents(text).lower())


def _negated(sentence: str, other: str | None = None) -> bool:
    """Whether ``sentence`` is negated, outside quotation marks: in English, by an odd number of negations ("cannot ...
    without fees" is two: no negation); in a sentence another language's function words mark as its (`written_in`), by
    one of `OTHER_NEGATIONS` ("Der Zuschuss wird nicht ..."). An English sentence's "non-affiliated" or "InGen" is no
    negation (a review: read so, "shall not disclose ... to non-affiliated parties" reversed was not found).

    Read against ``other`` (the sentence it is compared with), an English sentence's qualifier ("except as provided
    herein", "unless the balance is zero", "without the landlord's consent") is left out where it carves an exception
    out of a claim the sentence negates besides and ``other`` neither restates it nor has a qualifier or a condition
    of its own: a faithful answer leaves a clause's carve-out out ("Neither party is liable for consequential
    damages." of "Except as provided herein, neither party shall be liable for ... consequential damages": two
    negations against one, held; a legal team's trial). Else it counts, as before: "can ... only if the balance is
    zero" restates "cannot ... unless the balance is zero", "may sublet without consent" reverses "may not sublet
    without the landlord's written consent" and "may resign, but must give notice" "may resign without giving notice"
    (a review: one-sided, these passed). "nor" or "neither" after a negation continues it, a covenant's name ("the
    non-compete") or a prohibition ("is prohibited from", "shall refrain from", "is banned") is one where ``other``
    words it otherwise (`_COVENANT`, `_PROHIBITION`), and "exceed" is one where ``other`` words a cap ("capped at",
    "maximum", "within": `_CAP`) and it bounds the claim's predicate, not a noun's quantity (`_bounds_the_cap`).
    "without undue delay" is none where ``other`` words no delay of its own (`_WITHOUT_DELAY`), and "rarely" or
    "seldom" is one where ``other`` says "always" and it does not (`_RARELY`)."""
    text = _NO_NEGATION.sub(" ", _NOT.sub(" not", _QUOTED.sub(" ", sentence)))
    if written_in(words_of(text)) not in ("english", None):
        return not OTHER_NEGATIONS.isdisjoint(_english_words(text))
    if other is not None:
        plain = _NO_NEGATION.sub(" ", _NOT.sub(" not", _QUOTED.sub(" ", other)))
        if not _DELAY.search(_WITHOUT_DELAY.sub(" ", plain)):
            text = _WITHOUT_DELAY.sub(" ", text)
        if _ALWAYS.search(plain) and not _ALWAYS.search(text):
            text = _RARELY.sub(" not ", text)
        if (_count(_english_words(_QUALIFIER.sub(" ", text))) and not _QUALIFIER.search(plain)
                and not _CONDITION.search(plain)):
            against = _stems(plain)
            text = _QUALIFIER.sub(lambda m: m.group(0) if _restated(m.group(0), against) else " ", text)
        verbs = {m.group(1).lower() for m in re.finditer(r"\b(compet|solicit|disclos|disparag|circumvent)",
                                                          _COVENANT.sub(" ", plain), re.IGNORECASE)}
        text = _COVENANT.sub(lambda m: " not " if m.group(1).lower() in verbs else " ", text)
        if not (_PROHIBITION.search(plain) or _AVOID.search(plain)):
            text = _PROHIBITION.sub(" not ", text)
        if _CAP.search(plain) and not _EXCEED.search(plain):
            caps = {f for m in _CAP.finditer(plain) if (f := _figure_after(plain[m.end():], 6)) is not None}
            besides = _count(_english_words(text)) > 0
            text = _EXCEED.sub(lambda m: " not " if _bounds_the_cap(text, m, caps, besides) else m.group(0), text)
    return _count(_english_words(text)) % 2 == 1


#: a time bound before a point ("within 30 days", "before the deadline", "no later than") or after it ("after 30 days",
#: "beyond", "later than"): two sentences bounding on opposite sides state complementary periods, so a negation on one
#: side only restates ("No refunds are given after 30 days." of "Refunds are given within 30 days."); an amount's bound
#: ("up to two days" against "at least two days without approval") is not read: the negation there is another part's
_BOUND = re.compile(r"\b(?:(?P<below>(?:no|not)\s+later\s+than|within|before|until|till|prior\s+to)"
                    r"|(?P<beyond>(?:no|not)\s+(?:earlier|sooner)\s+than|after|beyond|later\s+than))\b", re.IGNORECASE)


def _bounds(sentence: str) -> set[str]:
    """The sides ("below", "beyond") ``sentence`` bounds its claim on (`_BOUND`), outside quotation marks."""
    return {m.lastgroup for m in _BOUND.finditer(_QUOTED.sub(" ", sentence)) if m.lastgroup}


#: an English claim's auxiliaries and copulas: the words before the first one are its subject, the content words after it
#: up to the first preposition, conjunction or punctuation mark its predicate (`_core`)
_AUXILIARIES = frozenset("am is are was were be been being will would shall should may might must can cannot could do "
                         "does did has have had".split())
#: the words that end a claim's subject or predicate: prepositions and conjunctions that open a qualifier ("in children
#: with a normal physical examination", "unless the balance is zero"); "of" and "to" are not among them ("the use of
#: personal devices", "required to submit")
_CORE_END = frozenset("in on at for with without from by within after before during under over between among through "
                      "about against unless except if when whenever because since while until till per via including "
                      "regardless and or but than".split())

#: adverbs that stand where an auxiliary would, between a claim's subject and its verb ("The company never pays for
#: alcohol.", "Members always get ..."): in a claim with no auxiliary, the first parts its subject and predicate as
#: one does (`_core_words`), so that the claim's verb and its object are read (`_verb_and_object`)
_VERB_ADVERBS = frozenset("never always also usually often generally normally typically sometimes rarely seldom "
                          "still".split())

#: the prepositions after which a bare verb's object follows ("carry over unused vacation days", "apply for a refund",
#: "opt in to marketing"): the predicate reads on past one (`_core`); a bound, a condition or a conjunction ("within",
#: "without", "if", "and") ends it
_OBJECT_OPENERS = frozenset("over in on at for with from by through about".split())


#: a word of a claim as `_core` reads it ("4,000", "don't", "third-party": one word) or a mark that ends its clause
_CORE_WORD = re.compile(r"\d+(?:[.,]\d+)*|[^\W_]+(?:['\u2019-][^\W_]+)*|[,;:()\u2013\u2014]")


def _core_words(claim: str, *, with_object: bool = False) -> tuple[list[str], list[str], bool]:
    """The words of an English claim's subject and of its predicate (`_core`), and whether an auxiliary parts them."""
    clauses: list[list[str]] = [[]]
    for w in _CORE_WORD.findall(_QUOTED.sub(" ", claim).lower()):
        if w[0].isalnum():
            clauses[-1].append(w)
        elif clauses[-1]:
            clauses.append([])
    words = next((c for c in clauses if c and c[0] not in _CORE_END and _stems(" ".join(c))), clauses[0])
    aux = next((i for i, w in enumerate(words) if w in _AUXILIARIES or w.endswith(("n't", "n\u2019t"))), None)
    if aux is None:  # "The company never pays for alcohol.": the adverb parts them
        aux = next((i for i, w in enumerate(words) if w in _VERB_ADVERBS), None)
    head = words[:aux] if aux is not None else []
    said: list[str] = []
    through = False  # read on past a preposition after a bare verb, once: its object
    for w in words[0 if aux is None else aux + 1:]:
        if w in _CORE_END:
            if said and (through or not with_object or aux is None or w not in _OBJECT_OPENERS
                         or len(_stems(" ".join(said))) != 1):
                break
            through = bool(said)
            continue
        if w not in _AUXILIARIES and w not in NEGATIONS:
            said.append(w)
    return head, said, aux is not None


def _core(claim: str, *, with_object: bool = False) -> set[str]:
    """The stems of an English claim's subject and predicate (its core), read in its first clause (up to a comma,
    semicolon, colon, bracket or dash) with a content word that opens with no preposition or conjunction (not a reply,
    "Yes,", nor a fronted qualifier, "In children with a normal physical examination, ..."): the content words before its first auxiliary (a contraction, "don't",
    among them) and those after it up to the next preposition or conjunction ("CT" and "always necessary" of "CT is not
    always necessary in children with a normal physical examination."); without an auxiliary, the content words up to
    the first of these ("company shares personal information" of "The company shares your personal information with
    third-party advertisers."); an adverb of `_VERB_ADVERBS` before the verb stands for the auxiliary ("company" and
    "pays" of "The company never pays for alcohol."). A later clause's auxiliary made its words the core of a sentence of several claims ("Gift
    cards range from $10 to $500, never expire, and you can use up to 5 per order." read as "use 5"). ``with_object``:
    after an auxiliary, a predicate of one content word (a bare verb) reads on past one preposition of
    `_OBJECT_OPENERS` to its object ("carry over unused vacation days to the next year"). Empty where it finds none."""
    head, said, _ = _core_words(claim, with_object=with_object)
    return {_CAP_STEMS.get(stem, stem) for stem in _stems(" ".join(head + said))}


def _verb_and_object(claim: str) -> tuple[set[str], set[str]]:
    """The stems of an English claim's verb, its predicate's first content word (`_core`, ``with_object``), and the
    stems of its object, the predicate's words after it ("pay" and "alcohol" of "The company does not pay alcohol for
    employees.", "allow" and "premises" of "Smoking is allowed on the premises.", "pay" and "alcohol" of "The company
    never pays for alcohol.": an adverb of `_VERB_ADVERBS` parts them where no auxiliary does): both empty where
    neither parts subject and predicate, the object where the predicate is one word."""
    _, said, parted = _core_words(claim, with_object=True)
    at = next((n for n, w in enumerate(said) if _stems(w)), None)
    if not parted or at is None:
        return set(), set()
    return _stems(said[at]), {_CAP_STEMS.get(stem, stem) for stem in _stems(" ".join(said[at + 1:]))}


def _verb_object(sentence: str, verb: set[str]) -> set[str]:
    """The stems of the object ``sentence`` gives its first word of stems ``verb``: the content words after it, read
    past one preposition of `_OBJECT_OPENERS` right after it, up to the next preposition, conjunction or mark that ends
    a clause ("80 percent of the premium" of "The company pays 80 percent of the premium for employees." and "pay"). Empty where the
    sentence has no such word or gives it no object ("Employees with less than six months of service are not
    eligible.": an ellipsis)."""
    words = _CORE_WORD.findall(_QUOTED.sub(" ", sentence).lower())
    at = next((n for n, w in enumerate(words) if w[0].isalnum() and _stems(w) == verb), len(words))
    said: list[str] = []
    for w in words[at + 1:]:
        if not w[0].isalnum() or (w in _CORE_END and (said or w not in _OBJECT_OPENERS)):
            break
        if w not in _CORE_END and w not in _AUXILIARIES and w not in NEGATIONS:
            said.append(w)
    return _stems(" ".join(said))


#: where a sentence of several claims is cut into them (`_claims_compared`): a semicolon, before a condition's or
#: a reason's conjunction ("..., if rent is not received by the 5th"), and at "and", "but" or "or" before an
#: auxiliary, a second predicate of the subject ("Vendor shall not use ..., and shall not sell ...": two prohibitions
#: counted together read as none, a legal team's trial); not at a comma alone, which parts a claim's own words as
#: often ("the Employee shall not, directly or indirectly, solicit ..."), nor before "unless" or "except", read with
#: their claim (`_QUALIFIER`)
_CLAIM_BREAK = re.compile(r";|\s(?=(?:if|when|whenever|because|although|though|whereas|while)\b)"
                          rf"|,?\s+(?:and|but|or)\s+(?=(?:{'|'.join(sorted(_AUXILIARIES))})\b)", re.IGNORECASE)


def _clause_stems(clause: str) -> set[str]:
    """The content stems by which `_claims_compared` reads a claim as compared: no figure ("$75", "5th": a claim
    restating a figure of another is not about it), no negation, no auxiliary ("shall" of two prohibitions), a final
    "e" left aside ("give" and "giving", which `_stem` leaves apart, are one)."""
    return {stem.removesuffix("e") for stem in _pair_stems(clause)
            if not any(c.isdigit() for c in stem) and stem not in NEGATIONS and stem not in _AUXILIARIES}


def _claims_compared(sentence: str, other: str) -> str:
    """``sentence`` less its claims (`_CLAIM_BREAK`) that ``other`` does not restate, so that a negation of a claim the
    other sentence does not make is not counted against it (`reversed_claims`): "Your refund goes back ... within 5-7
    business days of receipt; return shipping is $6.95 unless defective." restates "Refunds are issued ... within 5 to
    7 business days after we receive your return." (the "unless" is the second claim's), "Late fee: $75 after
    23:59 on the 5th, ..., up to a maximum of $200." "A late fee of $75 is charged if rent is not received by 11:59
    p.m. on the 5th, ..." (the condition's "not"), and "The vendor shall not use customer personal data to train
    ..." "Vendor shall not use Customer Personal Data to train ..., and shall not sell Customer Personal Data to any
    third party." (the second "not", which made the two an even count: a legal team's trial). A claim is restated
    where it shares two of its content words with ``other`` (`_clause_stems`; all, where it has one) and either the
    most of the sentence's claims or more than half of its own (the "sell" claim shares "customer personal data",
    three of its six). Whole where it is one claim, or where it would be left empty; kept claims next to each other
    are joined as they were ("even if", a clause's ";" stay), others by a semicolon."""
    parts = _CLAIM_BREAK.split(sentence)
    if len(parts) == 1:
        return sentence
    marks = [m.group(0) for m in _CLAIM_BREAK.finditer(sentence)]
    against = _clause_stems(other)
    shares = {i: (len(own & against), len(own)) for i, part in enumerate(parts) if (own := _clause_stems(part))
              and len(own & against) >= min(2, len(own))}
    most = max((n for n, _ in shares.values()), default=0)
    kept = [i for i, (n, size) in shares.items() if n == most or 2 * n > size]
    if not kept:
        return sentence
    out = parts[kept[0]]
    for before, i in zip(kept, kept[1:]):
        out += (marks[before] if i == before + 1 else "; ") + parts[i]
    return out


def _claim_reversed(sentence: str, other: str) -> bool:
    """Whether a claim of ``sentence`` says the opposite of the claim of ``other`` sharing the most of its words (two
    at least), both sentences of several claims (`_CLAIM_BREAK`)."""
    mine, theirs = _CLAIM_BREAK.split(sentence), [(c, _clause_stems(c)) for c in _CLAIM_BREAK.split(other)]
    if len(mine) == 1 or len(theirs) == 1:
        return False
    for part in mine:
        own = _clause_stems(part)
        shared, best = max(((len(own & stems), c) for c, stems in theirs), key=lambda t: t[0])
        if shared >= 2 and _negated(part, best) != _negated(best, part):
            return True
    return False


def _opposite(claim: str, sentence: str) -> bool:
    """Whether ``claim`` says the opposite of ``sentence``, the passage sentence it is compared with: one is negated
    and the other not (`_negated`), counted over the claims of each the other restates (`_claims_compared`), or a
    claim of one reverses the other's claim sharing the most of its words (`_claim_reversed`). Counted so whether or
    not the whole sentences' counts differ: "The vendor may use ..." (none) reverses "Vendor shall not use ..., and
    shall not sell ..." (two: even), whose "use" claim it restates (it was compared only where the whole counts
    differed, and passed). Where the whole counts agree, only a claim of one claim is so counted: an answer sentence
    of several, cut to those the passage sentence restates, was counted against that sentence's every negation
    ("Managers do not receive overtime pay; others get 1.5 times the base rate." against "Overtime is paid at 1.5
    times the base rate, but it is not paid to managers.", "The tenant can sublet the unit if the landlord gives
    written consent." against "... must not sublet the unit without written consent.": faithful answers held, a
    review); its claims are compared one by one (`_claim_reversed`)."""
    said, stated = _claims_compared(claim, sentence), _claims_compared(sentence, claim)
    if _negated(said, stated) != _negated(stated, said) and (
            len(_CLAIM_BREAK.split(claim)) == 1 or _negated(claim, sentence) != _negated(sentence, claim)):
        return True
    return _claim_reversed(claim, sentence)


def _pair_stems(text: str) -> set[str]:
    """The content stems by which `reversed_claims` pairs sentences: a cap's ("capped") as "exceed"'s (`_CAP_STEMS`)."""
    return {_CAP_STEMS.get(stem, stem) for stem in (_stem(t) for t in content_tokens(text))}


def reversed_claims(answer: str, context: Any) -> list[tuple[str, str]]:
    """The sentences of ``answer`` that say the opposite of the passage sentence they restate, each with it: the
    passage sentence sharing the most of its subject, predicate and the predicate's object (`_core`; an English
    claim's), then of its subject and predicate, and of those the most content words (at least `MIN_SHARED`), of which
    exactly one is negated
    (an odd number of "not", "never", "cannot", "without", "no", "unless", ...; "no later than" and "not only" are no
    negation, nor "without undue delay" where the other sentence words no delay: `_WITHOUT_DELAY`). Grounding reads the words two texts share, and the words that reverse a claim are the ones it leaves
    out: "The company shares your personal information with third-party advertisers." from "We do not share your
    personal information with third-party advertisers." grounded 1.0 (a policy team's trial). English negations by
    their number, other languages' by their presence (`_negated`); a claim reversed without a negation ("optional" for "required", the parties swapped) is not found, unless the passage states the claim of its subject and predicate negated ("The company may cancel ..." of "The user may cancel ... The company may not cancel ..."). A yes or no opening the
    answer is left aside ("No, the fee is not refundable." restates "The fee is not refundable."; in "No refunds are
    given." the "No" is the claim's: `opening_no_is_determiner`), and a negation with a time bound on the other side of the
    other sentence's is none ("No refunds are given after 30 days." of "Refunds are given within 30 days.": `_BOUND`).
    Negations are counted over the claims of the two sentences that the other restates (`_claims_compared`: a
    semicolon, a condition's "if" or a conjunction before an auxiliary, "..., and shall not sell ...", parts a
    sentence's claims), and claim by claim where both have several
    (`_claim_reversed`). Paired by the
    content words alone, "No, CT is not always necessary in children with a normal physical examination." was held
    against a passage's sentence on the physical examination (five shared words, none negated) and not compared with
    its "CT is not always necessary." (three): a claim is compared with a sentence stating its subject and predicate;
    paired by those alone, "Employees may carry over unused vacation days to the next year." was compared with
    "Employees may not carry over sick leave." rather than the vacation sentence it restates (a review): the object
    counts first. Where a passage sentence holds the claim's object, one that gives the claim's verb another object
    (`_verb_object`) is compared last: "The company does not pay alcohol for employees." was held against "The company
    pays 80 percent of the health insurance premium for employees ..." rather than compared with "Alcohol is never
    reimbursed." (an HR trial); one giving it none ("... are not eligible.") still restates it.
    A paired sentence is not required to share any of them (that lost reversals whose predicate the passage words
    otherwise: "Smoking is allowed" of "Smoking is prohibited", "The non-compete does not apply" of "... shall not
    compete ..."). Linear in the
    passage: each answer sentence is compared with the passage sentences that share a word with it."""
    passage = split_sentences(_context_text(context))
    holding: dict[str, list[int]] = {}  # stem -> the passage sentences holding it
    stems_of = [_pair_stems(sentence) for sentence in passage]
    for i, stems in enumerate(stems_of):
        for stem in stems:
            holding.setdefault(stem, []).append(i)
    out = []
    for said in split_sentences(answer):
        claim = said if opening_no_is_determiner(said) else _ANSWER_OPENER.sub("", said)
        shared: dict[int, int] = {}
        claim_stems = _pair_stems(claim)
        for stem in claim_stems:
            for i in holding.get(stem, ()):
                shared[i] = shared.get(i, 0) + 1
        if not shared:
            continue
        english = written_in(words_of(claim)) in ("english", None)
        core = _core(claim) if english else set()
        whole = _core(claim, with_object=True) if english else set()
        verb, obj = _verb_and_object(claim) if english else (set(), set())
        # a sentence giving the claim's verb another object restates no claim on the object another sentence holds
        other = bool(verb and obj) and any(not obj.isdisjoint(stems_of[i]) for i in shared)
        best = min(shared, key=lambda i: (other and obj.isdisjoint(stems_of[i])
                                          and bool(_verb_object(passage[i], verb)),
                                          -len(whole & stems_of[i]), -len(core & stems_of[i]), -shared[i], i))
        enough = min(MIN_SHARED, max(2, len(claim_stems)))
        if other and shared[best] < enough and _opposite(claim, passage[best]):
            # the sentence on the object, too far from the claim to compare, reverses it: the claim is compared as
            # it is without its object read ("always pays for alcohol" hid from every sentence what "pays" did not)
            best = min(shared, key=lambda i: (-len(whole & stems_of[i]), -len(core & stems_of[i]), -shared[i], i))
        if (shared[best] >= enough
                and _opposite(claim, passage[best])
                and not (len(sides := _bounds(claim)) == 1 and _bounds(passage[best]) == {"below", "beyond"} - sides)):
            out.append((said, passage[best]))
    return out
