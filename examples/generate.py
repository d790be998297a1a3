#!/usr/bin/env python3
"""Deterministic sample data for the example policies (SPEC section 9).

    python3 examples/generate.py invoices --count 1000 --seed 1 > invoices.ndjson
    python3 examples/generate.py patients --count 1000 --seed 1 > patients.ndjson

Prints NDJSON, one {"id": ..., "doc": {...}} a line, ready for `veil import` or
POST /v1/collections/{c}/bulk. The same kind, count and seed always give byte-identical
output (Python's Random is stable across versions for the calls used here; no floats are
printed: decimals are computed in integers and written as strings).

Python 3 standard library only.
"""

import argparse
import datetime
import json
import random
import sys

# ---- shared helpers ----

FIRST_NAMES = [
    "Anna", "Bram", "Chloé", "Daan", "Emma", "Finn", "Günther", "Hanna", "Isa", "Jan",
    "Julia", "Kees", "Lars", "Lotte", "Maarten", "Noor", "Olivia", "Pieter", "Quinten",
    "Ruth", "Sanne", "Thomas", "Zoë", "Émile", "Sophie", "Liam", "Mila", "Noah", "Fatima",
    "Mohammed", "Yara", "Wouter",
]
LAST_NAMES = [
    "de Vries", "Jansen", "van den Berg", "Bakker", "Visser", "Smit", "Meijer", "de Boer",
    "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks", "van Dijk", "Müller",
    "Dubois", "Smith", "O'Brien", "El Amrani", "Yılmaz", "Janssens", "Claes", "Brouwer",
]


def person_name(rng):
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def random_date(rng, start, end):
    """A date in [start, end], both datetime.date."""
    span = (end - start).days
    return start + datetime.timedelta(days=rng.randint(0, span))


def decimal_text(units, scale):
    """Integer units of 10^-scale as text with exactly `scale` digits."""
    sign = "-" if units < 0 else ""
    units = abs(units)
    if scale == 0:
        return f"{sign}{units}"
    p = 10 ** scale
    return f"{sign}{units // p}.{units % p:0{scale}d}"


# ---- invoices ----

BANKS = ["ABNA", "INGB", "RABO", "SNSB", "TRIO", "BUNQ", "ASNB"]
STATUSES = [("paid", 55), ("open", 25), ("overdue", 15), ("void", 5)]

NOTE_SENTENCES = [
    "Late payment reminder sent to the customer.",
    "Factuur verstuurd per e-mail.",
    "Customer asked for a copy of the facturen of last quarter.",
    "Betaling ontvangen, dank u wel.",
    "Second reminder: late payment fee applies.",
    "Credit note issued for a returned item.",
    "Klant vraagt om een gespreide betaling.",
    "Invoice disputed; waiting for the purchase order number.",
    "De factuur is gecorrigeerd na overleg.",
    "Paid by bank transfer, reference on the bankafschrift.",
    "Herinnering verstuurd wegens late betaling.",
    "Discount of two percent for early payment.",
    "Facturen samengevoegd tot één maandoverzicht.",
    "Customer moved; new address on file.",
    "Incasso mislukt, opnieuw aangeboden.",
    "Partial payment received, remainder due next month.",
]


def iban(rng):
    """A Dutch IBAN with valid check digits (ISO 13616, mod 97)."""
    bank = rng.choice(BANKS)
    account = f"{rng.randint(0, 9_999_999_999):010d}"
    bban = bank + account
    digits = "".join(str(int(c, 36)) for c in bban + "NL00")
    check = 98 - int(digits) % 97
    return f"NL{check:02d}{bban}"


def weighted(rng, pairs):
    total = sum(w for _, w in pairs)
    x = rng.randrange(total)
    for value, w in pairs:
        if x < w:
            return value
        x -= w
    return pairs[-1][0]


def invoice(rng, seq, norgs):
    issued = random_date(rng, datetime.date(2023, 1, 1), datetime.date(2025, 12, 31))
    # Amounts from 10.00 to 50,000.00, most of them small; integers only, so that the
    # output does not depend on the platform's floating point.
    cents = rng.randint(1000, rng.choice([10_000, 100_000, 1_000_000, 5_000_000]))
    if rng.random() < 0.5:
        cents -= cents % 100
    nnotes = rng.randint(1, 3)
    return {
        "id": f"INV-{seq:06d}",
        "doc": {
            "invoice_no": f"F{issued.year}-{seq:06d}",
            "org_id": f"ORG-{rng.randint(1, norgs):04d}",
            "status": weighted(rng, STATUSES),
            "issued_on": issued.isoformat(),
            "amount": decimal_text(cents, 2),
            "customer": {"name": person_name(rng), "iban": iban(rng)},
            "notes": " ".join(rng.sample(NOTE_SENTENCES, nnotes)),
            "internal_ref": f"REF-{rng.getrandbits(32):08x}",
        },
    }


# ---- patients ----

CITIES = [
    ("Amsterdam", 18), ("Rotterdam", 14), ("Utrecht", 10), ("Den Haag", 12), ("Eindhoven", 6),
    ("Groningen", 5), ("Tilburg", 5), ("Almere", 4), ("Breda", 4), ("Nijmegen", 4),
    ("Maastricht", 3), ("Leiden", 3), ("Zwolle", 3), ("Delft", 2), ("Ede", 1),
]
WARDS = ["cardiology", "oncology", "neurology", "pediatrics", "surgery", "geriatrics",
         "internal medicine", "emergency"]
DIAGNOSES = [
    ("E11", "Type 2 diabetes mellitus"), ("I10", "Essential hypertension"),
    ("J45", "Asthma"), ("I21", "Acute myocardial infarction"), ("C50", "Breast cancer"),
    ("F32", "Depressive episode"), ("M54", "Dorsalgia"), ("J18", "Pneumonia"),
    ("N18", "Chronic kidney disease"), ("E66", "Obesity"), ("G40", "Epilepsy"),
    ("K35", "Acute appendicitis"),
]
CLINICAL_SENTENCES = [
    "Patient reports shortness of breath on exertion.",
    "Blood pressure elevated at admission; started on medication.",
    "No known drug allergies.",
    "Complains of chest pain radiating to the left arm.",
    "Glucose levels poorly controlled despite metformin.",
    "Follow-up scheduled in six weeks.",
    "Mild fever and productive cough for three days.",
    "Family history of cardiovascular disease.",
    "Advised weight loss and increased physical activity.",
    "Seizure free since the last medication change.",
    "Lower back pain worsens when sitting.",
    "Referred to the dietitian for nutritional counselling.",
    "Chest X-ray shows consolidation in the right lower lobe.",
    "Patient is a former smoker, quit ten years ago.",
]


def patient(rng, seq):
    female = rng.random() < 0.5
    height = rng.randint(150, 185) if female else rng.randint(160, 200)
    bmi_target = rng.randint(170, 380)  # tenths
    # weight (tenths of kg) from the target BMI, so that BMIs look real.
    weight = bmi_target * height * height // 10000
    weight += rng.randint(-5, 5)
    # bmi in tenths, rounded half up: weight/10 / (height/100)^2
    bmi = (weight * 10000 * 2 + height * height) // (2 * height * height)
    admitted = datetime.datetime(2023, 1, 1) + datetime.timedelta(
        seconds=rng.randint(0, 3 * 365 * 86400 - 1))
    offset = rng.choice(["Z", "+01:00", "+02:00"])
    code, dname = rng.choice(DIAGNOSES)
    nnotes = rng.randint(1, 4)
    return {
        "id": f"PAT-{seq:06d}",
        "doc": {
            "patient_no": f"P{seq:07d}",
            "name": person_name(rng),
            "birth_date": random_date(rng, datetime.date(1930, 1, 1),
                                      datetime.date(2005, 12, 31)).isoformat(),
            "city": weighted(rng, CITIES),
            "ward": rng.choice(WARDS),
            "admitted_at": admitted.strftime("%Y-%m-%dT%H:%M:%S") + offset,
            "weight_kg": decimal_text(weight, 1),
            "height_cm": height,
            "bmi": decimal_text(bmi, 1),
            "diagnosis": {"code": code, "name": dname},
            "clinical_notes": " ".join(rng.sample(CLINICAL_SENTENCES, nnotes)),
            "smoker": rng.random() < 0.2,
        },
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["invoices", "patients"])
    ap.add_argument("--count", type=int, default=1000, help="documents (default 1000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    args = ap.parse_args()
    if args.count < 0:
        ap.error("--count must be 0 or more")

    rng = random.Random(args.seed)
    norgs = max(10, args.count // 1000)
    out = sys.stdout.buffer
    for seq in range(1, args.count + 1):
        rec = invoice(rng, seq, norgs) if args.kind == "invoices" else patient(rng, seq)
        line = json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
        out.write(line.encode("utf-8") + b"\n")
    out.flush()


if __name__ == "__main__":
    main()
