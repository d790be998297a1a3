/*
 * import.c: `veil import COLLECTION FILE|- [--format ndjson|csv] [--batch N]`, a bulk load
 * over HTTP through POST /v1/collections/C/bulk, exactly as an application would do it.
 *
 * The input is read as a stream, never whole, and sent in batches of at most --batch
 * documents and BATCH_BYTES bytes a request. NDJSON lines ({"id":..,"doc":{..}}, as the bulk
 * route takes them) are checked to be JSON and sent as written, so numbers keep their
 * digits. CSV records become such lines: the header row names the fields (a dotted name
 * nests: customer.name), a column `id` holds the document id (without one, or with an empty
 * cell, the server makes one up), an empty cell leaves its field out, and every cell is typed
 * by the collection's policy, read once with GET /v1/collections/C (integers become JSON
 * integers, booleans true/false, `json` fields the JSON the cell holds; everything else,
 * decimals included, stays a string, so nothing is rounded on the way).
 *
 * Every line that fails, here or at the server, is reported on stderr with its line number
 * in the input (a CSV record by the line it starts on), and the exit status is then 1, so a
 * script that checks it cannot mistake a partial load for a whole one. A batch the server
 * finds too large (413) is split in halves and sent again; 429 is waited out as its
 * Retry-After says. Any other refusal of a whole batch (token, role, collection, a store
 * down) stops the import: what was stored stays stored, and the summary says so.
 *
 * Progress goes to stderr: a bar redrawn in place when stderr is a terminal (documents,
 * documents a second, and the share done and time left when the input's size is known),
 * otherwise a line every PROGRESS_EVERY_S seconds. The summary goes to stdout.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"

#define BATCH_DEFAULT 1000u
#define BATCH_MAX 100000u
#define BATCH_BYTES (4u * 1024u * 1024u)
#define LINE_MAX_BYTES (16u * 1024u * 1024u)
#define CSV_COLUMNS_MAX 4096u
#define READ_CHUNK 65536u
#define PROGRESS_EVERY_S 5.0
#define TTY_REDRAW_S 0.1
#define BAR_WIDTH 24
#define RETRIES_MAX 50
#define FAILS_HELD 10000u /* failures held before the batch is sent anyway */
#define NDJSON_CTYPE "application/x-ndjson"

static const char import_usage[] =
    "usage: veil import COLLECTION FILE|- [--format ndjson|csv] [--batch N]\n"
    "\n"
    "Loads documents into COLLECTION through the server's bulk route\n"
    "(POST /v1/collections/COLLECTION/bulk), N documents a request (default 1000).\n"
    "\n"
    "  ndjson  one {\"id\": ID, \"doc\": {...}} a line, as `veil generate` prints them; the\n"
    "          id may be left out (the server makes one up). Blank lines are skipped.\n"
    "  csv     a header row, then one document a row (RFC 4180 quoting). A column named\n"
    "          id is the document id; a dotted name such as customer.name fills a nested\n"
    "          field; an empty cell leaves its field out. Cells are typed by the\n"
    "          collection's policy: integer fields become numbers, boolean fields true or\n"
    "          false, json fields the JSON in the cell; the rest stays text.\n"
    "\n"
    "The format is csv for a FILE ending in .csv, else ndjson, unless --format says.\n"
    "Progress goes to stderr (a bar on a terminal), every line that failed is named there\n"
    "with its line number in FILE, and a summary goes to stdout. Exit status 1 when any\n"
    "line failed or the import stopped early; what was stored stays stored.\n";

static const char import_env_help[] =
    "\n"
    "The server is $VEIL_ADDR (default http://127.0.0.1:8470); the bearer token is\n"
    "$VEIL_TOKEN, of a role that may write the collection.\n";

enum format { FMT_NDJSON, FMT_CSV };

/* A buffered byte source that counts lines and bytes. */
struct input {
    FILE *f;
    unsigned char buf[READ_CHUNK];
    size_t pos, len;
    bool eof;
    bool error;
    unsigned long long line;  /* the number of the line being read (1-based) */
    unsigned long long bytes; /* consumed so far */
};

static bool fill(struct input *in)
{
    if (in->pos < in->len) {
        return true;
    }
    if (in->eof) {
        return false;
    }
    in->pos = 0;
    in->len = fread(in->buf, 1, sizeof(in->buf), in->f);
    if (in->len == 0) {
        in->eof = true;
        in->error = ferror(in->f) != 0;
        return false;
    }
    return true;
}

static int in_getc(struct input *in)
{
    if (!fill(in)) {
        return EOF;
    }
    in->bytes++;
    return in->buf[in->pos++];
}

static int in_peek(struct input *in)
{
    return fill(in) ? in->buf[in->pos] : EOF;
}

/* Skips a UTF-8 byte order mark at the very start. */
static void skip_bom(struct input *in)
{
    if (fill(in) && in->len - in->pos >= 3 && memcmp(in->buf + in->pos, "\xEF\xBB\xBF", 3) == 0) {
        in->pos += 3;
        in->bytes += 3;
    }
}

/* The next line, without its "\n" or "\r\n", into `line` (bounded by its maximum): 1, or 0
 * at the end of the input. A longer line is consumed whole and *too_long set. */
static int read_line(struct input *in, struct vl_buf *line, bool *too_long)
{
    vl_buf_reset(line);
    *too_long = false;
    if (!fill(in)) {
        return 0;
    }
    in->line++;
    while (fill(in)) {
        const unsigned char *p = in->buf + in->pos;
        size_t avail = in->len - in->pos;
        const unsigned char *nl = memchr(p, '\n', avail);
        size_t take = nl != NULL ? (size_t)(nl - p) : avail;
        if (!*too_long && vl_buf_append(line, p, take) != VEIL_OK) {
            *too_long = true;
        }
        in->pos += take + (nl != NULL);
        in->bytes += take + (nl != NULL);
        if (nl != NULL) {
            break;
        }
    }
    if (!*too_long && line->len > 0 && line->data[line->len - 1] == '\r') {
        line->data[--line->len] = '\0';
    }
    return 1;
}

/* ---- CSV ---- */

struct record {
    struct vl_buf text;      /* the cells, each NUL-terminated */
    size_t off[CSV_COLUMNS_MAX];
    size_t len[CSV_COLUMNS_MAX];
    size_t n;
    unsigned long long first; /* the line it starts on */
};

/* Consumes the rest of the current physical line. */
static void skip_to_eol(struct input *in)
{
    int c;
    while ((c = in_getc(in)) != EOF && c != '\n') {
    }
}

static int end_cell(struct record *r, size_t start, const char **err)
{
    if (r->n == CSV_COLUMNS_MAX) {
        *err = "has more cells than the limit of 4096";
        return -1;
    }
    r->off[r->n] = start;
    r->len[r->n] = r->text.len - start;
    r->n++;
    if (vl_buf_put_u8(&r->text, '\0') != VEIL_OK) {
        *err = "is longer than 16 MiB";
        return -1;
    }
    return 0;
}

/* One CSV record (RFC 4180: cells separated by commas; a cell in double quotes may hold
 * commas, line breaks and "" for a quote). 1: a record; 0: the end of the input; -1: a
 * malformed record, consumed to the end of its line, *err saying what is wrong. Lines that
 * are wholly empty are skipped. */
static int read_record(struct input *in, struct record *r, const char **err)
{
    int c;
    vl_buf_reset(&r->text);
    r->n = 0;
    for (;;) {
        c = in_getc(in);
        if (c == EOF) {
            return 0;
        }
        in->line++;
        if (c == '\r' && in_peek(in) == '\n') {
            c = in_getc(in);
        }
        if (c != '\n') {
            break;
        }
    }
    r->first = in->line;
    for (;;) {
        size_t start = r->text.len;
        bool big = false;
        if (c == '"') {
            for (;;) {
                c = in_getc(in);
                if (c == EOF) {
                    *err = "has a quoted cell that is never closed";
                    return -1;
                }
                if (c == '"') {
                    if (in_peek(in) != '"') {
                        break;
                    }
                    c = in_getc(in);
                } else if (c == '\n') {
                    in->line++;
                }
                big |= vl_buf_put_u8(&r->text, (uint8_t)c) != VEIL_OK;
            }
            c = in_getc(in);
            if (c == '\r' && in_peek(in) == '\n') {
                c = in_getc(in);
            }
            if (c != ',' && c != '\n' && c != EOF) {
                *err = "has text after the closing quote of a cell";
                skip_to_eol(in);
                return -1;
            }
        } else {
            while (c != ',' && c != '\n' && c != EOF) {
                if (c == '\r' && in_peek(in) == '\n') {
                    c = in_getc(in);
                    break;
                }
                big |= vl_buf_put_u8(&r->text, (uint8_t)c) != VEIL_OK;
                c = in_getc(in);
            }
        }
        if (big) {
            *err = "is longer than 16 MiB";
            if (c != '\n' && c != EOF) {
                skip_to_eol(in);
            }
            return -1;
        }
        if (end_cell(r, start, err) != 0) {
            if (c != '\n' && c != EOF) {
                skip_to_eol(in);
            }
            return -1;
        }
        if (c != ',') {
            return 1;
        }
        c = in_getc(in);
    }
}

struct column {
    char *path;       /* the field path, or NULL for the id column */
    const char *type; /* the policy's type of the field, or NULL when not listed */
};

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t')) {
        (*n)--;
    }
}

/* A cell as the JSON value its field's type asks for; a cell that does not fit stays a
 * string, so that the server names the field and the type it wants. NULL: not UTF-8. */
static json_t *typed_cell(const char *type, const char *s, size_t n)
{
    const char *t = s;
    size_t tn = n;
    trim(&t, &tn);
    if (type != NULL && strcmp(type, "integer") == 0 && tn > 0 && tn < 24) {
        char tmp[24];
        memcpy(tmp, t, tn);
        tmp[tn] = '\0';
        size_t digits = strspn(tmp + (tmp[0] == '-' || tmp[0] == '+'), "0123456789");
        if (digits > 0 && digits == tn - (tmp[0] == '-' || tmp[0] == '+')) {
            errno = 0;
            long long v = strtoll(tmp, NULL, 10);
            if (errno == 0) {
                return json_integer((json_int_t)v);
            }
        }
    } else if (type != NULL && strcmp(type, "boolean") == 0) {
        if (tn == 4 && strncasecmp(t, "true", 4) == 0) {
            return json_true();
        }
        if (tn == 5 && strncasecmp(t, "false", 5) == 0) {
            return json_false();
        }
    } else if (type != NULL && strcmp(type, "json") == 0) {
        json_t *v = json_loadb(s, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
        if (v != NULL) {
            return v;
        }
    } else if (type != NULL && (strcmp(type, "decimal") == 0 || strcmp(type, "date") == 0 ||
                                strcmp(type, "datetime") == 0)) {
        return json_stringn(t, tn);
    }
    return json_stringn(s, n);
}

/* Sets doc[a][b][c] for path "a.b.c", making the objects between. The header was checked:
 * no path is a prefix of another, so what is in the way is always an object. */
static int set_path(json_t *doc, const char *path, json_t *v)
{
    char key[512];
    json_t *o = doc;
    for (;;) {
        size_t k = strcspn(path, ".");
        if (k >= sizeof(key)) {
            json_decref(v);
            return -1;
        }
        memcpy(key, path, k);
        key[k] = '\0';
        if (path[k] == '\0') {
            return json_object_set_new(o, key, v);
        }
        json_t *next = json_object_get(o, key);
        if (next == NULL) {
            next = json_object();
            if (next == NULL || json_object_set_new(o, key, next) != 0) {
                json_decref(v);
                return -1;
            }
        }
        o = next;
        path += k + 1;
    }
}

/* ---- the import ---- */

struct imp {
    struct vl_client *cl;
    struct vl_answer ans;
    const char *coll;
    const char *name;
    enum format fmt;
    size_t batch_max;
    struct input *in;
    unsigned long long total; /* bytes of the input, 0 when unknown */
    json_t *fields;           /* the policy's fields, from GET /v1/collections/C */
    struct column *cols;
    size_t ncols;
    /* the batch being filled: NDJSON lines, each with its input line number */
    struct vl_buf body;
    size_t *off;
    unsigned long long *lines;
    size_t n;
    /* counts */
    unsigned long long created, replaced, failed, local_failed;
    bool stopped;
    /* progress */
    bool tty;
    bool bar_shown;
    struct timespec t0, last;
    /* failures not yet reported */
    struct failure *fails;
    size_t nfail, capfail;
};

static double since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static unsigned long long done(const struct imp *im)
{
    return im->created + im->replaced + im->failed;
}

static void clear_bar(struct imp *im)
{
    if (im->bar_shown) {
        fputs("\r\033[K", stderr);
        im->bar_shown = false;
    }
}

static void fmt_time(char *out, size_t n, double s)
{
    long t = (long)(s + 0.5);
    if (t >= 3600) {
        snprintf(out, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    } else {
        snprintf(out, n, "%ld:%02ld", t / 60, t % 60);
    }
}

static void progress(struct imp *im, bool final)
{
    double el = since(&im->t0);
    double every = im->tty ? TTY_REDRAW_S : PROGRESS_EVERY_S;
    if (final ? !im->tty : since(&im->last) < every && (im->bar_shown || !im->tty)) {
        return; /* without a terminal, the summary says the last word */
    }
    clock_gettime(CLOCK_MONOTONIC, &im->last);
    unsigned long long n = done(im) + im->local_failed;
    double rate = el > 0 ? (double)n / el : 0;
    double frac = im->total > 0 ? (double)im->in->bytes / (double)im->total : -1;
    if (frac > 1) {
        frac = 1;
    }
    char left[32] = "";
    if (frac > 0 && !final) {
        char t[24];
        fmt_time(t, sizeof(t), el * (1 - frac) / frac);
        snprintf(left, sizeof(left), ", %s left", t);
    }
    if (im->tty) {
        char bar[BAR_WIDTH + 1] = "";
        if (frac >= 0) {
            int k = (int)(frac * BAR_WIDTH + 0.5);
            for (int i = 0; i < BAR_WIDTH; i++) {
                bar[i] = i < k ? '#' : '.';
            }
            bar[BAR_WIDTH] = '\0';
            fprintf(stderr, "\r\033[Kimport %s [%s] %3.0f%%  %llu documents, %.0f documents/s%s",
                    im->coll, bar, frac * 100, n, rate, left);
        } else {
            fprintf(stderr, "\r\033[Kimport %s  %llu documents, %.0f documents/s", im->coll, n,
                    rate);
        }
        im->bar_shown = true;
        if (final) {
            fputc('\n', stderr);
            im->bar_shown = false;
        }
    } else if (frac >= 0) {
        fprintf(stderr, "veil: import: %llu documents, %.0f documents/s, %.0f%% of the input%s\n",
                n, rate, frac * 100, left);
    } else {
        fprintf(stderr, "veil: import: %llu documents, %.0f documents/s\n", n, rate);
    }
    fflush(stderr);
}

/* A line that failed, reported once the batch it belongs to is answered, so that
 * reports come in the input's order whether the line failed here or at the server. */
struct failure {
    unsigned long long line;
    char *msg;
};

static void line_failed(struct imp *im, unsigned long long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void line_failed(struct imp *im, unsigned long long line, const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL;
    va_start(ap, fmt);
    int k = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (im->nfail == im->capfail) {
        size_t cap = im->capfail ? 2 * im->capfail : 64;
        struct failure *f = realloc(im->fails, cap * sizeof(*f));
        if (f == NULL) {
            k = -1;
        } else {
            im->fails = f;
            im->capfail = cap;
        }
    }
    if (k < 0 || im->nfail == im->capfail) {
        /* Out of memory: say it now rather than not at all. */
        clear_bar(im);
        fprintf(stderr, "veil: line %llu: failed\n", line);
        free(k >= 0 ? msg : NULL);
        return;
    }
    im->fails[im->nfail].line = line;
    im->fails[im->nfail].msg = msg;
    im->nfail++;
}

static int cmp_failures(const void *a, const void *b)
{
    const struct failure *x = a, *y = b;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* "veil: line N: what" on stderr for every failure held, in the input's order. */
static void report_failures(struct imp *im)
{
    if (im->nfail == 0) {
        return;
    }
    clear_bar(im);
    qsort(im->fails, im->nfail, sizeof(*im->fails), cmp_failures);
    for (size_t i = 0; i < im->nfail; i++) {
        fprintf(stderr, "veil: line %llu: %s\n", im->fails[i].line, im->fails[i].msg);
        free(im->fails[i].msg);
    }
    im->nfail = 0;
    fflush(stderr);
}

/* Reads the server's answer to lines [lo, hi) of the batch: one NDJSON line each. */
static int take_answer(struct imp *im, size_t lo, size_t hi)
{
    const char *p = im->ans.body.data != NULL ? (const char *)im->ans.body.data : "";
    const char *end = p + im->ans.body.len;
    size_t seen = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        json_t *o = n > 0 ? json_loadb(p, n, 0, NULL) : NULL;
        p += n + (nl != NULL);
        if (n == 0) {
            continue;
        }
        json_t *jl = json_object_get(o, "line");
        json_int_t k = json_is_integer(jl) ? json_integer_value(jl) : 0;
        if (o == NULL || k < 1 || (size_t)k > hi - lo) {
            json_decref(o);
            clear_bar(im);
            return vl_cli_error(1, "the server's bulk answer is not one this batch can have");
        }
        unsigned long long line = im->lines[lo + (size_t)k - 1];
        json_int_t status = json_integer_value(json_object_get(o, "status"));
        json_t *e = json_object_get(o, "error");
        if (e == NULL && status == 201) {
            im->created++;
        } else if (e == NULL && status == 200) {
            im->replaced++;
        } else {
            const char *code = json_string_value(json_object_get(e, "code"));
            const char *msg = json_string_value(json_object_get(e, "message"));
            const char *field = json_string_value(json_object_get(e, "field"));
            im->failed++;
            if (field != NULL && field[0] != '\0') {
                line_failed(im, line, "%s: %s (%s)", code ? code : "error", msg ? msg : "",
                            field);
            } else {
                line_failed(im, line, "%s: %s", code ? code : "error", msg ? msg : "");
            }
        }
        seen++;
        json_decref(o);
    }
    if (seen != hi - lo) {
        clear_bar(im);
        return vl_cli_error(1, "the server answered %zu lines for the %zu it was sent", seen,
                            hi - lo);
    }
    return 0;
}

/* Sends lines [lo, hi) of the batch; 0 when every line got its answer, 1 when the import
 * must stop. */
static int send_lines(struct imp *im, size_t lo, size_t hi)
{
    const char *body = (const char *)im->body.data + im->off[lo];
    size_t len = (hi < im->n ? im->off[hi] : im->body.len) - im->off[lo];
    for (int tries = 0;; tries++) {
        if (vl_client_call(im->cl, "POST", im->coll, "bulk", NULL, NDJSON_CTYPE, body, len, 0,
                           &im->ans) != 0) {
            return 1;
        }
        long st = im->ans.status;
        if (st == 200) {
            return take_answer(im, lo, hi);
        }
        if (st == 413 && hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            return send_lines(im, lo, mid) != 0 ? 1 : send_lines(im, mid, hi);
        }
        if (st == 413) {
            im->failed++;
            line_failed(im, im->lines[lo], "too_large: the line is larger than the server "
                                           "takes in one request");
            return 0;
        }
        if (st == 429 && tries < RETRIES_MAX) {
            long wait = im->ans.retry_after > 0 ? im->ans.retry_after : 1;
            sleep((unsigned)(wait < 60 ? wait : 60));
            continue;
        }
        clear_bar(im);
        vl_client_print_error(&im->ans);
        return 1;
    }
}

static int flush_batch(struct imp *im)
{
    int rc = im->n > 0 ? send_lines(im, 0, im->n) : 0;
    vl_buf_reset(&im->body);
    im->n = 0;
    report_failures(im);
    progress(im, false);
    return rc;
}

/* Adds one NDJSON line (no newline in it) for input line `line`; sends the batch when it is
 * full. */
static int add_line(struct imp *im, unsigned long long line, const char *text, size_t len)
{
    if (im->n > 0 && im->body.len + len + 1 > BATCH_BYTES) {
        if (flush_batch(im) != 0) {
            return 1;
        }
    }
    im->off[im->n] = im->body.len;
    im->lines[im->n] = line;
    if (vl_buf_append(&im->body, text, len) != VEIL_OK ||
        vl_buf_put_u8(&im->body, '\n') != VEIL_OK) {
        return vl_cli_error(1, "out of memory");
    }
    im->n++;
    if (im->n == im->batch_max || im->body.len >= BATCH_BYTES || im->nfail >= FAILS_HELD) {
        return flush_batch(im);
    }
    return 0;
}

static int import_ndjson(struct imp *im)
{
    struct vl_buf line;
    bool too_long = false;
    int rc = 0;
    vl_buf_init(&line, LINE_MAX_BYTES);
    while (rc == 0 && read_line(im->in, &line, &too_long) == 1) {
        const char *s = line.data != NULL ? (const char *)line.data : "";
        if (im->nfail >= FAILS_HELD && (rc = flush_batch(im)) != 0) {
            break;
        }
        if (too_long) {
            im->local_failed++;
            line_failed(im, im->in->line, "too_large: the line is longer than %u bytes",
                        LINE_MAX_BYTES);
            continue;
        }
        if (strspn(s, " \t") == line.len) {
            continue;
        }
        json_error_t err;
        json_t *o = json_loadb(s, line.len, JSON_REJECT_DUPLICATES, &err);
        if (o == NULL) {
            im->local_failed++;
            line_failed(im, im->in->line, "bad_request: not valid JSON (column %d): %s",
                        err.column, "a line is {\"id\": STRING, \"doc\": OBJECT}");
            continue;
        }
        json_decref(o);
        rc = add_line(im, im->in->line, s, line.len);
    }
    vl_buf_free(&line);
    return rc;
}

/* Reads the header row into im->cols: an id column, field paths, and their policy types. */
static int csv_header(struct imp *im, struct record *r)
{
    const char *err = NULL;
    int k = read_record(im->in, r, &err);
    if (k == 0) {
        return vl_cli_error(1, "%s is empty: a CSV import needs a header row", im->name);
    }
    if (k < 0) {
        return vl_cli_error(1, "%s: line %llu, the header row, %s", im->name, im->in->line,
                            err);
    }
    im->cols = calloc(r->n, sizeof(*im->cols));
    if (im->cols == NULL) {
        return vl_cli_error(1, "out of memory");
    }
    im->ncols = r->n;
    bool have_id = false;
    for (size_t i = 0; i < r->n; i++) {
        const char *name = (const char *)r->text.data + r->off[i];
        size_t n = r->len[i];
        json_t *utf8 = json_stringn(name, n);
        json_decref(utf8);
        if (n == 0 || n >= 512 || strlen(name) != n || name[0] == '.' || name[n - 1] == '.' ||
            strstr(name, "..") != NULL || utf8 == NULL) {
            return vl_cli_error(1, "%s: the header's column %zu is not a field name (empty, "
                                   "too long, or with an empty part between dots)",
                                im->name, i + 1);
        }
        if (strcmp(name, "id") == 0) {
            if (have_id) {
                return vl_cli_error(1, "%s: the header names the id column twice", im->name);
            }
            have_id = true;
            continue;
        }
        if ((im->cols[i].path = strdup(name)) == NULL) {
            return vl_cli_error(1, "out of memory");
        }
        json_t *f = json_object_get(im->fields, name);
        im->cols[i].type = json_string_value(json_object_get(f, "type"));
    }
    /* No column may be another's, or inside another's value. */
    for (size_t i = 0; i < im->ncols; i++) {
        for (size_t j = 0; j < im->ncols && im->cols[i].path != NULL; j++) {
            const char *a = im->cols[i].path, *b = im->cols[j].path;
            size_t na = strlen(a);
            if (i == j || b == NULL) {
                continue;
            }
            if (strcmp(a, b) == 0) {
                return vl_cli_error(1, "%s: the header names column %s twice", im->name, a);
            }
            if (strncmp(a, b, na) == 0 && b[na] == '.') {
                return vl_cli_error(1, "%s: the header has both %s and %s, which is inside it",
                                    im->name, a, b);
            }
        }
    }
    return 0;
}

static int import_csv(struct imp *im)
{
    struct record *r = calloc(1, sizeof(*r));
    int rc = 0;
    if (r == NULL) {
        return vl_cli_error(1, "out of memory");
    }
    vl_buf_init(&r->text, LINE_MAX_BYTES);
    if ((rc = csv_header(im, r)) != 0) {
        goto out;
    }
    for (;;) {
        const char *err = NULL;
        if (im->nfail >= FAILS_HELD && (rc = flush_batch(im)) != 0) {
            break;
        }
        int k = read_record(im->in, r, &err);
        if (k == 0) {
            break;
        }
        if (k < 0) {
            im->local_failed++;
            line_failed(im, r->first, "bad_request: the record %s", err);
            continue;
        }
        if (r->n != im->ncols) {
            im->local_failed++;
            line_failed(im, r->first, "bad_request: the record has %zu cells, the header %zu",
                        r->n, im->ncols);
            continue;
        }
        json_t *doc = json_object(), *id = NULL;
        size_t bad = SIZE_MAX;
        for (size_t i = 0; doc != NULL && i < r->n && bad == SIZE_MAX; i++) {
            const char *s = (const char *)r->text.data + r->off[i];
            if (r->len[i] == 0) {
                continue;
            }
            json_t *v = im->cols[i].path == NULL ? json_stringn(s, r->len[i])
                                                 : typed_cell(im->cols[i].type, s, r->len[i]);
            if (v == NULL) {
                bad = i;
            } else if (im->cols[i].path == NULL) {
                id = v;
            } else if (set_path(doc, im->cols[i].path, v) != 0) {
                bad = i;
            }
        }
        if (doc == NULL || bad != SIZE_MAX) {
            im->local_failed++;
            line_failed(im, r->first, "bad_request: the cell of column %zu is not UTF-8 text",
                        bad + 1);
            json_decref(doc);
            json_decref(id);
            continue;
        }
        json_t *o = id != NULL ? json_pack("{s:o, s:o}", "id", id, "doc", doc)
                               : json_pack("{s:o}", "doc", doc);
        char *text = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        if (text == NULL) {
            rc = vl_cli_error(1, "out of memory");
            break;
        }
        rc = add_line(im, r->first, text, strlen(text));
        free(text);
        if (rc != 0) {
            break;
        }
    }
out:
    vl_buf_free(&r->text);
    free(r);
    return rc;
}

/* GET /v1/collections/C: that the collection is there and the token works, and its fields'
 * types for CSV. */
static int read_policy(struct imp *im)
{
    if (vl_client_call(im->cl, "GET", im->coll, NULL, NULL, NULL, NULL, 0, 0, &im->ans) != 0) {
        return 1;
    }
    if (im->ans.status != 200) {
        return vl_client_print_error(&im->ans);
    }
    json_t *p = json_loadb((const char *)im->ans.body.data, im->ans.body.len, 0, NULL);
    json_t *f = json_object_get(p, "fields");
    if (!json_is_object(f)) {
        json_decref(p);
        return vl_cli_error(1, "the server's answer about collection %s has no fields",
                            im->coll);
    }
    im->fields = json_incref(f);
    json_decref(p);
    return 0;
}

static int parse_batch(const char *s, size_t *out)
{
    char *end = NULL;
    if (s[0] < '0' || s[0] > '9') {
        return -1;
    }
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > BATCH_MAX) {
        return -1;
    }
    *out = v;
    return 0;
}

int vl_cmd_import(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},
        {"batch", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct imp im;
    struct input *in = NULL;
    const char *format = NULL;
    int rc = 1, c;

    memset(&im, 0, sizeof(im));
    im.batch_max = BATCH_DEFAULT;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 'b':
            if (parse_batch(optarg, &im.batch_max) != 0) {
                fputs(import_usage, stderr);
                return vl_cli_error(2, "import: --batch is a whole number from 1 to %u",
                                    BATCH_MAX);
            }
            break;
        case 'h':
            fputs(import_usage, stdout);
            fputs(import_env_help, stdout);
            return 0;
        default: fputs(import_usage, stderr); return 2;
        }
    }
    if (argc - optind != 2 || argv[optind][0] == '\0' || argv[optind + 1][0] == '\0') {
        fputs(import_usage, stderr);
        return vl_cli_error(2, "import: COLLECTION and FILE (or - for standard input) are "
                               "required");
    }
    im.coll = argv[optind];
    im.name = argv[optind + 1];
    bool is_stdin = strcmp(im.name, "-") == 0;
    size_t nl = strlen(im.name);
    im.fmt = nl > 4 && strcasecmp(im.name + nl - 4, ".csv") == 0 ? FMT_CSV : FMT_NDJSON;
    if (format != NULL) {
        if (strcmp(format, "ndjson") == 0) {
            im.fmt = FMT_NDJSON;
        } else if (strcmp(format, "csv") == 0) {
            im.fmt = FMT_CSV;
        } else {
            fputs(import_usage, stderr);
            return vl_cli_error(2, "import: --format is ndjson or csv");
        }
    }

    vl_answer_init(&im.ans);
    vl_buf_init(&im.body, SIZE_MAX);
    im.off = calloc(im.batch_max, sizeof(*im.off));
    im.lines = calloc(im.batch_max, sizeof(*im.lines));
    in = calloc(1, sizeof(*in));
    if (im.off == NULL || im.lines == NULL || in == NULL) {
        rc = vl_cli_error(1, "out of memory");
        goto out;
    }
    im.in = in;
    in->f = is_stdin ? stdin : fopen(im.name, "rb");
    if (in->f == NULL) {
        rc = vl_cli_error(1, "cannot open %s: %s", im.name, strerror(errno));
        goto out;
    }
    struct stat sb;
    if (fstat(fileno(in->f), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0) {
        im.total = (unsigned long long)sb.st_size;
    }
    im.tty = isatty(STDERR_FILENO) != 0;
    if ((rc = vl_client_open(&im.cl)) != 0 || (rc = read_policy(&im)) != 0) {
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &im.t0);
    im.last = im.t0;
    skip_bom(in);
    rc = im.fmt == FMT_CSV ? import_csv(&im) : import_ndjson(&im);
    if (rc == 0) {
        rc = flush_batch(&im);
    }
    if (rc == 0 && in->error) {
        rc = vl_cli_error(1, "cannot read %s", im.name);
    }
    im.stopped = rc != 0;
    report_failures(&im);
    progress(&im, true);
    double el = since(&im.t0);
    unsigned long long stored = im.created + im.replaced;
    unsigned long long failed = im.failed + im.local_failed;
    if (im.stopped) {
        fprintf(stderr, "veil: import stopped at line %llu of %s; the documents stored before "
                        "stay stored\n",
                in->line, is_stdin ? "standard input" : im.name);
    }
    printf("imported %llu documents into %s (%llu new, %llu replaced), %llu failed, in %.1f s "
           "(%.0f documents/s)%s\n",
           stored, im.coll, im.created, im.replaced, failed, el,
           el > 0 ? (double)(stored + failed) / el : 0.0, im.stopped ? "; stopped early" : "");
    fflush(stdout);
    if (rc == 0 && failed > 0) {
        rc = 1;
    }
out:
    if (in != NULL && in->f != NULL && !is_stdin) {
        fclose(in->f);
    }
    for (size_t i = 0; i < im.ncols; i++) {
        free(im.cols[i].path);
    }
    free(im.cols);
    for (size_t i = 0; i < im.nfail; i++) {
        free(im.fails[i].msg);
    }
    free(im.fails);
    json_decref(im.fields);
    vl_client_free(im.cl);
    vl_answer_free(&im.ans);
    vl_buf_free(&im.body);
    free(im.off);
    free(im.lines);
    free(in);
    return rc;
}
