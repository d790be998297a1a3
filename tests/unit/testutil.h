/* testutil.h: helpers shared by the unit tests. */
#ifndef VL_TESTUTIL_H
#define VL_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Loads tests/data/<rel> as JSON (tests run from the project root); aborts the test
 * program with a message if it cannot. */
json_t *tu_load_json(const char *rel);
/* Reads a whole file into a malloc'd NUL-terminated buffer; NULL on failure. */
char *tu_read_file(const char *path, size_t *len);
/* Decodes hex into a malloc'd buffer (never NULL; 1 byte for empty input). */
uint8_t *tu_unhex(const char *hex, size_t *len);
/* A fresh empty directory under $TMPDIR; malloc'd path. */
char *tu_tempdir(void);
/* rm -rf of a directory made by tu_tempdir. */
void tu_rmtree(const char *path);
/* The integer in the first column of the first row `sql` answers over the SQLite file at
 * path (opened and closed here); aborts the test program with a message if there is none. */
int64_t tu_sql_int(const char *path, const char *sql);

#endif
