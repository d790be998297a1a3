/*
 * generate.c: `veil generate invoices|patients`, deterministic sample documents for the two
 * example policies (examples/invoices.yaml, examples/patients.yaml).
 *
 * Output is NDJSON, one {"id":..,"doc":{..}} a line, ready for `veil_bulk` or POST .../bulk.
 * The same kind, count and seed give byte-identical output on every machine: the generator
 * is xoshiro256** seeded through splitmix64, numbers are drawn by rejection (no modulo bias,
 * no platform-dependent arithmetic), and nothing on the output path uses floating point:
 * amounts, weights and BMIs are integer units written with a fixed number of digits, dates
 * come from integer day counts. Every document is valid for its policy: decimals have
 * exactly the field's scale, dates are ISO 8601, datetimes RFC 3339 with an offset, and the
 * strings come from fixed word lists, so nothing needs JSON escaping.
 *
 * Document `seq` depends on the seed and on the documents before it (and, for invoices, on
 * the number of organisations, max(10, count / 1000)).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define GEN_COUNT_DEFAULT 1000u
#define GEN_COUNT_MAX 100000000u
#define GEN_OUT_CHUNK (1u << 20)
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the generator: xoshiro256** (Blackman and Vigna), seeded by splitmix64 ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t next64(struct vl_gen *g)
{
    uint64_t *s = g->s;
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform in [0, n), n > 0, by rejection of the short last interval. */
static uint64_t below(struct vl_gen *g, uint64_t n)
{
    uint64_t limit = -n % n; /* 2^64 mod n */
    uint64_t r;
    do {
        r = next64(g);
    } while (r < limit);
    return r % n;
}

/* Uniform in [lo, hi]. */
static int64_t between(struct vl_gen *g, int64_t lo, int64_t hi)
{
    return lo + (int64_t)below(g, (uint64_t)(hi - lo) + 1);
}

/* True with probability num / den. */
static int chance(struct vl_gen *g, uint64_t num, uint64_t den)
{
    return below(g, den) < num;
}

struct weighted {
    const char *value;
    unsigned weight;
};

static const char *pick_weighted(struct vl_gen *g, const struct weighted *w, size_t n)
{
    unsigned total = 0;
    for (size_t i = 0; i < n; i++) {
        total += w[i].weight;
    }
    uint64_t x = below(g, total);
    for (size_t i = 0; i < n; i++) {
        if (x < w[i].weight) {
            return w[i].value;
        }
        x -= w[i].weight;
    }
    return w[n - 1].value;
}

/* ---- word lists ---- */

static const char *const first_names[] = {
    "Anna",   "Bram",   "Chloé",  "Daan",    "Emma",     "Finn",    "Günther", "Hanna",
    "Isa",    "Jan",    "Julia",  "Kees",    "Lars",     "Lotte",   "Maarten", "Noor",
    "Olivia", "Pieter", "Sanne",  "Thomas",  "Zoë",      "Émile",   "Sophie",  "Liam",
    "Mila",   "Noah",   "Fatima", "Mohammed", "Yara",    "Wouter",  "Grace",   "Oliver",
    "Ruth",   "Henk",   "Ingrid", "George",  "Charlotte", "Sem",    "Fenna",   "James",
};

static const char *const last_names[] = {
    "de Vries", "Jansen",   "van den Berg", "Bakker",   "Visser",  "Smit",    "Meijer",
    "de Boer",  "Mulder",   "de Groot",     "Bos",      "Vos",     "Peters",  "Hendriks",
    "van Dijk", "Müller",   "Dubois",       "Smith",    "O'Brien", "El Amrani", "Yılmaz",
    "Janssens", "Claes",    "Brouwer",      "Williams", "Taylor",  "van Leeuwen", "Dekker",
};

static const char *const banks[] = {"ABNA", "INGB", "RABO", "SNSB", "TRIO", "BUNQ", "ASNB"};

static const struct weighted statuses[] = {
    {"paid", 55}, {"open", 25}, {"overdue", 15}, {"void", 5},
};

/* English and Dutch, so that stemming per language can be seen at work. */
static const char *const note_sentences[] = {
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
    "Tweede herinnering: de factuur staat nog open.",
    "Invoice sent again after a late payment complaint.",
};

/* Sizes roughly as the cities' populations. The two islands are small enough that, among a
 * few thousand patients, their groups fall under the researcher's min_group_size. */
static const struct weighted cities[] = {
    {"Amsterdam", 180}, {"Rotterdam", 140}, {"Den Haag", 120}, {"Utrecht", 100},
    {"Eindhoven", 60},  {"Groningen", 50},  {"Tilburg", 50},   {"Almere", 45},
    {"Breda", 40},      {"Nijmegen", 40},   {"Apeldoorn", 35}, {"Haarlem", 35},
    {"Arnhem", 32},     {"Enschede", 32},   {"Maastricht", 28}, {"Leiden", 28},
    {"Zwolle", 28},     {"Delft", 22},      {"Ede", 18},       {"Vlieland", 2},
    {"Schiermonnikoog", 1},
};

static const char *const wards[] = {
    "cardiology", "oncology",   "neurology",         "pediatrics",
    "surgery",    "geriatrics", "internal medicine", "emergency",
};

static const struct {
    const char *code;
    const char *name;
} diagnoses[] = {
    {"E11", "Type 2 diabetes mellitus"}, {"I10", "Essential hypertension"},
    {"J45", "Asthma"},                   {"I21", "Acute myocardial infarction"},
    {"C50", "Breast cancer"},            {"F32", "Depressive episode"},
    {"M54", "Dorsalgia"},                {"J18", "Pneumonia"},
    {"N18", "Chronic kidney disease"},   {"E66", "Obesity"},
    {"G40", "Epilepsy"},                 {"K35", "Acute appendicitis"},
};

static const char *const clinical_sentences[] = {
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
    "Wound healing well, no signs of infection.",
    "Mood low for several weeks, sleeping poorly.",
};

/* ---- writing a line ---- */

struct line {
    char *p;
    size_t n;
};

static void put_str(struct line *l, const char *s)
{
    size_t k = strlen(s);
    if (l->n + k >= VL_GEN_LINE_MAX) {
        k = VL_GEN_LINE_MAX - 1 - l->n; /* cannot happen with the lists above */
    }
    memcpy(l->p + l->n, s, k);
    l->n += k;
}

static void put_char(struct line *l, char c)
{
    if (l->n + 1 < VL_GEN_LINE_MAX) {
        l->p[l->n++] = c;
    }
}

/* v in decimal, at least `width` digits (zero-padded). */
static void put_uint(struct line *l, uint64_t v, int width)
{
    char tmp[24];
    int k = 0;
    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (k < width) {
        tmp[k++] = '0';
    }
    while (k > 0) {
        put_char(l, tmp[--k]);
    }
}

/* Integer units of 10^-scale as a decimal with exactly `scale` digits after the point. */
static void put_decimal(struct line *l, int64_t units, int scale)
{
    uint64_t u = units < 0 ? (uint64_t)0 - (uint64_t)units : (uint64_t)units;
    uint64_t p = 1;
    for (int i = 0; i < scale; i++) {
        p *= 10;
    }
    if (units < 0) {
        put_char(l, '-');
    }
    put_uint(l, u / p, 1);
    if (scale > 0) {
        put_char(l, '.');
        put_uint(l, u % p, scale);
    }
}

static void put_hex32(struct line *l, uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 28; i >= 0; i -= 4) {
        put_char(l, digits[(v >> i) & 15u]);
    }
}

/* "key": (the comma before it when not first). */
static void put_key(struct line *l, const char *key, int first)
{
    if (!first) {
        put_char(l, ',');
    }
    put_char(l, '"');
    put_str(l, key);
    put_str(l, "\":");
}

static void put_qstr(struct line *l, const char *s)
{
    put_char(l, '"');
    put_str(l, s);
    put_char(l, '"');
}

/* ---- dates from day counts (days since 1970-01-01, proleptic Gregorian) ---- */

struct ymd {
    int64_t y;
    unsigned m, d;
};

/* Howard Hinnant's civil_from_days. */
static struct ymd civil_from_days(int64_t z)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    uint64_t doe = (uint64_t)(z - era * 146097);
    uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = (int64_t)yoe + era * 400;
    uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    uint64_t mp = (5 * doy + 2) / 153;
    unsigned d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    unsigned m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    return (struct ymd){.y = y + (m <= 2), .m = m, .d = d};
}

/* Days since 1970-01-01 of y-m-d. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    uint64_t yoe = (uint64_t)(y - era * 400);
    uint64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    uint64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void put_date(struct line *l, struct ymd t)
{
    put_uint(l, (uint64_t)t.y, 4);
    put_char(l, '-');
    put_uint(l, t.m, 2);
    put_char(l, '-');
    put_uint(l, t.d, 2);
}

static struct ymd random_date(struct vl_gen *g, int64_t first, int64_t last)
{
    return civil_from_days(between(g, first, last));
}

/* ---- shared fields ---- */

static void put_person(struct line *l, struct vl_gen *g)
{
    put_char(l, '"');
    put_str(l, first_names[below(g, NELEM(first_names))]);
    put_char(l, ' ');
    put_str(l, last_names[below(g, NELEM(last_names))]);
    put_char(l, '"');
}

/* k distinct sentences (k <= n), in the order drawn, separated by spaces. */
static void put_sentences(struct line *l, struct vl_gen *g, const char *const *list, size_t n,
                          size_t k)
{
    size_t chosen[8];
    if (k > NELEM(chosen)) {
        k = NELEM(chosen);
    }
    put_char(l, '"');
    for (size_t i = 0; i < k; i++) {
        size_t c;
        int again;
        do {
            c = (size_t)below(g, n);
            again = 0;
            for (size_t j = 0; j < i; j++) {
                again |= chosen[j] == c;
            }
        } while (again);
        chosen[i] = c;
        if (i > 0) {
            put_char(l, ' ');
        }
        put_str(l, list[c]);
    }
    put_char(l, '"');
}

/* A Dutch IBAN with valid check digits (ISO 13616: mod 97 of BBAN + "NL00"). */
static void put_iban(struct line *l, struct vl_gen *g)
{
    char bban[15];
    memcpy(bban, banks[below(g, NELEM(banks))], 4);
    uint64_t account = below(g, 10000000000u);
    for (int i = 13; i >= 4; i--) {
        bban[i] = (char)('0' + account % 10);
        account /= 10;
    }
    bban[14] = '\0';
    static const char suffix[] = "NL00";
    unsigned r = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (const char *c = pass == 0 ? bban : suffix; *c != '\0'; c++) {
            r = *c >= 'A' && *c <= 'Z' ? (r * 100 + (unsigned)(*c - 'A' + 10)) % 97
                                       : (r * 10 + (unsigned)(*c - '0')) % 97;
        }
    }
    put_str(l, "\"NL");
    put_uint(l, 98 - r, 2);
    put_str(l, bban);
    put_char(l, '"');
}

/* ---- the documents ---- */

static void put_invoice(struct line *l, struct vl_gen *g, uint64_t seq)
{
    struct ymd issued =
        random_date(g, days_from_civil(2023, 1, 1), days_from_civil(2025, 12, 31));
    /* 10.00 up to 50,000.00, most of them small; 2% are credit notes (negative). */
    static const int64_t tops[] = {10000, 100000, 1000000, 5000000};
    int64_t cents = between(g, 1000, tops[below(g, NELEM(tops))]);
    if (chance(g, 1, 2)) {
        cents -= cents % 100;
    }
    if (chance(g, 2, 100)) {
        cents = -cents;
    }
    uint64_t org = 1 + below(g, g->norgs);

    put_str(l, "{\"id\":\"INV-");
    put_uint(l, seq, 6);
    put_str(l, "\",\"doc\":{");
    put_key(l, "invoice_no", 1);
    put_str(l, "\"F");
    put_uint(l, (uint64_t)issued.y, 4);
    put_char(l, '-');
    put_uint(l, seq, 6);
    put_char(l, '"');
    put_key(l, "org_id", 0);
    put_str(l, "\"ORG-");
    put_uint(l, org, 4);
    put_char(l, '"');
    put_key(l, "status", 0);
    put_qstr(l, pick_weighted(g, statuses, NELEM(statuses)));
    put_key(l, "issued_on", 0);
    put_char(l, '"');
    put_date(l, issued);
    put_char(l, '"');
    put_key(l, "amount", 0);
    put_char(l, '"');
    put_decimal(l, cents, 2);
    put_char(l, '"');
    put_key(l, "customer", 0);
    put_char(l, '{');
    put_key(l, "name", 1);
    put_person(l, g);
    put_key(l, "iban", 0);
    put_iban(l, g);
    put_char(l, '}');
    put_key(l, "notes", 0);
    put_sentences(l, g, note_sentences, NELEM(note_sentences), 1 + (size_t)below(g, 2));
    put_key(l, "internal_ref", 0);
    put_str(l, "\"REF-");
    put_hex32(l, (uint32_t)(next64(g) >> 32));
    put_str(l, "\"}}\n");
}

static void put_patient(struct line *l, struct vl_gen *g, uint64_t seq)
{
    int female = chance(g, 1, 2);
    int64_t height = female ? between(g, 150, 185) : between(g, 160, 200);
    int64_t bmi_target = between(g, 170, 380); /* tenths */
    /* weight in tenths of kg from the target BMI, so that BMIs look real */
    int64_t weight = bmi_target * height * height / 10000 + between(g, -5, 5);
    /* BMI in tenths, rounded half up: (weight / 10) / (height / 100)^2 * 10 */
    int64_t bmi = (weight * 10000 * 2 + height * height) / (2 * height * height);
    struct ymd birth =
        random_date(g, days_from_civil(1930, 1, 1), days_from_civil(2005, 12, 31));
    int64_t admitted = between(g, 0, 3 * 365 * 86400 - 1); /* seconds since 2023-01-01 */
    struct ymd aday = civil_from_days(days_from_civil(2023, 1, 1) + admitted / 86400);
    int64_t secs = admitted % 86400;
    static const char *const offsets[] = {"Z", "+01:00", "+02:00"};
    const char *offset = offsets[below(g, NELEM(offsets))];
    const char *city = pick_weighted(g, cities, NELEM(cities));
    const char *ward = wards[below(g, NELEM(wards))];
    size_t dx = (size_t)below(g, NELEM(diagnoses));

    put_str(l, "{\"id\":\"PAT-");
    put_uint(l, seq, 6);
    put_str(l, "\",\"doc\":{");
    put_key(l, "patient_no", 1);
    put_str(l, "\"P");
    put_uint(l, seq, 7);
    put_char(l, '"');
    put_key(l, "name", 0);
    put_person(l, g);
    put_key(l, "birth_date", 0);
    put_char(l, '"');
    put_date(l, birth);
    put_char(l, '"');
    put_key(l, "city", 0);
    put_qstr(l, city);
    put_key(l, "ward", 0);
    put_qstr(l, ward);
    put_key(l, "admitted_at", 0);
    put_char(l, '"');
    put_date(l, aday);
    put_char(l, 'T');
    put_uint(l, (uint64_t)(secs / 3600), 2);
    put_char(l, ':');
    put_uint(l, (uint64_t)(secs / 60 % 60), 2);
    put_char(l, ':');
    put_uint(l, (uint64_t)(secs % 60), 2);
    put_str(l, offset);
    put_char(l, '"');
    put_key(l, "weight_kg", 0);
    put_char(l, '"');
    put_decimal(l, weight, 1);
    put_char(l, '"');
    put_key(l, "height_cm", 0);
    put_uint(l, (uint64_t)height, 1);
    put_key(l, "bmi", 0);
    put_char(l, '"');
    put_decimal(l, bmi, 1);
    put_char(l, '"');
    put_key(l, "diagnosis", 0);
    put_char(l, '{');
    put_key(l, "code", 1);
    put_qstr(l, diagnoses[dx].code);
    put_key(l, "name", 0);
    put_qstr(l, diagnoses[dx].name);
    put_char(l, '}');
    put_key(l, "clinical_notes", 0);
    put_sentences(l, g, clinical_sentences, NELEM(clinical_sentences), 1 + (size_t)below(g, 3));
    put_key(l, "smoker", 0);
    put_str(l, chance(g, 1, 5) ? "true" : "false");
    put_str(l, "}}\n");
}

/* ---- API shared with demo.c ---- */

int vl_gen_kind_parse(const char *name, enum vl_gen_kind *out)
{
    if (strcmp(name, "invoices") == 0) {
        *out = VL_GEN_INVOICES;
        return 0;
    }
    if (strcmp(name, "patients") == 0) {
        *out = VL_GEN_PATIENTS;
        return 0;
    }
    return -1;
}

void vl_gen_init(struct vl_gen *g, enum vl_gen_kind kind, uint64_t count, uint64_t seed)
{
    memset(g, 0, sizeof(*g));
    g->kind = kind;
    g->norgs = count / 1000 > 10 ? count / 1000 : 10;
    uint64_t x = seed;
    for (size_t i = 0; i < 4; i++) {
        g->s[i] = splitmix64(&x);
    }
}

size_t vl_gen_line(struct vl_gen *g, uint64_t seq, char line[VL_GEN_LINE_MAX])
{
    struct line l = {.p = line, .n = 0};
    if (g->kind == VL_GEN_INVOICES) {
        put_invoice(&l, g, seq);
    } else {
        put_patient(&l, g, seq);
    }
    line[l.n] = '\0';
    return l.n;
}

/* ---- the command ---- */

static const char generate_usage[] =
    "usage: veil generate invoices|patients [--count N] [--seed S]\n\n"
    "Prints N sample documents (default 1000) for examples/invoices.yaml or\n"
    "examples/patients.yaml as NDJSON, one {\"id\":..,\"doc\":{..}} a line, ready for\n"
    "`veil import` or POST /v1/collections/{c}/bulk. The same kind, N and seed S (default 1)\n"
    "give byte-identical output on every machine.\n\n"
    "Invoices (INV-000001..): max(10, N/1000) organisations ORG-0001.., statuses paid, open,\n"
    "overdue and void (55/25/15/5%), issue dates in 2023-2025, amounts with two decimals\n"
    "(2% negative credit notes), valid Dutch IBANs, notes mixing English and Dutch.\n"
    "Patients (PAT-000001..): 21 Dutch cities of skewed sizes, consistent height, weight and\n"
    "BMI, RFC 3339 admission times, ICD-10 diagnosis codes, English clinical notes.\n";

/* Parses a decimal integer in [0, max]; -1 when it is not one. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (s[0] < '0' || s[0] > '9') {
        return -1;
    }
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

int vl_cmd_generate(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"count", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t count = GEN_COUNT_DEFAULT, seed = 1;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_u64(optarg, GEN_COUNT_MAX, &count) != 0) {
                return vl_cli_error(2, "--count is a whole number from 0 to %u",
                                    GEN_COUNT_MAX);
            }
            break;
        case 's':
            if (parse_u64(optarg, UINT64_MAX, &seed) != 0) {
                return vl_cli_error(2, "--seed is a whole number from 0 to %" PRIu64,
                                    UINT64_MAX);
            }
            break;
        case 'h': fputs(generate_usage, stdout); return 0;
        default: fputs(generate_usage, stderr); return 2;
        }
    }
    enum vl_gen_kind kind;
    if (optind + 1 != argc || vl_gen_kind_parse(argv[optind], &kind) != 0) {
        fputs(generate_usage, stderr);
        return 2;
    }
    char *out = malloc(GEN_OUT_CHUNK);
    if (out == NULL) {
        return vl_cli_error(1, "out of memory");
    }
    struct vl_gen g;
    vl_gen_init(&g, kind, count, seed);
    size_t n = 0;
    int failed = 0;
    for (uint64_t seq = 1; seq <= count && !failed; seq++) {
        if (GEN_OUT_CHUNK - n < VL_GEN_LINE_MAX) {
            failed = fwrite(out, 1, n, stdout) != n;
            n = 0;
        }
        n += vl_gen_line(&g, seq, out + n);
    }
    if (!failed && n > 0) {
        failed = fwrite(out, 1, n, stdout) != n;
    }
    failed |= fflush(stdout) != 0;
    free(out);
    return failed ? vl_cli_error(1, "cannot write the output") : 0;
}
