"""Write ``planted.jsonl``: complaint texts with planted personal data, for redaction evaluation.

Run from the repository root: ``python datasets/redaction/generate.py``. Deterministic (seeded);
the output is committed next to this script. Every text, template and value format below was
authored for Sawt; no external corpus is used. The values are synthetic (random digits with
valid check digits where the real thing has them), never real people's data.

This script deliberately does not import the redactor: the formats come from how people write
these numbers, not from what the patterns happen to catch.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

SEED = 20240611
OUT = Path(__file__).with_name("planted.jsonl")
LANGUAGES = ("ar", "ary", "ary-Latn", "fr", "en")
POSITIVES_PER_LANGUAGE = 64
NEGATIVES_PER_LANGUAGE = 20

EASTERN = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")

# ----------------------------------------------------------------------------------------------
# Values
# ----------------------------------------------------------------------------------------------


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _pairs(digits: str) -> list[str]:
    return [digits[i : i + 2] for i in range(0, len(digits), 2)]


def moroccan_nsn(rng: random.Random) -> str:
    """9-digit national significant number: mobile 6/7 or landline 5."""
    kind = rng.choices(["6", "7", "5"], weights=[5, 3, 2])[0]
    if kind == "6":
        return (
            "6" + rng.choice(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]) + _digits(rng, 7)
        )
    if kind == "7":
        return "7" + rng.choice(["0", "6", "7", "8"]) + _digits(rng, 7)
    return "5" + rng.choice(["22", "23", "24", "28", "35", "37", "39"]) + _digits(rng, 6)


def _national(nsn: str) -> str:
    return "0" + nsn


PHONE_FORMATS: dict[str, Callable[[str], str]] = {
    "compact": _national,
    "pairs_space": lambda n: " ".join(_pairs(_national(n))),
    "pairs_dot": lambda n: ".".join(_pairs(_national(n))),
    "pairs_dash": lambda n: "-".join(_pairs(_national(n))),
    "pairs_slash": lambda n: "/".join(_pairs(_national(n))),
    "4-2-2-2": lambda n: _national(n)[:4] + " " + " ".join(_pairs(_national(n)[4:])),
    "4-6_dash": lambda n: _national(n)[:4] + "-" + _national(n)[4:],
    "3-3-4": lambda n: f"{_national(n)[:3]} {_national(n)[3:6]} {_national(n)[6:]}",
    "intl_compact": lambda n: "+212" + n,
    "intl_space": lambda n: "+212 " + n[0] + " " + " ".join(_pairs(n[1:])),
    "intl_3-3-3": lambda n: f"+212 {n[:3]} {n[3:6]} {n[6:]}",
    "intl_dash": lambda n: f"+212-{n[:3]}-{n[3:]}",
    "00212_compact": lambda n: "00212" + n,
    "00212_space": lambda n: "00212 " + n[0] + " " + " ".join(_pairs(n[1:])),
    "paren_intl": lambda n: "(+212) " + n[0] + " " + " ".join(_pairs(n[1:])),
    "intl_trunk": lambda n: "+212 (0)" + n[0] + " " + " ".join(_pairs(n[1:])),
    "eastern_compact": lambda n: _national(n).translate(EASTERN),
    "eastern_pairs": lambda n: " ".join(_pairs(_national(n))).translate(EASTERN),
    "eastern_intl": lambda n: ("+212" + n).translate(EASTERN),
    "persian_compact": lambda n: _national(n).translate(PERSIAN),
    "nbsp_pairs": lambda n: "\u00a0".join(_pairs(_national(n))),
}


def foreign_phone(rng: random.Random) -> str:
    """Mobile numbers of countries with large Moroccan communities, in their usual writing."""
    choice = rng.randrange(5)
    if choice == 0:
        return "+33 6 " + " ".join(_pairs(_digits(rng, 8)))
    if choice == 1:
        return "+34 6" + _digits(rng, 2) + " " + " ".join(_pairs(_digits(rng, 6)))
    if choice == 2:
        return "+32 47" + rng.choice("0123456789") + " " + " ".join(_pairs(_digits(rng, 6)))
    if choice == 3:
        return "+39 3" + rng.choice("1234") + _digits(rng, 1) + " " + _digits(rng, 7)
    return "0033 7 " + " ".join(_pairs("5" + _digits(rng, 7)))


FIRST = [
    "ahmed",
    "fatima.zahra",
    "youssef",
    "khadija",
    "mohamed",
    "salma",
    "hamza",
    "imane",
    "omar",
    "nadia",
    "karim",
    "soukaina",
    "rachid",
    "meryem",
    "ayoub",
    "hajar",
    "said",
    "zineb",
    "anas",
    "laila",
]
LAST = [
    "benali",
    "elamrani",
    "tazi",
    "alaoui",
    "bennani",
    "idrissi",
    "chraibi",
    "berrada",
    "ouazzani",
    "elfassi",
    "naciri",
    "benjelloun",
    "amrani",
    "lahlou",
    "kettani",
]
DOMAINS = [
    "gmail.com",
    "yahoo.fr",
    "hotmail.com",
    "hotmail.fr",
    "outlook.com",
    "menara.ma",
    "live.fr",
    "yahoo.com",
]


def email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first}_{last}{rng.randint(70, 99)}",
            f"{first}{last}{rng.randint(1970, 2005)}",
            f"{first[0]}.{last}",
            f"{first}{rng.randint(1, 999)}",
        ]
    )
    address = f"{local}@{rng.choice(DOMAINS)}"
    return address.capitalize() if rng.random() < 0.15 else address


CIN_PREFIXES = [
    "A",
    "AB",
    "B",
    "BE",
    "BH",
    "BJ",
    "BK",
    "BL",
    "C",
    "CB",
    "CD",
    "D",
    "DA",
    "E",
    "EE",
    "F",
    "G",
    "H",
    "I",
    "J",
    "JA",
    "JB",
    "JC",
    "JE",
    "JH",
    "K",
    "KB",
    "L",
    "LA",
    "LC",
    "M",
    "N",
    "P",
    "PA",
    "Q",
    "R",
    "S",
    "SH",
    "T",
    "TA",
    "U",
    "UA",
    "V",
    "W",
    "WA",
    "X",
    "Y",
    "Z",
    "ZT",
]


def cin(rng: random.Random) -> str:
    """CIN/CNIE numbers as people type them.

    Spaced and lower-case writings are only produced with 5-6 digits: 4-digit numbers belong
    to old cards and we have not seen them written that way (see README, known gaps).
    """
    prefix = rng.choice(CIN_PREFIXES)
    n_digits = rng.choices([6, 5, 4], weights=[6, 3, 1])[0]
    number = str(rng.randint(1, 9)) + _digits(rng, n_digits - 1)
    style = rng.choices(["plain", "spaced", "lower"], weights=[7, 2, 1])[0]
    if style == "spaced" and n_digits >= 5:
        return f"{prefix} {number}"
    if style == "lower" and n_digits >= 5:
        return prefix.lower() + number
    return prefix + number


BANKS = ["007", "011", "013", "021", "022", "023", "145", "181", "190", "225", "230", "310", "350"]
CITIES = ["780", "810", "640", "010", "450", "360", "270", "525"]


def _iban_check(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in rearranged))
    return f"{98 - number % 97:02d}"


def _by4(text: str) -> str:
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def rib_or_iban(rng: random.Random) -> str:
    bank, city, account = rng.choice(BANKS), rng.choice(CITIES), _digits(rng, 16)
    rib = bank + city + account + _digits(rng, 2)
    style = rng.randrange(8)
    if style == 0:
        return rib
    if style == 1:
        return f"{rib[:3]} {rib[3:6]} {rib[6:22]} {rib[22:]}"
    if style == 2:
        return f"{rib[:3]}-{rib[3:6]}-{rib[6:22]}-{rib[22:]}"
    if style == 3:
        return _by4(rib)
    iban = "MA" + _iban_check("MA", rib) + rib
    if style in (4, 5):
        return _by4(iban)
    if style == 6:
        return iban
    return foreign_iban(rng)


FOREIGN_BBAN = {"FR": 23, "ES": 20, "BE": 12, "DE": 18, "NL": 14, "IT": 23}


def foreign_iban(rng: random.Random) -> str:
    country = rng.choice(sorted(FOREIGN_BBAN))
    length = FOREIGN_BBAN[country]
    if country == "NL":
        bban = rng.choice(["INGB", "ABNA", "RABO"]) + _digits(rng, 10)
    elif country == "IT":
        bban = rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + _digits(rng, 22)
    else:
        bban = _digits(rng, length)
    iban = country + _iban_check(country, bban) + bban
    return _by4(iban) if rng.random() < 0.75 else iban


def _luhn_complete(partial: str) -> str:
    total = 0
    for i, char in enumerate(reversed(partial)):
        digit = int(char)
        if i % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return partial + str((10 - total % 10) % 10)


def card(rng: random.Random) -> str:
    brand = rng.choices(["visa", "mastercard", "amex"], weights=[5, 4, 1])[0]
    if brand == "amex":
        number = _luhn_complete(rng.choice(["34", "37"]) + _digits(rng, 12))
        style = rng.randrange(2)
        return number if style == 0 else f"{number[:4]} {number[4:10]} {number[10:]}"
    prefix = "4" if brand == "visa" else rng.choice(["51", "52", "53", "54", "55", "2221"])
    number = _luhn_complete(prefix + _digits(rng, 15 - len(prefix)))
    style = rng.randrange(3)
    if style == 0:
        return number
    if style == 1:
        return _by4(number)
    return "-".join(number[i : i + 4] for i in range(0, 16, 4))


# ----------------------------------------------------------------------------------------------
# Look-alikes that must survive redaction
# ----------------------------------------------------------------------------------------------


def lookalike(rng: random.Random, slot: str, language: str) -> str:
    arabic_script = language in ("ar", "ary")
    value: str
    if slot == "date":
        day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2019, 2025)
        value = rng.choice(
            [
                f"{day:02d}/{month:02d}/{year}",
                f"{year}-{month:02d}-{day:02d}",
                f"{day:02d}.{month:02d}.{year}",
                f"{day}/{month}/{year}",
            ]
        )
    elif slot == "amount":
        amount = rng.choice([350, 1500, 2500, 4800, 12000, 780, 99, 15000])
        if arabic_script:
            value = rng.choice(
                [f"{amount} درهم", f"{amount} DH", f"{amount:,} درهم".replace(",", " ")]
            )
        else:
            value = rng.choice(
                [
                    f"{amount} DH",
                    f"{amount:,} MAD".replace(",", " "),
                    f"{amount} dhs",
                    f"{amount},00 DH",
                    f"{amount} dirhams",
                ]
            )
    elif slot == "case":
        year = rng.randint(2019, 2025)
        value = rng.choice(
            [
                f"{year}/{rng.randint(1, 999)}",
                f"{rng.randint(100, 9999)}/{year}",
                f"{year}/{rng.randint(1, 99999):05d}",
            ]
        )
    elif slot == "time":
        value = rng.choice(["10h30", "8h", "09h15", "14:45", "16h", "11h00", "8:30"])
    elif slot == "year":
        value = str(rng.randint(2015, 2025))
    elif slot == "postcode":
        value = rng.choice(["20250", "10000", "30050", "40000", "90060", "20000", "80000", "60000"])
    else:
        raise ValueError(slot)
    if arabic_script and rng.random() < 0.25:
        value = value.translate(EASTERN)
    return value


# ----------------------------------------------------------------------------------------------
# Texts (authored for Sawt)
# ----------------------------------------------------------------------------------------------

BODIES: dict[str, list[str]] = {
    "ar": [
        "تقدمت بطلب للحصول على شهادة السكنى منذ {date} ولم أتلق أي رد إلى حدود اليوم.",
        "فاتورة الماء والكهرباء لهذا الشهر بلغت {amount} دون أي تفسير من الوكالة.",
        "انتظرت في الملحقة الإدارية من الساعة {time} دون أن يستقبلني أي موظف.",
        "ملفي رقم {case} لدى المحكمة الابتدائية ما زال عالقا منذ سنة {year}.",
        "الموقع الإلكتروني للخدمات الجماعية لا يعمل منذ أسبوع ولا يمكنني أداء الرسوم.",
        "انقطع الماء عن حينا بالرمز البريدي {postcode} لمدة ثلاثة أيام متتالية.",
        "أشكر موظفي مكتب الحالة المدنية على حسن الاستقبال وسرعة الإنجاز.",
        "طلب مني موظف مبلغ {amount} لتسريع ملفي وهذا أمر غير مقبول.",
        "لم أتوصل ببطاقة التعريف الوطنية رغم أنني وضعت الطلب يوم {date}.",
        "المستشفى الإقليمي يفتقر إلى الأطباء وموعدي القادم في {date}.",
        "أديت واجب التسجيل {amount} مرتين عبر البوابة الإلكترونية ولم يسترجع المبلغ.",
        "الإدارة تغلق أبوابها على الساعة {time} رغم أن التوقيت المعلن مختلف.",
    ],
    "ary": [
        "مشيت للمقاطعة باش نخرج عقد الازدياد وقالو ليا رجع غدا، هادي تالت مرة.",
        "الفاتورة ديال الما والضو جات {amount} هاد الشهر، واش معقول؟",
        "تسنيت من {time} حتى لالظهر والموظف ما جاش.",
        "الدوسي ديالي رقم {case} باقي ما تحرك من {date}.",
        "الضو مقطوع فالحومة من البارح، عيطنا للشركة وحتى واحد ما جاوب.",
        "السيت ديال الضرائب خاسر، كل مرة كيعطيني خطأ ملي نخلص.",
        "شكرا بزاف للموظفين ديال البلدية، خدمة مزيانة هاد المرة.",
        "طلبو مني {amount} باش يدوزو ليا الملف، هادي رشوة واضحة.",
        "الطريق ديال الدوار مخربة من {year} وحتى حد ما صاوبها.",
        "الكود البريدي ديالي {postcode} والبوسطة ما كتوصلنيش الرسائل.",
        "الموعد فالسبيطار عطاوه ليا ل {date}، بزاف هادشي.",
        "خلصت {amount} فالطريق السيار وتقطعو ليا جوج مرات.",
    ],
    "ary-Latn": [
        "mchit l mo9ata3a bach nkhrej 3a9d l izdiyad w galo lia rje3 ghda, hadi talt merra.",
        "l fatura dyal lma w dow jat {amount} had chhar, wach m39oul?",
        "tsenit mn {time} 7ta l dohr w l mowadaf ma jach.",
        "dossier dyali ra9m {case} ba9i ma t7rrk mn {date}.",
        "dow ma9tou3 f l 7ouma mn lbar7, 3ayetna 3la charika w 7ta wa7d ma jawb.",
        "site dyal dara2ib khasser, kola merra kay3tini erreur mli nkhelles.",
        "choukran bzaaaf l mowadafin dyal l baladiya, khedma mzyana had l merra.",
        "tlbo menni {amount} bach ydouzo lia l milaf, hadi rachwa.",
        "tri9 dyal douar mkherja mn {year} w 7ta 7ad ma sawbha.",
        "code postal dyali {postcode} w la poste ma katwslnich bra.",
        "rendez-vous f sbitar 3tawh lia l {date}, bzaf had chi.",
        "khlsst {amount} f l autoroute w t9t3o lia joj merrat.",
    ],
    "fr": [
        "J'ai déposé une demande d'acte de naissance le {date} et je n'ai toujours aucune réponse.",
        "Ma facture d'eau de ce mois s'élève à {amount}, c'est le double du mois dernier.",
        "J'ai attendu au guichet de {time} jusqu'à midi sans être reçu.",
        "Mon dossier n° {case} est bloqué au tribunal depuis {year}.",
        "Le portail des impôts est en panne depuis trois jours, impossible de payer la taxe.",
        "Coupure d'eau dans notre quartier ({postcode}) depuis 48 heures, aucune information.",
        "Merci au personnel de l'arrondissement pour l'accueil et la rapidité.",
        "Un agent m'a demandé {amount} pour accélérer le traitement de mon dossier.",
        "Le rendez-vous à l'hôpital est fixé au {date}, c'est beaucoup trop loin.",
        "L'agence ferme à {time} alors que les horaires affichés disent autre chose.",
        "J'ai payé les frais de {amount} deux fois sur le site et personne ne me rembourse.",
        "Ma demande de passeport déposée en {year} est toujours en cours de traitement.",
    ],
    "en": [
        "I applied for a birth certificate on {date} and still have no answer.",
        "This month's electricity bill is {amount}, twice the usual amount.",
        "I waited at the counter from {time} until noon and nobody served me.",
        "My case number {case} has been stuck at the court since {year}.",
        "The tax portal has been down for three days and I cannot pay online.",
        "Water has been cut in our neighbourhood (postcode {postcode}) for two days.",
        "Thanks to the municipal staff for the warm welcome and quick service.",
        "An official asked me for {amount} to speed up my file.",
        "The hospital appointment is on {date}, which is far too late.",
        "The office closes at {time} although the posted hours say otherwise.",
        "I was charged the {amount} fee twice on the website and nobody refunds me.",
        "My passport application from {year} is still being processed.",
    ],
}

# Extra look-alike sentences for texts without personal data.
EXTRAS: dict[str, list[str]] = {
    "ar": [
        "ما زلت أنتظر منذ {date} على الساعة {time}.",
        "أديت {amount} كرسوم إضافية في {year}.",
        "رقم الشكاية {case} ولم يتصل بي أحد.",
        "الطريق الوطنية رقم 1 مقطوعة منذ أيام بسبب الأشغال.",
        "عندي 3 أطفال في المدرسة والحافلة رقم 37 لا تمر بانتظام.",
        "صرفت 4500 درهم على التنقل بين 3 إدارات خلال 45 يوما.",
    ],
    "ary": [
        "من {date} وانا كنتسنى، حتى ل {time} وما كاين والو.",
        "خلصت {amount} زايدين ف {year}.",
        "رقم الشكاية {case} وحتى حد ما عيط ليا.",
        "الطوبيس 37 ما بقاش كيدوز، وكنمشي 5 كيلومتر على رجليا.",
        "كوفيد19 سالا وباقي الإدارة خدامة بحال إلا حنا ف 2020.",
        "عندي 3 دراري وكل واحد خاصو 10 وراق.",
    ],
    "ary-Latn": [
        "mn {date} w ana kantsna, 7ta l {time} w walo.",
        "khlsst {amount} zaydin f {year}, 3la ach?",
        "ra9m chikaya {case} w 7ta 7ad ma 3ayet lia.",
        "tobis 37 ma b9ach kaydouz, kantmcha 5 km 3la rjliya.",
        "m3a COVID19 kolchi wla online walakin site 3amr ma khdam m3aya.",
        "3andi 3 drari w kol wa7ed khaso 10 wra9, 9l lia 3lach.",
        "l9it l guichet msdod m3a {time}, 7ta nhar tani.",
        "4G ma katkhdamch f douar, makaynch reseau 3la 7ta chi 7aja.",
    ],
    "fr": [
        "J'attends depuis le {date} à {time}.",
        "J'ai payé {amount} de frais supplémentaires en {year}.",
        "Ma réclamation porte le numéro {case} et personne ne m'a rappelé.",
        "La RN1 est coupée depuis une semaine à cause des travaux.",
        "Le bus 37 ne passe plus, je marche 5 km chaque matin.",
        "Depuis le COVID19 tout passe par le site, qui ne marche pas en 4G.",
        "Il faut 10 documents et 3 allers-retours pour un simple certificat.",
    ],
    "en": [
        "I have been waiting since {date} at {time}.",
        "I paid {amount} in extra fees in {year}.",
        "My complaint number is {case} and nobody called me back.",
        "The A7 motorway exit has been closed for a week.",
        "Bus 37 no longer runs, so I walk 5 km every morning.",
        "Since COVID19 everything is online, but the site fails on 4G.",
        "They ask for 10 documents and 3 trips for one certificate.",
    ],
}

# Contact sentences, one list per kind; ``{v}`` is the planted value. Some glue the value to
# the word before it, as people do on phones.
CONTACT: dict[str, dict[str, list[str]]] = {
    "phone": {
        "ar": [
            "يمكنكم الاتصال بي على الرقم {v}.",
            "رقم هاتفي {v} للتواصل.",
            "اتصلوا بي على{v} في أي وقت.",
            "الهاتف:{v}",
            "للتواصل معي: {v} شكرا.",
        ],
        "ary": [
            "عيطو ليا فهاد النمرة {v}.",
            "النمرة ديالي {v} الله يخليكم.",
            "هاد الرقم ديالي{v} عيطو ليا",
            "تيليفون:{v}",
            "عيطو على{v} من فضلكم.",
        ],
        "ary-Latn": [
            "3ayto lia f had nmra {v}.",
            "nmra dyali {v} llah ykhlikom.",
            "tel:{v} 3ayto",
            "3ayto 3liya f{v} mn fadlkom.",
            "ra9mi howa {v}",
        ],
        "fr": [
            "Vous pouvez me joindre au {v}.",
            "Mon numéro : {v}.",
            "Tél.{v}",
            "Rappelez-moi svp au {v} après {time}.",
            "Contact : {v}",
        ],
        "en": [
            "You can reach me at {v}.",
            "My phone number is {v}.",
            "Call me on {v} after {time}.",
            "Tel:{v}",
            "Contact me on {v} please.",
        ],
    },
    "email": {
        "ar": ["بريدي الإلكتروني هو {v}", "راسلوني على{v}", "البريد: {v}."],
        "ary": ["الإيميل ديالي {v}", "صيفطو ليا على {v}", "ايميل:{v}"],
        "ary-Latn": ["l email dyali {v}", "sifto lia 3la {v}.", "mail:{v}"],
        "fr": ["Mon adresse e-mail : {v}", "Écrivez-moi à {v}.", "mail:{v}"],
        "en": ["My email is {v}.", "Please write to {v}", "email:{v}"],
    },
    "cin": {
        "ar": ["رقم بطاقتي الوطنية {v}.", "ب.ت.و: {v}", "بطاقة التعريف رقم {v} باسمي."],
        "ary": ["رقم لاكارط ديالي {v}", "لاكارط نسيونال {v}", "البطاقة ديالي {v} ماشي ديال خويا."],
        "ary-Latn": ["ra9m la carte dyali {v}", "CIN: {v}", "la carte nationale {v} 3ndkom."],
        "fr": ["Mon numéro de CIN est {v}.", "CNIE n° {v}", "titulaire de la CIN {v},"],
        "en": ["My national ID number is {v}.", "ID card: {v}", "national ID {v} for reference."],
    },
    "iban": {
        "ar": [
            "رقم حسابي البنكي (RIB) هو {v}",
            "المرجو تحويل التعويض إلى الحساب {v}",
            "الحساب: {v}",
        ],
        "ary": ["الريب ديالي {v}", "حولو ليا لهاد الحساب {v}", "RIB: {v}"],
        "ary-Latn": ["rib dyali {v}", "7awlo lia l had compte {v}.", "RIB:{v}"],
        "fr": ["Merci de rembourser sur mon RIB {v}.", "IBAN : {v}", "compte n° {v}"],
        "en": ["Please refund to my account {v}.", "IBAN: {v}", "my bank account is {v}"],
    },
    "card": {
        "ar": [
            "تم خصم المبلغ مرتين من بطاقتي {v}",
            "رقم البطاقة البنكية {v}",
            "البطاقة المنتهية صلاحيتها {v} ما زالت تقتطع منها الرسوم.",
        ],
        "ary": [
            "خلصت بالكارط {v} وتقطعو ليا الفلوس جوج مرات",
            "الكارط ديالي {v}",
            "رقم الكارط:{v}",
        ],
        "ary-Latn": [
            "khlsst b la carte {v} w t9t3o lia joj merrat",
            "carte dyali {v}",
            "numero dyal la carte:{v}",
        ],
        "fr": [
            "Ma carte {v} a été débitée deux fois.",
            "Paiement refusé avec la carte n° {v}",
            "carte bancaire:{v}",
        ],
        "en": [
            "My card {v} was charged twice.",
            "Card number: {v}",
            "payment with card {v} failed",
        ],
    },
}

KIND_CYCLE = [
    "phone",
    "email",
    "phone",
    "cin",
    "iban",
    "phone",
    "card",
    "phone",
    "cin",
    "iban",
    "card",
    "phone",
    "email",
]


def _fill(template: str, rng: random.Random, language: str) -> str:
    out = template
    for slot in ("date", "amount", "case", "time", "year", "postcode"):
        while "{" + slot + "}" in out:
            out = out.replace("{" + slot + "}", lookalike(rng, slot, language), 1)
    return out


def _value(kind: str, rng: random.Random, phone_formats: list[str]) -> str:
    if kind == "phone":
        if rng.random() < 0.06:
            return foreign_phone(rng)
        fmt = phone_formats.pop(0)
        phone_formats.append(fmt)
        return PHONE_FORMATS[fmt](moroccan_nsn(rng))
    if kind == "email":
        return email(rng)
    if kind == "cin":
        return cin(rng)
    if kind == "iban":
        return rib_or_iban(rng)
    return card(rng)


def generate() -> list[dict[str, object]]:
    rng = random.Random(SEED)
    rows: list[dict[str, object]] = []
    for language in LANGUAGES:
        # Eastern Arabic / Persian digits are typed on Arabic keyboards, so only in Arabic script.
        phone_formats = [
            name
            for name in PHONE_FORMATS
            if language in ("ar", "ary") or not name.startswith(("eastern", "persian"))
        ]
        rng.shuffle(phone_formats)
        kinds = KIND_CYCLE[:]
        for number in range(POSITIVES_PER_LANGUAGE):
            n_items = 2 if rng.random() < 0.3 else 1
            planted: list[dict[str, str]] = []
            sentences = [_fill(rng.choice(BODIES[language]), rng, language)]
            for _ in range(n_items):
                kind = kinds.pop(0)
                kinds.append(kind)
                value = _value(kind, rng, phone_formats)
                frame = _fill(rng.choice(CONTACT[kind][language]), rng, language)
                sentences.append(frame.replace("{v}", value))
                planted.append({"kind": kind, "value": value})
            if rng.random() < 0.5:
                rng.shuffle(sentences)
            rows.append(
                {
                    "id": f"{language}-p{number:03d}",
                    "language": language,
                    "text": " ".join(sentences),
                    "planted": planted,
                }
            )
        for number in range(NEGATIVES_PER_LANGUAGE):
            sentences = [_fill(rng.choice(BODIES[language]), rng, language)]
            for extra in rng.sample(EXTRAS[language], k=2):
                sentences.append(_fill(extra, rng, language))
            rows.append(
                {
                    "id": f"{language}-n{number:03d}",
                    "language": language,
                    "text": " ".join(sentences),
                    "planted": [],
                }
            )
    return rows


def main() -> None:
    rows = generate()
    with OUT.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    negatives = sum(1 for row in rows if not row["planted"])
    print(f"wrote {len(rows)} texts ({negatives} without personal data) to {OUT}")


if __name__ == "__main__":
    main()
