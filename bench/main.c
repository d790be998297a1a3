/*
 * main.c: bench_core, the benchmark program that bench/run.sh drives.
 *
 *   bench_core http   PHASE --url U --token T --docs F --out R [--threads N] [--batch B]
 *                           [--queries Q]
 *   bench_core sqlite PHASE --db FILE --docs F --out R [--threads N] [--batch B]
 *                           [--queries Q]
 *   bench_core inproc --data DIR --policy YAML --db FILE --docs F --out R
 *   bench_core analytics --data DIR --policy YAML --paillier-policy YAML --db FILE --docs F
 *                        --out R --rows N [--paillier-rows M] [--reps K] [--batch B]
 *                        [--dp-reps D]
 *   bench_core search --corpus DIR --data DIR --token T --pg CONNINFO --out R
 *                     [--max-docs N] [--queries Q] [--batch B]
 *   bench_core verify --data DIR --policy YAML --docs F --out R [--queries Q] [--batch B]
 *   bench_core freeport
 *   bench_core report --results R [--server-hwm KIB] [--commit C] [--build-type T]
 *                     [--data-desc TEXT]
 *
 * PHASE is put, get, bulk or query. `freeport` prints a TCP port of 127.0.0.1 that was free
 * a moment ago (the private PostgreSQL of the search phase listens on it). Each run appends result
 * lines to R; `report` prints the markdown table. Exit status 0 on success, 1 on failure, 2 on a
 * usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "bench.h"

static void usage(void)
{
    fprintf(stderr, "usage: bench_core http|sqlite put|get|bulk|query [options]\n"
                    "       bench_core inproc [options]\n"
                    "       bench_core analytics [options]\n"
                    "       bench_core search [options]\n"
                    "       bench_core verify [options]\n"
                    "       bench_core freeport\n"
                    "       bench_core report --results FILE [options]\n"
                    "see bench/README.md\n");
}

static int parse_count(const char *s, size_t *out)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] == '\0' || s[0] == '-' || end == NULL || *end != '\0' || v == 0) {
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

static int parse_opts(int argc, char **argv, int first, struct bench_opts *o)
{
    size_t n = 0;
    memset(o, 0, sizeof(*o));
    o->threads = 1;
    o->batch = 1000;
    o->queries = 1000;
    o->reps = 5;
    o->dpreps = 200;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            fprintf(stderr, "bench: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--docs") == 0) {
            o->docs = v;
        } else if (strcmp(a, "--out") == 0) {
            o->out = v;
        } else if (strcmp(a, "--url") == 0) {
            o->url = v;
        } else if (strcmp(a, "--token") == 0) {
            o->token = v;
        } else if (strcmp(a, "--db") == 0) {
            o->db = v;
        } else if (strcmp(a, "--data") == 0) {
            o->data = v;
        } else if (strcmp(a, "--policy") == 0) {
            o->policy = v;
        } else if (strcmp(a, "--paillier-policy") == 0) {
            o->policy2 = v;
        } else if (strcmp(a, "--rows") == 0) {
            if (parse_count(v, &o->rows) != 0) {
                fprintf(stderr, "bench: --rows must be a positive number\n");
                return -1;
            }
        } else if (strcmp(a, "--corpus") == 0) {
            o->corpus = v;
        } else if (strcmp(a, "--pg") == 0) {
            o->pg = v;
        } else if (strcmp(a, "--max-docs") == 0) {
            /* 0: every document */
            if (strcmp(v, "0") != 0 && parse_count(v, &o->rows) != 0) {
                fprintf(stderr, "bench: --max-docs must be a number\n");
                return -1;
            }
        } else if (strcmp(a, "--paillier-rows") == 0) {
            /* 0 leaves Paillier out */
            if (strcmp(v, "0") != 0 && parse_count(v, &o->prows) != 0) {
                fprintf(stderr, "bench: --paillier-rows must be a number\n");
                return -1;
            }
        } else if (strcmp(a, "--reps") == 0) {
            if (parse_count(v, &o->reps) != 0 || o->reps > 64) {
                fprintf(stderr, "bench: --reps must be 1..64\n");
                return -1;
            }
        } else if (strcmp(a, "--dp-reps") == 0) {
            if (parse_count(v, &o->dpreps) != 0 || o->dpreps > 100000) {
                fprintf(stderr, "bench: --dp-reps must be 1..100000\n");
                return -1;
            }
        } else if (strcmp(a, "--threads") == 0) {
            if (parse_count(v, &n) != 0 || n > BENCH_MAX_THREADS) {
                fprintf(stderr, "bench: --threads must be 1..%d\n", BENCH_MAX_THREADS);
                return -1;
            }
            o->threads = (unsigned)n;
        } else if (strcmp(a, "--batch") == 0) {
            if (parse_count(v, &o->batch) != 0) {
                fprintf(stderr, "bench: --batch must be a positive number\n");
                return -1;
            }
        } else if (strcmp(a, "--queries") == 0) {
            if (parse_count(v, &o->queries) != 0) {
                fprintf(stderr, "bench: --queries must be a positive number\n");
                return -1;
            }
        } else {
            fprintf(stderr, "bench: unknown option %s\n", a);
            return -1;
        }
    }
    return 0;
}

/* Binds 127.0.0.1:0 and prints the port the kernel chose. */
static int freeport(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        perror("bench: freeport");
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    printf("%u\n", (unsigned)ntohs(sa.sin_port));
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    struct bench_opts o;
    if (argc < 2) {
        usage();
        return 2;
    }
    if (strcmp(argv[1], "report") == 0) {
        return bench_report(argc - 2, argv + 2) == 0 ? 0 : 1;
    }
    if (strcmp(argv[1], "inproc") == 0) {
        if (parse_opts(argc, argv, 2, &o) != 0) {
            usage();
            return 2;
        }
        return bench_inproc(&o) == 0 ? 0 : 1;
    }
    if (strcmp(argv[1], "analytics") == 0) {
        if (parse_opts(argc, argv, 2, &o) != 0) {
            usage();
            return 2;
        }
        return bench_analytics(&o) == 0 ? 0 : 1;
    }
    if (strcmp(argv[1], "search") == 0) {
        if (parse_opts(argc, argv, 2, &o) != 0) {
            usage();
            return 2;
        }
        return bench_search(&o) == 0 ? 0 : 1;
    }
    if (strcmp(argv[1], "verify") == 0) {
        if (parse_opts(argc, argv, 2, &o) != 0) {
            usage();
            return 2;
        }
        return bench_verify(&o) == 0 ? 0 : 1;
    }
    if (strcmp(argv[1], "freeport") == 0) {
        return freeport() == 0 ? 0 : 1;
    }
    if ((strcmp(argv[1], "http") == 0 || strcmp(argv[1], "sqlite") == 0) && argc >= 3) {
        if (parse_opts(argc, argv, 3, &o) != 0) {
            usage();
            return 2;
        }
        int rc = argv[1][0] == 'h' ? bench_http(argv[2], &o) : bench_plain(argv[2], &o);
        return rc == 0 ? 0 : 1;
    }
    usage();
    return 2;
}
