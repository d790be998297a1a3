/*
 * yaml.h: a small, bounded YAML/JSON document loader (libyaml events) for policy text.
 *
 * The loader turns one YAML document into a tree of mappings, sequences and scalars that
 * remembers the line of every node and of every mapping key, so that the policy checker can
 * say where a mistake is. It refuses what a policy never needs and a hostile input could
 * abuse: anchors and aliases, tags, several documents, duplicate keys, non-scalar keys, NUL
 * characters, more than VL_YAML_MAX_DEPTH levels, more than VL_YAML_MAX_NODES nodes and more
 * than VL_YAML_MAX_BYTES bytes of text.
 */
#ifndef VL_POLICY_YAML_H
#define VL_POLICY_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include "util/status.h"

#define VL_YAML_MAX_BYTES (1u << 20)
#define VL_YAML_MAX_DEPTH 32
#define VL_YAML_MAX_NODES 65536

enum vl_ynode_kind { VL_YAML_SCALAR, VL_YAML_SEQ, VL_YAML_MAP };

struct vl_ynode {
    enum vl_ynode_kind kind;
    int line;                 /* 1-based line where the node starts */
    char *str;                /* scalar: NUL-terminated text (never holds a NUL itself) */
    size_t len;               /* scalar: strlen(str) */
    bool plain;               /* scalar: written unquoted (so `true` or `12` may be typed) */
    size_t n;                 /* sequence: items; mapping: pairs */
    size_t cap;               /* allocated room in kids (and keys, key_lines) */
    struct vl_ynode **kids;   /* sequence items, or mapping values, in document order */
    char **keys;              /* mapping: keys[i] is the key of kids[i] */
    int *key_lines;           /* mapping: line of keys[i] */
};

/* Loads one document. `text` may be NULL when `len` is 0 (an empty body). On success *out is
 * the root (NULL for an empty stream or a stream holding only comments), owned by the caller
 * and freed with vl_ynode_free. On failure *out is untouched and st holds "line N: ..." with
 * VEIL_ERR_BAD_REQUEST (malformed YAML, invalid UTF-8, over the limits, or a construct the
 * loader refuses); N is 1-based and a line of the text: an unclosed bracket or quote is
 * reported where it opens. */
veil_err vl_yaml_load(const char *text, size_t len, struct vl_ynode **out,
                      veil_status *st) VL_WUR;
void vl_ynode_free(struct vl_ynode *n);

/* The value under `key` in a mapping, or NULL (also when m is not a mapping). */
const struct vl_ynode *vl_ynode_get(const struct vl_ynode *m, const char *key);

#endif
