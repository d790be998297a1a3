/*
 * fuzz_http.c: the HTTP front door itself, end to end: raw request bytes go into the real
 * request handler of src/server/ (libmicrohttpd's parser, routing, authentication, rate
 * limits, body limits and reserve, every route's libveil call) over a real vault in a
 * temporary directory (fuzz_vault.h).
 *
 * The server runs with no listening socket and no threads of its own
 * (vl_server_start_external): each input is cut at "\n=====\n" into up to MAX_CONNS
 * streams, each written into one end of a socketpair whose other end is handed to the
 * server, and the event loop is turned until nothing moves; then the client side is
 * half-closed, and finally closed, and the loop turned until every connection is gone.
 * In the streams, $A, $C, $U, $N, $R and $S stand for bearer tokens of the admin, clerk,
 * auditor and analyst roles, a revoked token, and a role answered under differential
 * privacy (statistician), so that the fuzzer reaches authenticated
 * code without guessing secrets. veil.yaml is set small (64 KiB bodies, a 128 KiB reserve,
 * the auditor limited to 5 requests a second) so that every limit is reached.
 *
 * Checked for every input (abort, which libFuzzer reports, when not):
 *   - every byte the server sends parses as a sequence of complete HTTP/1.1 responses;
 *   - no answer is a 500;
 *   - an answer from veil (it carries veil's security headers) has a JSON body, an error
 *     object with code and message when it is an error; NDJSON (bulk) and the Prometheus
 *     text (/metrics) only on their routes' successes. libmicrohttpd answers requests it
 *     cannot parse as HTTP itself, before veil sees them, with a 4xx or 505 of its own;
 *   - every connection ends once the client has gone, and no request stays in flight.
 * Crashes, leaks (LeakSanitizer) and hangs (libFuzzer's -timeout) are findings too.
 * FUZZ_HTTP_SHOW=1 prints every answer (to see what a seed reaches).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "fuzz_vault.h"
#include "server/server.h"
#include "util/log.h"

#define MAX_CONNS 4
#define MAX_OUT (4u << 20)
#define QUIET_ROUNDS 8
#define MAX_ROUNDS 20000

static const char fz_http_yaml[] =
    "rate_limits: { default: off, roles: { auditor: { rate: 5/s, burst: 3 } } }\n";

static struct vl_server *fz_srv;
#define FZ_NTOK 6
static char *fz_tok[FZ_NTOK]; /* $A $C $U $N $R $S */
static const char fz_tok_names[FZ_NTOK] = {'A', 'C', 'U', 'N', 'R', 'S'};

static void fz_http_fini(void)
{
    vl_server_stop(fz_srv);
    fz_srv = NULL;
    for (int i = 0; i < FZ_NTOK; i++) {
        veil_free(fz_tok[i]);
        fz_tok[i] = NULL;
    }
}

/* Sets the `limits:` line of veil.yaml smaller, in place, before the vault opens. */
static void fz_small_limits(void)
{
    char path[4300];
    snprintf(path, sizeof(path), "%s/data/veil.yaml", fz_dir);
    FILE *f = fopen(path, "rb");
    char text[8192];
    size_t n = f != NULL ? fread(text, 1, sizeof(text) - 1, f) : 0;
    if (f == NULL || n == 0) {
        fz_die("read veil.yaml", NULL);
    }
    fclose(f);
    text[n] = '\0';
    char *lim = strstr(text, "\nlimits:");
    if (lim == NULL) {
        fz_die("no limits line in veil.yaml", NULL);
    }
    char *eol = strchr(lim + 1, '\n');
    f = fopen(path, "wb");
    if (f == NULL) {
        fz_die("write veil.yaml", NULL);
    }
    fwrite(text, 1, (size_t)(lim - text), f);
    fputs("\nlimits: { max_body: 64KiB, max_depth: 32, max_fields: 1024, "
          "max_inflight_bodies: 128KiB }",
          f);
    if (eol != NULL) {
        fputs(eol, f);
    }
    fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    veil_status st;
    fz_vault_init(fz_http_yaml);
    /* The vault read veil.yaml already: reopen it with the smaller limits. */
    veil_session_free(fz_admin);
    veil_session_free(fz_clerk);
    veil_session_free(fz_auditor);
    veil_vault_close(fz_v);
    fz_admin = fz_clerk = fz_auditor = NULL;
    fz_small_limits();
    char data[4200];
    snprintf(data, sizeof(data), "%s/data", fz_dir);
    if (veil_vault_open(data, &fz_v, &st) != VEIL_OK) {
        fz_die("reopen", &st);
    }
    /* $S: a role answered under differential privacy */
    static const char *const roles[FZ_NTOK] = {"admin",   "clerk", "auditor",
                                                "analyst", "clerk", "statistician"};
    for (int i = 0; i < FZ_NTOK; i++) {
        char *id = NULL;
        if (veil_token_create(fz_v, "fuzz", roles[i], &fz_tok[i], &id, &st) != VEIL_OK) {
            fz_die("token", &st);
        }
        if (i == 4 && veil_token_revoke(fz_v, id, &st) != VEIL_OK) {
            fz_die("revoke", &st);
        }
        veil_free(id);
    }
    /* Request lines are built but not written (the log code runs in the e2e tests); an
     * error line would mean a 5xx, which the checks below catch anyway. */
    vl_log_set_level(VL_LOG_ERROR);
    fz_srv = vl_server_start_external(fz_v);
    if (fz_srv == NULL) {
        fz_die("server", NULL);
    }
    atexit(fz_http_fini);
    return 0;
}

/* The stream with $X replaced by tokens; malloc'd, length in *len. */
static char *expand(const uint8_t *p, size_t n, size_t *len)
{
    size_t cap = n + 1, o = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        cap += p[i] == '$' ? 128 : 0;
    }
    char *out = malloc(cap);
    if (out == NULL) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        const char *tok = NULL;
        if (p[i] == '$' && i + 1 < n) {
            for (int k = 0; k < FZ_NTOK; k++) {
                if (p[i + 1] == (uint8_t)fz_tok_names[k]) {
                    tok = fz_tok[k];
                }
            }
        }
        if (tok != NULL) {
            size_t tl = strlen(tok);
            memcpy(out + o, tok, tl);
            o += tl;
            i++;
        } else {
            out[o++] = (char)p[i];
        }
    }
    *len = o;
    return out;
}

static void bad(const char *what, const char *resp, size_t n)
{
    fprintf(stderr, "fuzz_http: %s; the answer begins:\n%.*s\n", what, (int)(n < 600 ? n : 600),
            resp);
    abort();
}

static const char *header(const char *head, size_t n, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    for (const char *p = head; p != NULL && p < head + n;) {
        const char *eol = memmem(p, (size_t)(head + n - p), "\r\n", 2);
        size_t ll = eol != NULL ? (size_t)(eol - p) : (size_t)(head + n - p);
        if (ll > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (v < p + ll && *v == ' ') {
                v++;
            }
            *vlen = (size_t)(p + ll - v);
            return v;
        }
        p = eol != NULL ? eol + 2 : NULL;
    }
    return NULL;
}

/* Checks one body veil answered with. */
static void check_body(int status, const char *ctype, size_t clen, const char *body, size_t n,
                       const char *resp)
{
    if (ctype == NULL) {
        bad("a veil answer without Content-Type", resp, n);
    }
    if (strncmp(ctype, "text/plain", 10) == 0 && clen >= 10) {
        if (status != 200) {
            bad("a text answer that is not a 200 of /metrics", resp, n);
        }
        return;
    }
    if (strncmp(ctype, "application/x-ndjson", 20) == 0) {
        if (status != 200) {
            bad("an NDJSON answer that is not a 200 of bulk", resp, n);
        }
        for (const char *l = body; l < body + n;) {
            const char *nl = memchr(l, '\n', (size_t)(body + n - l));
            if (nl == NULL) {
                bad("an NDJSON line without its newline", resp, n);
            }
            json_t *j = json_loadb(l, (size_t)(nl - l), 0, NULL);
            if (!json_is_object(j)) {
                bad("an NDJSON line that is not a JSON object", resp, n);
            }
            json_decref(j);
            l = nl + 1;
        }
        return;
    }
    if (strncmp(ctype, "application/json", 16) != 0) {
        bad("a veil answer that is neither JSON, NDJSON nor metrics", resp, n);
    }
    json_t *j = json_loadb(body, n, 0, NULL);
    if (!json_is_object(j)) {
        bad("a JSON answer that is not a JSON object", resp, n);
    }
    if (status >= 400) {
        json_t *e = json_object_get(j, "error");
        if (!json_is_string(json_object_get(e, "code")) ||
            !json_is_string(json_object_get(e, "message"))) {
            bad("an error answer without error.code and error.message", resp, n);
        }
    }
    json_decref(j);
}

/* Everything one connection received: complete responses, one after another. A response
 * to HEAD announces a length but carries no body; `head` says the stream held one. */
static void check_responses(const char *out, size_t n, int head)
{
    size_t at = 0;
    while (at < n) {
        const char *r = out + at;
        size_t left = n - at;
        const char *end = memmem(r, left, "\r\n\r\n", 4);
        int status = 0;
        if (left < 12 || strncmp(r, "HTTP/1.", 7) != 0 || end == NULL ||
            sscanf(r + 9, "%3d", &status) != 1) {
            bad("bytes that are not a complete HTTP response", r, left);
        }
        size_t hlen = (size_t)(end - r) + 4;
        if (status >= 100 && status < 200) {
            at += hlen; /* 100 Continue */
            continue;
        }
        if (status == 500) {
            bad("a 500", r, left);
        }
        size_t vl = 0;
        const char *cl = header(r, hlen, "Content-Length", &vl);
        if (cl == NULL) {
            bad("a response without Content-Length", r, left);
        }
        size_t clen = (size_t)strtoull(cl, NULL, 10);
        int ours = header(r, hlen, "X-Content-Type-Options", &vl) != NULL;
        size_t blen = clen;
        if (head && (left - hlen < clen || (left - hlen >= 7 &&
                                             strncmp(r + hlen, "HTTP/1.", 7) == 0))) {
            blen = 0; /* the answer to a HEAD */
        }
        if (left - hlen < blen) {
            bad("a response shorter than its Content-Length", r, left);
        }
        if (!ours) {
            /* libmicrohttpd's own answer to what it cannot parse as HTTP; it closes the
             * connection. (0.9.75 sends the status line and headers of its answer to a
             * malformed Content-Length twice, so what follows is not parsed.) */
            if (status < 400 || (status > 431 && status != 505)) {
                bad("libmicrohttpd answered with something other than a 4xx", r, left);
            }
            if (memmem(r, left, "X-Content-Type-Options", 22) != NULL) {
                bad("veil answered after libmicrohttpd refused the request", r, left);
            }
            break;
        }
        if (blen > 0) {
            size_t tl = 0;
            const char *ct = header(r, hlen, "Content-Type", &tl);
            char ctype[128];
            snprintf(ctype, sizeof(ctype), "%.*s", (int)(tl < 127 ? tl : 127), ct ? ct : "");
            check_body(status, ct ? ctype : NULL, clen, r + hlen, blen, r);
        }
        at += hlen + blen;
    }
}

/* Reads whatever the server sent on `fd` into out; 1 if anything came or the peer closed
 * (then *eof is set). */
static int drain(int fd, char *out, size_t *len, int *eof)
{
    int moved = 0;
    for (;;) {
        char tmp[65536];
        ssize_t r = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
        if (r > 0) {
            size_t take = (size_t)r;
            if (*len + take > MAX_OUT) {
                take = MAX_OUT - *len;
            }
            memcpy(out + *len, tmp, take);
            *len += take;
            moved = 1;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            moved |= !*eof;
            *eof = 1;
        }
        return moved;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char sep[] = "\n=====\n";
    int fds[MAX_CONNS];
    char *outs[MAX_CONNS];
    size_t outlen[MAX_CONNS];
    int eof[MAX_CONNS], heads[MAX_CONNS];
    int nconn = 0;
    size_t at = 0;

    while (nconn < MAX_CONNS && at <= size) {
        const uint8_t *p = data + at;
        size_t left = size - at;
        const uint8_t *cut = nconn + 1 < MAX_CONNS ? memmem(p, left, sep, sizeof(sep) - 1) : NULL;
        size_t n = cut != NULL ? (size_t)(cut - p) : left;
        size_t elen = 0;
        char *stream = expand(p, n, &elen);
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
            abort();
        }
        int big = 1 << 20;
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
        setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
        fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
        struct sockaddr_in peer;
        memset(&peer, 0, sizeof(peer));
        peer.sin_family = AF_INET;
        peer.sin_port = htons((uint16_t)(40000 + nconn));
        peer.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)nconn);
        if (vl_server_add_connection(fz_srv, sv[1], (struct sockaddr *)&peer, sizeof(peer)) != 0) {
            abort();
        }
        /* What does not fit the socket now is simply not sent: a truncated request. */
        size_t sent = 0;
        while (sent < elen) {
            ssize_t w = send(sv[0], stream + sent, elen - sent, MSG_NOSIGNAL);
            if (w <= 0) {
                break;
            }
            sent += (size_t)w;
        }
        heads[nconn] = memmem(stream, elen, "HEAD", 4) != NULL;
        free(stream);
        fds[nconn] = sv[0];
        outs[nconn] = malloc(MAX_OUT);
        if (outs[nconn] == NULL) {
            abort();
        }
        outlen[nconn] = 0;
        eof[nconn] = 0;
        nconn++;
        if (cut == NULL) {
            break;
        }
        at += n + sizeof(sep) - 1;
    }

    /* Turn the loop until nothing moves, then half-close (the client has said all it will),
     * then close, and wait for every connection to end. */
    for (int phase = 0; phase < 3; phase++) {
        int quiet = 0;
        for (int round = 0; round < MAX_ROUNDS && quiet < QUIET_ROUNDS; round++) {
            vl_server_poll(fz_srv);
            int moved = 0;
            for (int i = 0; i < nconn; i++) {
                if (fds[i] >= 0) {
                    moved |= drain(fds[i], outs[i], &outlen[i], &eof[i]);
                }
            }
            quiet = moved ? 0 : quiet + 1;
            if (phase == 2 && vl_server_connections(fz_srv) == 0) {
                break;
            }
        }
        for (int i = 0; i < nconn; i++) {
            if (phase == 0 && fds[i] >= 0) {
                shutdown(fds[i], SHUT_WR);
            } else if (phase == 1 && fds[i] >= 0) {
                close(fds[i]);
                fds[i] = -1;
            }
        }
    }
    for (int i = 0; i < MAX_ROUNDS && vl_server_connections(fz_srv) > 0; i++) {
        vl_server_poll(fz_srv);
    }
    if (vl_server_connections(fz_srv) != 0 || vl_server_inflight(fz_srv) != 0) {
        fprintf(stderr, "fuzz_http: a connection outlived its client\n");
        abort();
    }
    for (int i = 0; i < nconn; i++) {
        if (getenv("FUZZ_HTTP_SHOW") != NULL) {
            fprintf(stderr, "--- connection %d answered %zu bytes:\n%.*s\n", i, outlen[i],
                    (int)outlen[i], outs[i]);
        }
        check_responses(outs[i], outlen[i], heads[i]);
        free(outs[i]);
    }
    return 0;
}
