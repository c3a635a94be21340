"""Relevance signals for answers given with context: does the passage address the question, does the
answer address the question?

Grounding alone says whether the answer's words are in the passage. That is evidence of a right answer
only when the passage is about the question: "Nairobi is the capital of Kenya", answered from a Kenya
passage to "What is the capital of Australia?", is well grounded and wrong. The signals here are read
from the request and the answer alone (never from a dataset label), so the guard computes them at
request time exactly as calibration does:

- ``yes_no``: 1.0 when the question asks for yes or no (it opens with an auxiliary verb: "Is", "Does",
  "Can", ...) or the answer opens with yes/no/true/false, or with another language's yes or no ("Ja", "Oui",
  "Да", "はい": :func:`hguard._text.opens_with_yes_or_no`); a right "Yes." shares no words with the
  passage, so grounding says little about it. A question in another language is read by its question words
  (:func:`hguard._text.yes_no_question`): 0.0 where one opens it ("Wie hoch ist ...?"), None (unread) where
  none does ("Ist die Gebühr erstattungsfähig?" answered "Die Gebühr ist erstattungsfähig."), which the merger
  cannot score and the knowledge-conflict check never clears, so the answer is held for review;
- ``context_relevance``: the share of the question's content words found in the passage (stems
  matched, no fuzzy spelling), with the question's rare words (names, numbers: the ones that pin
  down what is asked) counted twice;
- ``context_relevance_embedding``: the largest cosine similarity between the question and a passage
  sentence (sentence embeddings);
- ``answer_relevance``: cosine similarity between the question and the answer;
- ``answer_off_question``: the share of the question's key words (capitalised names and numbers) that
  the passage lacks while the answer names something the question does not (1.0 for the Kenya example:
  "Australia" is in neither, the answer names Nairobi and Kenya);
- interactions that let one linear merger treat grounding differently by situation:
  ``grounding_x_relevance`` (grounding times ``context_relevance``) and ``grounding_if_open``
  (grounding of an answer that does not answer yes/no, 0 otherwise).

An answer that declines ("the context does not say", :func:`hguard.calibrate.judge.declines`) is not
scored at all: the guard abstains on it by rule and calibration leaves it out of the merger.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from hguard._numerics import finite_number
from hguard._text import (function_words, japanese_grammar, language_of, offers_alternatives,
                          opens_with_yes_or_no, reads_english, script_of, without_ignorables, words_of, yes_no_question)
from hguard.signals._grounding_lexical import _stem, _word_matches, by_initial, unread
from hguard.errors import InputError, error_text

__all__ = ["RELEVANCE_FEATURES", "adds_no_word", "relevance_scores", "repeats_question", "unread_yes_no"]

RELEVANCE_FEATURES = (
    "yes_no",
    "context_relevance",
    "context_relevance_embedding",
    "answer_relevance",
    "answer_off_question",
    "grounding_x_relevance",
    "grounding_if_open",
)

_YES_NO_WORDS = frozenset({"yes", "no", "true", "false"})


def _opens_yes_no(question: str, answer: str) -> bool | None:
    """The ``yes_no`` reading: True where the answer opens with yes or no (English's words, or another language's:
    :func:`hguard._text.opens_with_yes_or_no`) or the question asks for either, False where it asks for content, None
    where the question is in another language and opens with none of its question words
    (:func:`hguard._text.yes_no_question`)."""
    a = re.findall(r"[a-z']+", answer.lower())
    if (a and a[0] in _YES_NO_WORDS) or opens_with_yes_or_no(answer):
        return True
    return yes_no_question(question)

def unread_yes_no(question: str) -> str:
    """Why the ``yes_no`` reading of an answer to ``question`` is unread (None), for the held answer's reasons."""
    from hguard._text import _CONTENT_QUESTION_CHARACTERS, _CONTENT_QUESTION_WORDS, asked_in

    key = asked_in(words_of(question))
    named = key.title() if key.islower() else f"{key} script"
    if key == "english":  # English by its words, another language's by its function words: neither rule reads it
        named, listed = ("English by its words but as another language by its function words (as many or more of "
                         "them)"), "no English auxiliary or question word opens it"
    else:
        listed = ("none of its question words opens it" if key in _CONTENT_QUESTION_WORDS or key in _CONTENT_QUESTION_CHARACTERS
                  else "hguard lists no question words of it")
    return (f"whether the question asks for yes or no is not read: it reads as {named} and {listed} (the auxiliary rule "
            "that reads an English question is English's), and the answer opens with no yes or no word, so the relevance "
            "signal yes_no is unread: the merger calibrated with it cannot score the answer, and the knowledge-conflict "
            "check cannot clear a yes/no answer; held for review")


_KEY_RE = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][\w'-]+|\d[\d.,]*)")


def _key_words(question: str) -> set[str]:
    """Capitalised words after the first word, and numbers, as content tokens (names, years, amounts)."""
    from hguard.signals.grounding import content_tokens

    out: set[str] = set()
    for m in _KEY_RE.finditer(question.strip()):
        out.update(content_tokens(m.group(1)))
    return out


def _matched(words: Sequence[str], text: str, fuzzy: bool = False) -> list[bool]:
    from hguard.signals._grounding_lexical import _stem, _word_matches, by_initial, content_tokens

    vocab = set(content_tokens(text))
    stems = {_stem(w) for w in vocab}
    initials = by_initial(vocab) if fuzzy else None
    return [_word_matches(w, vocab, stems, fuzzy, initials) for w in words]


def shares_content_word(question: str, context: str | Sequence[str]) -> bool:
    """Whether the passage holds any of the question's content words in some form: the stems
    ``context_relevance`` reads (a calibrated feature, so unchanged) miss forms such as compete/competes or
    confidentiality/confidential, which the grounding's fuzzy match (a shared opening, a close spelling) finds.
    The guard holds an answer whose passage shares none (:mod:`hguard._guard_scoring`).

    A question in another language (its function words are French, German, Russian ...: :func:`hguard._text.language_of`) has its
    content words read without that language's function words ("le", "est", "die", "ist" matched any passage in
    the same language), and a passage's without its own; words of any script count (a Cyrillic question had none,
    and so passed)."""
    from hguard.signals.grounding import _context_text

    text, question = without_ignorables(_context_text(context)), without_ignorables(question)  # "Gda\u00adnsk"
    said = words_of(text)
    return _shares(question, text, said, language_of(said), reads_english(question))


def _shares(question: str, text: str, said: list[str], said_in: str, english: bool) -> bool:
    """:func:`shares_content_word` on a passage already read: its ``text``, its words ``said`` and their language
    ``said_in``; ``english``: whether the question reads as English (:func:`hguard._text.reads_english`)."""
    from hguard.signals.grounding import content_tokens

    foreign = function_words()[said_in] if said_in != "english" else frozenset()  # a passage's own function words
    lang = "english"
    if english:
        asked = list(dict.fromkeys(content_tokens(question)))
        vocab = set(content_tokens(text)) - foreign  # "de" of "contrat de vente" matched a French passage's "de"
    else:
        lang = language_of(words_of(question))
        asked = [w for w in dict.fromkeys(words_of(question))
                 if w not in function_words()[lang] and (len(w) > 1 or w.isdigit()) and not japanese_grammar(w)]
        vocab = set(said) - foreign
    stems = {_stem(w) for w in vocab}
    initials = by_initial(vocab)
    if not asked or any(_word_matches(w, vocab, stems, True, initials) for w in asked):
        return True
    if lang not in _COMPOUNDING or said_in != lang:
        return False
    # the question's compound in the passage's phrase, or the passage's compound in the question's
    asked_set = set(asked)
    return any(_compound_parts(w, vocab) for w in asked) or any(
        _compound_parts(v, asked_set) for v in vocab if len(v) >= _PART + _HEAD)


#: the languages that write a compound as one word ("Kündigungsfrist" is "Frist" of "Kündigung")
_COMPOUNDING = frozenset({"german", "dutch", "swedish", "danish", "norwegian", "finnish"})
_PART = 5  # the fewest letters of a compound's last part ("Frist", "Gebühr"; not "Ort" of "Standort")
_HEAD = 4  # ... and of its first ("opzeg" of "opzegtermijn")
_LINKS = ("s", "es", "en", "n", "e")  # what joins a compound's parts ("Kündigung-s-frist")


def _compound_parts(word: str, vocab: set[str]) -> bool:
    """Whether the passage's words (``vocab``) hold both parts of the compound ``word``: one that ends it (`_PART`
    letters or more) and one that its first part opens (`_HEAD` or more, a joining "s" aside): "kündigungsfrist" in
    "die Frist für eine Kündigung", "bearbeitungsgebühr" in "die Bearbeitung ... eine Gebühr", "opzegtermijn" in "de
    termijn voor opzegging" (held as off the question before). One part is not enough: "Jahresgebühr" is not addressed
    by "zwei Jahre", nor "Standort" by "Stand", nor "Personalausweis" by "person" (a review)."""
    for cut in range(_HEAD, len(word) - _PART + 1):  # each place the compound may break: a set lookup each
        tail = word[cut:]
        if tail not in vocab:
            continue
        head = word[:cut]
        heads = {head, *(head[:-len(link)] for link in _LINKS if head.endswith(link))}
        if any(len(h) >= _HEAD and any(v != tail and v.startswith(h) for v in vocab) for h in heads):
            return True
    return False


def off_question(question: str, context: str | Sequence[str] | None, context_relevance: float | None,
                 languages: PassageLanguages | None = None) -> str | None:
    """Why an answer from ``context`` is off the question (the passage shares none of its content words), or None.
    An English question is held when ``context_relevance`` (the calibrated stem match) is 0 and no other form of its
    words is in the passage either; a question in another language by :func:`shares_content_word` alone, since
    ``context_relevance`` reads English tokens (it counted French and German function words, and found "nothing to
    miss" in a Cyrillic question).

    A passage that shares a word with the question is held where it is in another language than it
    (:func:`other_language`). A list of passages is read so passage by passage (:func:`passage_languages`, or
    ``languages``, its reading of ``context`` made already): where no passage is in another language on its own, the
    passages are read together as one text, as a string is (a few of a language's function words in each of several
    passages). Where one is, the answer is held, each passage named by its number in the list, unless some passage
    reads as in the question's language and shares a content word with it; and where a passage reads as neither
    (too few function words, alone and with the others), the list read as one text (the rule above) still holds it.
    Else this returns None: the guard scores the answer against the passages in the question's language alone, and
    holds it where the others raise its grounding (:func:`other_language_support`)."""
    if context is None:
        return None
    from hguard.signals.grounding import _context_text

    # a soft hyphen or zero-width space inside a word (PDF and web text) splits it in two: read without them
    text, question = without_ignorables(_context_text(context)), without_ignorables(question)
    english = reads_english(question)
    said = words_of(text)
    passage_in = language_of(said)
    # context_relevance counts a foreign passage's function words ("de", "für") as the question's: it gates only
    # an English passage (one of another script, no list's words in it, is not)
    in_english = passage_in == "english" and script_of(said) is None
    if not (english and context_relevance != 0.0 and in_english) and not _shares(question, text, said, passage_in,
                                                                                  english):
        how = ("context_relevance 0" if english and in_english else
               f"the passage {_read_without(said)}" if english else _read_without(words_of(question)))
        return (f"the passage holds none of the question's content words ({how}): it may not address the question (or "
                "is in another language), so an answer from it is held for review")
    several = isinstance(context, (list, tuple)) and len(context) > 1
    if several and languages is None:
        languages = passage_languages(question, context)
    if not several or languages is None or not languages.apart:
        # a passage in another language than the question shares cognates with it ("Australie" for "Australia"): a
        # French passage's false claim was accepted for an English question, context_relevance 0
        return None if english and context_relevance != 0.0 and in_english else other_language(question, said, english)
    named = _passages_named(question, languages)
    if not languages.same:  # (those not read as in the question's language are named so)
        return f"{named}: {_SHARED_WORD}"
    if languages.unread and languages.joined is not None:
        # the list read as one text (as a string of it is) is in another language, and a passage not read as either
        # may be of it: the reading of the list whole stands
        return (f"{named}; read as one text, the passages are in {languages.joined}, as a string of them is held: "
                f"{_SHARED_WORD}")
    rest = [without_ignorables(context[i]) for i in languages.same]
    same = "\n\n".join(rest)
    words = words_of(same)
    if _shares(question, same, words, language_of(words), english):
        return None  # the guard scores the answer against these passages alone, and compares
    return (f"{named}, and the passage{'s' if len(rest) > 1 else ''} in its language hold{'' if len(rest) > 1 else 's'} "
            f"none of the question's content words: only a passage in another language addresses it, and {_SHARED_WORD}")


#: why an answer from a passage in another language than its question is held (the end of each such reason)
_SHARED_WORD = ("an answer from a passage in another language than its question may rest on a word the two happen to "
                "share (\"Australie\" for \"Australia\"), so it is held for review")


class PassageLanguages(NamedTuple):
    """How the passages of a list read against the language of their question (:func:`passage_languages`), each by
    its number in the list (counting from 0); a passage with no words is in none of them."""

    retrieved: int  # how many passages the list holds
    apart: dict[int, str]  # in another language than the question: its name ("Spanish", "Cyrillic script")
    same: tuple[int, ...]  # read as in the question's language
    unread: tuple[int, ...]  # read as neither: too few of any language's function words, alone and together
    joined: str | None  # the language of the passages read as one text where :func:`other_language` holds it

    @property
    def scored(self) -> bool:
        """Whether the answer is scored against the passages in the question's language alone (:attr:`same`): some
        passage is in another language, and some in the question's."""
        return bool(self.apart) and bool(self.same)


def passage_languages(question: str, passages: Sequence[str]) -> PassageLanguages:
    """Each passage of a list read on its own against the language of ``question``: read joined, one Spanish passage
    beside a German one held a German answer from the German passage as "in Spanish" (a LangChain trial), and one
    French passage among English ones was read as English. A passage is in another language where
    :func:`other_language` holds it alone; in the question's where it holds function words of the question's language
    and reads as it (:func:`hguard._text.language_of`; of a question in a script no Latin letter writes, one in its
    script reading as no other list's language); else unread. Where some passage is in another language, the unread
    ones are read together, and are in another language where that holds them ("La capitale de l'Australie est
    Sydney." holds one French word English's list lacks, two such passages hold two): a short passage in another
    language is never taken for the question's (a review: beside a French passage, one of them answering an English
    question was accepted). Each passage's words are read once (the list read joined is their words in turn)."""
    question = without_ignorables(question)
    asked = _QuestionLanguage.of(question)
    apart: dict[int, str] = {}
    same: list[int] = []
    unread: list[int] = []
    read: dict[int, list[str]] = {}
    for i, passage in enumerate(passages):
        words = words_of(without_ignorables(passage))
        if not words:
            continue
        read[i] = words
        said, script = language_of(words), script_of(words)
        if (named := asked.other(words, said, script)) is not None:
            apart[i] = named
        elif asked.reads_as(words, said, script):
            same.append(i)
        else:
            unread.append(i)
    if apart and unread:
        together = [w for i in unread for w in read[i]]
        if (named := asked.other(together, language_of(together), script_of(together))) is not None:
            apart.update(dict.fromkeys(unread, named))
            unread = []
    everything = [w for words in read.values() for w in words]  # the passages joined, as a string of them is read
    joined = asked.other(everything, language_of(everything), script_of(everything)) if apart else None
    return PassageLanguages(len(passages), dict(sorted(apart.items())), tuple(same), tuple(unread), joined)


class _QuestionLanguage(NamedTuple):
    """A question's language, read once for each passage of a list to be read against it (:func:`other_language`)."""

    words: list[str]
    english: bool  # it reads as English (:func:`hguard._text.reads_english`)
    asked: str  # its language, "english" or another list's name
    script: str | None  # the script no Latin letter writes that it is in (:func:`hguard._text.script_of`)

    @classmethod
    def of(cls, question: str, english: bool | None = None) -> _QuestionLanguage:
        words = words_of(question)
        english = reads_english(question) if english is None else english
        return cls(words, english, "english" if english else language_of(words), script_of(words))

    def other(self, words: Sequence[str], said: str, script: str | None) -> str | None:
        """The name of the other language a passage of ``words`` is in (``said``: their :func:`language_of`,
        ``script``: their :func:`script_of`), where :func:`other_language` holds it, else None."""
        if script is None:
            if said in ("english", self.asked):
                return None
            lists = function_words()
            if sum(1 for w in words if w in lists[said] and w not in lists["english"]) < FOREIGN_WORDS:
                return None
            return said.title()
        if self.script is None and self.words:
            from hguard._text import _SCRIPT_LANGUAGE

            return _SCRIPT_LANGUAGE[script].title() if script in _SCRIPT_LANGUAGE else f"{script} script"
        return None

    def reads_as(self, words: Sequence[str], said: str, script: str | None) -> bool:
        """Whether a passage of ``words`` reads as in the question's language: in its script, read as its language
        (``said``) by function words of it (an English one by one English's list holds: "Canberra, 1913." holds none),
        or, in the script of a question no Latin letter writes, as no list's language."""
        if script != self.script:
            return False
        if said == self.asked:
            return said != "english" or any(w in function_words()["english"] for w in words)
        return script is not None and said == "english"


def _passages_named(question: str, languages: PassageLanguages) -> str:
    """The passages of a list not read as in the language of ``question`` (``languages``), and its language, for a reason:
    "passage 1 of the 3 retrieved (counting from 0) is in Spanish; the question is in German (each passage read by
    its function words and script)", "passages 0 and 2 of the 3 retrieved (counting from 0) are in Spanish, passage 1
    in French, passage 3 not read as in the question's language; ..."."""
    groups: dict[str, list[int]] = {}
    for i, language in languages.apart.items():
        groups.setdefault(f"in {language}", []).append(i)
    if languages.unread:
        groups["not read as in the question's language"] = list(languages.unread)
    parts: list[str] = []
    for what, numbers in groups.items():
        many = len(numbers) > 1
        of = f" of the {languages.retrieved} retrieved (counting from 0) {'are' if many else 'is'}" if not parts else ""
        parts.append(f"passage{'s' if many else ''} {_numbers(numbers)}{of} {what}")
    return f"{', '.join(parts)}; the question is in {_asked(question)} (each passage read by its function words and script)"


def _numbers(numbers: Sequence[int]) -> str:
    """"0", "0 and 2", "0, 1 and 2"."""
    return (", ".join(map(str, numbers[:-1])) + " and " if len(numbers) > 1 else "") + str(numbers[-1])


def _asked(question: str) -> str:
    """The language ``question`` is read in, named."""
    question = without_ignorables(question)
    return "English" if reads_english(question) else language_of(words_of(question)).title()


def scored_passages(languages: PassageLanguages) -> str:
    """What a note says of the passages an answer was scored against where :attr:`PassageLanguages.scored`: "passages
    0 and 2 alone (read as in the question's language): every signal read from the context (grounding, relevance) and
    the merged risk leave out passage 1 as if it were not retrieved"."""
    left = sorted([*languages.apart, *languages.unread])
    return (f"the answer was scored against passage{'s' if len(languages.same) > 1 else ''} {_numbers(languages.same)} "
            "alone (read as in the question's language): every signal read from the context (grounding, relevance) and "
            f"the merged risk leave out passage{'s' if len(left) > 1 else ''} {_numbers(left)} as if "
            f"{'they were' if len(left) > 1 else 'it were'} not retrieved")


def other_language_support(question: str, languages: PassageLanguages, with_all: Mapping[str, Any] | BaseException,
                           scored: Mapping[str, Any]) -> tuple[str | None, str]:
    """(a hold or None, a note) for an answer to ``question`` scored against the passages of a list that are in its
    language alone (``languages``: :func:`passage_languages`, :attr:`PassageLanguages.scored`; :func:`off_question`
    returned None). ``with_all``: the grounding scorer's signals of the answer against all the passages, or the error
    that scoring raised; ``scored``: the answer's signals as the guard scored it, against those passages alone (each
    of ``with_all``'s among them; None where one was not a number). Grounding was calibrated on passages in the
    question's language: where the others raise any signal (a word the two languages share, a number, the embedding
    or the model reading across languages), the answer may rest on them and is held, naming them and the signals
    they raised. A signal that is not a number on either side, or a scoring that failed, cannot be compared: held.
    The note says which passages were scored (:func:`scored_passages`)."""
    named = _passages_named(question, languages)
    note = f"{named}: {scored_passages(languages)}"
    them = "them" if len(languages.apart) + len(languages.unread) > 1 else "it"
    if isinstance(with_all, BaseException):
        return (f"{named}: the answer's grounding with {them} could not be scored ({error_text(with_all)}), so whether "
                "it rests on a passage not in the question's language is not known: held for review"), note
    pairs = {k: (finite_number(v), finite_number(scored.get(k))) for k, v in with_all.items()}
    unread_keys = sorted(k for k, (a, b) in pairs.items() if a is None or b is None)
    if not pairs or unread_keys:
        return (f"{named}: the answer's grounding with and without {them} could not be compared "
                f"({', '.join(map(repr, unread_keys)) or 'no signal'} not a number on both sides), so whether it rests "
                "on a passage not in the question's language is not known: held for review"), note
    raised = [(k, a, b) for k, (a, b) in sorted(pairs.items())
              if a is not None and b is not None and a > b + SUPPORT_TOLERANCE]
    if raised:
        shown = ", ".join(f"{k} {a:.3f} against {b:.3f}" for k, a, b in raised)
        return (f"{named}: the answer's grounding is higher with {them} than from the passages in the question's "
                f"language alone ({shown}), so it may rest on a passage not in its language (a word the two happen to "
                "share, \"Australie\" for \"Australia\"; grounding was calibrated on passages in the question's "
                "language): held for review"), note
    return None, f"{note}; read with {them} too, none of the answer's grounding signals is higher"


#: how much higher a grounding signal may be with the other-language passages than without them and still be the
#: same (sentence embeddings of one sentence batched with different others differ in their last digits)
SUPPORT_TOLERANCE = 1e-6


#: how many of a passage's words must be function words of the language it reads as and not English's for the hold on a
#: passage in another language than its question: English's list holds "la", "de" and "l", and an English passage naming
#: a foreign thing reads as that language by one word ("Der Spiegel is published in Hamburg." as Dutch: "der"); a French
#: sentence has several ("La capitale de l'Australie est Sydney, la plus grande ville du pays.": "est", "plus", "du")
FOREIGN_WORDS = 2


def other_language(question: str, words: Sequence[str], english: bool) -> str | None:
    """Why a passage of ``words`` is held for an answer to ``question`` (``english``: whether it reads as English,
    :func:`hguard._text.reads_english`) as being in another language than it, or None. The passage is read by
    :func:`hguard._text.language_of` (its margin), and counts as another language's where it is Latin-script and holds
    :data:`FOREIGN_WORDS` or more function words of that language that are not English's, or is of another script
    than the question's Latin (a Cyrillic passage to an English question). An English passage is not held here (a
    question in another language that shares no word with it is held as off the question), nor two of non-Latin
    scripts (Chinese and Japanese share Han)."""
    asked = _QuestionLanguage.of(question, english)
    named = asked.other(words, language_of(words), script_of(words))
    if named is None:
        return None
    return (f"the passage is in {named} and the question in {asked.asked.title()} (read by their function words and "
            f"script): {_SHARED_WORD}")


def _read_without(words: Sequence[str]) -> str:
    """How ``words`` were read, for a reason: without the function words of the language
    :func:`hguard._text.language_of` reads them as, where they hold some of that list's; words with no Latin letter
    that hold none of any list's (Thai, Serbian Cyrillic, Marathi in Devanagari, Chinese and all-kanji Japanese in Han:
    the Chinese list's single characters are no bigram) by their script, never a language the script is shared with.
    Another script's match says how many of its words the list holds (Urdu reads as Persian by "کو", "کی")."""
    lang = language_of(words)
    script = script_of(words)
    if script is None:
        return f"read without the function words of {lang.title()}"
    held = sum(w in function_words()[lang] for w in words) if lang != "english" else 0
    if not held:
        return f"read whole: {script} script, of a language it has no function words for"
    return f"read without the function words of {lang.title()}, {held} of its {len(words)} words in that list"


_LETTER = re.compile(r"(?<![\w'.-])([B-HJ-Z])(?![\w'-])")  # not "A" or "I", nor a letter of a word ("U.S.", "x-ray")


def repeats_question(question: str, answer: str) -> bool:
    """Whether ``answer`` adds no content word to an open ``question`` (:func:`adds_no_word`), as in "The film was
    directed by Mackenzie Davis." to "Mackenzie Davis appeared in the film directed by whom?". Such a reply fills
    the asked slot with the question's own words, or says nothing past it; the guard holds it for review whatever
    its risk. A question that offers alternatives ("Paris or Lyon?") is answered by picking one of its words, and a
    yes/no question by repeating it, so neither counts; nor does a question in another language whose yes/no reading
    is unread (:func:`hguard._text.yes_no_question`) answered with a yes or no of any language ("Да, плата
    возвращается." to "Возвращается ли плата?", as "Yes, the fee is refundable." to "Is the fee refundable?")."""
    asked = yes_no_question(question)
    if asked or offers_alternatives(question) or (asked is None and opens_with_yes_or_no(answer)):
        return False
    return adds_no_word(question, answer)


def adds_no_word(question: str, answer: str) -> bool:
    """Whether every word of ``answer`` that carries content (stems matched) is one of ``question``'s; a reply with
    no content word at all does not count. A capital letter standing alone counts as a word ("The symbol for oxygen
    is O." answers "Which symbol stands for oxygen?")."""
    from hguard.signals._grounding_lexical import _stem, content_tokens

    def words(text: str) -> set[str]:  # a capital letter alone is a symbol ("O", "S"), though content words skip it
        return {_stem(w) for w in content_tokens(text)} | {c.lower() for c in _LETTER.findall(text)}

    said = words(answer)
    return bool(said) and said <= words(question)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / max(float(np.linalg.norm(a)), 1e-12)
    nb = np.linalg.norm(b, axis=-1, keepdims=True)
    return (b / np.maximum(nb, 1e-12)) @ a


def relevance_scores(question: str, answer: str, context: str | Sequence[str], grounding: float | None, *,
                     embedder=None, grounding_scorer=None) -> dict[str, float | None]:
    """The signals above for one answer. ``grounding`` is the grounding scorer's merged support of the
    answer (None or NaN makes the interactions NaN, so a merger that uses them routes to review).
    ``grounding_scorer``: the scorer that scored the answer; a
    :class:`~hguard.signals.grounding.GroundingScorer` lends its embedder and the context's sentence
    embeddings from its cache, another scorer its ``embedder`` if it has one. Else ``embedder``,
    anything with ``encode(list[str]) -> (n, d)`` (default: the bundled sentence model)."""
    from hguard.calibrate.judge import declines
    from hguard.signals._grounding_embedding import sentence_vectors
    from hguard.signals.grounding import _check_text, _context_text, content_tokens

    _check_text(question, "question")
    _check_text(answer, "answer")
    ctx = _context_text(context)
    shared = grounding_scorer if hasattr(grounding_scorer, "sentence_vectors") else None
    embedder = shared.embedder if shared is not None else (embedder or getattr(grounding_scorer, "embedder", None))
    if embedder is None:
        from hguard.signals.embedding import get_embedder

        embedder = get_embedder()
    declined = declines(answer, question) is not None
    read = _opens_yes_no(question, answer)
    yes_no = None if read is None else float(read)

    q_words = list(dict.fromkeys(content_tokens(question)))
    keys = _key_words(question)
    if q_words:
        hit = _matched(q_words, ctx)
        weight = [2.0 if (w in keys or any(c.isdigit() for c in w)) else 1.0 for w in q_words]
        ctx_rel = float(sum(w for w, h in zip(weight, hit) if h) / sum(weight))
    elif unread(question):  # letters of no script the tokens read: what it asks is unknown, not "nothing to miss"
        ctx_rel = math.nan
    else:
        ctx_rel = 1.0  # a question with no content words: nothing to miss

    key_list = sorted(keys)
    if key_list and not declined:
        missing = [w for w, h in zip(key_list, _matched(key_list, ctx)) if not h]
        a_new = [w for w in content_tokens(answer) if w not in set(q_words)]
        named_elsewhere = bool(a_new) and not all(_matched(key_list, answer))
        off = (len(missing) / len(key_list)) if named_elsewhere else 0.0
    else:
        off = 0.0

    sent = shared.sentence_vectors(ctx) if shared is not None else sentence_vectors(ctx, embedder)
    emb = np.asarray(embedder.encode([question, answer.strip() or " "]), dtype=float)
    ctx_emb = float(np.max(_cos(emb[0], np.asarray(sent, dtype=float))))
    ans_rel = float(_cos(emb[0], emb[1:2])[0]) if answer.strip() else 0.0

    g = float(grounding) if grounding is not None else math.nan
    return {
        "yes_no": yes_no,
        "context_relevance": ctx_rel,
        "context_relevance_embedding": ctx_emb,
        "answer_relevance": ans_rel,
        "answer_off_question": float(off),
        "grounding_x_relevance": g * ctx_rel,
        "grounding_if_open": g * (1.0 - yes_no) if yes_no is not None else math.nan,
    }


def add_relevance(signals: Mapping[str, float | None], question: str, answer: str, context, *,
                  grounding_scorer=None) -> dict[str, float | None]:
    """:func:`relevance_scores` from a signals mapping that holds ``grounding``; InputError when the
    context is missing (the signals are for answers given with context)."""
    if context is None:
        raise InputError("relevance signals need the context the answer was given with; pass context=...")
    return relevance_scores(question, answer, context, signals.get("grounding"), grounding_scorer=grounding_scorer)
