/*
 * fuzz_document.c: the document and query JSON parsers behind veil_doc_put and veil_query,
 * on a real vault (fuzz_vault.h). Each input is stored as a document; when it is accepted,
 * it must read back exactly (admin), and the role views (clerk, auditor) must not fail;
 * then it is deleted again so the store stays small. The same input is then run as a query
 * body by the clerk and the auditor against a few stored invoices.
 *
 * Crashes, leaks, VEIL_ERR_INTERNAL on input, and a document that does not read back as
 * written are all findings.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_vault.h"

#define DOC_ID "fz-doc"

static const char *const seed_docs[] = {
    "{\"invoice_no\":\"INV-1\",\"org_id\":\"ACME\",\"status\":\"open\",\"amount\":\"10.50\","
    "\"customer\":{\"name\":\"Jan\",\"iban\":\"NL91ABNA0417164300\"},\"count\":3,"
    "\"notes\":\"Late payment: final reminder sent\"}",
    "{\"invoice_no\":\"INV-2\",\"org_id\":\"ACME\",\"status\":\"paid\",\"amount\":7,"
    "\"when\":\"2024-01-01T00:00:00Z\",\"flag\":true,\"code\":\"X-1\"}",
    "{\"invoice_no\":\"INV-3\",\"org_id\":\"BETA\",\"status\":\"overdue\",\"blob\":[1,{}]}",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_vault_init(NULL);
    for (size_t i = 0; i < sizeof(seed_docs) / sizeof(seed_docs[0]); i++) {
        char id[16], *out = NULL;
        veil_status st;
        snprintf(id, sizeof(id), "seed-%zu", i);
        if (veil_doc_put(fz_clerk, "invoices", id, seed_docs[i], strlen(seed_docs[i]), 0, &out,
                         NULL, &st) != VEIL_OK) {
            fz_die("seed documents", &st);
        }
        veil_free(out);
    }
    return 0;
}

static void read_back(const uint8_t *data, size_t size)
{
    veil_status st;
    char *out = NULL;
    veil_err rc = veil_doc_get(fz_admin, "invoices", DOC_ID, &out, &st);
    if (rc != VEIL_OK) {
        fprintf(stderr, "an accepted document does not read back: %s\n", veil_err_name(rc));
        abort();
    }
    json_t *want = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    json_t *got = json_loads(out, 0, NULL);
    if (want == NULL || got == NULL || !json_equal(json_object_get(got, "doc"), want)) {
        fprintf(stderr, "an accepted document reads back different\n");
        abort();
    }
    json_decref(want);
    json_decref(got);
    veil_free(out);
    veil_session *views[] = {fz_clerk, fz_auditor};
    for (size_t i = 0; i < 2; i++) {
        out = NULL;
        rc = veil_doc_get(views[i], "invoices", DOC_ID, &out, &st);
        if (rc != VEIL_OK) {
            fprintf(stderr, "role view failed: %s\n", veil_err_name(rc));
            abort();
        }
        veil_free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    veil_status st;
    char *out = NULL;
    int created = 0;
    veil_err rc = veil_doc_put(fz_clerk, "invoices", DOC_ID, (const char *)data, size, 0, &out,
                               &created, &st);
    fz_check("put", rc, &st);
    veil_free(out);
    if (rc == VEIL_OK) {
        read_back(data, size);
        rc = veil_doc_delete(fz_clerk, "invoices", DOC_ID, &st);
        if (rc != VEIL_OK) {
            fprintf(stderr, "delete of an accepted document failed: %s\n", veil_err_name(rc));
            abort();
        }
    }
    veil_session *qs[] = {fz_clerk, fz_auditor};
    for (size_t i = 0; i < 2; i++) {
        out = NULL;
        rc = veil_query(qs[i], "invoices", (const char *)data, size, &out, &st);
        fz_check("query", rc, &st);
        if (rc == VEIL_OK) {
            json_t *a = out != NULL ? json_loads(out, 0, NULL) : NULL;
            if (!json_is_array(json_object_get(a, "docs"))) {
                fprintf(stderr, "a query answer is not {\"docs\": [...]}\n");
                abort();
            }
            json_decref(a);
        }
        veil_free(out);
    }
    return 0;
}
