/*
 * main.c: `veil`, one program with subcommands (SPEC section 2), dispatched from a table
 * as wireguard-tools' wg.c does. Exit status: 0 success, 1 an error, 2 a usage error.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"init", vl_cmd_init, "create a data directory: root key, configuration, trusted state"},
    {"server", vl_cmd_server, "run the proxy in the foreground"},
    {"tenant", vl_cmd_tenant, "create | list | shred tenants"},
    {"token", vl_cmd_token, "create | revoke bearer tokens"},
    {"collection", vl_cmd_collection, "apply a collection policy (YAML or JSON)"},
    {"trusted", vl_cmd_trusted, "accept-rollback: accept that trusted.db lost writes"},
    {"put", vl_cmd_put, "store a document (over HTTP)"},
    {"get", vl_cmd_get, "fetch a document (over HTTP)"},
    {"delete", vl_cmd_delete, "delete a document (over HTTP)"},
    {"query", vl_cmd_query, "query a collection (over HTTP)"},
    {"aggregate", vl_cmd_aggregate, "sum, average, count over encrypted data (over HTTP)"},
    {"generate", vl_cmd_generate, "deterministic sample documents for the example policies"},
    {"demo", vl_cmd_demo, "a guided walk through the example use cases, in process"},
};

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
               "(default http://127.0.0.1:8470)\nand $VEIL_TOKEN.\n");
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
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "veil: unknown command %s\n\n", argv[1]);
    usage(stderr);
    return 2;
}
