/*
 * Domain lists: an open-addressing hash table of names, each with an "exact" and a
 * "subtree" flag and a value for each. Names live in one character arena so that a
 * 100,000-entry list is two allocations, not 100,000.
 */
#include "s2s/domainlist.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "s2s/log.h"

#define SLOT_EMPTY 0x0
#define SLOT_TOMB  0x80 /* removed: probing goes on past it */

struct slot {
    uint64_t hash;
    uint32_t key;      /* offset of the name in the arena */
    uint32_t keylen;   /* its length, without NUL */
    uint32_t value[2]; /* [0] exact entry, [1] subtree entry */
    uint8_t flags;     /* DOMAINLIST_EXACT | DOMAINLIST_SUBTREE, SLOT_TOMB, or empty */
};

struct domainlist {
    struct slot *slots;
    /* Per slot, 16 bits of its hash (never 0) or 0 for empty: most probes of a big list
     * miss, and a miss then reads this compact array instead of the 32-byte slots. */
    uint16_t *tags;
    size_t cap;   /* power of two */
    size_t live;  /* slots holding a name */
    size_t used;  /* live + tombstones: probe chains end at an empty slot */
    size_t count; /* patterns: an exact and a subtree entry of one name count twice */
    char *arena;
    size_t arena_len, arena_cap;
};

struct domainlist_file {
    char *path;
    unsigned flags;
    struct domainlist *list;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    struct event *timer;

    /* A re-read started by the timer runs in a thread: 100,000 lines take tens of
     * milliseconds, too long for the loop. The thread writes one byte to done[1] when
     * it has finished; the loop then takes its result. */
    bool busy;
    pthread_t worker;
    int done[2];
    struct event *done_ev;
    struct stat pending_st;
    struct domainlist *pending;
    char pending_err[512];
    struct stat bad_st; /* the version that failed last: not read again until it changes */
    bool has_bad;
};

/* --- names ---------------------------------------------------------------------------- */

const char *
domainlist_normalize(const char *in, bool allow_wildcard, char *out, size_t outlen, char *why,
                     size_t whylen)
{
    size_t len = strlen(in), label = 0, start = 0;

    if (len > 0 && in[len - 1] == '.')
        len--;
    if (len == 0)
        return "empty";
    if (len + 1 > outlen || len > 255)
        return "longer than 253 characters";
    if (len >= 2 && in[0] == '*' && in[1] == '.') {
        if (!allow_wildcard)
            return "a wildcard is not allowed here";
        out[0] = '*';
        out[1] = '.';
        start = 2;
    }
    if (len - start > 253)
        return "longer than 253 characters";
    for (size_t i = start; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)in[i] : '\0';

        if (c == '.' || c == '\0') {
            if (label == 0)
                return "empty label";
            if (out[i - 1] == '-')
                return "a label ends with '-'";
            label = 0;
            out[i] = (char)c;
            continue;
        }
        if (c >= 0x80)
            return "not ASCII: write an internationalized name in its A-label (xn--) form";
        c = (unsigned char)tolower(c);
        if (!isalnum(c) && c != '-') {
            if (c == '*')
                return "'*' is only allowed as a whole first label (\"*.example.org\")";
            snprintf(why, whylen, "character '%c' is not allowed in a domain",
                     isprint(c) ? c : '?');
            return why;
        }
        if (c == '-' && label == 0)
            return "a label starts with '-'";
        if (++label > 63)
            return "a label is longer than 63 characters";
        out[i] = (char)c;
    }
    return NULL;
}

/*
 * FNV-1a, 64 bits, over the bytes from last to first: the hash of every suffix of a name
 * falls out of one pass (domainlist_key_init()). Short keys, and no peer chooses list
 * entries; peer-chosen lookup keys only ever probe.
 */
#define HASH_INIT       0xcbf29ce484222325ULL
#define HASH_STEP(h, c) (((h) ^ (unsigned char)(c)) * 0x100000001b3ULL)

static uint64_t
hash_name(const char *s, size_t len)
{
    uint64_t h = HASH_INIT;

    while (len > 0)
        h = HASH_STEP(h, s[--len]);
    return h;
}

/* --- table ---------------------------------------------------------------------------- */

struct domainlist *
domainlist_new(void)
{
    struct domainlist *dl = calloc(1, sizeof(*dl));

    if (dl == NULL)
        fatal("calloc");
    dl->cap = 16;
    if ((dl->slots = calloc(dl->cap, sizeof(*dl->slots))) == NULL ||
        (dl->tags = calloc(dl->cap, sizeof(*dl->tags))) == NULL)
        fatal("calloc");
    return dl;
}

void
domainlist_free(struct domainlist *dl)
{
    if (dl == NULL)
        return;
    free(dl->slots);
    free(dl->tags);
    free(dl->arena);
    free(dl);
}

size_t
domainlist_count(const struct domainlist *dl)
{
    return dl->count;
}

static bool
slot_is(const struct domainlist *dl, const struct slot *s, uint64_t h, const char *name, size_t len)
{
    return s->hash == h && s->keylen == len && memcmp(dl->arena + s->key, name, len) == 0;
}

static uint16_t
tag_of(uint64_t h)
{
    return (uint16_t)((h >> 48) | 1);
}

/* The live slot for name, or NULL. */
static struct slot *
find(const struct domainlist *dl, const char *name, size_t len, uint64_t h)
{
    size_t mask = dl->cap - 1;
    uint16_t tag = tag_of(h);

    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct slot *s;

        if (dl->tags[i] == 0)
            return NULL;
        if (dl->tags[i] != tag)
            continue;
        s = &dl->slots[i];
        if (s->flags != SLOT_TOMB && slot_is(dl, s, h, name, len))
            return s;
    }
}

/* A free slot for a name known to be absent (the table has room); its tag is set. */
static struct slot *
free_slot(struct domainlist *dl, uint64_t h)
{
    size_t mask = dl->cap - 1;

    for (size_t i = h & mask;; i = (i + 1) & mask) {
        if (dl->tags[i] == 0 || dl->slots[i].flags == SLOT_TOMB) {
            if (dl->tags[i] == 0)
                dl->used++;
            dl->tags[i] = tag_of(h);
            return &dl->slots[i];
        }
    }
}

/* Keeps the load (tombstones included) at most one half: short probe chains. */
static void
grow(struct domainlist *dl)
{
    struct slot *old = dl->slots;
    uint16_t *oldtags = dl->tags;
    size_t oldcap = dl->cap;

    if ((dl->used + 1) * 2 <= dl->cap)
        return;
    while ((dl->live + 1) * 2 > dl->cap / 2 && dl->cap < ((size_t)1 << 40))
        dl->cap *= 2;
    if ((dl->slots = calloc(dl->cap, sizeof(*dl->slots))) == NULL ||
        (dl->tags = calloc(dl->cap, sizeof(*dl->tags))) == NULL)
        fatal("calloc");
    dl->used = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (oldtags[i] != 0 && old[i].flags != SLOT_TOMB)
            *free_slot(dl, old[i].hash) = old[i];
    free(old);
    free(oldtags);
}

static uint32_t
arena_put(struct domainlist *dl, const char *name, size_t len)
{
    size_t off = dl->arena_len;

    if (dl->arena_len + len + 1 > dl->arena_cap) {
        size_t cap = dl->arena_cap == 0 ? 4096 : dl->arena_cap;

        while (dl->arena_len + len + 1 > cap)
            cap *= 2;
        if (cap > UINT32_MAX)
            fatalx("domain list larger than 4 GiB");
        if ((dl->arena = realloc(dl->arena, cap)) == NULL)
            fatal("realloc");
        dl->arena_cap = cap;
    }
    memcpy(dl->arena + off, name, len);
    dl->arena[off + len] = '\0';
    dl->arena_len += len + 1;
    return (uint32_t)off;
}

/* Adds a normalized pattern. */
static int
add_normalized(struct domainlist *dl, const char *pat, uint32_t value)
{
    unsigned flag = DOMAINLIST_EXACT;
    const char *name = pat;
    struct slot *s;
    size_t len;
    uint64_t h;

    if (name[0] == '*') {
        flag = DOMAINLIST_SUBTREE;
        name += 2;
    }
    len = strlen(name);
    h = hash_name(name, len);
    if ((s = find(dl, name, len, h)) == NULL) {
        grow(dl);
        s = free_slot(dl, h);
        dl->live++;
        s->hash = h;
        s->key = arena_put(dl, name, len);
        s->keylen = (uint32_t)len;
        s->flags = 0;
    } else if (s->flags & flag) {
        return 0;
    }
    s->flags |= (uint8_t)flag;
    s->value[flag == DOMAINLIST_EXACT ? 0 : 1] = value;
    dl->count++;
    return 1;
}

int
domainlist_add(struct domainlist *dl, const char *pattern, uint32_t value)
{
    char norm[DOMAINLIST_NAME_MAX], why[64];

    if (domainlist_normalize(pattern, true, norm, sizeof(norm), why, sizeof(why)) != NULL)
        return -1;
    return add_normalized(dl, norm, value);
}

int
domainlist_remove(struct domainlist *dl, const char *pattern)
{
    char norm[DOMAINLIST_NAME_MAX], why[64];
    unsigned flag = DOMAINLIST_EXACT;
    const char *name = norm;
    struct slot *s;
    size_t len;

    if (domainlist_normalize(pattern, true, norm, sizeof(norm), why, sizeof(why)) != NULL)
        return 0;
    if (name[0] == '*') {
        flag = DOMAINLIST_SUBTREE;
        name += 2;
    }
    len = strlen(name);
    if ((s = find(dl, name, len, hash_name(name, len))) == NULL || !(s->flags & flag))
        return 0;
    s->flags &= (uint8_t)~flag;
    dl->count--;
    if (s->flags == 0) { /* the name stays in the arena until the table is rebuilt */
        s->flags = SLOT_TOMB;
        dl->live--;
    }
    return 1;
}

void
domainlist_key_init(struct domainlist_key *k, const char *domain)
{
    size_t len = strlen(domain);
    uint64_t h = HASH_INIT;
    unsigned n = 0;

    k->name = domain;
    k->nlabels = 0;
    if (len == 0 || len > 253)
        return;
    /* Right to left: at each label start, h is the hash of the suffix starting there. */
    for (size_t i = len; i-- > 0;) {
        if (domain[i] == '.')
            continue;
        h = HASH_STEP(h, domain[i]);
        if (i == 0 || domain[i - 1] == '.') {
            if (n == DOMAINLIST_KEY_LABELS)
                return;
            k->off[n] = (uint32_t)i;
            k->hash[n] = h;
            n++;
            if (i > 0)
                h = HASH_STEP(h, '.');
        }
    }
    if (n == 0)
        return;
    /* Collected shortest first: turn around so that [0] is the whole name. */
    for (unsigned a = 0, b = n - 1; a < b; a++, b--) {
        uint32_t o = k->off[a];
        uint64_t x = k->hash[a];

        k->off[a] = k->off[b];
        k->hash[a] = k->hash[b];
        k->off[b] = o;
        k->hash[b] = x;
    }
    k->nlabels = n;
}

unsigned
domainlist_lookup_key(const struct domainlist *dl, const struct domainlist_key *k, uint32_t *value)
{
    size_t total;
    struct slot *s;

    if (dl->live == 0 || k->nlabels == 0)
        return 0;
    total = strlen(k->name);
    s = find(dl, k->name, total, k->hash[0]);
    if (s != NULL && (s->flags & DOMAINLIST_EXACT)) {
        if (value != NULL)
            *value = s->value[0];
        return 2 * k->nlabels + 1;
    }
    /* Parent suffixes, longest first: the most specific "*." entry wins. */
    for (unsigned i = 1; i < k->nlabels; i++) {
        const char *p = k->name + k->off[i];

        s = find(dl, p, total - k->off[i], k->hash[i]);
        if (s != NULL && (s->flags & DOMAINLIST_SUBTREE)) {
            if (value != NULL)
                *value = s->value[1];
            return 2 * (k->nlabels - i);
        }
    }
    return 0;
}

size_t
domainlist_matches(const struct domainlist *dl, const struct domainlist_key *k, uint32_t *values,
                   size_t max)
{
    size_t total, n = 0;
    struct slot *s;

    if (dl->live == 0 || k->nlabels == 0)
        return 0;
    total = strlen(k->name);
    for (unsigned i = 0; i < k->nlabels; i++) {
        unsigned flag = i == 0 ? DOMAINLIST_EXACT : DOMAINLIST_SUBTREE;

        s = find(dl, k->name + k->off[i], total - k->off[i], k->hash[i]);
        if (s == NULL || !(s->flags & flag))
            continue;
        if (n < max)
            values[n] = s->value[i == 0 ? 0 : 1];
        n++;
    }
    return n;
}

int
domainlist_get(const struct domainlist *dl, const char *pattern, uint32_t *value)
{
    char norm[DOMAINLIST_NAME_MAX], why[64];
    unsigned flag = DOMAINLIST_EXACT;
    const char *name = norm;
    struct slot *s;
    size_t len;

    if (domainlist_normalize(pattern, true, norm, sizeof(norm), why, sizeof(why)) != NULL)
        return 0;
    if (name[0] == '*') {
        flag = DOMAINLIST_SUBTREE;
        name += 2;
    }
    len = strlen(name);
    if ((s = find(dl, name, len, hash_name(name, len))) == NULL || !(s->flags & flag))
        return 0;
    if (value != NULL)
        *value = s->value[flag == DOMAINLIST_EXACT ? 0 : 1];
    return 1;
}

unsigned
domainlist_lookup(const struct domainlist *dl, const char *domain, uint32_t *value)
{
    struct domainlist_key k;

    if (dl->live == 0)
        return 0;
    domainlist_key_init(&k, domain);
    return domainlist_lookup_key(dl, &k, value);
}

bool
domainlist_contains(const struct domainlist *dl, const char *domain)
{
    return domainlist_lookup(dl, domain, NULL) != 0;
}

/* --- files ---------------------------------------------------------------------------- */

/* One line: comment and surrounding blanks cut off; NULL when nothing is left. */
static char *
line_pattern(char *line)
{
    char *hash = strchr(line, '#'), *end;

    if (hash != NULL)
        *hash = '\0';
    while (isspace((unsigned char)*line))
        line++;
    end = line + strlen(line);
    while (end > line && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return *line == '\0' ? NULL : line;
}

static int
load_stream(struct domainlist *dl, FILE *fp, const char *path, unsigned flags, char *err,
            size_t errlen)
{
    char *line = NULL, *pat, norm[DOMAINLIST_NAME_MAX], why[64];
    const char *bad;
    size_t cap = 0;
    unsigned lineno = 0;
    int rc = 0;

    while (getline(&line, &cap, fp) != -1) {
        lineno++;
        if ((pat = line_pattern(line)) == NULL)
            continue;
        if ((bad = domainlist_normalize(pat, true, norm, sizeof(norm), why, sizeof(why))) != NULL) {
            snprintf(err, errlen, "%s:%u: \"%.80s\" is not a domain: %s", path, lineno, pat, bad);
            rc = -1;
            break;
        }
        add_normalized(dl, norm, 0);
        if ((flags & DOMAINLIST_SUBTREE) && norm[0] != '*') {
            char sub[DOMAINLIST_NAME_MAX + 2];

            snprintf(sub, sizeof(sub), "*.%s", norm);
            add_normalized(dl, sub, 0);
        }
    }
    if (rc == 0 && ferror(fp)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    return rc;
}

struct domainlist *
domainlist_load(const char *path, unsigned flags, char *err, size_t errlen)
{
    struct domainlist *dl;
    FILE *fp;

    if ((fp = fopen(path, "r")) == NULL) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    dl = domainlist_new();
    if (load_stream(dl, fp, path, flags, err, errlen) == -1) {
        domainlist_free(dl);
        dl = NULL;
    }
    fclose(fp);
    return dl;
}

static bool
same_file(const struct domainlist_file *f, const struct stat *st)
{
    return f->dev == st->st_dev && f->ino == st->st_ino && f->size == st->st_size &&
           f->mtime.tv_sec == st->st_mtim.tv_sec && f->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* Reads the file into a new table; the stat is taken first, so that a change made while
 * we read is seen by the next check. */
static int
file_reload(struct domainlist_file *f, char *err, size_t errlen)
{
    struct domainlist *dl;
    struct stat st;

    if (stat(f->path, &st) == -1) {
        snprintf(err, errlen, "%s: cannot read: %s", f->path, strerror(errno));
        return -1;
    }
    if (f->list != NULL && same_file(f, &st))
        return 0;
    if ((dl = domainlist_load(f->path, f->flags, err, errlen)) == NULL)
        return -1;
    domainlist_free(f->list);
    f->list = dl;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->size = st.st_size;
    f->mtime = st.st_mtim;
    return 1;
}

struct domainlist_file *
domainlist_file_open(const char *path, unsigned flags, char *err, size_t errlen)
{
    struct domainlist_file *f = calloc(1, sizeof(*f));

    if (f == NULL || (f->path = strdup(path)) == NULL)
        fatal("calloc");
    f->flags = flags;
    if (file_reload(f, err, errlen) == -1) {
        domainlist_file_free(f);
        return NULL;
    }
    return f;
}

static void
worker_join(struct domainlist_file *f)
{
    char c;

    if (!f->busy)
        return;
    pthread_join(f->worker, NULL);
    while (read(f->done[0], &c, 1) == 1)
        ;
    f->busy = false;
}

void
domainlist_file_free(struct domainlist_file *f)
{
    if (f == NULL)
        return;
    worker_join(f);
    domainlist_free(f->pending);
    if (f->timer != NULL)
        event_free(f->timer);
    if (f->done_ev != NULL)
        event_free(f->done_ev);
    if (f->done_ev != NULL || f->timer != NULL) {
        close(f->done[0]);
        close(f->done[1]);
    }
    domainlist_free(f->list);
    free(f->path);
    free(f);
}

struct domainlist *
domainlist_file_list(const struct domainlist_file *f)
{
    return f->list;
}

const char *
domainlist_file_path(const struct domainlist_file *f)
{
    return f->path;
}

int
domainlist_file_check(struct domainlist_file *f, char *err, size_t errlen)
{
    /* Synchronous: a read the timer started is waited for and superseded. */
    worker_join(f);
    domainlist_free(f->pending);
    f->pending = NULL;
    return file_reload(f, err, errlen);
}

static void *
worker_main(void *arg)
{
    struct domainlist_file *f = arg;
    char c = 'x';

    f->pending = domainlist_load(f->path, f->flags, f->pending_err, sizeof(f->pending_err));
    while (write(f->done[1], &c, 1) == -1 && errno == EINTR)
        ;
    return NULL;
}

/* The thread has finished: its table replaces the current one, or the error is logged. */
static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct domainlist_file *f = arg;

    if (!f->busy) /* joined meanwhile by domainlist_file_check() */
        return;
    worker_join(f);
    if (f->pending == NULL) {
        log_warn("domain list not reloaded, keeping %zu entries: %s", f->list->count,
                 f->pending_err);
        f->bad_st = f->pending_st;
        f->has_bad = true;
        return;
    }
    f->has_bad = false;
    domainlist_free(f->list);
    f->list = f->pending;
    f->pending = NULL;
    f->dev = f->pending_st.st_dev;
    f->ino = f->pending_st.st_ino;
    f->size = f->pending_st.st_size;
    f->mtime = f->pending_st.st_mtim;
    log_info("domain list reloaded file=%s entries=%zu", f->path, f->list->count);
}

/* The timer: a stat() in the loop; reading a changed file goes to a thread. */
static void
watch_cb(evutil_socket_t fd, short what, void *arg)
{
    struct domainlist_file *f = arg;

    if (f->busy)
        return;
    if (stat(f->path, &f->pending_st) == -1) {
        log_warn("domain list %s: cannot read: %s (keeping %zu entries)", f->path, strerror(errno),
                 f->list->count);
        return;
    }
    if (same_file(f, &f->pending_st))
        return;
    if (f->has_bad && f->bad_st.st_ino == f->pending_st.st_ino &&
        f->bad_st.st_size == f->pending_st.st_size &&
        f->bad_st.st_mtim.tv_sec == f->pending_st.st_mtim.tv_sec &&
        f->bad_st.st_mtim.tv_nsec == f->pending_st.st_mtim.tv_nsec)
        return; /* still the broken version: logged once */
    f->busy = true;
    if (pthread_create(&f->worker, NULL, worker_main, f) != 0) {
        f->busy = false;
        log_warn("domain list %s: cannot start a reader thread", f->path);
    }
}

int
domainlist_file_watch(struct domainlist_file *f, struct event_base *base, double interval)
{
    struct timeval tv;

    worker_join(f);
    domainlist_free(f->pending);
    f->pending = NULL;
    if (f->timer != NULL) {
        event_free(f->timer);
        event_free(f->done_ev);
        close(f->done[0]);
        close(f->done[1]);
        f->timer = f->done_ev = NULL;
    }
    if (interval <= 0)
        return 0;
    if (pipe2(f->done, O_CLOEXEC | O_NONBLOCK) == -1)
        return -1;
    if ((f->timer = event_new(base, -1, EV_PERSIST, watch_cb, f)) == NULL ||
        (f->done_ev = event_new(base, f->done[0], EV_READ | EV_PERSIST, done_cb, f)) == NULL)
        fatalx("event_new");
    tv.tv_sec = (time_t)interval;
    tv.tv_usec = (suseconds_t)((interval - floor(interval)) * 1e6);
    if (event_add(f->done_ev, NULL) == -1)
        return -1;
    return event_add(f->timer, &tv);
}
