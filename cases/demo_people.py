"""The people of ``seed_demo``: reporters, subjects and witnesses drawn from a deterministic
population, so that the same person shows up in several cases with identical details.

A person is a pure function of an index (and the seed): nothing is stored, so a million
cases need no table of people in memory. Indexes below ``regulars`` are the people who
recur across cases (repeat subjects, frequent reporters, colleagues who witness often);
every other draw is a new person. Emails and employee ids are unique per index; names
may repeat between different people, as they do in a real workforce. Every address is
under a reserved domain (RFC 2606) and every phone number is made up.
"""

from __future__ import annotations

import itertools
import math
import random
import unicodedata

FIRST_NAMES = [
    "Zoë",
    "José",
    "Aisha",
    "Björn",
    "Chloé",
    "Dmitri",
    "Elena",
    "Fatima",
    "François",
    "Grace",
    "Hiroshi",
    "Ingrid",
    "Jürgen",
    "Kwame",
    "Léa",
    "Lukas",
    "Łukasz",
    "María",
    "Mohammed",
    "Nadia",
    "Oğuz",
    "Olivia",
    "Priya",
    "Rafael",
    "Siobhán",
    "Søren",
    "Tomás",
    "Wei",
    "Yuki",
    "Ana",
    "Daniel",
    "Emily",
    "James",
    "Sarah",
    "Michael",
    "Linh",
    "Rohan",
    "Amara",
    "Noah",
    "Camille",
    "Mateus",
    "Inês",
    "Thandiwe",
    "Kenji",
    "Sophie",
    "Ahmed",
    "Ewa",
    "Oliver",
    "Ayşe",
    "Bogdan",
    "Carmen",
    "Diego",
    "Eitan",
    "Freya",
    "Gabriel",
    "Hana",
    "Ivan",
    "Jessica",
    "Kateřina",
    "Luis",
    "Mei",
    "Nikolai",
    "Orla",
    "Pedro",
    "Raquel",
    "Sven",
    "Tariq",
    "Umar",
    "Valentina",
    "Xavier",
    "Yasmin",
    "Zsófia",
]
LAST_NAMES = [
    "Ångström",
    "Núñez",
    "Müller",
    "O'Brien",
    "García",
    "Nguyễn",
    "Kowalczyk",
    "Dvořák",
    "Søndergaard",
    "Okafor",
    "Tanaka",
    "Patel",
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Martin",
    "Dubois",
    "Schmidt",
    "Rossi",
    "Silva",
    "Santos",
    "Yılmaz",
    "Kim",
    "Chen",
    "Singh",
    "Khan",
    "Murphy",
    "Berg",
    "Lindqvist",
    "Fernández",
    "González",
    "Hernández",
    "López",
    "Nakamura",
    "Sato",
    "Mbeki",
    "Naidoo",
    "van der Berg",
    "de la Cruz",
    "Moreau",
    "Lefèvre",
    "Weiß",
    "Krüger",
    "Çelik",
    "Novák",
    "Walsh",
    "Taylor",
    "Wilson",
    "Andersson",
    "Bianchi",
    "Clarke",
    "Dąbrowski",
    "Eriksen",
    "Ferreira",
    "Gómez",
    "Hoffmann",
    "Ibrahim",
    "Jovanović",
    "Kovács",
    "Larsen",
    "Mendoza",
    "Nielsen",
    "Ortiz",
    "Petrov",
    "Quinn",
    "Ramírez",
    "Schäfer",
    "Takahashi",
    "Uçar",
    "Vásquez",
    "Wójcik",
    "Zhang",
]
JOB_TITLES = [
    "Sales associate",
    "Store manager",
    "Warehouse operative",
    "Shift supervisor",
    "Procurement specialist",
    "Accounts payable clerk",
    "Financial analyst",
    "Finance manager",
    "HR business partner",
    "Recruiter",
    "Software engineer",
    "IT support analyst",
    "Data analyst",
    "Legal counsel",
    "Compliance analyst",
    "Marketing coordinator",
    "Regional sales director",
    "Operations manager",
    "Plant technician",
    "Quality inspector",
    "Logistics coordinator",
    "Delivery driver",
    "Customer service representative",
    "Executive assistant",
    "Vice president, operations",
    "Payroll specialist",
    "Security officer",
    "Project manager",
    "Team lead",
    "Nurse",
]
EXTERNAL_TITLES = ["Customer", "Supplier account manager", "Vendor representative", "Subcontractor"]
EXTERNAL_DOMAIN = "mail.example.net"
# E.164 without spaces: a country code and number prefix, then this many random digits.
# US numbers use the 555 exchange; UK ones the 07700 900 drama range's prefix.
PHONE_PLANS: list[tuple[str, int]] = [
    ("+1312555", 4),
    ("+1214555", 4),
    ("+1973555", 4),
    ("+1206555", 4),
    ("+1416555", 4),
    ("+447700", 6),
    ("+447700", 6),
    ("+49151", 8),
    ("+336", 8),
    ("+9198", 8),
    ("+8190", 8),
    ("+614", 8),
    ("+658", 7),
    ("+5281", 8),
    ("+55119", 8),
    ("+2782", 7),
]
_FOLD = str.maketrans({"ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "ß": "ss", "æ": "ae", "đ": "d", "ı": "i"})
_MASK = (1 << 64) - 1

Person = tuple[str, str, str, str, str]  # full_name, email, phone, employee_id, job_title


def email_local_part(name: str) -> str:
    """``Zoë Ångström`` → ``zoeangstrom``: the ASCII letters of a name, for addresses."""
    decomposed = unicodedata.normalize("NFKD", name.translate(_FOLD))
    return "".join(c for c in decomposed if c.isascii() and c.isalnum()).lower()


def _mix(value: int) -> int:
    """SplitMix64's finaliser: well-spread bits from consecutive integers."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


class DemoPeople:
    """A seeded population of people, each one a pure function of its index."""

    def __init__(self, *, seed: int, domain: str) -> None:
        rng = random.Random(f"people:{seed}")
        self.first = rng.sample(FIRST_NAMES, len(FIRST_NAMES))
        self.last = rng.sample(LAST_NAMES, len(LAST_NAMES))
        self.first_local = [email_local_part(n) for n in self.first]
        self.last_local = [email_local_part(n) for n in self.last]
        # Index → name pairing is a bijection within each block of ``combos`` indexes, so
        # ``first.last`` plus the block number is unique per person.
        self.combos = len(self.first) * len(self.last)
        self.stride = next(s for s in itertools.count(rng.randrange(1, self.combos)) if math.gcd(s, self.combos) == 1)
        self.offset = rng.randrange(self.combos)
        self.salt = rng.getrandbits(64)
        self.domain = domain

    def person(self, index: int, *, external: bool = False) -> Person:
        """The person at ``index``: an employee, or a customer or supplier when ``external``."""
        block, j = divmod(index, self.combos)
        first, last = divmod((j * self.stride + self.offset) % self.combos, len(self.last))
        local = f"{self.first_local[first]}.{self.last_local[last]}{block + 1 if block else ''}"
        bits = _mix(index ^ self.salt)
        prefix, digits = PHONE_PLANS[bits % len(PHONE_PLANS)]
        bits //= len(PHONE_PLANS)
        phone = f"{prefix}{bits % 10**digits:0{digits}d}"
        bits //= 10**digits
        name = f"{self.first[first]} {self.last[last]}"
        if external:
            return name, f"{local}@{EXTERNAL_DOMAIN}", phone, "", EXTERNAL_TITLES[bits % len(EXTERNAL_TITLES)]
        return name, f"{local}@{self.domain}", phone, f"E{10000 + index}", JOB_TITLES[bits % len(JOB_TITLES)]
