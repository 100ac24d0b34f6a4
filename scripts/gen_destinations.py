#!/usr/bin/env python3
"""Generate src/geo/destinations_table.rs: E.164 number -> calling code and region.

Source: the phone number metadata of Google's libphonenumber (Apache-2.0), as
shipped by the `phonenumbers` package on PyPI, pinned to:

    phonenumbers==9.0.43

The tables answer the question `phonenumbers.region_code_for_number` answers,
without the library:

* every assigned country calling code (1 to 3 digits; they are prefix-free, so
  a number's code is its only prefix found in the table), with its main region
  (`region_code_for_country_code`); the nine non-geographic codes (800, 808,
  870, 878, 881, 882, 883, 888, 979, region "001") have no region;
* for a code that one region alone uses, that region, for any number (the
  library does not validate the number in that case either);
* for a shared code, libphonenumber tries the code's regions in order: a region
  with `leading_digits` claims every national number that starts with a match
  of them; a region without claims the numbers that are valid for it (match
  its general description and one number type, lengths included). The first
  claim wins; with none the answer is None. This script compiles each region's
  patterns into automata over the ten digits and walks the national number's
  digits until the set of regions that numbers below a prefix can resolve to
  has one element (that region) or none (None). The leaves become prefix
  rules: the longest rule that is a prefix of the number wins, else the code's
  main region. For +1 the walk counts 10-digit national numbers only and goes
  down to the area code (NPA) at least: +1 gets a table of NPAs (an NPA not
  in it resolves to None) and two rules below NPA 800.

What libphonenumber says, and the tables mirror:
* +1 800/833/844/855/866/877/888 (toll free) and 900 (premium rate) -> US:
  they are valid numbers of US, the first region of +1. 600 and 622 -> CA.
* +1 with an NPA that no NANP member uses (e.g. +1 999 555 0100, and 211 or
  710) -> None: no region's patterns accept it.
* +1 800 1xx xxxx -> DO (DO's leading digits are "8001|8[024]9"), +1 800 0xx
  xxxx -> None: two rules below the NPA.
* +7: KZ claims national numbers starting with 7, RU those starting with
  3, 4, 8 or 9; others are None.
* +212: MA claims every number starting with 5 to 8, so EH, tried after it,
  never wins: no number resolves to EH (whitelisting EH matches nothing).
* +44: GB is tried first and claims what its own patterns accept, so some
  numbers of the Crown Dependencies resolve to GB (IM's example mobile number
  +44 7924 123456 does).
* Below a prefix where every number libphonenumber resolves has one region,
  the tables give that region to the invalid numbers too; a prefix gets None
  only where no number below it has a region.

Verification (run by this script every time, seeded, so it is repeatable),
phonenumbers 9.0.43:
* example numbers (example_number_for_type, every region and type, and the
  non-geographic entities' examples; 1008 distinct): 1007 agree (99.90%).
* 400000 random numbers (3 in 4 after a shared calling code; half of them
  example numbers with a random tail): 263042 resolve to a region in
  libphonenumber, and the tables agree on 262935 (99.96%); on the 126425
  valid ones: 126318 (99.92%); on all: 333211 (83.30%). The rest are numbers
  libphonenumber resolves to None (invalid for every region of a shared
  code: wrong length, or an unused block below a prefix whose valid numbers
  all belong to one region) where the tables answer that region; a prefix
  table cannot tell a valid number from an invalid one below the same
  prefix, and validity is not the question these tables answer.
* The only disagreement on numbers libphonenumber resolves (the example one
  and the 107 random ones): +1 310 xxxx with a 7-digit national number, which
  libphonenumber gives to CA (CA's UAN pattern 310\\d{4}: a Canadian service
  number dialled without area code). The +1 tables answer for 10-digit
  national numbers, where 310 is Los Angeles (US); E.164 numbers a message
  can go to are 10-digit. The script fails on any other disagreement.

Run:  python3 -m venv /tmp/pnvenv && /tmp/pnvenv/bin/pip install phonenumbers==9.0.43
      /tmp/pnvenv/bin/python scripts/gen_destinations.py  # writes src/geo/destinations_table.rs
"""
import os
import random
import sys

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberType
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE, SUPPORTED_REGIONS

PINNED = "9.0.43"

# The 249 officially assigned ISO 3166-1 alpha-2 codes (as in Debian's iso-codes 4.15).
ISO_3166_1 = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM
BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX
CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG
GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR
IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV
LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE
NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO
RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF
TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF
WS YE YT ZA ZM ZW
""".split()

NANP_LENGTH = 10  # the +1 tables answer for 10-digit national numbers
NON_GEO = "001"  # libphonenumber's region for non-geographic calling codes
NONE = None  # a prefix whose numbers resolve to no region
MAX_NSN = 17  # libphonenumber's longest national significant number
DIGITS = "0123456789"

# The number types _number_type_helper tries after the general description.
TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number",
         "pager", "uan", "voicemail", "fixed_line", "mobile")


# --- Regular expressions (the subset libphonenumber's patterns use) -> NFA ---

class Nfa:
    """Thompson automaton of one pattern over the ten digits."""

    def __init__(self, pattern):
        self.eps = []
        self.moves = []
        self.start = self._new()
        self.accept = self._build(_Parser(pattern).parse(), self.start)
        self._closures = {}
        self._steps = {}
        self.initial = self._closure({self.start})

    def _new(self):
        self.eps.append([])
        self.moves.append([])
        return len(self.eps) - 1

    def _build(self, node, s):
        kind = node[0]
        if kind == "set":
            t = self._new()
            self.moves[s].append((node[1], t))
            return t
        if kind == "cat":
            for child in node[1]:
                s = self._build(child, s)
            return s
        if kind == "alt":
            end = self._new()
            for child in node[1]:
                b = self._new()
                self.eps[s].append(b)
                self.eps[self._build(child, b)].append(end)
            return end
        if kind == "rep":
            _, child, lo, hi = node
            for _ in range(lo):
                s = self._build(child, s)
            end = self._new()
            for _ in range(hi - lo):
                self.eps[s].append(end)
                s = self._build(child, s)
            self.eps[s].append(end)
            return end
        raise ValueError(kind)

    def _closure(self, states):
        key = frozenset(states)
        if key not in self._closures:
            seen, todo = set(key), list(key)
            while todo:
                for t in self.eps[todo.pop()]:
                    if t not in seen:
                        seen.add(t)
                        todo.append(t)
            self._closures[key] = frozenset(seen)
        return self._closures[key]

    def step(self, states, digit):
        """The (closed) set of states after one digit."""
        key = (states, digit)
        if key not in self._steps:
            nxt = {t for s in states for chars, t in self.moves[s] if digit in chars}
            self._steps[key] = self._closure(nxt) if nxt else frozenset()
        return self._steps[key]

    def accepts(self, states):
        return self.accept in states


class _Parser:
    """alt := cat ('|' cat)*; cat := (atom quant?)*; atom := digit | \\d | [..] | (..)"""

    def __init__(self, pattern):
        self.p = pattern
        self.i = 0

    def parse(self):
        node = self._alt()
        if self.i != len(self.p):
            raise ValueError(f"unparsed pattern tail: {self.p[self.i:]!r}")
        return node

    def _peek(self):
        return self.p[self.i] if self.i < len(self.p) else ""

    def _alt(self):
        branches = [self._cat()]
        while self._peek() == "|":
            self.i += 1
            branches.append(self._cat())
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def _cat(self):
        items = []
        while self._peek() not in ("", "|", ")"):
            atom = self._atom()
            c = self._peek()
            if c == "?":
                self.i += 1
                atom = ("rep", atom, 0, 1)
            elif c == "{":
                end = self.p.index("}", self.i)
                lo, _, hi = self.p[self.i + 1:end].partition(",")
                atom = ("rep", atom, int(lo), int(hi) if hi else int(lo))
                self.i = end + 1
            elif c in ("*", "+"):
                raise ValueError(f"unbounded repetition in {self.p!r}")
            items.append(atom)
        return ("cat", items)

    def _atom(self):
        c = self._peek()
        self.i += 1
        if c.isdigit():
            return ("set", frozenset(c))
        if c == "\\":
            esc = self._peek()
            self.i += 1
            if esc != "d":
                raise ValueError(f"escape \\{esc} in {self.p!r}")
            return ("set", frozenset(DIGITS))
        if c == "[":
            chars = set()
            while self._peek() != "]":
                a = self._peek()
                if a == "\\" and self.p[self.i + 1] == "d":
                    chars |= set(DIGITS)
                    self.i += 2
                    continue
                if not a.isdigit():
                    raise ValueError(f"class member {a!r} in {self.p!r}")
                if self.p[self.i + 1] == "-":
                    b = self.p[self.i + 2]
                    chars |= {str(d) for d in range(int(a), int(b) + 1)}
                    self.i += 3
                else:
                    chars.add(a)
                    self.i += 1
            self.i += 1
            return ("set", frozenset(chars))
        if c == "(":
            if self.p.startswith("?:", self.i):
                self.i += 2
            node = self._alt()
            if self._peek() != ")":
                raise ValueError(f"unbalanced ( in {self.p!r}")
            self.i += 1
            return node
        raise ValueError(f"unexpected {c!r} in {self.p!r}")


# --- A region's claim on a national number, as libphonenumber decides it ---

DEAD, SINK = "dead", "sink"


class LeadingDigits:
    """Claims every number that starts with a match of `leading_digits`."""

    def __init__(self, pattern):
        self.nfa = Nfa(pattern)
        self.initial = self._norm(self.nfa.initial)

    def _norm(self, states):
        if not states:
            return DEAD
        return SINK if self.nfa.accepts(states) else states

    def step(self, state, digit):
        if state in (DEAD, SINK):
            return state
        return self._norm(self.nfa.step(state, digit))

    def claims(self, state):
        return state == SINK


class Desc:
    """One PhoneNumberDesc: a full match of the pattern, at a possible length."""

    def __init__(self, desc):
        self.nfa = Nfa(desc.national_number_pattern)
        self.lengths = set(desc.possible_length) if desc.possible_length else None

    def matches(self, states, length):
        return self.nfa.accepts(states) and (self.lengths is None or length in self.lengths)


def _usable(desc):
    """libphonenumber's _is_number_matching_desc can be true for this desc."""
    if desc is None or not desc.national_number_pattern:
        return False
    return not desc.possible_length or any(n > 0 for n in desc.possible_length)


class Valid:
    """Claims the numbers for which _number_type_helper is not UNKNOWN."""

    def __init__(self, metadata):
        self.general = Desc(metadata.general_desc)
        self.types = [Desc(getattr(metadata, t)) for t in TYPES if _usable(getattr(metadata, t))]
        self.initial = (0, self.general.nfa.initial, tuple(d.nfa.initial for d in self.types))

    def step(self, state, digit):
        if state == DEAD:
            return state
        length, g, ts = state
        g = self.general.nfa.step(g, digit)
        ts = tuple(d.nfa.step(s, digit) for d, s in zip(self.types, ts))
        if not g or not any(ts):
            return DEAD
        return (length + 1, g, ts)

    def claims(self, state):
        if state == DEAD:
            return False
        length, g, ts = state
        return self.general.matches(g, length) and any(
            d.matches(s, length) for d, s in zip(self.types, ts))


class Resolver:
    """libphonenumber's _region_code_for_number_from_list for one calling code,
    as an automaton over the national number's digits: a state is the tuple of
    every region's claim state."""

    def __init__(self, cc):
        self.cc = cc
        self.regions = []
        self.claims = []
        for region in COUNTRY_CODE_TO_REGION_CODE[cc]:
            metadata = PhoneMetadata.metadata_for_region(region, None)
            if metadata is None:
                continue
            self.regions.append(region)
            if metadata.leading_digits is not None:
                self.claims.append(LeadingDigits(metadata.leading_digits))
            else:
                self.claims.append(Valid(metadata))
        self.initial = tuple(c.initial for c in self.claims)
        self._reach = {}

    def step(self, state, digit):
        return tuple(c.step(s, digit) for c, s in zip(self.claims, state))

    def region(self, state):
        for region, claim, s in zip(self.regions, self.claims, state):
            if claim.claims(s):
                return region
        return NONE

    def reach(self, state, remaining=None):
        """Every answer for the numbers that start with the digits read so far
        (and have exactly `remaining` more digits, unless that is None)."""
        key = (state, remaining)
        found = self._reach.get(key)
        if found is None:
            found = set()
            if not remaining:
                found.add(self.region(state))
            if remaining != 0:
                after = None if remaining is None else remaining - 1
                for d in DIGITS:
                    nxt = self.step(state, d)
                    if nxt != state or after is not None:  # the only cycles are self-loops
                        found |= self.reach(nxt, after)
            found = frozenset(found)
            self._reach[key] = found
        return found


class Node:
    def __init__(self, prefix, value=NONE, children=None, own=NONE):
        self.prefix = prefix  # national digits
        self.value = value  # a leaf's answer
        self.children = children  # None for a leaf
        self.own = own  # an inner node's answer for the number `prefix` itself


def resolve_tree(resolver, length=None, min_depth=0):
    """Split national prefixes until every leaf has at most one answer (None
    for numbers that no region claims is an answer only where no number below
    the prefix has a region), and is at least `min_depth` digits long. With
    `length`, only national numbers of that many digits count."""

    def build(prefix, state):
        remaining = None if length is None else length - len(prefix)
        answers = resolver.reach(state, remaining) - {NONE}
        if len(answers) <= 1 and len(prefix) >= min_depth:
            return Node(prefix, value=next(iter(answers), NONE))
        if len(prefix) >= MAX_NSN:
            raise SystemExit(f"+{resolver.cc} {prefix}: still ambiguous at {MAX_NSN} digits")
        children = [build(prefix + d, resolver.step(state, d)) for d in DIGITS]
        own = resolver.region(state) if remaining in (None, 0) else NONE
        return Node(prefix, children=children, own=own)

    return build("", resolver.initial)


def prefix_rules(tree, default):
    """The fewest (national prefix, answer) rules below the tree's root that
    give every leaf its answer by longest match, with `default` where none
    matches (the root's own answer)."""
    memo = {}

    def values(node):
        if node.children is None:
            return {node.value}
        return set().union(*(values(c) for c in node.children))

    def best(node, inherited):
        key = (id(node), inherited)
        if key in memo:
            return memo[key]
        if node.children is None:
            result = [] if node.value == inherited else [(node.prefix, node.value)]
        else:
            if node is tree:
                choices = {default}
            elif node.own is not NONE:
                choices = {node.own}
            else:
                choices = values(node) | {inherited}
            result = None
            for w in sorted(choices, key=lambda v: (v is not None, v or "")):
                rules = [] if w == inherited else [(node.prefix, w)]
                for child in node.children:
                    rules = rules + best(child, w)
                if result is None or len(rules) < len(result):
                    result = rules
        memo[key] = result
        return result

    return best(tree, default)


# --- The tables ---

class Tables:
    def __init__(self):
        self.calling_codes = []  # (code, main region or None, longest prefix rule)
        self.nanp = []  # (NPA, region)
        self.prefixes = []  # (E.164 prefix digits, region or None)
        for cc in sorted(COUNTRY_CODE_TO_REGION_CODE):
            regions = COUNTRY_CODE_TO_REGION_CODE[cc]
            main = None if regions[0] == NON_GEO else regions[0]
            rules = []
            if cc == 1:
                self.nanp, rules = nanp_tables(resolve_tree(Resolver(cc), NANP_LENGTH, 3))
            elif len(regions) > 1:
                rules = prefix_rules(resolve_tree(Resolver(cc)), main)
            self.prefixes += [(int(f"{cc}{p}"), r) for p, r in rules]
            depth = max((len(p) for p, _ in rules), default=0)
            self.calling_codes.append((cc, main, depth))
        self.prefixes.sort()
        self._rules = dict(self.prefixes)
        self._npas = dict(self.nanp)
        self.known = sorted(SUPPORTED_REGIONS | set(ISO_3166_1))

    def region_of(self, digits):
        """What src/geo/destinations.rs answers, for an E.164 number's digits."""
        for cc, main, depth in self.calling_codes:
            code = str(cc)
            if digits.startswith(code):
                break
        else:
            return None
        national = digits[len(code):]
        if not national:
            return None
        for k in range(min(depth, len(national)), 0, -1):
            key = int(code + national[:k])
            if key in self._rules:
                return self._rules[key]
        if cc == 1:
            return self._npas.get(int(national[:3])) if len(national) >= 3 else None
        return main


def nanp_tables(tree):
    """+1: the area code table, and the rules below area codes that are not
    all one region's. Shorter leaves stand for all their NPAs."""
    table, rules = [], []

    def walk(node):
        if len(node.prefix) < 3 and node.children is not None:
            for child in node.children:
                walk(child)
        elif node.children is None:
            width = 3 - len(node.prefix)
            if node.value is not NONE:
                for rest in range(10 ** width):
                    tail = f"{rest:0{width}d}" if width else ""
                    table.append((int(node.prefix + tail), node.value))
        else:  # an NPA split between answers: its majority in the table, rules below
            npa_rules = prefix_rules(Node("", children=[node]), NONE)
            for prefix, region in npa_rules:
                if len(prefix) == 3:
                    if region is not NONE:
                        table.append((int(prefix), region))
                else:
                    rules.append((prefix, region))

    walk(tree)
    return sorted(table), rules


# --- Verification against phonenumbers.region_code_for_number ---

def lib_region(numobj):
    region = phonenumbers.region_code_for_number(numobj)
    return None if region == NON_GEO else region


def e164_digits(numobj):
    return phonenumbers.format_number(numobj, phonenumbers.PhoneNumberFormat.E164)[1:]


def example_numbers():
    types = [getattr(PhoneNumberType, n) for n in dir(PhoneNumberType) if n.isupper()
             and n not in ("UNKNOWN", "FIXED_LINE_OR_MOBILE")]
    seen = set()
    for region in sorted(SUPPORTED_REGIONS):
        for t in types:
            n = phonenumbers.example_number_for_type(region, t)
            if n is not None and e164_digits(n) not in seen:
                seen.add(e164_digits(n))
                yield n
    for cc in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        metadata = PhoneMetadata.metadata_for_nongeo_region(cc)
        for t in ("general_desc",) + TYPES:
            desc = getattr(metadata, t)
            if desc is not None and desc.example_number:
                n = phonenumbers.parse(f"+{cc}{desc.example_number}")
                if e164_digits(n) not in seen:
                    seen.add(e164_digits(n))
                    yield n


def random_numbers(count, seed=20260501):
    """Random national numbers after every calling code, weighted to the shared
    codes, half of them variations of example numbers (same leading digits,
    random tail, possibly another length) to probe the borders between regions."""
    rng = random.Random(seed)
    examples = {}
    for n in example_numbers():
        examples.setdefault(n.country_code, []).append(phonenumbers.national_significant_number(n))
    codes = sorted(COUNTRY_CODE_TO_REGION_CODE)
    shared = [cc for cc in codes if len(COUNTRY_CODE_TO_REGION_CODE[cc]) > 1]
    for _ in range(count):
        cc = rng.choice(shared) if rng.random() < 0.75 else rng.choice(codes)
        if rng.random() < 0.5 and cc in examples:
            base = rng.choice(examples[cc])
            keep = rng.randint(1, len(base))
            length = max(keep, len(base) + rng.choice((0, 0, 0, -1, 1)))
            national = base[:keep] + "".join(rng.choice(DIGITS) for _ in range(length - keep))
        else:
            length = rng.randint(4, 15 - len(str(cc)))
            national = "".join(rng.choice(DIGITS) for _ in range(length))
        if len(str(cc)) + len(national) > 15:
            national = national[:15 - len(str(cc))]
        yield phonenumbers.parse(f"+{cc}{national}", None)


def nanp_short(digits):
    """A +1 number whose national part is not 10 digits: the +1 tables answer
    as for a 10-digit number with the same NPA (see the top of this file)."""
    return digits.startswith("1") and len(digits) != 1 + NANP_LENGTH


def verify(tables, count=400000):
    """Compare the tables with region_code_for_number. Returns report lines and
    the disagreements on numbers libphonenumber resolves, other than the known
    +1 one."""
    report, unexpected = [], []

    def compare(numbers):
        stats = {"all": 0, "agree": 0, "resolved": 0, "resolved_agree": 0, "valid": 0,
                 "valid_agree": 0, "nanp_short": 0, "lib_none": {}}
        for n in numbers:
            digits = e164_digits(n)
            want, got = lib_region(n), tables.region_of(digits)
            stats["all"] += 1
            stats["agree"] += want == got
            if phonenumbers.is_valid_number(n):
                stats["valid"] += 1
                stats["valid_agree"] += want == got
            if want is None:
                if got is not None:
                    stats["lib_none"][got] = stats["lib_none"].get(got, 0) + 1
                continue
            stats["resolved"] += 1
            stats["resolved_agree"] += want == got
            if want != got:
                if nanp_short(digits):
                    stats["nanp_short"] += 1
                else:
                    unexpected.append((digits, want, got))
        return stats

    def pct(a, b):
        return f"{a}/{b} ({100 * a / b:.2f}%)"

    ex = compare(example_numbers())
    report.append(f"example numbers: {pct(ex['agree'], ex['all'])} agree; valid ones"
                  f" {pct(ex['valid_agree'], ex['valid'])};"
                  f" +1 with a national number not 10 digits long: {ex['nanp_short']}")
    rnd = compare(random_numbers(count))
    report.append(f"random numbers: {count}; resolved by libphonenumber:"
                  f" {pct(rnd['resolved_agree'], rnd['resolved'])} agree, the other"
                  f" {rnd['resolved'] - rnd['resolved_agree']} are +1 numbers whose national number"
                  f" is not 10 digits long ({rnd['nanp_short']}); valid:"
                  f" {pct(rnd['valid_agree'], rnd['valid'])}; all: {pct(rnd['agree'], rnd['all'])}")
    report.append("  libphonenumber None where the tables give a region: " + ", ".join(
        f"{r} {k}" for r, k in sorted(rnd["lib_none"].items(), key=lambda x: (-x[1], x[0]))))
    for digits, want, got in unexpected[:20]:
        report.append(f"  UNEXPECTED +{digits}: libphonenumber {want}, tables {got}")
    return report, unexpected


# --- Output ---

def region_literal(region):
    return "NO_REGION" if region is None else f'*b"{region}"'


def render(tables):
    assert max(k for k, _ in tables.prefixes) < 2**32
    lib_only = sorted(SUPPORTED_REGIONS - set(ISO_3166_1))
    iso_only = sorted(set(ISO_3166_1) - SUPPORTED_REGIONS)
    out = []
    w = out.append
    w("// @generated by scripts/gen_destinations.py from libphonenumber's metadata")
    w(f"// (phonenumbers {phonenumbers.__version__}). Do not edit by hand.")
    w("//")
    w("// Copyright (C) 2009 The Libphonenumber Authors. Licensed under the Apache")
    w("// License, Version 2.0: http://www.apache.org/licenses/LICENSE-2.0")
    w("")
    w("/// No region: a non-geographic calling code, or a prefix whose numbers no")
    w("/// region claims.")
    w("pub(crate) const NO_REGION: [u8; 2] = [0, 0];")
    w("")
    w(f"/// `(calling code, main region, rule length)` for the {len(tables.calling_codes)} assigned country")
    w("/// calling codes, sorted by code. The main region is the answer for every")
    w("/// number of a code no other region shares, and for the numbers of a shared")
    w("/// code that no rule in `PREFIXES` covers (for +1: `NANP` answers instead).")
    w("/// The rule length is the number of national digits of the code's longest")
    w("/// rule in `PREFIXES` (0: none).")
    w("pub(crate) const CALLING_CODES: &[(u16, [u8; 2], u8)] = &[")
    for cc, main, depth in tables.calling_codes:
        w(f"    ({cc}, {region_literal(main)}, {depth}),")
    w("];")
    w("")
    w(f"/// `(NPA, region)` for the {len(tables.nanp)} NANP area codes that some member's")
    w("/// numbers use, sorted by NPA. +1 numbers with another NPA have no region.")
    w("pub(crate) const NANP: &[(u16, [u8; 2])] = &[")
    for npa, region in tables.nanp:
        w(f"    ({npa}, {region_literal(region)}),")
    w("];")
    w("")
    w(f"/// `(E.164 prefix, region)`: the {len(tables.prefixes)} rules of the calling codes that")
    w("/// several regions share. A prefix is the calling code's digits then leading")
    w("/// national digits, read as an integer; sorted. The longest rule that is a")
    w("/// prefix of a number gives its region.")
    w("pub(crate) const PREFIXES: &[(u32, [u8; 2])] = &[")
    for key, region in tables.prefixes:
        w(f"    ({key}, {region_literal(region)}),")
    w("];")
    w("")
    w(f"/// The {len(tables.known)} region codes a profile may whitelist, sorted: every region")
    w(f"/// libphonenumber knows ({len(SUPPORTED_REGIONS)}, with {', '.join(lib_only)}, which ISO 3166-1")
    w("/// does not assign) and the ISO 3166-1 codes without numbering of their own")
    w(f"/// ({', '.join(iso_only)}), which no number resolves to.")
    w("pub(crate) const KNOWN_REGIONS: &[[u8; 2]] = &[")
    literals = [f'*b"{region}",' for region in tables.known]
    for i in range(0, len(literals), 12):  # as rustfmt lays out short items
        w("    " + " ".join(literals[i:i + 12]))
    w("];")
    return "\n".join(out) + "\n"


def table_bytes(tables):
    """Sizes of the Rust arrays: (u16, [u8; 2], u8) is 6 bytes, (u16, [u8; 2])
    4, (u32, [u8; 2]) 8 (aligned), [u8; 2] 2."""
    return {"CALLING_CODES": 6 * len(tables.calling_codes), "NANP": 4 * len(tables.nanp),
            "PREFIXES": 8 * len(tables.prefixes), "KNOWN_REGIONS": 2 * len(tables.known)}


def main():
    if phonenumbers.__version__ != PINNED:
        print(f"warning: phonenumbers {phonenumbers.__version__}, pinned {PINNED}", file=sys.stderr)
    tables = Tables()
    report, unexpected = verify(tables)
    for line in report:
        print(line, file=sys.stderr)
    if unexpected:
        raise SystemExit("the tables disagree with libphonenumber on numbers it resolves")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "src", "geo", "destinations_table.rs")
    with open(path, "w") as f:
        f.write(render(tables))
    sizes = table_bytes(tables)
    print(f"wrote {path}: {len(tables.calling_codes)} calling codes, {len(tables.nanp)} NPAs,"
          f" {len(tables.prefixes)} prefix rules, {len(tables.known)} known regions; bytes: "
          + ", ".join(f"{k} {v}" for k, v in sizes.items()) + f", total {sum(sizes.values())}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
