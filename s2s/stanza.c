/*
 * Stanza trees in one arena, the one-pass serializer and error replies (RFC 6120 §8.3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "s2s/stanza.h"
#include "s2s/xmpperr.h"

/* The first block holds the stanza header and a typical small stanza: ~1 KiB keeps the
 * allocation in glibc's per-thread cache. Later blocks double, up to BLOCK_MAX. */
#define FIRST_BLOCK 1008
#define NEXT_BLOCK  4096
#define BLOCK_MAX   (1024 * 1024)
#define ALIGN       8

struct arena_block {
    struct arena_block *next;
};

struct stanza {
    struct stanza_elem *root;
    size_t wire_bytes;
    size_t mem_bytes;
    char *p; /* free space of the current block: [p, end) */
    char *end;
    size_t next_block;
    struct arena_block *blocks; /* blocks after the first, freed with the stanza */
    _Alignas(ALIGN) char first[];
};

static char empty_string[1] = "";

/* Namespaces that most stanzas use share one static copy: no arena space, and the
 * serializer's equality test usually ends at the pointer comparison. */
static const char *const well_known_ns[] = {
    STANZA_NS_SERVER,
    STANZA_NS_CLIENT,
    STANZA_NS_COMPONENT,
    STANZA_NS_DIALBACK,
    XMPP_NS_STREAMS,
    STANZA_NS_XML,
    XMPP_NS_STANZA_ERRORS,
    XMPP_NS_STREAM_ERRORS,
    "urn:ietf:params:xml:ns:xmpp-tls",
    "urn:ietf:params:xml:ns:xmpp-sasl",
    "http://jabber.org/protocol/caps",
    "vcard-temp:x:update",
    "http://jabber.org/protocol/chatstates",
    "urn:xmpp:receipts",
    "urn:xmpp:delay",
    "urn:xmpp:ping",
    "urn:xmpp:sid:0",
    "http://jabber.org/protocol/disco#info",
    "http://jabber.org/protocol/disco#items",
    "jabber:iq:roster",
    "vcard-temp",
    "urn:xmpp:features:dialback",
};

/* ---- arena ---- */

static struct stanza *
arena_create(void)
{
    struct stanza *st = malloc(FIRST_BLOCK);

    if (st == NULL)
        return NULL;
    memset(st, 0, sizeof(*st));
    st->p = st->first;
    st->end = (char *)st + FIRST_BLOCK;
    st->mem_bytes = FIRST_BLOCK;
    st->next_block = NEXT_BLOCK;
    return st;
}

static char *
align_up(char *p)
{
    return (char *)(((uintptr_t)p + (ALIGN - 1)) & ~(uintptr_t)(ALIGN - 1));
}

/* A new block big enough for size bytes; the rest of the current block is abandoned. */
static void *
arena_grow(struct stanza *st, size_t size)
{
    size_t bsize = st->next_block;
    struct arena_block *b;

    if (bsize < size + sizeof(*b) + ALIGN)
        bsize = size + sizeof(*b) + ALIGN;
    if ((b = malloc(bsize)) == NULL)
        return NULL;
    b->next = st->blocks;
    st->blocks = b;
    st->mem_bytes += bsize;
    if (st->next_block < BLOCK_MAX)
        st->next_block *= 2;
    st->p = align_up((char *)(b + 1));
    st->end = (char *)b + bsize;
    return st->p;
}

void *
stanza_alloc(struct stanza *st, size_t size)
{
    char *p = align_up(st->p);

    if (p > st->end || (size_t)(st->end - p) < size) {
        if ((p = arena_grow(st, size)) == NULL)
            return NULL;
    }
    st->p = p + size;
    return p;
}

char *
stanza_strdup(struct stanza *st, const char *s, size_t len)
{
    char *d;

    if (len == 0)
        return empty_string;
    /* Strings need no alignment: take bytes straight from the bump pointer. */
    if ((size_t)(st->end - st->p) > len)
        d = st->p, st->p += len + 1;
    else if ((d = stanza_alloc(st, len + 1)) == NULL)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

struct stanza *
stanza_new_empty(void)
{
    return arena_create();
}

void
stanza_free(struct stanza *st)
{
    struct arena_block *b, *next;

    if (st == NULL)
        return;
    for (b = st->blocks; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
    free(st);
}

void
stanza_set_wire_bytes(struct stanza *st, size_t n)
{
    st->wire_bytes = n;
}

size_t
stanza_wire_bytes(const struct stanza *st)
{
    return st->wire_bytes;
}

size_t
stanza_mem_bytes(const struct stanza *st)
{
    return st->mem_bytes;
}

/* ---- validation of programmatic input ---- */

/*
 * True if s is UTF-8 (shortest form, no surrogates, <= U+10FFFF) of characters that XML
 * 1.0 allows (§2.2: no C0 controls but TAB, LF, CR; no U+FFFE/U+FFFF). Parsed input is
 * checked by expat; this guards what the proxy builds itself.
 */
static bool
xml_chars_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned c = s[i];
        uint32_t cp;
        size_t n;

        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
                return false;
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, cp = c & 0x07;
        else
            return false;
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        if ((cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff)
            return false;
        i += n + 1;
    }
    return true;
}

/* XML-NAMES §3: no prefix, default included, may be bound to the xmlns namespace. */
static bool
ns_valid(const char *ns)
{
    return strcmp(ns, "http://www.w3.org/2000/xmlns/") != 0 &&
           xml_chars_valid((const unsigned char *)ns, strlen(ns));
}

static bool
name_valid(const char *name)
{
    if (name == NULL || name[0] == '\0')
        return false;
    for (const char *p = name; *p; p++)
        if (strchr(" \t\r\n<>&'\"=/:", *p) != NULL)
            return false;
    return true;
}

/* ---- building ---- */

const char *
stanza_ns_intern(struct stanza *st, const char *ns, size_t len)
{
    if (len == 0)
        return empty_string;
    for (size_t i = 0; i < sizeof(well_known_ns) / sizeof(well_known_ns[0]); i++) {
        const char *w = well_known_ns[i];
        if (w[0] == ns[0] && strncmp(w, ns, len) == 0 && w[len] == '\0')
            return w;
    }
    return stanza_strdup(st, ns, len);
}

static void
elem_append_child(struct stanza_elem *parent, struct stanza_node *n)
{
    n->next = NULL;
    if (parent->last_child != NULL)
        parent->last_child->next = n;
    else
        parent->children = n;
    parent->last_child = n;
}

struct stanza_elem *
stanza_elem_new_raw(struct stanza *st, struct stanza_elem *parent, const char *ns, const char *name,
                    uint32_t nattrs)
{
    struct stanza_elem *e;

    e = stanza_alloc(st, sizeof(*e) + (size_t)nattrs * sizeof(struct stanza_attr));
    if (e == NULL)
        return NULL;
    e->node.type = STANZA_NODE_ELEM;
    e->node.next = NULL;
    e->parent = parent;
    e->children = e->last_child = NULL;
    e->ns = ns;
    e->name = name;
    e->attrs = nattrs ? (struct stanza_attr *)(e + 1) : NULL;
    e->nattrs = 0;
    e->attrs_cap = nattrs;
    if (parent != NULL)
        elem_append_child(parent, &e->node);
    else
        st->root = e;
    return e;
}

static struct stanza_elem *
elem_add(struct stanza *st, struct stanza_elem *parent, const char *ns, const char *name,
         uint32_t nattrs)
{
    const char *ins, *iname;

    if (!name_valid(name))
        return NULL;
    if (ns == NULL)
        ins = parent != NULL ? parent->ns : empty_string;
    else if (parent != NULL && stanza_ns_eq(ns, parent->ns))
        ins = parent->ns;
    else if (!ns_valid(ns))
        return NULL;
    else
        ins = stanza_ns_intern(st, ns, strlen(ns));
    if (ins == NULL || (iname = stanza_strdup(st, name, strlen(name))) == NULL)
        return NULL;
    return stanza_elem_new_raw(st, parent, ins, iname, nattrs);
}

struct stanza *
stanza_new(const char *ns, const char *name)
{
    struct stanza *st = arena_create();

    if (st == NULL)
        return NULL;
    if (elem_add(st, NULL, ns, name, 4) == NULL) {
        stanza_free(st);
        return NULL;
    }
    return st;
}

struct stanza_elem *
stanza_elem_add(struct stanza *st, struct stanza_elem *parent, const char *ns, const char *name)
{
    if (parent == NULL)
        return NULL;
    return elem_add(st, parent, ns, name, 0);
}

static struct stanza_attr *
attr_find(const struct stanza_elem *e, const char *ns, const char *name)
{
    for (uint32_t i = 0; i < e->nattrs; i++) {
        struct stanza_attr *a = &e->attrs[i];
        if (strcmp(a->name, name) == 0 && stanza_ns_eq(a->ns, ns))
            return a;
    }
    return NULL;
}

int
stanza_elem_set_attr(struct stanza *st, struct stanza_elem *e, const char *ns, const char *name,
                     const char *value)
{
    struct stanza_attr *a;
    char *v;

    if (!name_valid(name) || value == NULL || (ns == NULL && strcmp(name, "xmlns") == 0))
        return -1;
    if (ns != NULL && ns[0] == '\0')
        ns = NULL;
    if (!xml_chars_valid((const unsigned char *)value, strlen(value)))
        return -1;
    if ((v = stanza_strdup(st, value, strlen(value))) == NULL)
        return -1;
    if ((a = attr_find(e, ns, name)) != NULL) {
        a->value = v;
        return 0;
    }
    if (e->nattrs == e->attrs_cap) {
        uint32_t cap = e->attrs_cap ? e->attrs_cap * 2 : 4;
        struct stanza_attr *na = stanza_alloc(st, cap * sizeof(*na));
        if (na == NULL)
            return -1;
        if (e->nattrs)
            memcpy(na, e->attrs, e->nattrs * sizeof(*na));
        e->attrs = na;
        e->attrs_cap = cap;
    }
    a = &e->attrs[e->nattrs];
    a->ns = NULL;
    if (ns != NULL) {
        if (!ns_valid(ns))
            return -1;
        if ((a->ns = stanza_ns_intern(st, ns, strlen(ns))) == NULL)
            return -1;
    }
    if ((a->name = stanza_strdup(st, name, strlen(name))) == NULL)
        return -1;
    a->value = v;
    e->nattrs++;
    return 0;
}

/*
 * Appends to the element's last text run, growing it in place when it is the arena's
 * last allocation (the parser's case: expat hands long text over in pieces, one per
 * line) and doubling its room otherwise, so a text of n bytes costs O(n).
 */
int
stanza_text_append(struct stanza *st, struct stanza_elem *e, const char *s, size_t len)
{
    struct stanza_text *t = NULL;
    size_t need;

    if (e->last_child != NULL && e->last_child->type == STANZA_NODE_TEXT)
        t = (struct stanza_text *)e->last_child;
    if (t == NULL) {
        if ((t = stanza_alloc(st, sizeof(*t))) == NULL)
            return -1;
        t->node.type = STANZA_NODE_TEXT;
        t->len = 0;
        t->cap = len + 1;
        if ((t->data = stanza_alloc(st, t->cap)) == NULL)
            return -1;
        elem_append_child(e, &t->node);
    }
    need = t->len + len + 1;
    if (need > t->cap) {
        if (t->data + t->cap == st->p && (size_t)(st->end - st->p) >= need - t->cap) {
            st->p += need - t->cap;
            t->cap = need;
        } else if (t->data + t->cap == st->p && st->blocks != NULL &&
                   t->data == align_up((char *)(st->blocks + 1))) {
            /* A big text alone in the newest block: realloc it (glibc remaps large
             * blocks without copying), keeping memory within ~2x the text. */
            size_t cap = t->cap * 2 > need ? t->cap * 2 : need;
            size_t old = (size_t)(st->end - (char *)st->blocks);
            size_t bsize = sizeof(struct arena_block) + ALIGN + cap;
            struct arena_block *nb = realloc(st->blocks, bsize);
            if (nb == NULL)
                return -1;
            st->blocks = nb;
            st->mem_bytes += bsize - old;
            t->data = align_up((char *)(nb + 1));
            t->cap = need;
            st->p = t->data + need;
            st->end = (char *)nb + bsize;
        } else {
            size_t cap = t->cap * 2 > need ? t->cap * 2 : need;
            char *d = stanza_alloc(st, cap);
            if (d == NULL)
                return -1;
            memcpy(d, t->data, t->len);
            t->data = d;
            t->cap = cap;
        }
    }
    memcpy(t->data + t->len, s, len);
    t->len += len;
    t->data[t->len] = '\0';
    return 0;
}

int
stanza_elem_add_text(struct stanza *st, struct stanza_elem *e, const char *text, size_t len)
{
    if (!xml_chars_valid((const unsigned char *)text, len))
        return -1;
    return stanza_text_append(st, e, text, len);
}

struct stanza_elem *
stanza_elem_copy(struct stanza *st, struct stanza_elem *parent, const struct stanza_elem *src)
{
    struct stanza_elem *e;
    const char *ns, *name;
    const struct stanza_node *n;

    if (parent != NULL && stanza_ns_eq(src->ns, parent->ns))
        ns = parent->ns;
    else if ((ns = stanza_ns_intern(st, src->ns ? src->ns : "", src->ns ? strlen(src->ns) : 0)) ==
             NULL)
        return NULL;
    if ((name = stanza_strdup(st, src->name, strlen(src->name))) == NULL)
        return NULL;
    if ((e = stanza_elem_new_raw(st, parent, ns, name, src->nattrs)) == NULL)
        return NULL;
    for (uint32_t i = 0; i < src->nattrs; i++) {
        const struct stanza_attr *sa = &src->attrs[i];
        struct stanza_attr *a = &e->attrs[i];
        a->ns = NULL;
        if (sa->ns != NULL && (a->ns = stanza_ns_intern(st, sa->ns, strlen(sa->ns))) == NULL)
            return NULL;
        a->name = stanza_strdup(st, sa->name, strlen(sa->name));
        a->value = stanza_strdup(st, sa->value, strlen(sa->value));
        if (a->name == NULL || a->value == NULL)
            return NULL;
        e->nattrs++;
    }
    for (n = src->children; n != NULL; n = n->next) {
        if (n->type == STANZA_NODE_TEXT) {
            const struct stanza_text *t = (const struct stanza_text *)n;
            if (stanza_text_append(st, e, t->data, t->len) == -1)
                return NULL;
        } else if (stanza_elem_copy(st, e, (const struct stanza_elem *)n) == NULL)
            return NULL;
    }
    return e;
}

struct stanza *
stanza_copy(const struct stanza *src)
{
    struct stanza *st = arena_create();

    if (st == NULL)
        return NULL;
    if (stanza_elem_copy(st, NULL, src->root) == NULL) {
        stanza_free(st);
        return NULL;
    }
    st->wire_bytes = src->wire_bytes;
    return st;
}

/* ---- reading ---- */

bool
stanza_ns_eq(const char *a, const char *b)
{
    if (a == b)
        return true;
    if (a == NULL)
        a = "";
    if (b == NULL)
        b = "";
    return strcmp(a, b) == 0;
}

struct stanza_elem *
stanza_root(const struct stanza *st)
{
    return st->root;
}

const char *
stanza_name(const struct stanza *st)
{
    return st->root->name;
}

const char *
stanza_ns(const struct stanza *st)
{
    return st->root->ns;
}

const char *
stanza_attr(const struct stanza *st, const char *name)
{
    return stanza_elem_attr(st->root, name);
}

const char *
stanza_elem_attr(const struct stanza_elem *e, const char *name)
{
    for (uint32_t i = 0; i < e->nattrs; i++)
        if (e->attrs[i].ns == NULL && strcmp(e->attrs[i].name, name) == 0)
            return e->attrs[i].value;
    return NULL;
}

const char *
stanza_elem_attr_ns(const struct stanza_elem *e, const char *ns, const char *name)
{
    struct stanza_attr *a = attr_find(e, ns != NULL && ns[0] ? ns : NULL, name);

    return a != NULL ? a->value : NULL;
}

bool
stanza_elem_is(const struct stanza_elem *e, const char *ns, const char *name)
{
    return strcmp(e->name, name) == 0 && stanza_ns_eq(e->ns, ns);
}

struct stanza_elem *
stanza_elem_first(const struct stanza_elem *e)
{
    for (struct stanza_node *n = e->children; n != NULL; n = n->next)
        if (n->type == STANZA_NODE_ELEM)
            return (struct stanza_elem *)n;
    return NULL;
}

struct stanza_elem *
stanza_elem_next(const struct stanza_elem *e)
{
    for (struct stanza_node *n = e->node.next; n != NULL; n = n->next)
        if (n->type == STANZA_NODE_ELEM)
            return (struct stanza_elem *)n;
    return NULL;
}

struct stanza_elem *
stanza_elem_child(const struct stanza_elem *e, const char *ns, const char *name)
{
    struct stanza_elem *c;

    for (c = stanza_elem_first(e); c != NULL; c = stanza_elem_next(c)) {
        if (name != NULL && strcmp(c->name, name) != 0)
            continue;
        if (ns != NULL && !stanza_ns_eq(c->ns, ns))
            continue;
        return c;
    }
    return NULL;
}

const char *
stanza_elem_text(struct stanza *st, const struct stanza_elem *e, size_t *lenp)
{
    const struct stanza_text *only = NULL;
    size_t total = 0, runs = 0;
    char *buf, *p;

    for (struct stanza_node *n = e->children; n != NULL; n = n->next) {
        if (n->type != STANZA_NODE_TEXT)
            continue;
        only = (const struct stanza_text *)n;
        total += only->len;
        runs++;
    }
    if (lenp != NULL)
        *lenp = total;
    if (runs == 0)
        return empty_string;
    if (runs == 1)
        return only->data;
    if ((buf = stanza_alloc(st, total + 1)) == NULL)
        return NULL;
    p = buf;
    for (struct stanza_node *n = e->children; n != NULL; n = n->next) {
        if (n->type != STANZA_NODE_TEXT)
            continue;
        const struct stanza_text *t = (const struct stanza_text *)n;
        memcpy(p, t->data, t->len);
        p += t->len;
    }
    *p = '\0';
    return buf;
}

/* ---- serializing ---- */

/*
 * The writer reserves contiguous space in the evbuffer and copies into it, so a stanza
 * costs one or two evbuffer calls rather than one per string.
 */
struct writer {
    struct evbuffer *out;
    struct evbuffer_iovec v;
    char *p;
    char *end;
    int err;
};

static void
wr_commit(struct writer *w)
{
    if (w->v.iov_base == NULL)
        return;
    w->v.iov_len = (size_t)(w->p - (char *)w->v.iov_base);
    if (evbuffer_commit_space(w->out, &w->v, 1) == -1)
        w->err = 1;
    w->v.iov_base = NULL;
    w->p = w->end = NULL;
}

static int
wr_reserve(struct writer *w, size_t n)
{
    wr_commit(w);
    if (n < 256)
        n = 256;
    if (w->err || evbuffer_reserve_space(w->out, (ev_ssize_t)n, &w->v, 1) < 1) {
        w->err = 1;
        w->v.iov_base = NULL;
        return -1;
    }
    w->p = w->v.iov_base;
    w->end = w->p + w->v.iov_len;
    return 0;
}

static inline bool
wr_need(struct writer *w, size_t n)
{
    if ((size_t)(w->end - w->p) >= n)
        return true;
    return wr_reserve(w, n > 4096 ? n : 4096) == 0;
}

static inline void
wr_put(struct writer *w, const char *s, size_t n)
{
    if (!wr_need(w, n))
        return;
    memcpy(w->p, s, n);
    w->p += n;
}

static inline void
wr_putc(struct writer *w, char c)
{
    if (!wr_need(w, 1))
        return;
    *w->p++ = c;
}

static inline void
wr_puts(struct writer *w, const char *s)
{
    wr_put(w, s, strlen(s));
}

enum esc_class {
    ESC_PLAIN = 0,
    ESC_DROP,
    ESC_AMP,
    ESC_LT,
    ESC_GT,
    ESC_QUOT,
    ESC_APOS,
    ESC_TAB,
    ESC_LF,
    ESC_CR,
};

/* Character data: & and < must be escaped, > always is (so "]]>" never appears), CR as a
 * reference so that it survives end-of-line normalization (XML 1.0 §2.11). Controls XML
 * 1.0 forbids (§2.2) are dropped: they can only come from a bug, never from expat. */
static const unsigned char text_class[256] = {
    [0x00 ... 0x08] = ESC_DROP,
    [0x0b ... 0x0c] = ESC_DROP,
    [0x0e ... 0x1f] = ESC_DROP,
    ['&'] = ESC_AMP,
    ['<'] = ESC_LT,
    ['>'] = ESC_GT,
    ['\r'] = ESC_CR,
};

/* Attribute values: also both quotes, and TAB/LF/CR as references so that attribute-value
 * normalization (XML 1.0 §3.3.3) gives back the same value. */
static const unsigned char attr_class[256] = {
    [0x00 ... 0x08] = ESC_DROP,
    [0x0b ... 0x0c] = ESC_DROP,
    [0x0e ... 0x1f] = ESC_DROP,
    ['&'] = ESC_AMP,
    ['<'] = ESC_LT,
    ['>'] = ESC_GT,
    ['"'] = ESC_QUOT,
    ['\''] = ESC_APOS,
    ['\t'] = ESC_TAB,
    ['\n'] = ESC_LF,
    ['\r'] = ESC_CR,
};

static const struct {
    const char *s;
    size_t len;
} esc_entity[] = {
    [ESC_PLAIN] = {"", 0},      [ESC_DROP] = {"", 0},    [ESC_AMP] = {"&amp;", 5},
    [ESC_LT] = {"&lt;", 4},     [ESC_GT] = {"&gt;", 4},  [ESC_QUOT] = {"&quot;", 6},
    [ESC_APOS] = {"&apos;", 6}, [ESC_TAB] = {"&#9;", 4}, [ESC_LF] = {"&#10;", 5},
    [ESC_CR] = {"&#13;", 5},
};

static void
wr_escape(struct writer *w, const unsigned char *cls, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    while (p < end) {
        const unsigned char *run = p;
        while (p < end && cls[*p] == ESC_PLAIN)
            p++;
        if (p > run)
            wr_put(w, (const char *)run, (size_t)(p - run));
        if (p == end)
            break;
        wr_put(w, esc_entity[cls[*p]].s, esc_entity[cls[*p]].len);
        p++;
    }
}

struct ser {
    struct writer w;
    const char *stream_ns;
    const char *rehome_from; /* the old stream namespace, when re-homing */
    unsigned flags;
};

static bool
is_stream_content_ns(const char *ns)
{
    return stanza_ns_eq(ns, STANZA_NS_SERVER) || stanza_ns_eq(ns, STANZA_NS_COMPONENT);
}

static void
ser_attrs(struct ser *s, const struct stanza_elem *e)
{
    struct writer *w = &s->w;

    for (uint32_t i = 0; i < e->nattrs; i++) {
        const struct stanza_attr *a = &e->attrs[i];
        char prefix[16];

        wr_putc(w, ' ');
        if (a->ns == NULL || a->ns[0] == '\0') {
            /* plain attribute */
        } else if (stanza_ns_eq(a->ns, STANZA_NS_XML)) {
            wr_put(w, "xml:", 4);
        } else {
            /* Rare: a namespaced attribute gets a prefix of its own, declared here. */
            int n = snprintf(prefix, sizeof(prefix), "a%u", i);
            wr_put(w, "xmlns:", 6);
            wr_put(w, prefix, (size_t)n);
            wr_put(w, "='", 2);
            wr_escape(w, attr_class, a->ns, strlen(a->ns));
            wr_put(w, "' ", 2);
            wr_put(w, prefix, (size_t)n);
            wr_putc(w, ':');
        }
        wr_puts(w, a->name);
        wr_put(w, "='", 2);
        wr_escape(w, attr_class, a->value, strlen(a->value));
        wr_putc(w, '\'');
    }
}

static void
ser_elem(struct ser *s, const struct stanza_elem *e, const char *dflt, bool db_declared)
{
    struct writer *w = &s->w;
    const char *ns = e->ns, *prefix = NULL;
    size_t plen = 0, nlen = strlen(e->name);

    if (s->rehome_from != NULL && stanza_ns_eq(ns, s->rehome_from))
        ns = s->stream_ns;
    if (s->stream_ns != NULL && stanza_ns_eq(ns, XMPP_NS_STREAMS))
        prefix = "stream", plen = 6;
    else if (stanza_ns_eq(ns, STANZA_NS_DIALBACK))
        prefix = "db", plen = 2;
    else if (stanza_ns_eq(ns, STANZA_NS_XML))
        prefix = "xml", plen = 3; /* always bound; may not be declared (XML-NAMES §3) */

    wr_putc(w, '<');
    if (prefix != NULL) {
        wr_put(w, prefix, plen);
        wr_putc(w, ':');
    }
    wr_put(w, e->name, nlen);
    if (prefix == NULL) {
        if (!stanza_ns_eq(ns, dflt)) {
            wr_put(w, " xmlns='", 8);
            if (ns != NULL)
                wr_escape(w, attr_class, ns, strlen(ns));
            wr_putc(w, '\'');
        }
        dflt = ns;
    } else if (plen == 2 && !db_declared) {
        wr_puts(w, " xmlns:db='" STANZA_NS_DIALBACK "'");
        db_declared = true;
    }
    ser_attrs(s, e);
    if (e->children == NULL) {
        wr_put(w, "/>", 2);
        return;
    }
    wr_putc(w, '>');
    for (const struct stanza_node *n = e->children; n != NULL; n = n->next) {
        if (n->type == STANZA_NODE_TEXT) {
            const struct stanza_text *t = (const struct stanza_text *)n;
            wr_escape(w, text_class, t->data, t->len);
        } else {
            ser_elem(s, (const struct stanza_elem *)n, dflt, db_declared);
        }
    }
    wr_put(w, "</", 2);
    if (prefix != NULL) {
        wr_put(w, prefix, plen);
        wr_putc(w, ':');
    }
    wr_put(w, e->name, nlen);
    wr_putc(w, '>');
}

int
stanza_serialize_flags(const struct stanza *st, struct evbuffer *out, const char *stream_ns,
                       unsigned flags)
{
    struct ser s;
    size_t estimate;

    memset(&s, 0, sizeof(s));
    s.w.out = out;
    s.stream_ns = stream_ns;
    s.flags = flags;
    /* RFC 6120 §4.8.3 / XEP-0114: a stanza crossing between the s2s and the component
     * stream takes the new stream's content namespace; payload namespaces stay. */
    if (stream_ns != NULL && is_stream_content_ns(stream_ns) &&
        is_stream_content_ns(st->root->ns) && !stanza_ns_eq(st->root->ns, stream_ns))
        s.rehome_from = st->root->ns;
    /* Reserve about what the stanza needs, so that small stanzas share evbuffer chains. */
    estimate = st->wire_bytes ? st->wire_bytes + st->wire_bytes / 8 + 64 : st->mem_bytes;
    if (wr_reserve(&s.w, estimate) == -1)
        return -1;
    ser_elem(&s, st->root, stream_ns, (flags & STANZA_SER_DB_DECLARED) != 0);
    wr_commit(&s.w);
    return s.w.err ? -1 : 0;
}

int
stanza_serialize(const struct stanza *st, struct evbuffer *out, const char *stream_ns)
{
    return stanza_serialize_flags(st, out, stream_ns, 0);
}

static int
escape_into(struct evbuffer *out, const unsigned char *cls, const char *s, size_t len)
{
    struct writer w;

    memset(&w, 0, sizeof(w));
    w.out = out;
    if (wr_reserve(&w, len + 16) == -1)
        return -1;
    wr_escape(&w, cls, s, len);
    wr_commit(&w);
    return w.err ? -1 : 0;
}

int
stanza_escape_text(struct evbuffer *out, const char *s, size_t len)
{
    return escape_into(out, text_class, s, len);
}

int
stanza_escape_attr(struct evbuffer *out, const char *s, size_t len)
{
    return escape_into(out, attr_class, s, len);
}

/* ---- error replies ---- */

static bool
is_stanza_name(const char *name)
{
    return strcmp(name, "message") == 0 || strcmp(name, "presence") == 0 || strcmp(name, "iq") == 0;
}

struct stanza *
stanza_bounce_make(const struct stanza *orig, enum xmpp_stanza_error cond, const char *why,
                   bool with_payload)
{
    const struct stanza_elem *r = orig->root;
    const char *from = stanza_elem_attr(r, "from"), *to = stanza_elem_attr(r, "to");
    const char *id = stanza_elem_attr(r, "id"), *type = stanza_elem_attr(r, "type");
    const char *lang = stanza_elem_attr_ns(r, STANZA_NS_XML, "lang");
    struct stanza *st;
    struct stanza_elem *root, *err;

    if (!is_stream_content_ns(r->ns) && !stanza_ns_eq(r->ns, STANZA_NS_CLIENT))
        return NULL;
    if (!is_stanza_name(r->name) || from == NULL)
        return NULL;
    /* RFC 6120 §8.3.1: never answer an error with an error; §8.2.3: nor an IQ
     * response. 'result' appears only on IQs, but no stanza of that type wants a reply. */
    if (type != NULL && (strcmp(type, "error") == 0 || strcmp(type, "result") == 0))
        return NULL;

    if ((st = stanza_new(r->ns, r->name)) == NULL)
        return NULL;
    root = st->root;
    if ((to != NULL && stanza_elem_set_attr(st, root, NULL, "from", to) == -1) ||
        stanza_elem_set_attr(st, root, NULL, "to", from) == -1 ||
        (id != NULL && stanza_elem_set_attr(st, root, NULL, "id", id) == -1) ||
        stanza_elem_set_attr(st, root, NULL, "type", "error") == -1 ||
        (lang != NULL && stanza_elem_set_attr(st, root, STANZA_NS_XML, "lang", lang) == -1))
        goto fail;
    if (with_payload) {
        for (const struct stanza_node *n = r->children; n != NULL; n = n->next) {
            if (n->type == STANZA_NODE_TEXT) {
                const struct stanza_text *t = (const struct stanza_text *)n;
                if (stanza_text_append(st, root, t->data, t->len) == -1)
                    goto fail;
            } else if (stanza_elem_copy(st, root, (const struct stanza_elem *)n) == NULL)
                goto fail;
        }
    }
    if ((err = stanza_elem_add(st, root, NULL, "error")) == NULL ||
        stanza_elem_set_attr(st, err, NULL, "type",
                             xmpp_error_type_name(xmpp_stanza_error_default_type(cond))) == -1 ||
        stanza_elem_add(st, err, XMPP_NS_STANZA_ERRORS, xmpp_stanza_error_name(cond)) == NULL)
        goto fail;
    if (why != NULL) {
        struct stanza_elem *text = stanza_elem_add(st, err, XMPP_NS_STANZA_ERRORS, "text");
        if (text == NULL || stanza_elem_add_text(st, text, why, strlen(why)) == -1)
            goto fail;
    }
    return st;
fail:
    stanza_free(st);
    return NULL;
}
