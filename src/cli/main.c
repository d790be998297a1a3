/*
 * main.c: `veil`, one program with subcommands (man veil), dispatched from a table
 * as wireguard-tools' wg.c does. Exit status: 0 success, 1 an error, 2 a usage error.
 *
 * Every command but `generate` may hold keys (admin commands, demo, server) or a bearer
 * token (client commands), so the process is hardened (veil_harden_process: not dumpable,
 * no core files) before the command runs; `veil server` does it itself once its options
 * are read, since --allow-core-dumps is one of them. VEIL_ALLOW_CORE_DUMPS=1 leaves any
 * command dumpable, for debugging.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* harden: main hardens the process before the command runs (see the top). */
enum { HARDEN_NO, HARDEN_YES, HARDEN_ITSELF };
static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
    int harden;
} commands[] = {
    {"init", vl_cmd_init, "create a data directory: root key, configuration, trusted state",
     HARDEN_YES},
    {"server", vl_cmd_server, "run the proxy in the foreground", HARDEN_ITSELF},
    {"tenant", vl_cmd_tenant, "create | list | shred tenants", HARDEN_YES},
    {"token", vl_cmd_token, "create | list | revoke bearer tokens", HARDEN_YES},
    {"collection", vl_cmd_collection, "apply a collection policy (YAML or JSON)", HARDEN_YES},
    {"trusted", vl_cmd_trusted, "accept-rollback: accept that trusted.db lost writes",
     HARDEN_YES},
    {"put", vl_cmd_put, "store a document (over HTTP)", HARDEN_YES},
    {"get", vl_cmd_get, "fetch a document (over HTTP)", HARDEN_YES},
    {"delete", vl_cmd_delete, "delete a document (over HTTP)", HARDEN_YES},
    {"query", vl_cmd_query, "query a collection (over HTTP)", HARDEN_YES},
    {"aggregate", vl_cmd_aggregate, "sum, average, count over encrypted data (over HTTP)",
     HARDEN_YES},
    {"privacy", vl_cmd_privacy,
     "show | reset the privacy budgets of differentially private roles (over HTTP)",
     HARDEN_YES},
    {"import", vl_cmd_import, "load NDJSON or CSV documents in batches (over HTTP)",
     HARDEN_YES},
    {"generate", vl_cmd_generate, "deterministic sample documents for the example policies",
     HARDEN_NO},
    {"demo", vl_cmd_demo, "a guided walk through the example use cases, in process",
     HARDEN_YES},
};

int vl_cli_harden(int allow_core_dumps)
{
    const char *env = getenv("VEIL_ALLOW_CORE_DUMPS");
    veil_status st;
    if (allow_core_dumps || (env != NULL && strcmp(env, "1") == 0)) {
        fputs("veil: core dumps allowed: keys stay out of them, documents and tokens do not\n",
              stderr);
        return 0;
    }
    memset(&st, 0, sizeof(st));
    return veil_harden_process(&st) == VEIL_OK ? 0 : vl_cli_fail(&st);
}

const char *vl_cli_datadir(const char *flag)
{
    if (flag != NULL) {
        return flag;
    }
    const char *env = getenv("VEIL_DATA");
    return env != NULL && env[0] != '\0' ? env : "./veil-data";
}

int vl_cli_fail(const veil_status *st)
{
    if (st->field[0] != '\0') {
        fprintf(stderr, "veil: %s: %s (%s)\n", veil_err_name(st->code), st->message, st->field);
    } else {
        fprintf(stderr, "veil: %s: %s\n", veil_err_name(st->code), st->message);
    }
    return 1;
}

int vl_cli_error(int rc, const char *fmt, ...)
{
    va_list ap;
    fputs("veil: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return rc;
}

int vl_cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            return 1;
        }
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "veil %s: keep documents opaque to the databases that store them.\n\n"
               "usage: veil COMMAND [ARGS]   (veil COMMAND --help for more)\n\n",
            VEIL_VERSION);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(f, "\nAdmin commands work on the data directory: --data DIR, else $VEIL_DATA, "
               "else ./veil-data.\nClient commands talk to a running server: $VEIL_ADDR "
               "(default http://127.0.0.1:8470)\nand $VEIL_TOKEN. The manual: man veil, "
               "man veil-COMMAND.\n"
               "\nCommands make their process non-dumpable (no core files, no debugger) "
               "unless\nVEIL_ALLOW_CORE_DUMPS=1 is set, for debugging.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("veil %s\n", VEIL_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            if (commands[i].harden == HARDEN_YES && !vl_cli_wants_help(argc - 1, argv + 1) &&
                vl_cli_harden(0) != 0) {
                return 1;
            }
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "veil: unknown command %s\n\n", argv[1]);
    usage(stderr);
    return 2;
}
