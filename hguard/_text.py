"""Text folding shared by the answer judge and the grounding signals.

Two forms are built on these steps, and they differ on purpose:

* :func:`hguard.calibrate.judge.normalize` makes one canonical string to compare a short answer with
  its aliases: casefolded, apostrophes and periods dropped ("U.S.A." = "USA"), other punctuation a
  space, articles dropped;
* :func:`hguard.signals.grounding.tokens` makes word and number tokens to overlap an answer with a
  passage: lower-cased, possessive "'s" dropped, decimals kept ("3.5"), stop words dropped later.

Both start with :func:`fold_accents` and :func:`join_digit_groups`.

:func:`words_of`, :func:`language_of` and :func:`reads_english` read which language a text is in (by its function
words): the off-topic hold and the data loader's warning for rows in another language.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections import Counter
from functools import lru_cache
from typing import Sequence

import regex  # Unicode properties the standard re lacks

from .errors import one_line

__all__ = ["misdecoded", "asks_only_yes_no", "asks_yes_no", "asked_in", "opens_with_yes_or_no", "opening_no_is_determiner", "yes_or_no_opening", "yes_no_question", "offers_alternatives", "fold_accents", "function_words", "hidden_character", "looks_utf16", "join_digit_groups", "japanese_grammar",
           "language_of", "asks", "clauses", "own_questions", "refers_back", "sentences",
           "script_of", "script_words",
           "direction_controls", "listed", "matching_form", "reads_english", "same_words", "seen_form", "shown_lines", "shown_plainly", "without_ignorables", "words_of", "written_in", "languages_ahead"]

_C1_CONTROL = re.compile("[\u0080-\u009f]")  # no text uses them: bytes decoded with the wrong codec make them
_LATIN1_RUN = re.compile("[\u0000-\u00ff]+")


def misdecoded(name: str, value: str) -> str | None:
    """Why ``value`` (a request's ``name``) reads as bytes decoded with the wrong codec, with the fix, or None: a C1
    control character (U+0080-U+009F), which UTF-8 text read as Latin-1 (a web page served without its charset) and
    Windows-1252 text read as Latin-1 make ("€" became "â\x82¬" or U+0080): the guard answered from such a passage,
    and the number hold no longer saw its currency."""
    found = _C1_CONTROL.search(value)
    if found is None:
        return None
    char = found.group(0)
    where = f"{name} holds the control character U+{ord(char):04X} at character {found.start()}"
    run = next(m.group(0) for m in _LATIN1_RUN.finditer(value) if m.start() <= found.start() < m.end())
    try:
        run.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return f"{where}: UTF-8 text read as Latin-1; decode its bytes as UTF-8 (bytes.decode('utf-8'))"
    shown = bytes([ord(char)]).decode("cp1252", "replace")
    if shown != "\ufffd":
        return (f"{where}: Windows-1252 text (where that byte is {shown!r}) read as Latin-1; decode its bytes as cp1252 "
                "(bytes.decode('cp1252'), `iconv -f cp1252 -t utf-8`)")
    return (f"{where}, which neither UTF-8, Windows-1252 nor any text uses: the text was decoded with the wrong codec; "
            "find the encoding of its source (`file -i FILE`) and decode it with that")


# A comma between digit groups: "1,000" and "12,345.6", not "1,2" or "1,0000".
_DIGIT_GROUP_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


# a letter of a script whose combining marks are accents or optional vowel points (dropped when folding: "é" is
# "e", "й" is "и", "أ" is "ا"), or no letter; a mark on any other letter is part of its spelling (the Devanagari virama
# of "कर्मचारी", the Japanese voicing mark of "です"): folding keeps it
_ACCENTED = regex.compile(r"[\p{Latin}\p{Greek}\p{Cyrillic}\p{Arabic}\p{Hebrew}\p{Common}\p{Inherited}]")


def fold_accents(text: str) -> str:
    """``text`` decomposed (NFKD) without its combining marks: "São Paulo" -> "Sao Paulo", "ﬁ" -> "fi". The marks of a
    Latin, Greek or Cyrillic letter (accents) and of an Arabic or Hebrew one (optional vowel points) go; those of
    other scripts' letters, part of how they are spelled (Devanagari "कर्मचारी", Japanese "です"), stay, recomposed, as
    Hangul syllables are (NFKD splits them into jamo)."""
    if text.isascii():  # nothing to decompose or drop (most text: English)
        return text
    text = unicodedata.normalize("NFKD", text)
    if _MARK.search(text) is not None:  # marks to drop or keep (none in Chinese, Korean, Latin without accents)
        out, keep = [], False
        for c in text:
            if not unicodedata.combining(c):
                keep = _keeps_marks(c)
            elif not keep:
                continue
            out.append(c)
        text = "".join(out)
    # always recomposed: the marks kept, and Hangul syllables, which NFKD splits into jamo (recomposed only where another
    # script's mark was kept, the same Korean word read differently as the rest of the text changed); a Latin letter
    # has no mark left to compose with, so Latin text is unchanged
    return unicodedata.normalize("NFC", text)


_MARK = regex.compile(r"\p{M}")  # every combining character (canonical combining class > 0) is a mark


@lru_cache(maxsize=8192)
def _keeps_marks(c: str) -> bool:
    """Whether the combining marks after ``c`` (not itself one) are part of its spelling: see :data:`_ACCENTED`."""
    return _ACCENTED.match(c) is None


_IGNORABLE = regex.compile(r"[\p{Default_Ignorable_Code_Point}\u2800]")


def without_ignorables(text: str) -> str:
    """``text`` without the characters Unicode says to ignore where they cannot be shown (a soft hyphen, a zero-width
    space or joiner, a byte-order mark, a variation selector) and the blank Braille cell: "Gdan\u00adsk" reads
    "Gdansk" (a PDF's or web page's text holds them inside words and numbers)."""
    return _IGNORABLE.sub("", text)


# Letters of the Cyrillic and Greek scripts that show as a Latin letter of the same case in an ordinary font (from
# Unicode's confusables): "\u0456gnore" shows as "ignore", "SYST\u0415M" as "SYSTEM", "Us\u0435r" as "User". Only
# those a reader takes for that Latin letter: lower-case "\u043a", "\u043c", "\u043d", "\u0442", "\u0432" look like
# small capitals, Greek "\u03ba", "\u03c4", "\u03b3", "\u03c7" like no Latin letter of their case, and are left.
# One table, read by :func:`matching_form` (see there for which words it folds).
LOOK_ALIKES = {
    # Cyrillic capitals
    "\u0410": "A", "\u0412": "B", "\u0415": "E", "\u041a": "K", "\u041c": "M", "\u041d": "H", "\u041e": "O",
    "\u0420": "P", "\u0421": "C", "\u0422": "T", "\u0423": "Y", "\u0425": "X", "\u0405": "S", "\u0406": "I",
    "\u0408": "J", "\u04ae": "Y", "\u04c0": "I", "\u051a": "Q", "\u051c": "W",
    # Cyrillic small letters
    "\u0430": "a", "\u0435": "e", "\u043e": "o", "\u0440": "p", "\u0441": "c", "\u0443": "y", "\u0445": "x",
    "\u0455": "s", "\u0456": "i", "\u0458": "j", "\u04bb": "h", "\u0501": "d", "\u051b": "q", "\u051d": "w",
    "\u04af": "y", "\u04cf": "l",
    # Greek capitals
    "\u0391": "A", "\u0392": "B", "\u0395": "E", "\u0396": "Z", "\u0397": "H", "\u0399": "I", "\u039a": "K",
    "\u039c": "M", "\u039d": "N", "\u039f": "O", "\u03a1": "P", "\u03a4": "T", "\u03a5": "Y", "\u03a7": "X",
    "\u03f9": "C", "\u037f": "J",
    # Greek small letters
    "\u03b1": "a", "\u03b9": "i", "\u03bd": "v", "\u03bf": "o", "\u03c1": "p", "\u03c5": "u", "\u03f2": "c",
    "\u03f3": "j",
    # Latin letters that show as another (script g, dotless i) and Armenian small letters (a review)
    "\u0261": "g", "\u0131": "i", "\u0585": "o", "\u057d": "u", "\u0570": "h",
    # Lisu and Cherokee capitals that show as Latin capitals ("\ua4e2\ua4ec\ua4e2\ua4d4\ua4f0\ua4df", "\u13da\u13bd\u13da\u13a2\u13ac\u13b7"
    # show as "SYSTEM")
    "\ua4ee": "A", "\ua4d0": "B", "\ua4da": "C", "\ua4d3": "D", "\ua4f0": "E", "\ua4dd": "F", "\ua4d6": "G",
    "\ua4e7": "H", "\ua4f2": "I", "\ua4d9": "J", "\ua4d7": "K", "\ua4e1": "L", "\ua4df": "M", "\ua4e0": "N",
    "\ua4d1": "P", "\ua4e3": "R", "\ua4e2": "S", "\ua4d4": "T", "\ua4f4": "U", "\ua4e6": "V", "\ua4ea": "W",
    "\ua4eb": "X", "\ua4ec": "Y", "\ua4dc": "Z",
    "\u13aa": "A", "\u13f4": "B", "\u13df": "C", "\u13a0": "D", "\u13ac": "E", "\u13c0": "G", "\u13bb": "H",
    "\u13c6": "I", "\u13ab": "J", "\u13e6": "K", "\u13de": "L", "\u13b7": "M", "\u13e2": "P", "\u13a1": "R",
    "\u13da": "S", "\u13a2": "T", "\u13d9": "V", "\u13b3": "W", "\u13bd": "Y", "\u13c3": "Z",
}
# Punctuation that shows as a colon (ratio, Armenian full stop, modifier letters): written ":" for matching, whatever
# the word around it
COLON_LIKE = str.maketrans({"\u2236": ":", "\u0589": ":", "\ua789": ":", "\u02f8": ":", "\u05c3": ":", "\u1361": ":"})
# Characters that show as a blank though Unicode does not call them spaces, or ignores them (the blank Braille cell,
# the Ogham space mark, the Hangul fillers): written " " for matching, so that they neither hide a marker nor join two
# words into one
_LOOK_ALIKE_TABLE = str.maketrans(LOOK_ALIKES)
_LOOK_ALIKE = regex.compile("[" + "".join(LOOK_ALIKES) + "]")
_LETTERS = regex.compile(r"[\p{L}\p{M}]+")  # a word's letters (and the marks on them)
_LATIN_WORD = regex.compile(r"[\p{Latin}\p{M}]+")
# what matching leaves out: format characters (a zero-width space or joiner, a direction mark, a byte-order mark) and
# the characters Unicode says to ignore where they cannot be shown (a soft hyphen, a variation selector, the Hangul
# filler); and every line break str.splitlines() knows ("\r\n" is one), written "\n"
_UNMATCHED = regex.compile(r"(\r\n|[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029])|([\u2800\u1680\u115f\u1160\u3164\uffa0])"
                           r"|[\p{Cf}\p{Default_Ignorable_Code_Point}]+")
#: a line break, any that str.splitlines() knows
LINE_BREAK = regex.compile(r"[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def _look_alikes_folded(word: regex.Match) -> str:
    folded = word.group(0).translate(_LOOK_ALIKE_TABLE)
    return folded if _LATIN_WORD.fullmatch(folded) else word.group(0)


def matching_form(text: str, *, offsets: list[int] | None = None) -> str:
    """``text`` as the guard's checks for words and markers read it (the injection, transcript and plain-label checks
    of :mod:`hguard.generation`, the judge's refusal wording, a chain's earlier answers), the way a reader sees it:
    in compatibility form (NFKC: full-width "\uff33\uff39\uff33" is "SYS"), without format and default-ignorable
    characters ("Ig\u200bnore" and "Ig\u00adnore" read "Ignore"), every line break str.splitlines() knows written
    "\n" (a line after U+2028 or a bare "\r" opens a line), and the Cyrillic and Greek letters of
    :data:`LOOK_ALIKES` written as the Latin letters they show as, in a word whose every letter then is Latin
    ("\u0456gnore", "SYST\u0415M"; a Russian or Greek word, with a letter of its own, is left as it is). For matching
    only: what is recorded or shown is the text itself. ``offsets``: a list that gets, for each character of the
    result, the index in the compatibility form of ``text`` it comes from (to quote the text itself)."""
    text = unicodedata.normalize("NFKC", text)
    return _matching_form(text, offsets)


def _matching_form(text: str, offsets: list[int] | None = None) -> str:
    """:func:`matching_form` of ``text`` already in compatibility form."""
    parts, at = [], 0
    for m in _UNMATCHED.finditer(text):
        parts.append(text[at:m.start()])
        if offsets is not None:
            offsets.extend(range(at, m.start()))
        if m.group(1) is not None or m.group(2) is not None:  # a line break, or a blank of its own
            parts.append("\n" if m.group(1) is not None else " ")
            if offsets is not None:
                offsets.append(m.start())
        at = m.end()
    parts.append(text[at:])
    if offsets is not None:
        offsets.extend(range(at, len(text)))
    read = "".join(parts).translate(COLON_LIKE)  # the same length: the offsets hold
    if _LOOK_ALIKE.search(read) is not None:  # (also the same length)
        read = _LETTERS.sub(_look_alikes_folded, read)
    return read


def hidden_character(c: str) -> bool:
    """A character that changes how the text around it shows (control, line separator, direction override), or
    shows nothing (a variation selector, the combining grapheme joiner, the Hangul fillers, a blank Braille cell),
    rather than being seen itself; the joiners some scripts spell names with (U+200C, U+200D) are not."""
    if c in "\u200c\u200d":
        return False
    return unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") or _IGNORABLE.match(c) is not None


# a letter of a script that joins no letters with U+200C / U+200D (Latin, Greek, Cyrillic), or none
_UNJOINED = regex.compile(r"[\p{Latin}\p{Greek}\p{Cyrillic}\p{Common}]")


def hidden_characters_in(name: str) -> str | None:
    """What a person's name (a reviewer, who lifted a tightening) holds that would let it show as another name in
    a one-line listing (a line break, a direction override), as ``U+XXXX`` codes; None when nothing. A zero-width
    joiner or non-joiner counts where it stands beside a letter of a script that joins none with it ("Ann\u200ca"
    shows as "Anna"), or at either end; in a Persian or Indic name it is spelling."""

    def hidden_at(i: int, c: str) -> bool:
        if c not in "\u200c\u200d":
            return hidden_character(c)
        around = name[i - 1:i] + name[i + 1:i + 2]
        return len(around) < 2 or any(_UNJOINED.match(x) for x in around)

    hidden = [c for i, c in enumerate(name) if hidden_at(i, c)]
    return ", ".join(f"U+{ord(c):04X}" for c in dict.fromkeys(hidden)) if hidden else None


# what shows nothing: whitespace, format characters (a zero-width space, a byte-order mark), the characters Unicode
# says to ignore when they cannot be shown (a variation selector, the Hangul filler), and the blank Braille cell
_BLANK_CHAR = r"[\s\p{Cf}\p{Default_Ignorable_Code_Point}\u2800]"  # a blank or invisible character
_BLANK = regex.compile(_BLANK_CHAR + "*")


def blank(text: str) -> bool:
    """Whether ``text`` shows nothing: empty, or whitespace and invisible characters alone (a zero-width space, a
    byte-order mark, a variation selector, the Hangul filler, a blank Braille cell), which ``str.strip`` keeps."""
    return _BLANK.fullmatch(text) is not None


def looks_utf16(head: bytes) -> bool:
    """Whether a file's first bytes are UTF-16's (Windows "Unicode" text): its byte-order mark, or a NUL byte among the
    first two (an ASCII character's other half)."""
    return head.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(head) > 1 and b"\x00" in head[:2])


def shown_plainly(text: str) -> str:
    """``text`` with every :func:`hidden_character` written as its escape ("\\n", "\\u202e"), for one-line
    listings where a line break or a direction override would make one value read as another."""
    if not any(hidden_character(c) for c in text):
        return text
    return "".join(c.encode("unicode_escape").decode("ascii") if hidden_character(c) else c for c in text)


def shown_lines(text: str) -> list[str]:
    """Multi-line ``text`` for a terminal, as lines: its line breaks ("\\n", "\\r\\n") and tabs kept (text, which
    a terminal shows as such: a tab was shown as "\\t"), every other :func:`hidden_character` escaped as
    :func:`shown_plainly` does (an answer holding "ESC[2K\\r[route=accept]" erased its line and drew a forged one in
    ``hguard ask``; a lone carriage return is escaped, not a line break)."""
    return ["\t".join(shown_plainly(part) for part in line.split("\t"))
            for line in text.replace("\r\n", "\n").split("\n")]


# Where a sentence ends: a run of Unicode's sentence terminators ("." "!" "?", the full-width and ideographic ones,
# Arabic "\u061f", Devanagari "\u0964", ...), the Greek question mark and the ellipsis, with any closing quotes or
# brackets after it; the question marks among them mark a question
QUESTION_MARKS = ("?\u037e\u061f\u1367\u1945\u203d\u2047\u2048\u2049\u2cfa\u2cfb\u2e2e\u2e54\ua60f\ua6f7\ufe16\ufe56"
                  "\uff1f\U00011143")
_DOTS = ".\u2024\u2025\u2026"  # a full stop, the leaders and the ellipsis: also in numbers, names and abbreviations
_TERMINATOR = r"\p{Sentence_Terminal}\u037e\u2025\u2026"
_CLOSER = r"\"'\p{Pe}\p{Pf}"
_SENTENCE_END = regex.compile(rf"(?P<run>[{_TERMINATOR}]+)[{_CLOSER}]*")
_END_MARK = regex.compile(rf"[{_TERMINATOR}{_CLOSER}]")
# an address, whose dots and "?" end no sentence (its own last marks do: "... at https://x.org/a?b=c?")
_ADDRESS = regex.compile(r"(?i)\b(?:[a-z][a-z0-9+.-]{0,31}://|www\.)\S+")
_ADDRESS_END = regex.compile(rf"[{_TERMINATOR}{_CLOSER},;:]+\Z")
# a word a full stop follows inside a sentence when a lower-case word comes next: "e.g. the", "U.S. troops", "etc. and"
_ABBREVIATION = regex.compile(
    r"(?i)(?:\b\p{L}(?:\.\p{L})*|\b(?:etc|vs|cf|ca|approx|esp|incl|viz|resp|al|fig|figs|no|nos|vol|pp|ed|eds|dept|est"
    r"|min|max|sq|ft|oz|lb|lbs|mt|st|dr|mr|mrs|ms|prof|jr|sr|gen|col|lt|sgt|capt|rev|hon|gov|sen|rep|co|corp|inc|ltd"
    r"|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec))\Z")
_BLANK_ONE = regex.compile(_BLANK_CHAR)
_TWO_LOWER = regex.compile(r"\p{Ll}\p{Ll}")
_TITLE_START = regex.compile(r"\p{Lu}\p{Ll}")


def sentences(text: str) -> list[str]:
    """``text``'s sentences, each stripped of the blank and invisible characters around it. A sentence ends at
    every run of sentence terminators ("?", "!", "." and their full-width, ideographic, Arabic and other forms:
    Unicode's Sentence_Terminal, the Greek question mark, the ellipsis) with the closing quotes or brackets after
    it, whatever follows: a space, a zero-width space, or nothing ("Faso?Also, who ..."). Not where the sentence
    goes on: a comma or another mark glued after it ("Ambush!, are"), a lower-case word after a closing quote or
    bracket ('"Why?" she asked'), a mark inside brackets ("known as (what?) by"). A full stop or ellipsis glued to
    what follows ends one only between words ("century.First"), not in a number ("3.5"), an abbreviation ("U.S.")
    or a file name; one before a blank does, unless an abbreviation ("e.g.", "U.S.", "Dr.") precedes it and a
    lower-case word follows ("the U.S. economy"). An address's own dots and "?" ("https://x.org/a?b=c") end
    nothing. Linear in the length of ``text``."""
    inside: list[tuple[int, int]] = []  # the addresses, without the marks that end their sentence
    for m in _ADDRESS.finditer(text):
        tail = _ADDRESS_END.search(m.group())
        inside.append((m.start(), m.end() - (len(tail.group()) if tail else 0)))
    starts = [a for a, _ in inside]
    # brackets opened minus brackets closed before each position: a mark inside brackets ends no sentence
    depth = [0]
    for c in text:
        cat = unicodedata.category(c)
        depth.append(depth[-1] + (cat == "Ps") - (cat == "Pe"))
    cuts = [0]
    for m in _SENTENCE_END.finditer(text):
        start, end, run_end = m.start(), m.end(), m.end("run")
        after = _past_blanks(text, end, len(text))
        i = bisect.bisect_right(starts, start) - 1
        if after == len(text) or (i >= 0 and start < inside[i][1]):
            continue
        nxt = text[after]
        if ((nxt in ",;:" and after == end) or _SENTENCE_END.match(nxt) or (nxt.islower() and end > run_end)
                or (depth[start] > depth[cuts[-1]] and depth[end] < depth[start])):
            continue  # the sentence goes on ("Ambush!, are", "?'?"), or a quoted or bracketed mark inside it
        if all(c in _DOTS for c in m["run"]):
            if after == end and not (start >= 2 and _TWO_LOWER.fullmatch(text, start - 2, start)
                                     and _TITLE_START.match(text, after)):
                continue  # "3.5", "U.S.A", "node.js": only "century.First" ends a sentence glued to the next
            if after > end and nxt.islower() and _ABBREVIATION.search(text[max(0, start - 40):start]):
                continue
        cuts.append(end)
    cuts.append(len(text))
    pieces = (_unblanked(text, a, b) for a, b in zip(cuts, cuts[1:]))
    return [p for p in pieces if p]


def _past_blanks(text: str, pos: int, end: int) -> int:
    """Where the blank and invisible characters from ``pos`` on (up to ``end``) stop."""
    m = _BLANK.match(text, pos, end)
    return m.end() if m else pos


def _unblanked(text: str, start: int, end: int) -> str:
    """``text[start:end]`` without the blank and invisible characters around it (which ``str.strip`` keeps)."""
    start = _past_blanks(text, start, end)
    while end > start and _BLANK_ONE.match(text, end - 1):
        end -= 1
    return text[start:end]


# A second question joined to the first within one sentence (English joiners only): a clause opening with a question
# word ("What is the capital of France, and what overdraft fee does my bank charge?") after a semicolon, a comma (also
# a full-width or ideographic one) with "and" / "but" / "or" / "plus" / "&" / "as well as", a newline (a list marker
# "2)", "-" may follow), a list number ("1) ... 2) what ..."), or a bare "and" / "but" / "or" / "plus" / "&" / "/" /
# dash; a joining word ("also", "then", "additionally", "in addition", "separately", ...) or a request ("tell me",
# "could you tell me") may come between ("..., and also tell me what ..."). After a semicolon, a newline or a list
# number an auxiliary verb opens one too ("; does my bank ..."), and after ", and" / ", but" / ", &" ("..., and do
# banks charge overdraft fees?"). After a bare comma only "what", "how" and "why" open one: "which", "who", "where",
# "when" there open a relative clause ("Peru, which lies ..."), an auxiliary the sentence's own verb ("Which mineral,
# found in Arkansas, is an ore ...?"). Each break starts at a non-blank and its quantifiers are possessive, so a long
# run of blanks or marks is read once: linear in the sentence's length.
_ASKING = r"(?:what|which|who|whom|whose|where|when|why|how)"
_AUXILIARY = (r"(?:is|are|was|were|do|does|did|can|could|will|would|should|shall|may|might|must|has|have|had|isn't|aren't"
              r"|wasn't|weren't|don't|doesn't|didn't|can't|won't)")
_JOINER = r"(?:(?:and|but|or|plus|as\s++well\s++as)\b|&)"
_THEN = (r"(?:(?:also|then|additionally|in\s++addition|separately|besides|secondly|second|finally|lastly|next)\b[\s,]*+)?"
         r"(?:(?:(?:please\s++)?(?:also\s++)?(?:tell|show)\s++(?:me|us)|(?:can|could|would|will)\s++you\s++(?:please\s++)?"
         r"(?:also\s++)?tell\s++(?:me|us)|i\s++(?:also\s++)?(?:want|need|would\s++like)\s++to\s++know)\b\s*+)?")
_COMMA = r"[,\uff0c\u3001]"
# a yes/no question after ", and": an auxiliary and then its subject ("..., and do banks charge ...", "..., and is my
# bank's fee ..."), not the first question's second verb ("What highway gives access to Zilpo Road, and is also known
# as Midland Trail?", "..., and has been linked with ...")
_ASKS_WHETHER = (rf"{_AUXILIARY}\s++(?:(?:the|my|your|our|their|his|her|its|this|these|those|there|it|i|you|we|they|he|she|any"
                 r"|some|all|every|each)\b|(?-i:\p{Lu})|(?!(?:always|perhaps|sometimes|thus|towards|unless|less|across|besides|various)\b)"
                 r"(?!\w*ous\b)\w{2,}s\b)")
_MARKER = r"(?:\d{1,2}[.)]|[-*\u2022])"  # a list item's number or bullet
_CLAUSE_BREAK = regex.compile(
    rf"(?i)(?<!\s)[^\S\n]*+(?:[;\uff1b\u061b]\s*+(?:{_JOINER}[\s,]*+)?|\n\s*+(?:{_MARKER}\s++)?(?:{_JOINER}[\s,]*+)?"
    rf"|(?<=\s)\d{{1,2}}[.)]\s++){_THEN}(?=(?:{_ASKING}|{_AUXILIARY})\b)"
    rf"|(?<!\s)\s*+{_COMMA}\s*+(?:{_JOINER}[\s,]*+{_THEN}(?={_ASKING}\b)|(?:(?:and|but)\b|&)[\s,]*+{_THEN}(?={_ASKS_WHETHER}))"
    rf"|(?P<comma>(?<!\s)\s*+{_COMMA}\s*+{_THEN}(?=(?:what|how|why)\b))"
    rf"|(?P<bare>(?<=\s)(?:(?:and|but|plus|as\s++well\s++as)\b|&|/|-)[\s,]*+{_THEN}(?={_ASKING}\b)"
    rf"|(?<=\s)or[\s,]*+{_THEN}(?=(?:what|how|why)\b)|[\u2013\u2014]\s*+(?:{_JOINER}[\s,]*+)?{_THEN}(?={_ASKING}\b))")
# what may come before a question's first word: a list marker, a word or two that opens speech ("So what ...", "OK so
# what ...", "And what ..."), a label before a colon ("Quick question: what ...", "Please tell me: what ...")
_LEAD_IN = (rf"(?:{_MARKER}\s++)?(?:(?:so|and|ok|okay|well|also|now|then|oh|hi|hello|hey|please|right|alright|anyway)\b[\s,]*+)*+"
            r"(?:[^\s:?][^:?\n]{0,40}:\s++)?")
# a clause that asks: it opens with a question word (after a preposition: "In which country ..."; "when" and "where"
# with an auxiliary after them, not "When a person sees ...") or an auxiliary verb, or asks in place after a
# preposition ("Copenhagen is the capital of which country", "Myanmar lies on which continent")
# A request asks too: "Tell me the capital of France, and what overdraft fee ...?" ("tell me", "give me", "name",
# "list", "explain", "describe", "define", "I want to know", ...)
# A request asks when it names what it asks for: "Please tell me, what ...?" and "I want to know, how ...?" lead into
# one question (a review: split, their lead-in matched alone, 74 in 100 of a domain's questions so asked reached none)
_REQUESTS = (r"(?:(?:please\s+)?(?:tell|give|show)\s+(?:me|us)|(?:please\s+)?(?:name|list|explain|describe|define|identify"
             r"|summari[sz]e)(?:\s+(?:to\s+)?(?:me|us))?|i\s+(?:want|need|would\s+like)\s+to\s+know)"
             r"\b(?=[^\S\n]+(?!please\b|(?:to\s+)?(?:me|us)\b)[^\W\d_])")
_OPENS_QUESTION = regex.compile(
    rf"(?i){_LEAD_IN}(?:(?:(?:in|at|on|for|from|by|to|of|with|during|under|after|before|since|until)\s+)?"
    rf"(?:(?:what|which|who|whom|whose|why|how)\b|(?:when|where)\s+{_AUXILIARY}\b)|{_AUXILIARY}\b|{_REQUESTS})")
_ASKS_IN_PLACE = regex.compile(r"(?i)\b(?:of|on|in|by|to|for|from|at|with|into|under)\s+(?:which|what|whose)\b")
# a question embedded in a clause: "what", "how" or "why" anywhere ("Can you define what is good"), another question
# word after a verb of knowing or saying ("Do you know who wrote it"); after a noun it opens a relative clause ("the
# country where the Seine flows")
_EMBEDDED = regex.compile(
    r"(?i)\b(?:what|how|why)\b|\b(?:know|knows|knew|tell|told|ask|asked|wonder|explain|explains|explained|define|describe"
    r"|described|discover|discovered|show|showed|say|said|learn|learned|understand|remember|decide|decided|guess|determine"
    r"|determined|find\s+out|found\s+out)\s+(?:which|who|whom|whose|where|when)\b")


def _clause_asks(clause: str) -> bool:
    """Whether ``clause`` asks: :data:`_OPENS_QUESTION` at its start (after a :data:`_LEAD_IN`), or
    :data:`_ASKS_IN_PLACE`."""
    return bool(_OPENS_QUESTION.match(clause) or _ASKS_IN_PLACE.search(clause))


def _embeds_question(clause: str) -> bool:
    """Whether ``clause`` holds a question (:data:`_EMBEDDED`) that neither opens it nor asks in place after a
    preposition: a question embedded in it ("Can you define what is good", "Who discovered how the stomach
    functions"). Linear: an in-place question word is known by where it ends."""
    opener = _OPENS_QUESTION.match(clause)
    in_place = {m.end() for m in _ASKS_IN_PLACE.finditer(clause)}
    return any(not (opener and m.end() <= opener.end()) and m.end() not in in_place for m in _EMBEDDED.finditer(clause))


_CLAUSE_END = " \t\n,;:&/-\u2013\u2014\uff0c\u3001\uff1b\u061b"  # what a clause ends with before the break


def _clause_groups(sentence: str) -> list[tuple[str, bool]]:
    """:func:`clauses`, each with whether it opens with a clause that refers back (to an earlier sentence)."""
    spans: list[tuple[int, int]] = []
    start, embeds, opening = 0, -1, False  # embeds: the start of a clause found to embed a question (it still does)
    for m in _CLAUSE_BREAK.finditer(sentence):
        if m["bare"] and (embeds == start or _embeds_question(sentence[start:m.start()].strip())):
            embeds = start
            continue
        clause = sentence[start:m.start()].strip()
        if m["comma"] and not spans and not opening and not _clause_asks(clause):
            opening = True  # an opening phrase before the question: "When a person sees something, what ...", "Hi, what"
            continue
        if clause:
            spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(sentence)))
    if len(spans) < 2 or not (opening or _clause_asks(sentence[slice(*spans[0])].strip())):
        return [(sentence, refers_back(sentence))]
    groups, alone = [spans[0]], []
    for a, b in spans[1:]:  # a clause that refers back is asked with the one before it, and alone if it says enough
        if refers_back(sentence[a:b]):
            groups[-1] = (groups[-1][0], b)
            if _says_enough(sentence[a:b]):
                alone.append((a, b))
        else:
            groups.append((a, b))
    back = refers_back(sentence[slice(*spans[0])])
    if len(groups) == 1 and not alone:
        return [(sentence, back)]
    mark = _question_mark(sentence) or ""  # each clause a question as the sentence writes one ("France?" reads closer)
    return [(sentence[a:].strip() if b == len(sentence) else sentence[a:b].strip().rstrip(_CLAUSE_END) + mark,
             back and a == 0) for a, b in sorted(groups + alone)]


# a clause that refers back and still asks a question of its own: this many words besides English function words
# ("what fee does it charge me for an overdraft": fee, charge, overdraft; not "when was it staged")
_OWN_WORDS = 3


def _says_enough(clause: str) -> bool:
    """Whether ``clause`` holds :data:`_OWN_WORDS` words or more that are no English function word."""
    common = function_words()["english"]
    return len({w for w in words_of(clause) if w not in common}) >= _OWN_WORDS


def clauses(sentence: str) -> list[str]:
    """The questions one sentence joins (:data:`_CLAUSE_BREAK`): "What is the capital of France, and what overdraft
    fee does my bank charge?" asks "What is the capital of France?" and "what overdraft fee does my bank charge?",
    each ending with the sentence's question mark (without it a question reads farther from its kind).
    ``[sentence]`` unless its first clause asks (:func:`_clause_asks`: after a lead-in, "So what ...", "Quick
    question: what ..."; an opening phrase before a comma and "what", "how" or "why" is part of it: "When a person
    sees something, what ...?" is one question). A clause that refers back (:func:`refers_back`) is asked with the
    one before it: "What is the capital of France, and what is its population, and what overdraft fee does my bank
    charge?" asks "What is the capital of France, and what is its population?" and "what overdraft fee does my bank
    charge?"; "Who wrote Hamlet, and when was it staged?" is one question. "and what" without a comma joins no
    questions embedded in a clause ("define what is good and what is evil")."""
    return [c for c, _ in _clause_groups(sentence)]


def own_questions(sentence: str) -> list[str]:
    """The questions of ``sentence`` each matched on its own: its :func:`clauses`, less the first where it opens
    with a clause that refers back to an earlier sentence ("Why was it chosen?", "When was it staged, and ...")."""
    return [c for c, back in _clause_groups(sentence) if not back]


# words by which a question refers back to an earlier one ("Why was it chosen?"): no question of its own; "this" before
# a time of the calendar ("this year") points at no earlier question, nor does "one" after an auxiliary ("does one pay")
_REFERS_BACK = regex.compile(
    r"(?i)\b(?:it|its|they|them|their|he|she|his|her|him|there"
    r"|that|these|those|this(?!\s+(?:year|month|week|morning|evening|summer|winter|spring|autumn|season|century|decade"
    r"|weekend)\b)"
    rf"|(?<!\b{_AUXILIARY}\s+)one)\b"
    # an ellipsis: "what about Germany?", "and how about Othello?", "which is the heaviest?", "what is the smallest one?"
    r"|^(?:and\s+)?(?:what|how)\s+about\s+(?:the\s+)?(?-i:\p{Lu})[\w'-]*(?:\s+(?-i:\p{Lu})[\w'-]*){0,2}\s*\p{Po}*$"
    r"|^(?:and\s+)?(?:what|which|who)\s+(?:is|are|was|were)\s+the\s+(?:\w+est|most\s+\w+|least\s+\w+)(?:\s+one)?"
    r"\s*\p{Po}*$")


def refers_back(question: str) -> bool:
    """Whether ``question`` refers back to an earlier one ("Why was it chosen?", "Does it change with pressure?"),
    or leaves out what an earlier one said ("What about Germany?", "Which is the heaviest?"), and so is no question
    on its own."""
    return _REFERS_BACK.search(question.strip()) is not None


def asks(sentence: str) -> bool:
    """Whether ``sentence`` is a question: it ends with a question mark of any script ("?", "\uff1f", "\u061f",
    "\u037e", the interrobang), closing marks and other terminators allowed after it ("?!", "?\u201d")."""
    return _question_mark(sentence) is not None


def _question_mark(sentence: str) -> str | None:
    """The question mark among the marks that end ``sentence`` (read from its end: linear in a long run of them)."""
    i = len(sentence)
    while i and _END_MARK.match(sentence, i - 1):
        i -= 1
    return next((c for c in sentence[i:] if c in QUESTION_MARKS), None)


def listed(text: str, limit: int) -> str:
    """``text`` for one line of a listing a person reads in a terminal: whitespace folded to single spaces, every
    other :func:`hidden_character` escaped (an escape sequence in a question moved the cursor and wrote a forged
    risk over the real one in ``hguard review list``), cut to ``limit`` characters."""
    return one_line(shown_plainly(" ".join(text.split())), limit)


# embeddings, overrides, isolates (always counted); and the marks (LRM, RLM, ALM) where they stand beside a digit,
# which reorder digits as an override does ("0\u200f3" shows as "30"), with only invisible characters between them
# (bidi skips a zero-width space, a word joiner, a soft hyphen: "0\u200b\u200f\u200b3" shows as "30" too), or
# between two numbers with only spaces between ("1 \u200f 2" shows as "2 1"). A mark before a number after
# right-to-left words ("\u05e9\u05dc\u05d5\u05dd\u200f 30") is how such writing uses it, and shows the number as it is.
_EMBEDDING = regex.compile(r"[\u202a-\u202e\u2066-\u2069]")
_MARKS = frozenset("\u200e\u200f\u061c")
_UNSEEN = regex.compile(r"[\p{Cf}\p{Default_Ignorable_Code_Point}]")


def _nearest_seen(text: str, *, spaces: bool) -> tuple[list[str], list[str]]:
    """For each position of ``text``, the nearest character before it and after it that is not invisible (and not
    whitespace, with ``spaces``), "" at either end: one pass each way, so a long run of marks costs no more."""
    skip = [bool(_UNSEEN.match(c)) or (spaces and c.isspace()) for c in text]
    before, after = [""] * len(text), [""] * len(text)
    last = ""
    for i, c in enumerate(text):
        before[i] = last
        last = last if skip[i] else c
    last = ""
    for i in range(len(text) - 1, -1, -1):
        after[i] = last
        last = last if skip[i] else text[i]
    return before, after


def direction_controls(text: str) -> str | None:
    """The direction controls ``text`` holds that change the order it shows in (embeddings, overrides, isolates:
    U+202A-U+202E, U+2066-U+2069; the marks U+200E, U+200F, U+061C beside a digit, invisible characters aside, or
    between two numbers), as ``U+XXXX`` codes; None when none. Such text shows in another order than it is stored and
    read ("\u202e03\u202c days" and "\u200f0\u200f3 days" show as "30 days"); a mark elsewhere, as right-to-left
    writing uses it, is not counted."""
    found = _EMBEDDING.findall(text)
    if any(c in _MARKS for c in text):
        near, spaced = _nearest_seen(text, spaces=False), _nearest_seen(text, spaces=True)
        for i, c in enumerate(text):
            if c in _MARKS and (near[0][i].isdigit() or near[1][i].isdigit()
                                or (spaced[0][i].isdigit() and spaced[1][i].isdigit())):
                found.append(c)
    return ", ".join(f"U+{ord(c):04X}" for c in dict.fromkeys(found)) if found else None


def same_words(a: str, b: str) -> bool:
    """Whether two texts say the same words, as a reader would see them: case, spacing, compatibility forms
    (fullwidth letters, a non-breaking space), invisible characters (a zero-width space) and punctuation at
    either end aside ("Paris." vs " paris" is the same; "Paris" vs "Paris, Texas" is not): how a reviewer's text
    is matched with the model's answer it was written about."""

    return seen_form(a) == seen_form(b)


def seen_form(text: str) -> str:
    """``text`` as a reader sees it, the form :func:`same_words` compares (two texts are the same words where their
    forms are equal: one dictionary lookup, where many answers are grouped)."""
    text = "".join(c for c in unicodedata.normalize("NFKC", text) if not hidden_character(c) or c.isspace())
    return " ".join(text.split()).casefold().strip(_END_PUNCTUATION)


_END_PUNCTUATION = " .,;:!?\"'()[]«»“”‘’…-"


def join_digit_groups(text: str) -> str:
    """``text`` without the commas that group digits: "1,000,000" -> "1000000" ("1,2" is kept)."""
    return _DIGIT_GROUP_COMMA.sub("", text)


_AUX = frozenset("is are was were am do does did can could will would should shall may might must has have had "
                 "isn't aren't wasn't weren't don't doesn't didn't can't cannot couldn't won't wouldn't shouldn't hasn't "
                 "haven't".split())


def asks_yes_no(question: str) -> bool:
    """Whether ``question`` asks for yes or no: it opens with an auxiliary verb ("Is", "Does", "Can", "Don't"; not
    the name "Don" or "Won")."""
    words = re.findall(r"[a-z']+", re.sub(r"[\u2019\u2018\u02bc`]", "'", question.lower()))
    return bool(words) and words[0] in _AUX


def states_to_confirm(question: str) -> bool:
    """Whether ``question`` is an English statement put as a question, to be confirmed ("The charge is 3%?", "So the
    fee would be $30?", "The fee is $30, is it not?"): it ends with a question mark, reads as English
    (:func:`reads_english`) and holds no question word ("who", "what", ..., "how"). :func:`asks_yes_no` reads only
    those opening with an auxiliary."""
    return (question.rstrip().endswith(("?", "\uff1f")) and not _ASKS_CONTENT & set(words_of(question))
            and reads_english(question))


# "Can you tell me ...", "Do you know ...", "Could you say ...": a request put as a question, answered with its content
_REQUEST = re.compile(r"(?:can|could|would|will|do|did|don't|won't)(?: you)(?: please)? (?:tell|say|know|explain|name|list"
                      r"|give|show|let|remember|recall|describe|find|help|confirm|check)\b")
_ASKS_CONTENT = frozenset("who whom whose what which where when why how".split())
_ALTERNATIVE = re.compile(r"\bor\b(?!\s+not\b)", re.IGNORECASE)


def offers_alternatives(question: str) -> bool:
    """Whether ``question`` offers alternatives to choose from ("Is the capital Sydney or Canberra?"; "Is it free or
    not?" still asks for yes or no)."""
    return bool(_ALTERNATIVE.search(question))


def asks_only_yes_no(question: str) -> bool:
    """Whether ``question`` asks for yes or no and for nothing else: :func:`asks_yes_no`, and not a request put as a
    question ("Can you tell me who wrote Hamlet?", "Do you know the capital of Australia?"), a choice between
    alternatives ("Is the capital Sydney or Canberra?") or a question naming what it asks for ("Does the policy say
    which providers get my data?"). Read where a reply's yes or no is taken for its whole content, so a question
    that only looks like yes/no is left out."""
    if not asks_yes_no(question):
        return False
    text = re.sub(r"[\u2019\u2018\u02bc`]", "'", question.lower())
    words = re.findall(r"[a-z']+", text)
    return not (_REQUEST.match(" ".join(words)) or _ASKS_CONTENT & set(words) or offers_alternatives(text))


# The words after which a leading "No" is the reply word, not a determiner: an article, a pronoun, an auxiliary, "not" or
# a word that goes with a reply ("No it isn't.", "No the fee is $5.", "No there is none.", "No way.", "No thanks.")
_AFTER_REPLY_NO = _AUX | frozenset("the a an it its i you he she we they this that these those there here not never "
                                   "way thanks thank sorry unfortunately actually sadly but because as".split())
_LEADING_NO = re.compile(r"\s*no[ \t]+([a-z']+)", re.IGNORECASE)


def opening_no_is_determiner(answer: str) -> bool:
    """Whether ``answer``'s leading "No" is the determiner of the noun after it, its sentence's subject ("No refunds are
    given after 30 days.", "No fee applies.", "No one may sign."), not the reply word "No" ("No.", "No, ...", "No -
    ...", "No it isn't.", "No the fee is $5.": a stop, a comma or a dash after it, or a word of `_AFTER_REPLY_NO`). Such
    a sentence is negated by its determiner; its side is read from the sentence, as any statement's, not taken as a
    reply's opening "No," ("No refunds are given after 30 days." to "Are refunds given within 30 days?" says no "No").
    English only: a reply in another language whose first word is "no" (Spanish's, Italian's "No hay ...") says no."""
    m = _LEADING_NO.match(re.sub(r"[\u2019\u2018\u02bc`]", "'", answer))
    if m is None or m.group(1).lower() in _AFTER_REPLY_NO:
        return False
    return written_in(words_of(answer[m.start(1):])) in ("english", None)  # its "no" is Spanish's, Italian's too


# Words that say yes or no (or true, false) in other languages than English, where they open a reply ("Ja, ...",
# "Oui.", "Да", "はい、..."): read on the reply's first word, folded as :func:`words_of` folds it ("Sí" is "si", "Não"
# "nao"), or, in Chinese and Japanese, written without spaces, on its first characters ("是的", "不是", "いいえ"). Over-reading
# is the safe side where they are read (an answer read as yes/no is held by the knowledge-conflict check), so a word that
# is also another word of its language stays ("si" is "if" in French); words that open English replies as often are
# left out ("da" of "Da Vinci", "jo", "ya", "ne", "salah", "faux"), and one in capitals is an acronym ("SIM card").
_YES_NO_OPENERS = {  # (yes, no)
    "german": ("ja doch jawohl richtig stimmt", "nein falsch"),
    "dutch": ("ja jazeker klopt juist", "nee neen onjuist"),
    "french": ("oui si ouais vrai", "non"),
    "spanish, catalan": ("sí cierto verdadero correcto cert", "no falso fals"),
    "italian": ("sì vero esatto certo", "no falso"),
    "portuguese": ("sim verdadeiro certo correto", "não falso"),
    "polish": ("tak prawda", "nie fałsz"),
    "czech, slovak": ("ano áno", ""),
    "russian, ukrainian, bulgarian": ("да верно правда так вірно", "нет неверно ні не"),
    "turkish": ("evet doğru", "hayır yok yanlış"),
    "swedish, danish, norwegian": ("ja sant sandt", "nej nei falskt falsk"),
    "finnish, hungarian": ("kyllä totta igen igaz", "ei nem hamis"),
    "greek": ("ναι σωστό", "όχι λάθος"),
    "indonesian, malay, vietnamese": ("iya benar có đúng vâng", "tidak bukan không"),
    "arabic, persian, hebrew": ("نعم بلى صحيح بله آره כן נכון", "لا كلا نه خیر לא"),
    "hindi": ("हाँ हां जी", "नहीं"),
    "korean": ("네 예 응", "아니요 아니오 아니 아뇨"),
    "japanese": ("はい ええ うん", "いいえ いえ いや"),  # first characters
    "chinese": ("是 对 對", "不 没有 沒有 否"),  # first characters ("是的", "不是", "对的")
}


@lru_cache(maxsize=1)
def _yes_no_openers() -> tuple[dict[str, str], tuple[str, ...]]:
    """:data:`_YES_NO_OPENERS` folded: (each word -> "yes" or "no", the unspaced scripts' openings, longest first)."""
    side = {fold_accents(w).casefold(): said for yes, no in _YES_NO_OPENERS.values()
            for said, words in (("yes", yes), ("no", no)) for w in words.split()}
    return side, tuple(sorted((w for w in side if UNSPACED_LETTER.match(w)), key=len, reverse=True))


def yes_or_no_opening(answer: str) -> str | None:
    """"yes" or "no" where ``answer`` opens with a word that says it in another language than English
    (:data:`_YES_NO_OPENERS`: "Ja, die Gebühr ist erstattungsfähig.", "¡Sí!", "Нет.", "はい、返金されます。", "不是。"),
    else None; not "Non-executive directors did." (a word joined to the next by a hyphen) or "SIM card and ID." (an
    acronym). English's own ("yes", "no", "true", "false") are read by the relevance signal ``yes_no``
    (:mod:`hguard.signals.relevance`) and the judge (:func:`hguard.calibrate.judge.judge_yesno`)."""
    text = fold_accents(without_ignorables(answer))
    first = _ANY_WORD.search(text)
    if first is None or text[first.end():first.end() + 1] == "-":
        return None
    word, (side, unspaced) = first.group(0), _yes_no_openers()
    if UNSPACED_LETTER.match(word):
        opening = next((w for w in unspaced if word.startswith(w)), None)
        return None if opening is None else side[opening]
    if len(word) > 1 and word.isupper() and _LATIN_LETTER.search(word):
        return None
    return side.get(word.casefold())


def opens_with_yes_or_no(answer: str) -> bool:
    """Whether ``answer`` opens with a word that says yes or no in another language than English
    (:func:`yes_or_no_opening`)."""
    return yes_or_no_opening(answer) is not None


# The words a question asking for content (not yes or no) opens with, by the language :func:`language_of` reads it as
# (a Latin-script question) or its script (:func:`script_of`), folded as :func:`words_of` folds them: read among its
# first two words ("In welchem Jahr ...", "À quelle heure ...", "¿Por qué ...?"), since inside a yes/no question they
# are other words ("Est-ce que ...", "Ist es wahr, was ..."). Left out where they also open yes/no questions: Dutch
# "was" (German's "what") and Swedish "var" ("where", and "was": "Var det ...?"), Arabic "من" ("who", and "from").
_CONTENT_QUESTION_WORDS = {
    "german": "wer wen wem wessen was wo woher wohin wann warum weshalb wieso wie welche welcher welches welchen welchem "
              "wozu womit wofür worauf worüber wodurch",
    "dutch": "wie wat waar waarom wanneer hoe welke welk hoeveel waarmee waarvoor waarop",
    "french": "qui que qu quoi où quand pourquoi comment quel quelle quels quelles combien lequel laquelle lesquels "
              "lesquelles",
    "spanish": "quién quiénes qué dónde adónde cuándo cómo cuál cuáles cuánto cuánta cuántos cuántas",
    "italian": "chi che cosa dove quando perché come quale quali quanto quanta quanti quante",
    "portuguese": "quem que onde quando porque porquê como qual quais quanto quanta quantos quantas",
    "polish": "kto kogo komu kim co czego czym gdzie kiedy dlaczego czemu jak jaki jaka jakie jakich który która które "
              "których ile skąd dokąd",
    "swedish": "vem vad vart varför när hur vilken vilket vilka",
    "danish": "hvem hvad hvor hvorfor hvornår hvordan hvilken hvilket hvilke",
    "norwegian": "hvem hva hvor hvorfor når hvordan hvilken hvilket hvilke",
    "Cyrillic": "кто кого кому кем что чего чем где куда откуда когда почему зачем как какой какая какое какие каков "
                "какова каково каковы который которая которое которые сколько чей чья чьё чьи "  # Russian's, then
                "хто що чого де куди звідки коли чому навіщо як який яка яке які котрий скільки чий чия чиє чиї",  # Ukrainian's
    "Arabic": "ما ماذا متى أين لماذا كيف أي كم لمن",
    # Turkish and Korean put them anywhere in the question (its verb last): read anywhere, Korean's as the opening of a
    # word ("얼마입니까")
    "turkish": "ne neyi neden nerede nereye nereden nasıl hangi hangisi kim kimi kime kimin kaç kaçta niçin niye",
    "Hangul": "무엇 뭐 뭘 누구 누가 어디 언제 왜 어떻게 어떤 어느 몇 얼마",
}
_ANYWHERE = ("turkish", "Hangul")
# Chinese and Japanese ones, anywhere in the question, as characters: not where they say "something", "always",
# "please" or "anything" (何か, いつも, どうぞ, 哪怕)
_CONTENT_QUESTION_CHARACTERS = {
    "japanese": regex.compile(r"何(?![かもとら])|なに|誰(?![かも])|だれ|どこ(?![かも])|いつ(?![かも]|でも)|なぜ|どうして"
                              r"|どう(?![ぞも])|どの|どれ(?![かも])|どちら(?![かも])|どんな|いくら|いくつ"),
    "Han": regex.compile(r"什么|甚么|什麼|谁|誰|哪(?!怕)|怎|为什么|為什麼|为何|為何|多少|几(?!乎)|幾(?!乎)|何时|何時|何处|何處|如何|啥"),
}
# a Turkish question's particle "mi" (as harmony writes it, with its endings: "misiniz", "mıdır") and a Chinese one's
# final "吗", which make it ask yes or no whatever question word it holds ("Ne zaman açık mı?")
_TURKISH_PARTICLE = regex.compile(r"m[iıuü](?:[sydn]\w*)?")
_CHINESE_PARTICLE = regex.compile(r"[吗嗎][\s\p{P}]*$")
# the words that make a question ask yes or no: Polish "czy" and Ukrainian "чи" opening it, Russian "ли" among its
# first words, French "est-ce que" opening it (not "qu'est-ce que", "what"), Chinese final "吗"
_YES_NO_MARKER = regex.compile(r"(?i)^\W*(?:czy|чи)\b|^\W*(?:\w+\W+){1,2}?ли\b|^\W*est-ce\s+qu|" + _CHINESE_PARTICLE.pattern)


@lru_cache(maxsize=1)
def _content_question_words() -> dict[str, frozenset[str]]:
    """:data:`_CONTENT_QUESTION_WORDS` folded as :func:`words_of` reads a question."""
    return {key: frozenset(words_of(words)) for key, words in _CONTENT_QUESTION_WORDS.items()}


def asked_in(words: Sequence[str]) -> str:
    """Which list of question words (:data:`_CONTENT_QUESTION_WORDS`) reads a question of ``words`` (of
    :func:`words_of`): the language :func:`language_of` reads Latin letters as ("german", "english"), else their script
    ("Cyrillic", "Han", "Hangul"; kana: "japanese"), since Russian and Ukrainian, Chinese and Japanese kanji share theirs."""
    script = script_of(words)
    return language_of(words) if script is None else "japanese" if script in ("Hiragana", "Katakana") else script


#: English's commonest function words (its list in `function_words` holds "la", "de" and "mil" too), counted for
#: English alone where another language writes one alike ("is" and "in" are Dutch, "was" German)
ENGLISH_CORE = frozenset("the a an is was in on at to for as of and that this with from by has have had it its which "
                         "not or you your we our they their he she can will would may must should shall do does did "
                         "are were be been there what who when where why how any each than then if so also up out "
                         "about into over after before under".split())


#: English words that other languages' lists hold too ("take" is Czech, "per" Italian, "most" Swedish, "total"
#: Spanish), and what an English apostrophe leaves ("Tom's": "s"): no sign of another language in an English text
ENGLISH_ALSO = frozenset("all come con due end face far her ill long man men mine most nay non one per plus point pro "
                         "sent sub take ten them till til total versus via vice want www dont s t d ll ve re".split())


def written_in(words: Sequence[str], margin: int = 1) -> str | None:
    """"english" where more of English's commonest function words (`ENGLISH_CORE`) are among ``words`` than of any
    other language's (those not among English's commonest), that language where more of its are (the first by name of
    those tied: :func:`languages_ahead` gives them all), else None. Each counted once, so a word the languages share,
    said often ("per day ... per month"), does not outweigh a sentence's worth of English. ``margin``: by how many
    words the one must outnumber the others."""
    english, best, tied = _function_word_counts(words)
    return tied[0] if best >= english + margin else "english" if english >= best + margin else None


def languages_ahead(words: Sequence[str]) -> list[str]:
    """The languages other than English tied for the most function words among ``words`` (each counted once, those
    among English's commonest not counted), where they are more than English's commonest (`ENGLISH_CORE`); []
    otherwise. "Kartın ücreti ne kadar?": Czech, Finnish, French, ... and Turkish ("ne")."""
    english, best, tied = _function_word_counts(words)
    return tied if best > english else []


def _function_word_counts(words: Sequence[str]) -> tuple[int, int, list[str]]:
    """(English's commonest function words among ``words``, the most of any other language's, those languages). A
    number is no word of a language (Polish's list holds "4", Persian's its digits)."""
    seen = {w for w in words if not any(c.isdigit() for c in w)}
    hits = {lang: len((seen & fw) - ENGLISH_CORE - ENGLISH_ALSO) for lang, fw in function_words().items()
            if lang != "english"}
    best = max(hits.values(), default=0)
    return len(seen & ENGLISH_CORE), best, sorted(lang for lang, n in hits.items() if n == best)


def yes_no_question(question: str) -> bool | None:
    """Whether ``question`` asks for yes or no, in English or another language, or None where that is not read. A
    question that reads as English (:func:`reads_english`; or whose Latin letters read as no other language), or opens
    with an English auxiliary or question word, is read by :func:`asks_yes_no`, as ever. In another language only a
    question asking for content is read (False): it opens with one of its language's question words ("Wie hoch ist die
    Gebühr?", "¿Cuánto cuesta?", "Сколько стоит?"; anywhere in Turkish, Korean, Chinese and Japanese: "卡的费用是多少？"). Any other (a yes/no question: "Ist die Gebühr
    erstattungsfähig?", "Les frais sont-ils remboursables ?", "费用可以退还吗？"; a request; a language with no list of
    its question words here) is None: the English auxiliary rule does not read it, and "not yes/no" would let the
    knowledge-conflict check clear a yes/no answer it cannot assess."""
    if asks_yes_no(question):  # first: the function words misread short English questions ("is saigon now called ho
        return True            # chi minh city" as Vietnamese), and German "Was ...?" was read so before
    words = words_of(question)
    key = asked_in(words)
    # English (or Latin letters no list reads as another language's: "Łódź office hours?"), or English's question word
    # opening a question misread as another language's
    # (not where another language's function words outnumber English's commonest, or it opens as Spanish does: "La
    # tarifa es reembolsable?", "¿Es reembolsable la tarifa?" and "Er gebyret refunderbart?" read as English, so as no
    # yes/no question, and a knowledge conflict in their answers was cleared)
    english_words, foreign_words, _ = _function_word_counts(words)
    # another language's function words as many as English's ("A taxa é reembolsável?": "a" and "e") is no English
    foreign = (foreign_words and foreign_words >= english_words) or "\u00bf" in question
    if (not foreign and (reads_english(question) or key == "english")) or _ASKS_CONTENT & set(words):
        return False
    if _YES_NO_MARKER.search(_asked_part(question)) or (any(_TURKISH_PARTICLE.fullmatch(w) for w in words) and (
            "turkish" in (key, *languages_ahead(words)))):
        return True  # a word that makes a question ask yes or no, whatever it holds besides
    if key == "english" and foreign:  # read as English by the lists, as another language here (any tied)
        readings = {_content_asked(lang, question, words) for lang in languages_ahead(words)}
        return False if False in readings else None
    return _content_asked(key, question, words)


def _content_asked(key: str, question: str, words: Sequence[str]) -> bool | None:
    """False where ``question`` (its ``words``) asks for content by the question words of ``key`` (a language or a
    script, :func:`asked_in`), None otherwise (see :func:`yes_no_question`)."""
    if key in _CONTENT_QUESTION_CHARACTERS:
        return False if _CONTENT_QUESTION_CHARACTERS[key].search(fold_accents(question)) else None
    table = _content_question_words().get(key)
    if table is None:
        return None
    if key in _ANYWHERE:
        return False if any(w.startswith(tuple(table)) if key == "Hangul" else w in table for w in words) else None
    return False if table & set(words_of(_asked_part(question))[:2]) else None


# "como" and "come" are "as" too: "Como cliente, ¿puedo cancelar?" and "Come cliente, posso annullare?" ask yes or no
_AS_LEAD_IN = regex.compile(r"^\W*(?:como|come)\b[^,?\n]{0,40},", regex.IGNORECASE)


def _asked_part(question: str) -> str:
    """The part of ``question`` that asks: after the last "¿" where Spanish marks one ("Como cliente, ¿puedo ...?"),
    after a lead-in "como ..., " / "come ..., " ("as a customer, ..."), else all of it."""
    if "\u00bf" in question:
        return question[question.rindex("\u00bf") + 1:]
    return _AS_LEAD_IN.sub("", question, count=1)


_WORD = re.compile(r"\w+")
# the scripts written without spaces between words (Chinese, Japanese): a run of their letters is read as its
# overlapping character bigrams ("年假天数": 年假, 假天, 天数), a single character as itself
UNSPACED = r"\p{Han}\p{Hiragana}\p{Katakana}\u30fc\u3005"
# a mark that is part of a letter's spelling: of a script whose marks folding keeps (see _ACCENTED)
_SPELLING_MARK = r"[\p{M}--[\p{Latin}\p{Greek}\p{Cyrillic}\p{Common}\p{Inherited}]]"
# a word: a run of the unspaced scripts' letters, or letters and digits of any other script with the marks inside
# them (a Devanagari vowel sign: "\\w+" cut "कर्मचारी" at each)
_ANY_WORD = regex.compile(rf"[{UNSPACED}]+|[\p{{L}}\p{{N}}_--[{UNSPACED}]](?:[\p{{L}}\p{{N}}_--[{UNSPACED}]]|{_SPELLING_MARK})*",
                          regex.V1)
_ARABIC_ARTICLE = regex.compile(r"^\u0627\u0644(?=\p{Arabic}{2})")  # "ال" before a word of two letters or more
UNSPACED_LETTER = regex.compile(f"[{UNSPACED}]")  # a letter of those scripts (at the start of a word)
_KANA_ONLY = regex.compile(r"[\p{Hiragana}\u30fc]+")  # hiragana and the long-vowel mark
# Japanese grammar written in hiragana: the particles, and the function words, auxiliaries and inflections besides the
# stop-words list's own (`function_words`, which has few: "です", "ます", "あります", "から")
_PARTICLES = "は が を に で と も の か へ や よ ね な".split()
_JAPANESE_GRAMMAR = """
です でした でしょう でしょうか だ だった ます ました ましょう ません ませんでした まして
できます できました できません できる できない できれば ください
あります ありました ありません ある あった あれば ない なかった なく なくて なければ
います いました いません いる いた いて おります おりました ございます
します しました しません する した して しない しなければ され される されます されて されている させる
なります なりました なりません なる なった なって なれば
れます られます れる られる られて れて
はい いいえ いえ ええ いい よい よく
けれども けれど けど しかし そして また および または それで ですが でも ただし
という といった といって について によって による において における として とする とともに
ため ので のに から まで までに より だけ など ほど くらい ぐらい ばかり
こと もの ところ よう そう
これ それ あれ どれ この その あの どの ここ そこ あそこ どこ こちら そちら あちら どちら
なに なん だれ いつ どう どうぞ
""".split()


@lru_cache(maxsize=1)
def _grammar_bigrams() -> frozenset[str]:
    """The bigrams of hiragana that Japanese grammar writes (:func:`japanese_grammar`): those of each function word
    (the stop-words list's, `function_words`, and `_JAPANESE_GRAMMAR`), and those a particle makes beside one or
    another particle ("すが" of "ですが", "には"), or after the long-vowel mark ending a katakana word."""
    words = [w for w in (*function_words()["japanese"], *_JAPANESE_GRAMMAR) if _KANA_ONLY.fullmatch(w)]
    grams = {g for w in words for g in script_words(w) if len(g) == 2}
    grams |= {a + b for a in _PARTICLES for b in _PARTICLES}
    grams |= {w[-1] + p for w in words for p in _PARTICLES} | {p + w[0] for w in words for p in _PARTICLES}
    grams |= {"\u30fc" + g[0] for g in grams}  # after a katakana word's long vowel ("カレーです": ーで)
    return frozenset(grams)


def japanese_grammar(word: str) -> bool:
    """Whether ``word`` (of :func:`words_of` or the grounding tokens) is Japanese grammar written in hiragana: a
    particle, or a bigram of a function word, an auxiliary or an inflection or one straddling it and a particle
    ("はい", "でき", "きま", "ませ", "すが"), which every Japanese passage holds, so never evidence that a passage says
    what an answer says, nor a content word a question and its passage share. A content word in hiragana is
    evidence as one with a kanji or katakana is ("おにぎり": おに, にぎ, ぎり; "休暇", "パス")."""
    if not _KANA_ONLY.fullmatch(word):
        return False
    return len(word) < 2 or word in _grammar_bigrams()


def script_words(word: str) -> list[str]:
    """How one word of :func:`words_of` (or of the grounding tokens) is read: a run of an unspaced script's letters
    as its character bigrams (:data:`UNSPACED`), an Arabic word without its article ("الإجازة" is "إجازة"), any
    other as it is."""
    if UNSPACED_LETTER.match(word):
        return [word] if len(word) < 2 else [word[i:i + 2] for i in range(len(word) - 1)]
    if word.startswith("\u0627\u0644"):
        return [_ARABIC_ARTICLE.sub("", word)]
    return [word]


@lru_cache(maxsize=1)
def function_words() -> dict[str, frozenset[str]]:
    """Each language's function words (the ``stop-words`` package), in the form :func:`words_of` reads."""
    from stop_words import AVAILABLE_LANGUAGES, get_stop_words

    return {lang: frozenset(w for word in get_stop_words(lang) for w in words_of(word)) for lang in AVAILABLE_LANGUAGES}


@lru_cache(maxsize=1)
def _languages_of_words() -> dict[str, tuple[str, ...]]:
    """Each function word (:func:`function_words`) with the languages whose lists hold it, for :func:`language_of` to
    look each of a text's words up once, not once per language (30-odd set intersections a passage made a list of
    500 passages read six times slower than the same text as one string)."""
    by_word: dict[str, list[str]] = {}
    for lang, fw in function_words().items():
        for w in fw:
            by_word.setdefault(w, []).append(lang)
    return {w: tuple(langs) for w, langs in by_word.items()}


def words_of(text: str) -> list[str]:
    """Words of any script, accent-folded and case-folded, with the marks inside them; a run of Chinese or Japanese
    characters as its character bigrams and an Arabic word without its article (:func:`script_words`)."""
    text = fold_accents(text).casefold()
    if text.isascii():  # English: its words, as read before other scripts were (and fast)
        return _WORD.findall(text)
    return [w for m in _ANY_WORD.finditer(text) for w in script_words(m.group(0))]


# which language a tie between other languages names (the stop-words lists share many words: "die" is German and
# Dutch, "der" German and Danish): the more widely written first
_PREFERRED = ("german", "french", "spanish", "portuguese", "italian", "dutch", "russian")
# the scripts one function-word list alone is written in (kana before Han: Japanese writes both), and the other
# scripts named where no list covers them
_SCRIPT_LANGUAGE = {"Hiragana": "japanese", "Katakana": "japanese", "Hangul": "korean", "Gujarati": "gujarati",
                    "Greek": "greek", "Hebrew": "hebrew"}
# Han (Chinese, Japanese kanji), Devanagari (Hindi, Marathi, Nepali), Cyrillic and Arabic (Arabic, Persian, Urdu) are
# written in several languages: named by a list's words alone, never by the script
_SCRIPTS = (*_SCRIPT_LANGUAGE, "Han", "Devanagari", "Cyrillic", "Arabic", "Bengali", "Gurmukhi", "Tamil", "Telugu", "Kannada", "Malayalam",
            "Sinhala", "Thai", "Lao", "Khmer", "Myanmar", "Tibetan", "Georgian", "Armenian", "Ethiopic")
_SCRIPT_RE = {name: regex.compile(rf"\p{{Script={name}}}") for name in _SCRIPTS}
_LATIN_LETTER = regex.compile(r"\p{Latin}")


def script_of(words: Sequence[str]) -> str | None:
    """The script ``words`` are written in when none of them holds a Latin letter ("Han", "Cyrillic", "Thai"; the
    first of :data:`_SCRIPTS` they hold), None when one does or they hold no letter of those."""
    if any(_LATIN_LETTER.search(w) for w in words):
        return None
    text = " ".join(words)
    return next((name for name, pattern in _SCRIPT_RE.items() if pattern.search(text)), None)


def language_of(words: Sequence[str], margin: int = 1) -> str:
    """The language whose function words ``words`` hold most of, by at least ``margin`` more than English's;
    English otherwise (a tie, none). Words holding none of any list's, and no Latin letter, are the language of
    their script where one language alone is written in it (kana: Japanese, Hangul: Korean, Greek); a script several
    languages write (Han, Devanagari, Cyrillic, Arabic) names none (English: read with no list's function words)."""
    by_word = _languages_of_words()
    hits: Counter[str] = Counter()
    for w, n in Counter(words).items():  # each distinct word looked up once (a long passage repeats its words)
        for lang in by_word.get(w, ()):
            hits[lang] += n
    best = max(hits.values(), default=0)
    if best == 0:
        return _SCRIPT_LANGUAGE.get(script_of(words) or "", "english")
    if best - hits.get("english", 0) < margin:
        return "english"
    tied = [lang for lang, n in hits.items() if n == best]
    return min(tied, key=lambda lang: (_PREFERRED.index(lang) if lang in _PREFERRED else len(_PREFERRED), lang))


def reads_english(question: str, margin: int = 1) -> bool:
    """Whether ``question`` is read as English: its function words are English's (or none's; see :func:`language_of`)
    and its words ASCII. A short question holding none of English's function words is another language's when it
    holds one of that language's in running text (lower case: "Gilt die Klausel?", "¿Puede la empresa ...?"), two, or
    letters with accents; a capitalised one alone leads a name ("Die Hard director?", "Los Angeles mayor?")."""
    words = words_of(question)
    if language_of(words, margin) != "english" or not all(w.isascii() for w in words):
        return False
    lists = function_words()
    if any(w in lists["english"] for w in words):
        return True
    foreign = {w for w in words if any(w in fw for lang, fw in lists.items() if lang != "english")}
    if not foreign:
        return True
    running = any(w.islower() and w in foreign for w in _WORD.findall(fold_accents(question)))
    accented = fold_accents(question) != unicodedata.normalize("NFKC", question) or bool(set("\u00bf\u00a1") & set(question))
    return not (running or len(foreign) >= 2 or accented)
