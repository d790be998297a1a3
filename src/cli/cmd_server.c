/*
 * cmd_server.c: `veil server [--data D] [--listen ADDR]`, the proxy in the foreground.
 *
 * Opens the vault of the data directory, serves it over HTTP until SIGTERM or SIGINT, then
 * lets the requests in flight finish and closes the vault, so that nothing is lost. The
 * signal handlers only set a flag; all the work of stopping happens in vl_server_run().
 * Before the vault (and so any key) is opened, the process makes itself non-dumpable with
 * no core files, unless --allow-core-dumps or VEIL_ALLOW_CORE_DUMPS=1 asks otherwise.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "server/server.h"

static volatile sig_atomic_t stop_flag = 0;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static const char usage[] =
    "usage: veil server [--data DIR] [--listen HOST:PORT] [--allow-core-dumps]\n"
    "\n"
    "Runs the proxy in the foreground. The data directory is --data, else $VEIL_DATA, else\n"
    "./veil-data; the address is --listen, else the `listen:` of veil.yaml\n"
    "(127.0.0.1:8470 by default). Port 0 picks a free port. Once listening, prints\n"
    "\"veil: listening on http://HOST:PORT\" on stderr. SIGTERM and SIGINT stop it\n"
    "gracefully: requests in flight finish first.\n"
    "\n"
    "The server makes itself non-dumpable (no core file, no debugger attaching as the same\n"
    "user) and sets its core file size limit to 0. --allow-core-dumps, or\n"
    "VEIL_ALLOW_CORE_DUMPS=1, leaves it dumpable, for debugging; keys stay in locked\n"
    "memory excluded from core dumps either way.\n";

/* Takes "--name VALUE" or "--name=VALUE" at argv[*i]; 1 when it matched. */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **out)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0) {
        return 0;
    }
    if (a[n] == '=') {
        *out = a + n + 1;
        return 1;
    }
    if (a[n] == '\0' && *i + 1 < argc) {
        *out = argv[++*i];
        return 1;
    }
    if (a[n] == '\0') {
        *out = NULL;
        return 1;
    }
    return 0;
}

static int install_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
        return -1;
    }
    struct sigaction ign;
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    return sigaction(SIGPIPE, &ign, NULL);
}

int vl_cmd_server(int argc, char **argv)
{
    const char *data = NULL;
    const char *listen = NULL;
    int allow_core_dumps = 0;
    veil_vault *v = NULL;
    veil_status st;
    int rc = 0;

    if (vl_cli_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        const char *val = NULL;
        if (strcmp(argv[i], "--allow-core-dumps") == 0) {
            allow_core_dumps = 1;
            continue;
        }
        if (opt_value(argc, argv, &i, "--data", &val)) {
            data = val;
        } else if (opt_value(argc, argv, &i, "--listen", &val)) {
            listen = val;
        } else {
            fputs(usage, stderr);
            return vl_cli_error(2, "server: unexpected argument \"%s\"", argv[i]);
        }
        if (val == NULL || val[0] == '\0') {
            fputs(usage, stderr);
            return vl_cli_error(2, "server: %s needs a value", argv[i]);
        }
    }

    if (vl_cli_harden(allow_core_dumps) != 0) {
        return 1;
    }
    memset(&st, 0, sizeof(st));
    if (veil_vault_open(vl_cli_datadir(data), &v, &st) != VEIL_OK) {
        rc = vl_cli_fail(&st);
        goto out;
    }
    if (install_handlers() != 0) {
        rc = vl_cli_error(1, "server: cannot install signal handlers");
        goto out;
    }
    rc = vl_server_run(v, listen != NULL ? listen : veil_vault_listen(v), &stop_flag);
out:
    if (v != NULL) {
        veil_vault_close(v);
    }
    return rc;
}
