"""One matcher for region names from every source: mask file names, label-table entries, SEG
segment labels and a reader's label names (pure).

A region's class (coronary, vascular, bone, other) follows from its name (docs, conventions:
'Scopes'). A name a human means as a coronary artery but spelt otherwise ('LCx', 'LAD ',
'lad') was class other, silently: the coronary score halved and the risk category changed
(#35 item 11). The rule, in order:

1. a name that a configured pattern matches as it is (case-sensitive, as
   :func:`vascalc.core.regions.matches`) is kept as it is: the config is the way to accept any
   spelling;
2. a name equal to a known name when case and surrounding whitespace are ignored takes the
   known spelling ('lad', 'LAD ', 'Lad' -> 'LAD'); one a pattern matches ignoring case takes
   the pattern's spelling of its fixed part ('Coronary_LM' -> 'coronary_LM');
3. a name close to a known name but not it is refused with the suggestion: a coronary name
   followed by more characters ('LADD', 'RCA1', 'LMCA', 'LAD_prox': the calcium of a segment
   would leave the coronary score), or a known name of five or more characters at one edit
   (two from eight characters) in Damerau-Levenshtein distance (optimal string alignment,
   Damerau, Commun ACM 1964;7:171-176) ('aotra', 'sternun'). Short names get no edit-distance
   rule: 'RA', 'LAA' and 'LV' are heart structures one edit from 'RCA', 'LAD' and 'LM';
4. anything else is kept as it is (class from the patterns: usually other).
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from ..errors import RegionError

_WILDCARDS = "*?["


def literal_names(patterns: Iterable[str]) -> list[str]:
    """The patterns that are plain names (no ``*``, ``?`` or ``[``), in order, once each."""
    out: list[str] = []
    for p in patterns:
        if not any(w in p for w in _WILDCARDS) and p not in out:
            out.append(p)
    return out


def edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance, optimal string alignment variant: insertions, deletions,
    substitutions and transpositions of adjacent characters cost 1.

    >>> edit_distance("LAD", "LDA"), edit_distance("aorta", "aotra"), edit_distance("ab", "ab")
    (1, 1, 0)
    """
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def near_miss(name: str, known: Iterable[str], coronary: Iterable[str]) -> str | None:
    """The known name ``name`` is close to but not (rule 3 above), or None."""
    c = name.strip().casefold()
    for k in coronary:
        kc = k.casefold()
        if len(c) > len(kc) and c.startswith(kc):
            return k
    best: tuple[int, str] | None = None
    for k in known:
        if len(k) < 5:
            continue
        d = edit_distance(c, k.casefold())
        if 0 < d <= (2 if len(k) >= 8 else 1) and (best is None or d < best[0]):
            best = (d, k)
    return None if best is None else best[1]


def canonical_region_name(name: str, *, patterns: Iterable[str], known: Iterable[str],
                          coronary: Iterable[str], source: str = "region") -> str:
    """``name`` as vascalc uses it (rules 1, 2 and 4 above), or RegionError naming it and the
    known name it is close to (rule 3).

    Parameters
    ----------
    name
        The name as given (a mask file's stem, a label-table entry, a SEG segment label, a
        reader's label name).
    patterns
        Every class pattern of the config (coronary, vascular, bone).
    known
        The known names: the plain names among the patterns, the coronary vessels, the
        reader's labels.
    coronary
        The known coronary names (the prefix rule).
    source
        What the name is, for the message ('region', 'review label').

    Examples
    --------
    >>> kw = dict(patterns=["LAD", "LCX", "aorta", "coronary_*"], known=["LAD", "LCX", "aorta"],
    ...           coronary=["LAD", "LCX"])
    >>> canonical_region_name("LCx", **kw), canonical_region_name(" lad ", **kw)
    ('LCX', 'LAD')
    >>> canonical_region_name("Coronary_LM", **kw), canonical_region_name("liver", **kw)
    ('coronary_LM', 'liver')
    >>> canonical_region_name("LADD", **kw)
    Traceback (most recent call last):
    ...
    vascalc.errors.RegionError: region 'LADD' is close to the known name 'LAD' but not it: ...
    """
    patterns, known, coronary = list(patterns), list(known), list(coronary)
    if any(fnmatchcase(name, p) for p in patterns):
        return name
    s = name.strip()
    folded = s.casefold()
    same = [k for k in known if k.casefold() == folded]
    if same:  # the spelling a pattern matches, when the config spells it otherwise ('lad')
        return next((k for k in same if any(fnmatchcase(k, p) for p in patterns)), same[0])
    for p in patterns:
        if fnmatchcase(folded, p.casefold()):
            fixed = min((p.index(w) for w in _WILDCARDS if w in p), default=len(p))
            candidate = p[:fixed] + s[fixed:]
            if fnmatchcase(candidate, p):
                return candidate
    if s != name and any(fnmatchcase(s, p) for p in patterns):
        return s
    close = near_miss(s, known, coronary)
    if close is not None:
        raise RegionError(
            f"{source} {name!r} is close to the known name {close!r} but not it: its calcium "
            f"would be counted as class other",
            hint=f"rename it {close!r} if it is that structure, or add the name (or a pattern "
                 "matching it) to regions.coronary/vascular/bone in the config")
    return name
