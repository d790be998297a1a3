/*
 * cli.h: the `veil` command line. main.c dispatches from a table to one function per
 * command group; each returns the process exit status: 0 success, 1 an error (one line on
 * stderr naming what is wrong), 2 a usage error.
 */
#ifndef VL_CLI_H
#define VL_CLI_H

#include "util/buf.h"
#include "veil/veil.h"

/* The data directory: `flag` if given (--data), else $VEIL_DATA, else "./veil-data". */
const char *vl_cli_datadir(const char *flag);
/* Prints "veil: <code>: <message>" (and the field, if any) on stderr; returns 1. */
int vl_cli_fail(const veil_status *st);
/* Prints "veil: <message>" on stderr; returns `rc`. */
int vl_cli_error(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* True when argv holds -h or --help. */
int vl_cli_wants_help(int argc, char **argv);
/* Makes the process non-dumpable with no core files (veil_harden_process), unless
 * allow_core_dumps or VEIL_ALLOW_CORE_DUMPS=1, which a line on stderr then notes. 0, or 1
 * after printing why it failed. */
int vl_cli_harden(int allow_core_dumps);

/* Command groups; argv[0] is the command name ("server", "put", ...). */
int vl_cmd_init(int argc, char **argv);        /* admin.c */
int vl_cmd_tenant(int argc, char **argv);      /* admin.c */
int vl_cmd_token(int argc, char **argv);       /* admin.c */
int vl_cmd_collection(int argc, char **argv);  /* admin.c */
int vl_cmd_trusted(int argc, char **argv);     /* admin.c */
int vl_cmd_server(int argc, char **argv);      /* cmd_server.c */
int vl_cmd_put(int argc, char **argv);         /* client.c: over HTTP, VEIL_ADDR/VEIL_TOKEN */
int vl_cmd_get(int argc, char **argv);         /* client.c */
int vl_cmd_delete(int argc, char **argv);      /* client.c */
int vl_cmd_query(int argc, char **argv);       /* client.c */
int vl_cmd_aggregate(int argc, char **argv);   /* client.c */
int vl_cmd_privacy(int argc, char **argv);     /* client.c */
int vl_cmd_import(int argc, char **argv);      /* import.c: bulk loads over HTTP */
int vl_cmd_generate(int argc, char **argv);    /* generate.c */
int vl_cmd_demo(int argc, char **argv);        /* demo.c */

/* A connection to a running server ($VEIL_ADDR, $VEIL_TOKEN), for the client commands
 * (client.c). vl_client_open prints why on stderr and returns 1 when it cannot start (no
 * token, bad address); vl_client_call sends one request to
 * ADDR/v1/collections/COLL[/SUFFIX[/ID]] (segments percent-encoded) with `body` (NULL: none)
 * of type `ctype` (NULL: application/json), and returns 0 when an answer came back, whatever
 * its status, or 1 with a message naming the address when the server could not be reached.
 * The connection is kept open between calls. */
struct vl_client;
struct vl_answer {
    long status;
    long retry_after;   /* seconds of a Retry-After header, or -1 */
    struct vl_buf body; /* bounded */
};
void vl_answer_init(struct vl_answer *a);
void vl_answer_free(struct vl_answer *a);
int vl_client_open(struct vl_client **out);
void vl_client_free(struct vl_client *c);
const char *vl_client_addr(const struct vl_client *c);
int vl_client_call(struct vl_client *c, const char *method, const char *coll,
                   const char *suffix, const char *id, const char *ctype, const char *body,
                   size_t len, long if_match, struct vl_answer *ans);
/* "veil: CODE: message (field)" from an error answer, or its bare status; returns 1. */
int vl_client_print_error(const struct vl_answer *a);

/* Deterministic sample documents of examples/invoices.yaml and patients.yaml (generate.c).
 * vl_gen_init seeds a generator for `count` documents; vl_gen_line writes document `seq`
 * (1, 2, .. count, called in that order) as one NDJSON line, newline included, NUL-
 * terminated, and returns its length. */
#define VL_GEN_LINE_MAX 2048
enum vl_gen_kind { VL_GEN_INVOICES, VL_GEN_PATIENTS };
struct vl_gen {
    enum vl_gen_kind kind;
    uint64_t s[4];
    uint64_t norgs;
};
/* 0 and *out set for "invoices" or "patients"; -1 otherwise. */
int vl_gen_kind_parse(const char *name, enum vl_gen_kind *out);
void vl_gen_init(struct vl_gen *g, enum vl_gen_kind kind, uint64_t count, uint64_t seed);
size_t vl_gen_line(struct vl_gen *g, uint64_t seq, char line[VL_GEN_LINE_MAX]);

#endif
