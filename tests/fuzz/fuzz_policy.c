/*
 * fuzz_policy.c: the policy parser (vl_policy_parse over the bounded YAML loader). An
 * accepted policy must have a canonical text that parses again to the same canonical text
 * (the identity that decides 200 versus 409 on registration). A refused text must be
 * invalid_policy with a message "line N: ..." naming one of its own lines. Crashes, leaks,
 * and VEIL_ERR_INTERNAL on input are findings.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

static const char *const stores[] = {"cloud", "eu"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vl_policy *p = NULL;
    veil_status st;
    memset(&st, 0, sizeof(st));
    veil_err rc = vl_policy_parse((const char *)data, size, stores, 2, &p, &st);
    if (rc == VEIL_ERR_INTERNAL || (rc != VEIL_OK && (st.code != rc || st.message[0] == '\0'))) {
        fprintf(stderr, "policy: %s on input\n", veil_err_name(rc));
        abort();
    }
    if (rc != VEIL_OK) {
        /* Lines as YAML counts them: a break (CR LF, CR, LF, NEL, LS, PS) followed by more
         * text starts one. */
        long lines = 1;
        for (size_t i = 0; i < size;) {
            size_t b = 0;
            if (data[i] == '\r') {
                b = i + 1 < size && data[i + 1] == '\n' ? 2 : 1;
            } else if (data[i] == '\n') {
                b = 1;
            } else if (data[i] == 0xc2 && i + 1 < size && data[i + 1] == 0x85) {
                b = 2;
            } else if (data[i] == 0xe2 && i + 2 < size && data[i + 1] == 0x80 &&
                       (data[i + 2] == 0xa8 || data[i + 2] == 0xa9)) {
                b = 3;
            }
            lines += b > 0 && i + b < size;
            i += b > 0 ? b : 1;
        }
        char *end = NULL;
        long line = strncmp(st.message, "line ", 5) == 0 ? strtol(st.message + 5, &end, 10) : 0;
        if (rc != VEIL_ERR_INVALID_POLICY || end == NULL || strncmp(end, ": ", 2) != 0 ||
            line < 1 || line > lines) {
            fprintf(stderr, "policy: refused as %s with \"%s\" (the text has %ld lines)\n",
                    veil_err_name(rc), st.message, lines);
            abort();
        }
        return 0;
    }
    char *c1 = vl_policy_canonical(p);
    struct vl_policy *q = NULL;
    if (c1 == NULL || vl_policy_parse(c1, strlen(c1), stores, 2, &q, &st) != VEIL_OK) {
        fprintf(stderr, "policy: the canonical text of an accepted policy is refused\n");
        abort();
    }
    char *c2 = vl_policy_canonical(q);
    if (c2 == NULL || strcmp(c1, c2) != 0) {
        fprintf(stderr, "policy: the canonical text is not stable\n");
        abort();
    }
    free(c1);
    free(c2);
    vl_policy_free(p);
    vl_policy_free(q);
    return 0;
}
