/*
 * yaml.c: libyaml's event parser turned into a small line-aware tree, with limits.
 *
 * Policies arrive from admins over HTTP and the CLI, so this is a parser of untrusted text.
 * It uses libyaml's event API rather than its document loader so that every limit holds
 * while parsing, before anything is built: the text size, the nesting depth (the frame
 * stack below is a fixed array) and the node count. Aliases are refused outright, which
 * rules out "billion laughs" expansion; tags are refused because a policy's types are its
 * own words, not YAML's. Input is read as UTF-8 only; libyaml rejects invalid sequences and
 * control characters, and NUL (reachable through "\0" escapes) is refused here.
 *
 * Invariants: every node built is attached to its parent (or is the root) at once, so
 * freeing the root on any error path frees all; messages name lines and keys, never
 * scalar values.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "policy/yaml.h"

struct frame {
    struct vl_ynode *node;
    char *key;   /* mapping frames: the key waiting for its value, or NULL */
    int key_line;
};

struct loader {
    struct frame stack[VL_YAML_MAX_DEPTH];
    size_t depth;
    struct vl_ynode *root;
    size_t nodes;
    veil_status *st;
};

static veil_err fail(veil_status *st, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static veil_err fail(veil_status *st, int line, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL, "line %d: %s", line, msg);
}

void vl_ynode_free(struct vl_ynode *n)
{
    if (n == NULL) {
        return;
    }
    for (size_t i = 0; i < n->n; i++) {
        vl_ynode_free(n->kids[i]);
        if (n->keys != NULL) {
            free(n->keys[i]);
        }
    }
    free(n->kids);
    free(n->keys);
    free(n->key_lines);
    free(n->str);
    free(n);
}

const struct vl_ynode *vl_ynode_get(const struct vl_ynode *m, const char *key)
{
    if (m == NULL || m->kind != VL_YAML_MAP) {
        return NULL;
    }
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->keys[i], key) == 0) {
            return m->kids[i];
        }
    }
    return NULL;
}

/* Appends kid (and, for mappings, its key) to parent. Takes ownership of both, also on
 * failure. Capacities double, so growth is amortised; the node limit bounds the total. */
static veil_err append_kid(struct vl_ynode *parent, struct vl_ynode *kid, char *key,
                           int key_line)
{
    veil_err rc = VEIL_OK;
    if (parent->n == parent->cap) {
        size_t cap = parent->cap == 0 ? 4 : parent->cap * 2;
        struct vl_ynode **kids = realloc(parent->kids, cap * sizeof(*kids));
        if (kids == NULL) {
            rc = VEIL_ERR_INTERNAL;
            goto out;
        }
        parent->kids = kids;
        if (parent->kind == VL_YAML_MAP) {
            char **keys = realloc(parent->keys, cap * sizeof(*keys));
            if (keys == NULL) {
                rc = VEIL_ERR_INTERNAL;
                goto out;
            }
            parent->keys = keys;
            int *lines = realloc(parent->key_lines, cap * sizeof(*lines));
            if (lines == NULL) {
                rc = VEIL_ERR_INTERNAL;
                goto out;
            }
            parent->key_lines = lines;
        }
        parent->cap = cap;
    }
    parent->kids[parent->n] = kid;
    if (parent->kind == VL_YAML_MAP) {
        parent->keys[parent->n] = key;
        parent->key_lines[parent->n] = key_line;
        key = NULL;
    }
    kid = NULL;
    parent->n++;
out:
    vl_ynode_free(kid);
    free(key);
    return rc;
}

struct key_ref {
    const char *key;
    size_t index;
};

static int cmp_key_ref(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c != 0) {
        return c;
    }
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Duplicate keys are an error: YAML forbids them, and libyaml would let the second win
 * silently, which in a security policy hides a mistake. Sorting keeps this O(n log n). */
static veil_err check_duplicates(const struct vl_ynode *m, veil_status *st)
{
    veil_err rc = VEIL_OK;
    struct key_ref *refs = NULL;
    if (m->n < 2) {
        goto out;
    }
    refs = malloc(m->n * sizeof(*refs));
    if (refs == NULL) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    for (size_t i = 0; i < m->n; i++) {
        refs[i].key = m->keys[i];
        refs[i].index = i;
    }
    qsort(refs, m->n, sizeof(*refs), cmp_key_ref);
    for (size_t i = 1; i < m->n; i++) {
        if (strcmp(refs[i - 1].key, refs[i].key) == 0) {
            rc = fail(st, m->key_lines[refs[i].index], "duplicate key '%.64s' (first at line %d)",
                      refs[i].key, m->key_lines[refs[i - 1].index]);
            goto out;
        }
    }
out:
    free(refs);
    return rc;
}

/* Builds a node for a scalar or collection start event and attaches it where the current
 * frame says. For a scalar that is a mapping key, the text is kept as
 * the frame's pending key instead and *made stays NULL. */
static veil_err add_node(struct loader *ld, const yaml_event_t *ev, int line,
                         struct vl_ynode **made)
{
    veil_err rc = VEIL_OK;
    struct vl_ynode *node = NULL;
    char *text = NULL;
    struct frame *top = ld->depth > 0 ? &ld->stack[ld->depth - 1] : NULL;

    *made = NULL;
    if (++ld->nodes > VL_YAML_MAX_NODES) {
        rc = fail(ld->st, line, "more than %d nodes", VL_YAML_MAX_NODES);
        goto out;
    }
    if (ev->type == YAML_SCALAR_EVENT) {
        size_t n = ev->data.scalar.length;
        if (memchr(ev->data.scalar.value, '\0', n) != NULL) {
            rc = fail(ld->st, line, "NUL characters are not allowed");
            goto out;
        }
        text = malloc(n + 1);
        if (text == NULL) {
            rc = VEIL_ERR_INTERNAL;
            goto out;
        }
        memcpy(text, ev->data.scalar.value, n);
        text[n] = '\0';
        if (top != NULL && top->node->kind == VL_YAML_MAP && top->key == NULL) {
            top->key = text;
            top->key_line = line;
            text = NULL;
            goto out;
        }
    } else if (top != NULL && top->node->kind == VL_YAML_MAP && top->key == NULL) {
        rc = fail(ld->st, line, "mapping keys must be plain names, not lists or mappings");
        goto out;
    }

    node = calloc(1, sizeof(*node));
    if (node == NULL) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    node->line = line;
    if (ev->type == YAML_SCALAR_EVENT) {
        node->kind = VL_YAML_SCALAR;
        node->str = text;
        node->len = strlen(text);
        node->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        text = NULL;
    } else {
        node->kind = ev->type == YAML_MAPPING_START_EVENT ? VL_YAML_MAP : VL_YAML_SEQ;
    }

    if (top == NULL) {
        ld->root = node;
    } else {
        char *key = top->key;
        top->key = NULL;
        rc = append_kid(top->node, node, key, top->key_line);
        if (rc != VEIL_OK) {
            node = NULL;
            goto out;
        }
    }
    *made = node;
    node = NULL;
out:
    free(text);
    vl_ynode_free(node);
    return rc;
}

static veil_err on_event(struct loader *ld, const yaml_event_t *ev, int *ndocs)
{
    veil_err rc = VEIL_OK;
    int line = (int)ev->start_mark.line + 1;
    struct vl_ynode *made = NULL;
    const yaml_char_t *anchor = NULL, *tag = NULL;

    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++*ndocs > 1) {
            rc = fail(ld->st, line, "only one document is allowed");
        }
        goto out;
    case YAML_ALIAS_EVENT:
        rc = fail(ld->st, line, "anchors and aliases (&, *) are not allowed");
        goto out;
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (ld->depth == 0) {
            rc = VEIL_ERR_INTERNAL;
            goto out;
        }
        ld->depth--;
        if (ld->stack[ld->depth].node->kind == VL_YAML_MAP) {
            rc = check_duplicates(ld->stack[ld->depth].node, ld->st);
        }
        goto out;
    default:
        goto out;
    }

    if (anchor != NULL) {
        rc = fail(ld->st, line, "anchors and aliases (&, *) are not allowed");
        goto out;
    }
    if (tag != NULL) {
        rc = fail(ld->st, line, "YAML tags (!, !!) are not allowed");
        goto out;
    }
    if (ev->type != YAML_SCALAR_EVENT && ld->depth >= VL_YAML_MAX_DEPTH) {
        rc = fail(ld->st, line, "nested more than %d levels deep", VL_YAML_MAX_DEPTH);
        goto out;
    }
    rc = add_node(ld, ev, line, &made);
    if (rc != VEIL_OK || made == NULL || made->kind == VL_YAML_SCALAR) {
        goto out;
    }
    ld->stack[ld->depth].node = made;
    ld->stack[ld->depth].key = NULL;
    ld->stack[ld->depth].key_line = 0;
    ld->depth++;
out:
    return rc;
}

/* The bytes of the line break at text[i] (CR LF, CR, LF, NEL, LS or PS: what YAML, and so
 * libyaml's line numbers, count as one), 0 when there is none. */
static size_t break_len(const char *text, size_t len, size_t i)
{
    const unsigned char *u = (const unsigned char *)text + i;
    size_t left = len - i;
    if (u[0] == '\r') {
        return left > 1 && u[1] == '\n' ? 2 : 1;
    }
    if (u[0] == '\n') {
        return 1;
    }
    if (u[0] == 0xc2 && left > 1 && u[1] == 0x85) {
        return 2;
    }
    if (u[0] == 0xe2 && left > 2 && u[1] == 0x80 && (u[2] == 0xa8 || u[2] == 0xa9)) {
        return 3;
    }
    return 0;
}

/* The 1-based line of byte `off`, counting line breaks as YAML does. libyaml reports reader
 * errors (bad UTF-8, control characters) by byte offset only. */
static int line_of_offset(const char *text, size_t len, size_t off)
{
    int line = 1;
    for (size_t i = 0; i < off && i < len;) {
        size_t b = break_len(text, len, i);
        line += b > 0 && i + b <= off;
        i += b > 0 ? b : 1;
    }
    return line;
}

/* libyaml's marks count characters, not bytes: the byte offset of character `index` of the
 * UTF-8 text, or len past its end. */
static size_t byte_of_char(const char *text, size_t len, size_t index)
{
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)text[i] & 0xc0) != 0x80) {
            if (index == 0) {
                return i;
            }
            index--;
        }
    }
    return len;
}

/* White space or a line break: what may follow the end of a document. */
static size_t blank_len(const char *text, size_t len, size_t i)
{
    if (text[i] == ' ' || text[i] == '\t') {
        return 1;
    }
    return break_len(text, len, i);
}

/* The line of the last character that is not white space (1 for blank text): libyaml puts
 * an error found at the end of the text on the line after the last line break, a line the
 * author never wrote. */
static int last_line(const char *text, size_t len)
{
    size_t last = 0;
    int any = 0;
    for (size_t i = 0; i < len;) {
        size_t b = blank_len(text, len, i);
        if (b == 0) {
            last = i;
            any = 1;
            b = 1;
        }
        i += b;
    }
    return any ? line_of_offset(text, len, last) : 1;
}

/* 1 when nothing but white space follows byte `off`. */
static int at_end(const char *text, size_t len, size_t off)
{
    for (size_t i = off; i < len;) {
        size_t b = blank_len(text, len, i);
        if (b == 0) {
            return 0;
        }
        i += b;
    }
    return 1;
}

/* "while parsing a flow mapping" -> "a flow mapping"; NULL when it is not of that form. */
static const char *context_noun(const char *context)
{
    static const char *const prefixes[] = {"while parsing ", "while scanning "};
    if (context == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(context, prefixes[i], n) == 0 && context[n] != '\0') {
            return context + n;
        }
    }
    return NULL;
}

/* A syntax error, on the line where the author can fix it. libyaml gives the mark where it
 * noticed the problem and, often, the mark where the construct it was reading began. An
 * error noticed inside the text is reported there, naming where the construct began when
 * that is another line. An error noticed at the end of the text (an unclosed bracket or
 * quote) is reported where the unclosed construct began: libyaml's context when it points
 * into the text, else the innermost mapping or sequence still open. */
static veil_err syntax_error(const struct loader *ld, const yaml_parser_t *parser,
                             const char *text, size_t len)
{
    const char *problem = parser->problem != NULL ? parser->problem : "syntax error";
    const char *context = parser->context;
    int pline = (int)parser->problem_mark.line + 1;
    int cline = (int)parser->context_mark.line + 1;
    int last = last_line(text, len);
    const char *noun = context_noun(context);
    size_t pbyte = byte_of_char(text, len, parser->problem_mark.index);
    size_t cbyte = byte_of_char(text, len, parser->context_mark.index);

    if (pbyte < len && text[pbyte] == '\t') {
        return fail(ld->st, pline, "a tab character; YAML indents with spaces only");
    }
    if (!at_end(text, len, pbyte)) {
        if (context != NULL && cline != pline && cline <= last) {
            return fail(ld->st, pline, "%s %s that starts at line %d", problem, context, cline);
        }
        return fail(ld->st, pline, "%s%s%s", problem, context != NULL ? " " : "",
                    context != NULL ? context : "");
    }
    if (noun != NULL && !at_end(text, len, cbyte)) {
        return fail(ld->st, cline, "the text ends inside %s that starts on this line (%s)",
                    noun, problem);
    }
    if (ld->depth > 0) {
        const struct vl_ynode *open = ld->stack[ld->depth - 1].node;
        return fail(ld->st, open->line,
                    "the text ends before the %s that starts on this line is closed (%s)",
                    open->kind == VL_YAML_MAP ? "mapping" : "list", problem);
    }
    return fail(ld->st, last, "the text ends too early (%s)", problem);
}

veil_err vl_yaml_load(const char *text, size_t len, struct vl_ynode **out, veil_status *st)
{
    veil_err rc = VEIL_OK;
    yaml_parser_t parser;
    bool parser_ok = false;
    yaml_event_t ev;
    bool have_ev = false;
    bool done = false;
    int ndocs = 0;
    struct loader ld;

    memset(&ld, 0, sizeof(ld));
    ld.st = st;
    if (text == NULL && len == 0) {
        text = ""; /* an empty body arrives as NULL; libyaml asserts on a NULL input */
    }
    if (text == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "no text to parse");
        goto out;
    }
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
        text += 3; /* a UTF-8 byte order mark, as some editors write */
        len -= 3;
    }
    if (len > VL_YAML_MAX_BYTES) {
        rc = fail(st, 1, "the text is longer than %u bytes", VL_YAML_MAX_BYTES);
        goto out;
    }
    if (!yaml_parser_initialize(&parser)) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    parser_ok = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);

    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            const char *problem = parser.problem != NULL ? parser.problem : "syntax error";
            if (parser.error == YAML_READER_ERROR) {
                rc = fail(st, line_of_offset(text, len, parser.problem_offset),
                          "%s (the text must be UTF-8)", problem);
            } else if (parser.error == YAML_MEMORY_ERROR) {
                rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
            } else {
                rc = syntax_error(&ld, &parser, text, len);
            }
            goto out;
        }
        have_ev = true;
        if (ev.type == YAML_STREAM_END_EVENT) {
            done = true;
        } else {
            rc = on_event(&ld, &ev, &ndocs);
            if (rc == VEIL_ERR_INTERNAL) {
                vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
            }
            if (rc != VEIL_OK) {
                goto out;
            }
        }
        yaml_event_delete(&ev);
        have_ev = false;
    }
out:
    if (have_ev) {
        yaml_event_delete(&ev);
    }
    if (parser_ok) {
        yaml_parser_delete(&parser);
    }
    for (size_t i = 0; i < ld.depth; i++) {
        free(ld.stack[i].key);
    }
    if (rc == VEIL_OK) {
        *out = ld.root;
    } else {
        vl_ynode_free(ld.root);
    }
    return rc;
}
