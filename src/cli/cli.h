/*
 * cli.h: the `veil` command line. main.c dispatches from a table to one function per
 * command group; each returns the process exit status: 0 success, 1 an error (one line on
 * stderr naming what is wrong), 2 a usage error.
 */
#ifndef VL_CLI_H
#define VL_CLI_H

#include "veil/veil.h"

/* The data directory: `flag` if given (--data), else $VEIL_DATA, else "./veil-data". */
const char *vl_cli_datadir(const char *flag);
/* Prints "veil: <code>: <message>" (and the field, if any) on stderr; returns 1. */
int vl_cli_fail(const veil_status *st);
/* Prints "veil: <message>" on stderr; returns `rc`. */
int vl_cli_error(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* True when argv holds -h or --help. */
int vl_cli_wants_help(int argc, char **argv);

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
int vl_cmd_generate(int argc, char **argv);    /* generate.c */
int vl_cmd_demo(int argc, char **argv);        /* demo.c */

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
