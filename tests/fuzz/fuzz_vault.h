/*
 * fuzz_vault.h: a throw-away vault for the harnesses that drive libveil's public API
 * (fuzz_document, fuzz_bulk). LLVMFuzzerInitialize calls fz_vault_init once: a data
 * directory under $TMPDIR made by veil_init, tenant "fuzz" with the invoices policy of
 * examples/ (embedded here, so the harness runs from any directory), and sessions of the
 * admin, clerk and auditor roles. The directory is removed at exit. A harness may add lines
 * to veil.yaml first (fuzz_http sets its limits).
 *
 * Invariant checked for every input (the HTTP API): bad input is a 4xx, never
 * VEIL_ERR_INTERNAL; fz_check aborts (a crash libFuzzer reports) when it sees one.
 */
#ifndef VL_FUZZ_VAULT_H
#define VL_FUZZ_VAULT_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "veil/veil.h"

static const char fz_policy[] =
    "collection: invoices\n"
    "fields:\n"
    "  invoice_no:    { type: string,  protect: [eq] }\n"
    "  org_id:        { type: string,  protect: [eq] }\n"
    "  status:        { type: string,  protect: [eq] }\n"
    "  issued_on:     { type: date,    protect: [range] }\n"
    "  amount:        { type: decimal, scale: 2, protect: [sum, range], bounds: [-1000000, "
    "1000000], out_of_bounds: clamp }\n"
    "  customer.name: { type: string,  protect: [search], language: dutch }\n"
    "  customer.iban: { type: string,  mask: last4 }\n"
    "  notes:         { type: text,    protect: [search] }\n"
    "  internal_ref:  { type: string,  store: trusted }\n"
    "  when:          { type: datetime, protect: [eq] }\n"
    "  count:         { type: integer, protect: [eq] }\n"
    "  flag:          { type: boolean, protect: [eq] }\n"
    "  blob:          { type: json }\n"
    "  code:          { type: string,  mask: hash }\n"
    "roles:\n"
    "  clerk:   { read: [\"*\"], write: true }\n"
    "  auditor: { read: [invoice_no, status, amount], masked: [customer.iban, code] }\n"
    "  analyst: { aggregate: [amount], group_by: [org_id, status], min_group_size: 5 }\n";

static char fz_dir[4096];
static veil_vault *fz_v;
static veil_session *fz_admin, *fz_clerk, *fz_auditor;

static int fz_rm(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void fz_vault_fini(void)
{
    veil_session_free(fz_admin);
    veil_session_free(fz_clerk);
    veil_session_free(fz_auditor);
    veil_vault_close(fz_v);
    fz_admin = fz_clerk = fz_auditor = NULL;
    fz_v = NULL;
    if (fz_dir[0] != '\0') {
        nftw(fz_dir, fz_rm, 16, FTW_DEPTH | FTW_PHYS);
    }
}

static void fz_die(const char *what, const veil_status *st)
{
    fprintf(stderr, "fuzz setup: %s: %s\n", what, st != NULL ? st->message : "");
    abort();
}

/* `extra`, when not NULL, is appended to veil.yaml before the vault is opened. */
static void fz_vault_init(const char *extra)
{
    veil_status st;
    const char *tmp = getenv("TMPDIR");
    snprintf(fz_dir, sizeof(fz_dir), "%s/veil-fuzz-XXXXXX", tmp != NULL ? tmp : "/tmp");
    if (mkdtemp(fz_dir) == NULL) {
        fz_die("mkdtemp", NULL);
    }
    atexit(fz_vault_fini);
    char data[4200];
    snprintf(data, sizeof(data), "%s/data", fz_dir);
    if (veil_init(data, NULL, &st) != VEIL_OK) {
        fz_die("veil_init", &st);
    }
    if (extra != NULL) {
        char cfg[4300];
        snprintf(cfg, sizeof(cfg), "%s/veil.yaml", data);
        FILE *f = fopen(cfg, "a");
        if (f == NULL || fputs(extra, f) < 0 || fclose(f) != 0) {
            fz_die("veil.yaml", NULL);
        }
    }
    if (veil_vault_open(data, &fz_v, &st) != VEIL_OK) {
        fz_die("veil_vault_open", &st);
    }
    if (veil_tenant_create(fz_v, "fuzz", &st) != VEIL_OK ||
        veil_session_open(fz_v, "fuzz", "admin", &fz_admin, &st) != VEIL_OK ||
        veil_session_open(fz_v, "fuzz", "clerk", &fz_clerk, &st) != VEIL_OK ||
        veil_session_open(fz_v, "fuzz", "auditor", &fz_auditor, &st) != VEIL_OK) {
        fz_die("tenant and sessions", &st);
    }
    int created = 0;
    if (veil_collection_apply(fz_admin, "invoices", fz_policy, strlen(fz_policy), &created, &st) !=
        VEIL_OK) {
        fz_die("policy", &st);
    }
}

/* Aborts when a call answered bad input with VEIL_ERR_INTERNAL, or left its status out of
 * step with its return value. */
static __attribute__((unused)) void fz_check(const char *what, veil_err rc,
                                            const veil_status *st)
{
    if (rc == VEIL_ERR_INTERNAL) {
        fprintf(stderr, "%s: internal error on input: %s\n", what, st->message);
        abort();
    }
    if (rc != VEIL_OK &&
        (st->code != rc || memchr(st->message, '\0', sizeof(st->message)) == NULL ||
         st->message[0] == '\0')) {
        fprintf(stderr, "%s: status does not match the error %s\n", what, veil_err_name(rc));
        abort();
    }
}

#endif
