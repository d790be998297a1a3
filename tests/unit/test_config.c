/*
 * test_config.c: veil.yaml (src/engine/config.c), the operator's file: the limits that
 * protect the shared proxy from its clients and the per-role rate limits. Every key has a
 * default, so an old veil.yaml still bounds every client; a typo or an out-of-range value
 * is refused, naming its line, rather than silently weakening a limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "testutil.h"

#define BASE                                                                                   \
    "keyring: { type: local, path: master.key }\n"                                             \
    "trusted: sqlite:trusted.db\n"                                                             \
    "stores:\n"                                                                                \
    "  cloud: sqlite:cloud/cloud.db\n" /* lines 1-4 */

static veil_err load(const char *text, struct vl_config *cfg, veil_status *st)
{
    char *dir = tu_tempdir();
    char path[4096];
    snprintf(path, sizeof(path), "%s/veil.yaml", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    veil_err rc = vl_config_load(dir, cfg, st);
    tu_rmtree(dir);
    free(dir);
    return rc;
}

static void rate_of(struct vl_config *cfg, const char *role, double *r, double *b)
{
    veil_vault v;
    memset(&v, 0, sizeof(v));
    v.cfg = *cfg;
    veil_vault_rate_limit(&v, role, r, b);
}

static void test_defaults(void **state)
{
    (void)state;
    struct vl_config cfg;
    veil_status st;
    assert_int_equal(load(BASE, &cfg, &st), VEIL_OK);
    assert_int_equal(cfg.limits.max_body, 16u << 20);
    assert_int_equal(cfg.limits.max_inflight_bodies, (size_t)256 << 20);
    assert_int_equal(cfg.limits.max_connections, 1024);
    assert_int_equal(cfg.limits.max_connections_per_client, 64);
    assert_int_equal(cfg.limits.request_timeout, 60);
    assert_int_equal(cfg.limits.idle_timeout, 30);
    double r = 0, b = 0;
    rate_of(&cfg, "anyone", &r, &b);
    assert_true(r == 1000 && b == 2000);
    rate_of(&cfg, NULL, &r, &b);
    assert_true(r == 1000 && b == 2000);
    vl_config_free(&cfg);
}

static void test_all_keys(void **state)
{
    (void)state;
    struct vl_config cfg;
    veil_status st;
    const char *t = BASE "limits: { max_body: 1MiB, max_inflight_bodies: 8MiB, "
                         "max_connections: 100, max_connections_per_client: 3, "
                         "request_timeout: 2min, idle_timeout: 5s }\n"
                         "rate_limits:\n"
                         "  default: 200/s\n"
                         "  burst: 400\n"
                         "  roles:\n"
                         "    analyst: 20/s\n"
                         "    auditor: { rate: 600/min, burst: 3 }\n"
                         "    batch: off\n"
                         "    slow: 1/h\n";
    if (load(t, &cfg, &st) != VEIL_OK) {
        fail_msg("%s", st.message);
    }
    assert_int_equal(cfg.limits.max_body, 1u << 20);
    assert_int_equal(cfg.limits.max_inflight_bodies, 8u << 20);
    assert_int_equal(cfg.limits.max_connections, 100);
    assert_int_equal(cfg.limits.max_connections_per_client, 3);
    assert_int_equal(cfg.limits.request_timeout, 120);
    assert_int_equal(cfg.limits.idle_timeout, 5);
    double r = 0, b = 0;
    rate_of(&cfg, "clerk", &r, &b);
    assert_true(r == 200 && b == 400);
    rate_of(&cfg, "analyst", &r, &b);
    assert_true(r == 20 && b == 40); /* a role's burst defaults to two seconds' worth */
    rate_of(&cfg, "auditor", &r, &b);
    assert_true(r == 10 && b == 3);
    rate_of(&cfg, "batch", &r, &b);
    assert_true(r == 0);
    rate_of(&cfg, "slow", &r, &b);
    assert_true(r > 0 && r < 0.001 && b == 1);
    vl_config_free(&cfg);

    /* Rate limits off by default, with one role limited. */
    assert_int_equal(load(BASE "rate_limits: { default: off, roles: { r: 5/s } }\n", &cfg, &st),
                     VEIL_OK);
    rate_of(&cfg, "x", &r, &b);
    assert_true(r == 0);
    rate_of(&cfg, "r", &r, &b);
    assert_true(r == 5 && b == 10);
    vl_config_free(&cfg);
}

static void test_refused(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int line;
        const char *needle;
    } cases[] = {
        {BASE "limits: { max_inflight_bodies: 1MiB }\n", 5, "at least max_body"},
        {BASE "limits: { max_body: 32MiB, max_inflight_bodies: 16MiB }\n", 5, "at least max_body"},
        {BASE "limits: { max_inflight_bodies: lots }\n", 5, "max_inflight_bodies"},
        {BASE "limits: { max_connections: 0 }\n", 5, "max_connections"},
        {BASE "limits: { max_connections_per_client: -1 }\n", 5, "max_connections_per_client"},
        {BASE "limits: { request_timeout: 0s }\n", 5, "request_timeout"},
        {BASE "limits: { request_timeout: 2 days }\n", 5, "request_timeout"},
        {BASE "limits: { idle_timeout: 25h }\n", 5, "idle_timeout"},
        {BASE "limits: { max_conections: 5 }\n", 5, "unknown limit"},
        {BASE "rate_limits: 200/s\n", 5, "rate_limits must be a mapping"},
        {BASE "rate_limits: { default: fast }\n", 5, "default must be a rate"},
        {BASE "rate_limits: { default: 0/s }\n", 5, "default must be a rate"},
        {BASE "rate_limits: { default: 2000000/s }\n", 5, "default must be a rate"},
        {BASE "rate_limits: { default: 5/day }\n", 5, "default must be a rate"},
        {BASE "rate_limits: { burst: 0 }\n", 5, "burst must be"},
        {BASE "rate_limits: { burst: 1.5 }\n", 5, "burst must be"},
        {BASE "rate_limits: { dfault: 5/s }\n", 5, "unknown rate_limits key"},
        {BASE "rate_limits:\n  roles:\n    r: 20\n", 7, "a rate is"},
        {BASE "rate_limits:\n  roles:\n    r: { burst: 3 }\n", 7, "needs a rate"},
        {BASE "rate_limits:\n  roles:\n    r: { rate: 3/s, burts: 3 }\n", 7, "rate: N/s, burst"},
        {BASE "rate_limits:\n  roles: [r]\n", 6, "roles must map"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct vl_config cfg;
        veil_status st;
        char want[64];
        veil_err rc = load(cases[i].text, &cfg, &st);
        snprintf(want, sizeof(want), "veil.yaml line %d: ", cases[i].line);
        if (rc != VEIL_ERR_BAD_REQUEST || strncmp(st.message, want, strlen(want)) != 0 ||
            strstr(st.message, cases[i].needle) == NULL) {
            fail_msg("case %zu: rc %d, \"%s\"; want \"%s...%s\"", i, rc, st.message, want,
                     cases[i].needle);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_keys),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
