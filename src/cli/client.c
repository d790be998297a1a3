/*
 * client.c: `veil put`, `veil get`, `veil delete`, `veil query` and `veil aggregate` over
 * HTTP with libcurl, and the connection (struct vl_client) that `veil import` shares.
 *
 * These commands hold no keys: they talk to a running `veil server` at $VEIL_ADDR (default
 * http://127.0.0.1:8470) with the bearer token in $VEIL_TOKEN, exactly as any application
 * would. Path segments are percent-encoded and sent as they are (no dot-segment folding);
 * request and response bodies are bounded. Success prints the answer on stdout, indented;
 * an error prints "veil: CODE: message" on stderr and exits 1, and a server that cannot be
 * reached is named by the address tried. The token is never printed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cli/cli.h"
#include "util/buf.h"

#define DEFAULT_ADDR "http://127.0.0.1:8470"
#define BODY_MAX (64u * 1024u * 1024u)
#define RESP_MAX (64u * 1024u * 1024u)
#define CONNECT_TIMEOUT_S 10L
#define REQUEST_TIMEOUT_S 300L
#define ADDR_MAX 2048


static const char put_usage[] =
    "usage: veil put COLLECTION ID [FILE|-] [--if-match VERSION]\n"
    "\n"
    "Stores the JSON document in FILE (or standard input) under ID and prints\n"
    "{\"id\",\"version\"}. --if-match makes the write conditional on the current version.\n";
static const char get_usage[] =
    "usage: veil get COLLECTION ID\n"
    "\n"
    "Prints {\"id\",\"version\",\"doc\"}, fields filtered and masked for the token's role.\n";
static const char delete_usage[] =
    "usage: veil delete COLLECTION ID\n"
    "\n"
    "Deletes the document.\n";
static const char query_usage[] =
    "usage: veil query COLLECTION JSON|-\n"
    "\n"
    "Runs a query such as '{\"where\":{\"status\":\"open\"},\"limit\":10}' and prints\n"
    "{\"docs\":[...],\"next\":CURSOR}. Fields with protect: [search] are searched by words,\n"
    "best match first: '{\"match\":{\"notes\":\"late payment\"}}' (every word) or\n"
    "'{\"match\":{\"notes\":{\"any\":\"late overdue\"}}}'. Pass \"after\": CURSOR for the next page.\n";
static const char aggregate_usage[] =
    "usage: veil aggregate COLLECTION JSON|-\n"
    "\n"
    "Totals, averages and counts computed over encrypted data, e.g.\n"
    "'{\"group_by\":[\"org_id\"],\"metrics\":{\"total\":{\"sum\":\"amount\"},\"n\":{\"count\":\"*\"}}}'\n"
    "prints {\"groups\":[{\"key\":{...},...}],\"suppressed\":N}. Add \"explain\": true to see\n"
    "what the store computed and what the proxy did.\n"
    "A role that may aggregate but not read gets noisy answers (differential privacy):\n"
    "\"suppressed\" is null and \"privacy\" says what the answer spent and what is left.\n"
    "The same query asked again in the period gets the same answer for free; add\n"
    "\"refresh\": true to pay for a new one, \"epsilon\": E to spend more (sharper) or\n"
    "less on it (see veil privacy).\n";
static const char privacy_usage[] =
    "usage: veil privacy show COLLECTION\n"
    "       veil privacy reset COLLECTION (--role ROLE | --token TOKEN-ID)\n"
    "\n"
    "A role that may aggregate but not read is answered under differential privacy: each\n"
    "answer spends epsilon from the token's budget and the role's, per period.\n"
    "show   prints what this token and its role have spent and have left in the current\n"
    "       period; with an admin token, every such role's and each of its tokens'.\n"
    "reset  (admin) sets the current period's spending of a role (all its tokens too) or\n"
    "       of one token back to 0. Answers already given stay as they were.\n";
static const char env_help[] =
    "\n"
    "The server is $VEIL_ADDR (default " DEFAULT_ADDR "); the bearer token is $VEIL_TOKEN.\n";

static int usage_error(const char *usage, const char *what)
{
    fputs(usage, stderr);
    return vl_cli_error(2, "%s", what);
}

static int show_help(const char *usage)
{
    fputs(usage, stdout);
    fputs(env_help, stdout);
    return 0;
}

static size_t on_data(char *p, size_t size, size_t n, void *cls)
{
    struct vl_buf *b = cls;
    if (vl_buf_append(b, p, size * n) != VEIL_OK) {
        return 0; /* over RESP_MAX: curl stops with CURLE_WRITE_ERROR */
    }
    return size * n;
}

/* Re-indents valid JSON text by two spaces, leaving every token as the server wrote it
 * (numbers are not reparsed, so 1234.50 stays 1234.50). */
static void print_indented(FILE *f, const char *s, size_t n)
{
    int depth = 0;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            fputc(c, f);
            if (c == '\\' && i + 1 < n) {
                fputc(s[++i], f);
            } else if (c == '"') {
                in_str = 0;
            }
            continue;
        }
        if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
            continue;
        }
        if (c == '"') {
            in_str = 1;
            fputc(c, f);
        } else if (c == '{' || c == '[') {
            size_t j = i + 1;
            while (j < n && (s[j] == ' ' || s[j] == '\n' || s[j] == '\t' || s[j] == '\r')) {
                j++;
            }
            if (j < n && (s[j] == '}' || s[j] == ']')) {
                fputc(c, f);
                fputc(s[j], f);
                i = j;
                continue;
            }
            depth++;
            fprintf(f, "%c\n%*s", c, depth * 2, "");
        } else if (c == '}' || c == ']') {
            depth--;
            fprintf(f, "\n%*s%c", depth * 2, "", c);
        } else if (c == ',') {
            fprintf(f, ",\n%*s", depth * 2, "");
        } else if (c == ':') {
            fputs(": ", f);
        } else {
            fputc(c, f);
        }
    }
    fputc('\n', f);
}

static void print_body(const struct vl_buf *b)
{
    const char *s = b->data ? (const char *)b->data : "";
    json_error_t err;
    json_t *j = json_loadb(s, b->len, JSON_DECODE_INT_AS_REAL, &err);
    if (j != NULL) {
        print_indented(stdout, s, b->len);
        json_decref(j);
        return;
    }
    fwrite(s, 1, b->len, stdout);
    if (b->len > 0 && s[b->len - 1] != '\n') {
        fputc('\n', stdout);
    }
}

int vl_client_print_error(const struct vl_answer *a)
{
    const char *s = a->body.data ? (const char *)a->body.data : "";
    json_error_t err;
    json_t *j = json_loadb(s, a->body.len, 0, &err);
    const char *code = NULL;
    const char *msg = NULL;
    const char *field = NULL;
    json_t *e = j ? json_object_get(j, "error") : NULL;
    if (e != NULL) {
        code = json_string_value(json_object_get(e, "code"));
        msg = json_string_value(json_object_get(e, "message"));
        field = json_string_value(json_object_get(e, "field"));
    }
    if (code != NULL) {
        if (field != NULL && field[0] != '\0') {
            fprintf(stderr, "veil: %s: %s (%s)\n", code, msg ? msg : "", field);
        } else {
            fprintf(stderr, "veil: %s: %s\n", code, msg ? msg : "");
        }
    } else {
        fprintf(stderr, "veil: the server answered HTTP %ld\n", a->status);
    }
    json_decref(j);
    return 1;
}

static const char *server_addr(char *out, size_t cap)
{
    const char *a = getenv("VEIL_ADDR");
    if (a == NULL || a[0] == '\0') {
        a = DEFAULT_ADDR;
    }
    size_t n = strlen(a);
    if (n >= cap) {
        return NULL;
    }
    memcpy(out, a, n + 1);
    while (n > 0 && out[n - 1] == '/') {
        out[--n] = '\0';
    }
    return out;
}

/* $VEIL_TOKEN, if set and fit for a header. */
static const char *token_of(void)
{
    const char *t = getenv("VEIL_TOKEN");
    if (t == NULL || t[0] == '\0') {
        return NULL;
    }
    for (const char *p = t; *p; p++) {
        if ((unsigned char)*p <= ' ' || (unsigned char)*p == 0x7f) {
            return NULL;
        }
    }
    return t;
}

/* addr/v1/collections/C[/SUFFIX[/ID]], segments percent-encoded; malloc'd. */
static char *build_url(CURL *h, const char *addr, const char *coll, const char *suffix,
                       const char *id)
{
    char *ec = curl_easy_escape(h, coll, 0);
    char *ei = id ? curl_easy_escape(h, id, 0) : NULL;
    char *url = NULL;
    if (ec == NULL || (id != NULL && ei == NULL)) {
        goto out;
    }
    size_t n = strlen(addr) + strlen(ec) + (ei ? strlen(ei) : 0) + 64;
    url = malloc(n);
    if (url == NULL) {
        goto out;
    }
    snprintf(url, n, "%s/v1/collections/%s%s%s%s%s", addr, ec, suffix ? "/" : "",
             suffix ? suffix : "", ei ? "/" : "", ei ? ei : "");
out:
    curl_free(ec);
    curl_free(ei);
    return url;
}

struct vl_client {
    CURL *h;
    const char *token;
    char addr[ADDR_MAX];
};

int vl_client_open(struct vl_client **out)
{
    struct vl_client *c = calloc(1, sizeof(*c));
    int rc = 1;
    if (c == NULL) {
        rc = vl_cli_error(1, "out of memory");
        goto out;
    }
    if ((c->token = token_of()) == NULL) {
        rc = vl_cli_error(1, "VEIL_TOKEN is not set (or holds spaces or control characters); "
                             "create a token with `veil token create`");
        goto out;
    }
    if (server_addr(c->addr, sizeof(c->addr)) == NULL) {
        rc = vl_cli_error(1, "VEIL_ADDR is too long");
        goto out;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc = vl_cli_error(1, "cannot start libcurl");
        goto out;
    }
    if ((c->h = curl_easy_init()) == NULL) {
        curl_global_cleanup();
        rc = vl_cli_error(1, "cannot start libcurl");
        goto out;
    }
    rc = 0;
out:
    if (rc == 0) {
        *out = c;
    } else {
        free(c);
    }
    return rc;
}

void vl_client_free(struct vl_client *c)
{
    if (c == NULL) {
        return;
    }
    curl_easy_cleanup(c->h);
    curl_global_cleanup();
    free(c);
}

const char *vl_client_addr(const struct vl_client *c)
{
    return c->addr;
}

int vl_client_call(struct vl_client *c, const char *method, const char *coll,
                   const char *suffix, const char *id, const char *ctype, const char *body,
                   size_t len, long if_match, struct vl_answer *ans)
{
    struct curl_slist *hdrs = NULL;
    char auth[4096];
    char ifm[64];
    char ct[128];
    char *url = NULL;
    int rc = 1;
    CURLcode cc;

    ans->status = 0;
    ans->retry_after = -1;
    vl_buf_reset(&ans->body);
    curl_easy_reset(c->h);
    if ((url = build_url(c->h, c->addr, coll, suffix, id)) == NULL) {
        rc = vl_cli_error(1, "out of memory");
        goto out;
    }
    if ((size_t)snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token) >=
        sizeof(auth)) {
        rc = vl_cli_error(1, "VEIL_TOKEN is too long");
        goto out;
    }
    hdrs = curl_slist_append(hdrs, auth);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (body != NULL) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", ctype != NULL ? ctype : "application/json");
        hdrs = curl_slist_append(hdrs, ct);
    }
    if (if_match > 0) {
        snprintf(ifm, sizeof(ifm), "If-Match: %ld", if_match);
        hdrs = curl_slist_append(hdrs, ifm);
    }
    if (hdrs == NULL) {
        rc = vl_cli_error(1, "out of memory");
        goto out;
    }
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c->h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT, REQUEST_TIMEOUT_S);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &ans->body);
    curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
    }
    cc = curl_easy_perform(c->h);
    if (cc == CURLE_WRITE_ERROR) {
        rc = vl_cli_error(1, "the answer is larger than %u bytes", RESP_MAX);
        goto out;
    }
    if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
        cc == CURLE_OPERATION_TIMEDOUT) {
        rc = vl_cli_error(1, "cannot reach the server at %s: %s (is `veil server` running "
                             "there? $VEIL_ADDR names another address)",
                          c->addr, curl_easy_strerror(cc));
        goto out;
    }
    if (cc != CURLE_OK) {
        rc = vl_cli_error(1, "cannot reach the server at %s: %s", c->addr,
                          curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &ans->status);
    curl_off_t ra = -1;
    if (curl_easy_getinfo(c->h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra >= 0) {
        ans->retry_after = (long)ra;
    }
    rc = 0;
out:
    curl_slist_free_all(hdrs);
    free(url);
    explicit_bzero(auth, sizeof(auth));
    return rc;
}

void vl_answer_init(struct vl_answer *a)
{
    memset(a, 0, sizeof(*a));
    vl_buf_init(&a->body, RESP_MAX);
}

void vl_answer_free(struct vl_answer *a)
{
    vl_buf_free(&a->body);
}

/* Runs one call against the collection and prints its outcome; the exit status. */
static int run(const char *method, const char *coll, const char *suffix, const char *id,
               const char *body, size_t len, long if_match)
{
    struct vl_client *cl = NULL;
    struct vl_answer a;
    int rc;

    vl_answer_init(&a);
    if ((rc = vl_client_open(&cl)) != 0) {
        goto out;
    }
    if ((rc = vl_client_call(cl, method, coll, suffix, id, NULL, body, len, if_match, &a)) !=
        0) {
        goto out;
    }
    if (a.status >= 200 && a.status < 300) {
        print_body(&a.body);
        rc = fflush(stdout) == 0 ? 0 : vl_cli_error(1, "cannot write the answer");
    } else {
        rc = vl_client_print_error(&a);
    }
out:
    vl_client_free(cl);
    vl_answer_free(&a);
    return rc;
}

/* Reads FILE ("-": standard input) whole, up to BODY_MAX bytes. */
static int read_input(const char *path, struct vl_buf *b)
{
    FILE *f = stdin;
    char chunk[65536];
    int rc = 1;
    if (strcmp(path, "-") != 0) {
        f = fopen(path, "rb");
        if (f == NULL) {
            return vl_cli_error(1, "cannot open %s: %s", path, strerror(errno));
        }
    }
    for (;;) {
        size_t n = fread(chunk, 1, sizeof(chunk), f);
        if (n > 0 && vl_buf_append(b, chunk, n) != VEIL_OK) {
            rc = vl_cli_error(1, "%s is larger than %u bytes", path, BODY_MAX);
            goto out;
        }
        if (n < sizeof(chunk)) {
            break;
        }
    }
    if (ferror(f)) {
        rc = vl_cli_error(1, "cannot read %s", path);
        goto out;
    }
    rc = 0;
out:
    if (f != stdin) {
        fclose(f);
    }
    return rc;
}

static int parse_version(const char *s, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v <= 0) {
        return -1;
    }
    *out = v;
    return 0;
}

int vl_cmd_put(int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL};
    int npos = 0;
    long if_match = 0;
    struct vl_buf body;
    int rc;

    if (vl_cli_wants_help(argc, argv)) {
        return show_help(put_usage);
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--if-match") == 0) {
            if (i + 1 >= argc || parse_version(argv[++i], &if_match) != 0) {
                return usage_error(put_usage, "put: --if-match needs a positive version");
            }
        } else if (strncmp(argv[i], "--if-match=", 11) == 0) {
            if (parse_version(argv[i] + 11, &if_match) != 0) {
                return usage_error(put_usage, "put: --if-match needs a positive version");
            }
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return usage_error(put_usage, "put: unknown option");
        } else if (npos < 3) {
            pos[npos++] = argv[i];
        } else {
            return usage_error(put_usage, "put: too many arguments");
        }
    }
    if (npos < 2) {
        return usage_error(put_usage, "put: COLLECTION and ID are required");
    }
    vl_buf_init(&body, BODY_MAX);
    rc = read_input(pos[2] ? pos[2] : "-", &body);
    if (rc == 0) {
        rc = run("PUT", pos[0], "docs", pos[1], body.data ? (const char *)body.data : "",
                 body.len, if_match);
    }
    vl_buf_free(&body);
    return rc;
}

/* get and delete: exactly COLLECTION ID. */
static int two_args(int argc, char **argv, const char *usage, const char *method)
{
    if (vl_cli_wants_help(argc, argv)) {
        return show_help(usage);
    }
    if (argc != 3 || argv[1][0] == '\0' || argv[2][0] == '\0') {
        return usage_error(usage, "COLLECTION and ID are required");
    }
    return run(method, argv[1], "docs", argv[2], NULL, 0, 0);
}

int vl_cmd_get(int argc, char **argv)
{
    return two_args(argc, argv, get_usage, "GET");
}

int vl_cmd_delete(int argc, char **argv)
{
    return two_args(argc, argv, delete_usage, "DELETE");
}

/* `veil query` and `veil aggregate`: POST a JSON body to a collection route. */
static int post_json(int argc, char **argv, const char *usage, const char *route)
{
    struct vl_buf body;
    int rc;
    if (vl_cli_wants_help(argc, argv)) {
        return show_help(usage);
    }
    if (argc != 3 || argv[1][0] == '\0') {
        return usage_error(usage, "COLLECTION and JSON are required");
    }
    vl_buf_init(&body, BODY_MAX);
    if (strcmp(argv[2], "-") == 0) {
        rc = read_input("-", &body);
    } else {
        rc = vl_buf_append_str(&body, argv[2]) == VEIL_OK
                 ? 0
                 : vl_cli_error(1, "%s: the body is too large", route);
    }
    if (rc == 0) {
        rc = run("POST", argv[1], route, NULL, body.data ? (const char *)body.data : "",
                 body.len, 0);
    }
    vl_buf_free(&body);
    return rc;
}

int vl_cmd_query(int argc, char **argv)
{
    return post_json(argc, argv, query_usage, "query");
}

int vl_cmd_aggregate(int argc, char **argv)
{
    return post_json(argc, argv, aggregate_usage, "aggregate");
}

int vl_cmd_privacy(int argc, char **argv)
{
    if (vl_cli_wants_help(argc, argv)) {
        return show_help(privacy_usage);
    }
    if (argc == 3 && strcmp(argv[1], "show") == 0 && argv[2][0] != '\0') {
        return run("GET", argv[2], "privacy", NULL, NULL, 0, 0);
    }
    if (argc != 5 || strcmp(argv[1], "reset") != 0 || argv[2][0] == '\0' ||
        (strcmp(argv[3], "--role") != 0 && strcmp(argv[3], "--token") != 0)) {
        return usage_error(privacy_usage, "privacy: show COLLECTION, or reset COLLECTION "
                                          "--role ROLE | --token TOKEN-ID");
    }
    json_t *b = json_pack("{s:s}", argv[3] + 2, argv[4]);
    char *text = b != NULL ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    if (text == NULL) {
        return vl_cli_error(1, "out of memory");
    }
    int rc = run("POST", argv[2], "privacy/reset", NULL, text, strlen(text), 0);
    free(text);
    return rc;
}
