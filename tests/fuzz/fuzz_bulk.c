/*
 * fuzz_bulk.c: the NDJSON bulk parser behind veil_bulk, on a real vault (fuzz_vault.h).
 * The answer must be NDJSON with one JSON object per answered line, lines in ascending
 * input order; every document it reports stored is deleted again (once per id) so the
 * store stays small.
 *
 * Crashes, leaks, VEIL_ERR_INTERNAL on input and malformed answers are findings.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_vault.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_vault_init(NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    veil_status st;
    char *out = NULL;
    veil_err rc = veil_bulk(fz_clerk, "invoices", (const char *)data, size, &out, &st);
    fz_check("bulk", rc, &st);
    if (rc != VEIL_OK) {
        return 0;
    }
    size_t inlines = 1;
    for (size_t i = 0; i < size; i++) {
        inlines += data[i] == '\n';
    }
    json_t *stored = json_object(); /* ids stored, each deleted once at the end */
    json_int_t last = 0;
    size_t answers = 0;
    for (char *line = out, *nl; line != NULL && *line != '\0'; line = nl != NULL ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl == NULL) {
            fprintf(stderr, "a bulk answer line lacks its newline\n");
            abort();
        }
        json_t *o = json_loadb(line, (size_t)(nl - line), 0, NULL);
        json_int_t n = json_integer_value(json_object_get(o, "line"));
        json_int_t status = json_integer_value(json_object_get(o, "status"));
        if (!json_is_object(o) || n <= last || (size_t)n > inlines || status < 200 ||
            status >= 500) {
            fprintf(stderr, "a malformed bulk answer line\n");
            abort();
        }
        last = n;
        answers++;
        const char *id = json_string_value(json_object_get(o, "id"));
        if ((status == 200 || status == 201) && id != NULL) {
            json_object_set_new(stored, id, json_true());
        }
        json_decref(o);
    }
    if (answers > inlines) {
        abort();
    }
    const char *id;
    json_t *unused;
    json_object_foreach (stored, id, unused) {
        if (veil_doc_delete(fz_clerk, "invoices", id, &st) != VEIL_OK) {
            fprintf(stderr, "a stored bulk document cannot be deleted\n");
            abort();
        }
    }
    json_decref(stored);
    veil_free(out);
    return 0;
}
