/*
 * memscan.c: TEST ONLY. Finds byte patterns in a large file (a core), all in one pass.
 *
 *   memscan FILE < PATTERNS
 *
 * PATTERNS holds one "LABEL HEX" line per pattern (16 bytes or longer). For every pattern
 * found, prints "LABEL OFFSET" with the offset of its first occurrence; prints nothing
 * about the others. Exit status 0, or 2 on a usage or I/O error.
 *
 * Any occurrence of a pattern of 16 bytes or more, wherever it starts, covers one whole
 * 8-byte-aligned word of the file, which equals the pattern's bytes s..s+8 for the
 * s in 0..7 that aligns it. So each aligned word of the file is looked up in a hash table
 * of those (pattern, s) pairs, and only a hit is compared in full: the file is read once,
 * whatever the number of patterns.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIN_LEN 16
#define MAX_PATTERNS 100000
#define LINE_MAX_BYTES 65536

struct pattern {
    char *label;
    uint8_t *b;
    size_t len;
    int64_t found; /* first offset, or -1 */
};

struct slot {
    uint64_t word;
    uint32_t pat;  /* index + 1; 0 marks an empty slot */
    uint32_t shift;
};

static struct pattern *pats;
static size_t npats;
static struct slot *table;
static size_t tmask;

static uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static size_t hash64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static int read_patterns(void)
{
    static char line[LINE_MAX_BYTES];
    pats = calloc(MAX_PATTERNS, sizeof(*pats));
    if (pats == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), stdin) != NULL) {
        char *sp = strchr(line, ' ');
        size_t hl;
        if (sp == NULL || npats == MAX_PATTERNS) {
            return -1;
        }
        *sp++ = '\0';
        hl = strcspn(sp, "\r\n");
        if (hl % 2 != 0 || hl / 2 < MIN_LEN) {
            return -1;
        }
        struct pattern *p = &pats[npats++];
        p->label = strdup(line);
        p->len = hl / 2;
        p->b = malloc(p->len);
        p->found = -1;
        if (p->label == NULL || p->b == NULL) {
            return -1;
        }
        for (size_t i = 0; i < p->len; i++) {
            int hi = hexval(sp[2 * i]), lo = hexval(sp[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                return -1;
            }
            p->b[i] = (uint8_t)(hi << 4 | lo);
        }
    }
    return 0;
}

static int build_table(void)
{
    size_t want = npats * 8 * 2 + 1, cap = 16;
    while (cap < want) {
        cap *= 2;
    }
    table = calloc(cap, sizeof(*table));
    if (table == NULL) {
        return -1;
    }
    tmask = cap - 1;
    for (size_t i = 0; i < npats; i++) {
        for (uint32_t s = 0; s < 8; s++) {
            uint64_t w = load64(pats[i].b + s);
            size_t h = hash64(w) & tmask;
            while (table[h].pat != 0) {
                h = (h + 1) & tmask;
            }
            table[h].word = w;
            table[h].pat = (uint32_t)i + 1;
            table[h].shift = s;
        }
    }
    return 0;
}

static void scan(const uint8_t *m, size_t size)
{
    for (size_t a = 0; a + 8 <= size; a += 8) {
        uint64_t w = load64(m + a);
        for (size_t h = hash64(w) & tmask; table[h].pat != 0; h = (h + 1) & tmask) {
            if (table[h].word != w) {
                continue;
            }
            struct pattern *p = &pats[table[h].pat - 1];
            if (a < table[h].shift) {
                continue;
            }
            size_t off = a - table[h].shift;
            if ((p->found < 0 || (int64_t)off < p->found) && off + p->len <= size &&
                memcmp(m + off, p->b, p->len) == 0) {
                p->found = (int64_t)off;
            }
        }
    }
}

int main(int argc, char **argv)
{
    struct stat sb;
    int fd;
    if (argc != 2) {
        fputs("usage: memscan FILE < PATTERNS\n", stderr);
        return 2;
    }
    if (read_patterns() != 0 || build_table() != 0) {
        fputs("memscan: bad pattern input (LABEL HEX lines, 16 bytes or more)\n", stderr);
        return 2;
    }
    fd = open(argv[1], O_RDONLY);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        perror("memscan");
        return 2;
    }
    if (sb.st_size > 0) {
        const uint8_t *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            perror("memscan: mmap");
            return 2;
        }
        scan(m, (size_t)sb.st_size);
        munmap((void *)m, (size_t)sb.st_size);
    }
    close(fd);
    for (size_t i = 0; i < npats; i++) {
        if (pats[i].found >= 0) {
            printf("%s %lld\n", pats[i].label, (long long)pats[i].found);
        }
    }
    return fflush(stdout) == 0 ? 0 : 2;
}
