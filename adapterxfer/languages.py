"""The language table: English name, family, script and resource class of every XTREME/XTREME-R language.

* family: the top level that XTREME's language table uses (Hu et al. 2020, arXiv 2003.11080, Table 5:
  "Indo-European", "Afro-Asiatic", "Niger-Congo", ...; Basque is an isolate and its own family);
  XTREME-R's additions (Ruder et al. 2021, arXiv 2104.07412) at the same level, Haitian as "Creole".
* script: the ISO 15924 name and code of the script the task data is written in. XTREME's table lists
  Javanese, Tagalog and Yoruba under other scripts; their XTREME data is in Latin script, as here.
* resource: the class (0-5) of Joshi et al. 2020, "The State and Fate of Linguistic Diversity and
  Inclusion in the NLP World" (ACL), from its language list
  https://microsoft.github.io/linguisticdiversity/assets/lang2tax.txt, which names languages, not
  codes: ``zh`` is its "mandarin", ``pa`` its "eastern punjabi", ``ht`` its "haitian".

Adding a language is adding a row to ``_TABLE``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UserError

#: Joshi et al.'s names for the classes.
RESOURCE_CLASSES = {0: "The Left-Behinds", 1: "The Scraping-Bys", 2: "The Hopefuls", 3: "The Rising Stars",
                    4: "The Underdogs", 5: "The Winners"}
GROUPINGS = ("family", "script", "resource")


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    family: str
    script: str  # ISO 15924 name
    script_code: str  # ISO 15924 code
    resource: int  # Joshi et al. 2020 class, 0-5

    def group(self, by: str) -> str:
        """This language's group under ``by`` (family, script or resource)."""
        if by == "resource":
            return f"class {self.resource}"
        return getattr(self, by)


_SCRIPTS = {"Latn": "Latin", "Cyrl": "Cyrillic", "Arab": "Arabic", "Deva": "Devanagari", "Beng": "Bengali",
            "Grek": "Greek", "Hebr": "Hebrew", "Hans": "Han (Simplified)", "Jpan": "Japanese", "Hang": "Hangul",
            "Geor": "Georgian", "Mlym": "Malayalam", "Mymr": "Myanmar", "Taml": "Tamil", "Telu": "Telugu",
            "Thai": "Thai", "Gujr": "Gujarati", "Guru": "Gurmukhi"}

_IE, _AA, _AN, _NC, _DR, _ST, _TU, _UR = ("Indo-European", "Afro-Asiatic", "Austronesian", "Niger-Congo", "Dravidian",
                                          "Sino-Tibetan", "Turkic", "Uralic")
#: code, English name, family, ISO 15924 script code, Joshi et al. class
_TABLE = [
    ("af", "Afrikaans", _IE, "Latn", 3),
    ("ar", "Arabic", _AA, "Arab", 5),
    ("bg", "Bulgarian", _IE, "Cyrl", 3),
    ("bn", "Bengali", _IE, "Beng", 3),
    ("de", "German", _IE, "Latn", 5),
    ("el", "Greek", _IE, "Grek", 3),
    ("en", "English", _IE, "Latn", 5),
    ("es", "Spanish", _IE, "Latn", 5),
    ("et", "Estonian", _UR, "Latn", 3),
    ("eu", "Basque", "Basque", "Latn", 4),
    ("fa", "Persian", _IE, "Arab", 4),
    ("fi", "Finnish", _UR, "Latn", 4),
    ("fr", "French", _IE, "Latn", 5),
    ("he", "Hebrew", _AA, "Hebr", 3),
    ("hi", "Hindi", _IE, "Deva", 4),
    ("hu", "Hungarian", _UR, "Latn", 4),
    ("id", "Indonesian", _AN, "Latn", 3),
    ("it", "Italian", _IE, "Latn", 4),
    ("ja", "Japanese", "Japonic", "Jpan", 5),
    ("jv", "Javanese", _AN, "Latn", 1),
    ("ka", "Georgian", "Kartvelian", "Geor", 3),
    ("kk", "Kazakh", _TU, "Cyrl", 3),
    ("ko", "Korean", "Koreanic", "Hang", 4),
    ("ml", "Malayalam", _DR, "Mlym", 1),
    ("mr", "Marathi", _IE, "Deva", 2),
    ("ms", "Malay", _AN, "Latn", 3),
    ("my", "Burmese", _ST, "Mymr", 1),
    ("nl", "Dutch", _IE, "Latn", 4),
    ("pt", "Portuguese", _IE, "Latn", 4),
    ("ru", "Russian", _IE, "Cyrl", 4),
    ("sw", "Swahili", _NC, "Latn", 2),
    ("ta", "Tamil", _DR, "Taml", 3),
    ("te", "Telugu", _DR, "Telu", 1),
    ("th", "Thai", "Kra-Dai", "Thai", 3),
    ("tl", "Tagalog", _AN, "Latn", 3),
    ("tr", "Turkish", _TU, "Latn", 4),
    ("ur", "Urdu", _IE, "Arab", 3),
    ("vi", "Vietnamese", "Austroasiatic", "Latn", 4),
    ("yo", "Yoruba", _NC, "Latn", 2),
    ("zh", "Chinese (Mandarin)", _ST, "Hans", 5),
    # XTREME-R's additions
    ("az", "Azerbaijani", _TU, "Latn", 1),
    ("gu", "Gujarati", _IE, "Gujr", 1),
    ("ht", "Haitian Creole", "Creole", "Latn", 2),
    ("lt", "Lithuanian", _IE, "Latn", 3),
    ("pa", "Punjabi", _IE, "Guru", 2),
    ("pl", "Polish", _IE, "Latn", 4),
    ("qu", "Quechua", "Quechuan", "Latn", 1),
    ("ro", "Romanian", _IE, "Latn", 3),
    ("uk", "Ukrainian", _IE, "Cyrl", 3),
    ("wo", "Wolof", _NC, "Latn", 2),
]

LANGUAGES: dict[str, Language] = {code: Language(code, name, family, _SCRIPTS[script], script, resource)
                                  for code, name, family, script, resource in _TABLE}


#: What a language code outside the table looks like: ISO 639-1 or 639-3, lowercase (ha, quy).
CODE_SHAPE = "2 or 3 lowercase letters, ISO 639"


def is_language_code(code: str) -> bool:
    return re.fullmatch(r"[a-z]{2,3}", code) is not None


def check_grouping(by: str) -> str:
    if by not in GROUPINGS:
        raise UserError(f"--group-by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    return by


def group_languages(codes, by: str) -> tuple[dict[str, list[str]], list[str]]:
    """``({group: [codes]}, unlisted)``: ``codes`` grouped by ``by`` in first-seen order, and the codes the
    table does not know (never dropped silently: the caller reports them)."""
    check_grouping(by)
    groups: dict[str, list[str]] = {}
    unlisted = []
    for code in codes:
        if code in LANGUAGES:
            groups.setdefault(LANGUAGES[code].group(by), []).append(code)
        else:
            unlisted.append(code)
    if by == "resource":
        groups = dict(sorted(groups.items(), reverse=True))  # class 5 first
    return groups, unlisted


def markdown_table() -> str:
    """The language table in markdown."""
    lines = ["| code | language | family | script | resource class (Joshi et al. 2020) |",
             "|---|---|---|---|---|"]
    lines += [f"| {l.code} | {l.name} | {l.family} | {l.script} ({l.script_code}) | {l.resource} "
              f"({RESOURCE_CLASSES[l.resource]}) |" for l in sorted(LANGUAGES.values(), key=lambda l: l.code)]
    return "\n".join(lines)
