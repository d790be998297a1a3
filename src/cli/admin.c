/*
 * admin.c: the admin commands, which work on the data directory directly (safe while a
 * server runs: the trusted state is SQLite in WAL mode). What they create goes to stdout,
 * alone, so that scripts can capture it; everything else to stderr.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli/cli.h"

#define POLICY_MAX (1u << 20)

/* Options every admin command takes; positional arguments are left in argv[optind..]. */
struct opts {
    const char *data;
    const char *tenant;
    const char *role;
    const char *passphrase_env;
    const char *listen;
    const char *keyring;
};

static int parse(int argc, char **argv, struct opts *o, const char *usage)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},
        {"tenant", required_argument, NULL, 't'},
        {"role", required_argument, NULL, 'r'},
        {"passphrase-env", required_argument, NULL, 'p'},
        {"listen", required_argument, NULL, 'l'},
        {"keyring", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': o->data = optarg; break;
        case 't': o->tenant = optarg; break;
        case 'r': o->role = optarg; break;
        case 'p': o->passphrase_env = optarg; break;
        case 'l': o->listen = optarg; break;
        case 'k': o->keyring = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    return -1;
}

static int open_vault(const struct opts *o, veil_vault **v)
{
    veil_status st;
    if (veil_vault_open(vl_cli_datadir(o->data), v, &st) != VEIL_OK) {
        return vl_cli_fail(&st);
    }
    return 0;
}

static const char init_usage[] =
    "usage: veil init [--data DIR] [--passphrase-env VAR] [--listen ADDR]\n\n"
    "Creates a new data directory: a random root key in master.key (mode 0600; with\n"
    "--passphrase-env, encrypted under an Argon2id key derived from that variable's\n"
    "passphrase), veil.yaml, trusted.db and cloud/. Refuses to overwrite an existing one.\n";

int vl_cmd_init(int argc, char **argv)
{
    struct opts o;
    int r = parse(argc, argv, &o, init_usage);
    if (r >= 0) {
        return r;
    }
    if (optind != argc) {
        fputs(init_usage, stderr);
        return 2;
    }
    veil_init_options io = {.passphrase_env = o.passphrase_env, .listen = o.listen,
                            .keyring = o.keyring};
    veil_status st;
    const char *dir = vl_cli_datadir(o.data);
    if (veil_init(dir, &io, &st) != VEIL_OK) {
        return vl_cli_fail(&st);
    }
    printf("%s\n", dir);
    fprintf(stderr, "veil: initialised %s (keyring: local%s)\n", dir,
            o.passphrase_env ? ", passphrase-protected" : "");
    return 0;
}

static const char tenant_usage[] =
    "usage: veil tenant create NAME [--data DIR]\n"
    "       veil tenant list [--data DIR]\n"
    "       veil tenant shred NAME [--data DIR]\n\n"
    "create makes a tenant with its own data key; list prints them as JSON; shred destroys\n"
    "the tenant's keys, so its data in every store becomes unreadable for good.\n";

int vl_cmd_tenant(int argc, char **argv)
{
    struct opts o;
    int r = parse(argc, argv, &o, tenant_usage);
    if (r >= 0) {
        return r;
    }
    const char *verb = optind < argc ? argv[optind] : NULL;
    const char *name = optind + 1 < argc ? argv[optind + 1] : NULL;
    bool list = verb != NULL && strcmp(verb, "list") == 0;
    if (verb == NULL || (list ? name != NULL : name == NULL || optind + 2 != argc) ||
        (!list && strcmp(verb, "create") != 0 && strcmp(verb, "shred") != 0)) {
        fputs(tenant_usage, stderr);
        return 2;
    }
    veil_vault *v = NULL;
    if ((r = open_vault(&o, &v)) != 0) {
        return r;
    }
    veil_status st;
    veil_err rc;
    if (list) {
        char *json = NULL;
        if ((rc = veil_tenant_list(v, &json, &st)) == VEIL_OK) {
            printf("%s\n", json);
            veil_free(json);
        }
    } else if (strcmp(verb, "create") == 0) {
        if ((rc = veil_tenant_create(v, name, &st)) == VEIL_OK) {
            printf("%s\n", name);
        }
    } else {
        if ((rc = veil_tenant_shred(v, name, &st)) == VEIL_OK) {
            fprintf(stderr, "veil: tenant %s shredded: its keys are destroyed\n", name);
        }
    }
    veil_vault_close(v);
    return rc == VEIL_OK ? 0 : vl_cli_fail(&st);
}

static const char token_usage[] =
    "usage: veil token create --tenant T --role R [--data DIR]\n"
    "       veil token list [--tenant T] [--data DIR]\n"
    "       veil token revoke TOKEN-OR-ID [--data DIR]\n\n"
    "create prints a new bearer token once, alone on stdout, and its id on stderr; only a\n"
    "hash of it is kept. R is `admin` or a role that one of the tenant's policies defines.\n"
    "list prints the valid tokens as JSON: id, tenant, role, created, last used (recorded at\n"
    "most once a minute a token); never a token. revoke takes the token itself or its id\n"
    "(the 16 hex digits after veil_); the server refuses it from the next request on.\n";

int vl_cmd_token(int argc, char **argv)
{
    struct opts o;
    int r = parse(argc, argv, &o, token_usage);
    if (r >= 0) {
        return r;
    }
    const char *verb = optind < argc ? argv[optind] : NULL;
    bool create = verb != NULL && strcmp(verb, "create") == 0;
    bool revoke = verb != NULL && strcmp(verb, "revoke") == 0;
    bool list = verb != NULL && strcmp(verb, "list") == 0;
    if ((create && (optind + 1 != argc || o.tenant == NULL || o.role == NULL)) ||
        (revoke && (optind + 2 != argc || o.tenant != NULL || o.role != NULL)) ||
        (list && (optind + 1 != argc || o.role != NULL)) || (!create && !revoke && !list)) {
        fputs(token_usage, stderr);
        return 2;
    }
    veil_vault *v = NULL;
    if ((r = open_vault(&o, &v)) != 0) {
        return r;
    }
    veil_status st;
    veil_err rc;
    if (create) {
        char *token = NULL, *id = NULL;
        if ((rc = veil_token_create(v, o.tenant, o.role, &token, &id, &st)) == VEIL_OK) {
            printf("%s\n", token);
            fflush(stdout);
            fprintf(stderr, "veil: token %s for tenant %s, role %s\n", id, o.tenant, o.role);
            sodium_memzero(token, strlen(token));
            veil_free(token);
            veil_free(id);
        }
    } else if (list) {
        char *json = NULL;
        if ((rc = veil_token_list(v, o.tenant, &json, &st)) == VEIL_OK) {
            printf("%s\n", json);
            veil_free(json);
        }
    } else {
        /* Name it by its id: the argument may be the token itself. */
        const char *arg = argv[optind + 1];
        char id[17] = "";
        if (strncmp(arg, "veil_", 5) == 0 && strlen(arg) > 21) {
            memcpy(id, arg + 5, 16);
        } else {
            snprintf(id, sizeof(id), "%s", arg);
        }
        if ((rc = veil_token_revoke(v, arg, &st)) == VEIL_OK) {
            fprintf(stderr, "veil: token %s revoked\n", id);
        }
    }
    veil_vault_close(v);
    return rc == VEIL_OK ? 0 : vl_cli_fail(&st);
}

static const char collection_usage[] =
    "usage: veil collection apply --tenant T FILE [--data DIR]\n\n"
    "Registers the collection policy in FILE (YAML or JSON; - for stdin) for tenant T.\n"
    "Applying the same policy again is fine; a different one under the same name is a\n"
    "conflict.\n";

int vl_cmd_collection(int argc, char **argv)
{
    struct opts o;
    int r = parse(argc, argv, &o, collection_usage);
    if (r >= 0) {
        return r;
    }
    if (optind + 2 != argc || strcmp(argv[optind], "apply") != 0 || o.tenant == NULL) {
        fputs(collection_usage, stderr);
        return 2;
    }
    const char *file = argv[optind + 1];
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
    if (f == NULL) {
        return vl_cli_error(1, "cannot open %s", file);
    }
    char *text = malloc(POLICY_MAX + 1);
    size_t n = text != NULL ? fread(text, 1, POLICY_MAX + 1, f) : 0;
    if (f != stdin) {
        fclose(f);
    }
    if (text == NULL || n > POLICY_MAX) {
        free(text);
        return vl_cli_error(1, "%s is larger than %u bytes", file, POLICY_MAX);
    }
    veil_vault *v = NULL;
    if ((r = open_vault(&o, &v)) != 0) {
        free(text);
        return r;
    }
    veil_status st;
    veil_session *s = NULL;
    int created = 0;
    veil_err rc = veil_session_open(v, o.tenant, "admin", &s, &st);
    if (rc == VEIL_OK) {
        rc = veil_collection_apply(s, NULL, text, n, &created, &st);
    }
    if (rc == VEIL_OK) {
        fprintf(stderr, "veil: policy %s for tenant %s\n", created ? "registered" : "unchanged",
                o.tenant);
    }
    veil_session_free(s);
    veil_vault_close(v);
    free(text);
    return rc == VEIL_OK ? 0 : vl_cli_fail(&st);
}

static const char trusted_usage[] =
    "usage: veil trusted accept-rollback [--data DIR]\n\n"
    "For when veil refuses to start because trusted.db is behind the stores: it was\n"
    "restored from a backup, or lost its last transactions, and the stores hold writes it\n"
    "does not know of. If a newer trusted.db exists, put it back instead. Otherwise this\n"
    "accepts the loss of those writes: it records the acceptance, moves the trusted\n"
    "state's counters past what the stores saw (so nothing they used is used again),\n"
    "finishes the writes it had in flight, removes from the stores the rows of documents it\n"
    "never heard of, and forgets (as deleted) the documents whose last version it knows is\n"
    "no longer in any store. Prints a JSON report on stdout. Stop the server first.\n"
    "Run again after an acceptance that was cut short, it settles the stores again.\n";

int vl_cmd_trusted(int argc, char **argv)
{
    struct opts o;
    int r = parse(argc, argv, &o, trusted_usage);
    if (r >= 0) {
        return r;
    }
    if (optind + 1 != argc || strcmp(argv[optind], "accept-rollback") != 0) {
        fputs(trusted_usage, stderr);
        return 2;
    }
    veil_status st;
    char *report = NULL;
    if (veil_trusted_accept_rollback(vl_cli_datadir(o.data), &report, &st) != VEIL_OK) {
        return vl_cli_fail(&st);
    }
    printf("%s\n", report);
    bool accepted = strstr(report, "\"accepted\":true") != NULL;
    veil_free(report);
    fprintf(stderr, accepted ? "veil: rollback accepted: the writes the trusted state did not "
                               "know of are lost; veil starts again\n"
                             : "veil: an earlier acceptance settled again\n");
    return 0;
}
