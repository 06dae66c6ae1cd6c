/*
 * Dialback state of one stream (XEP-0220): domain pairs and pending verifications.
 */
#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include "dialback/key.h"
#include "dialback/state.h"

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                                                 \
    for ((var) = TAILQ_FIRST(head); (var) && ((tvar) = TAILQ_NEXT(var, field), 1); (var) = (tvar))
#endif

#define NAMEBUF (DIALBACK_KEY_MAX_DOMAIN + 1)

/* A pair (id NULL) or a pending verification (id set). */
struct entry {
    TAILQ_ENTRY(entry) link;
    enum dialback_state state;
    char *local;
    char *remote;
    char *id;
};
TAILQ_HEAD(entrylist, entry);

struct dialback_pairs {
    struct entrylist pairs;
    struct entrylist verifies;
    size_t npairs;
    size_t npending; /* pending pairs + verifies */
    size_t max_pairs;
    size_t max_pending;
    bool condemned;
};

/*
 * The comparable form of a domain: ASCII lower-cased, one trailing dot dropped
 * (RFC 7622 §3.2). Returns false for NULL, empty or overlong names.
 */
static bool
name_norm(const char *in, char out[NAMEBUF])
{
    size_t len;

    if (in == NULL)
        return false;
    len = strnlen(in, DIALBACK_KEY_MAX_DOMAIN + 1);
    if (len > DIALBACK_KEY_MAX_DOMAIN)
        return false;
    if (len > 1 && in[len - 1] == '.')
        len--;
    if (len == 0 || (len == 1 && in[0] == '.'))
        return false;
    for (size_t i = 0; i < len; i++)
        out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] - 'A' + 'a') : in[i];
    out[len] = '\0';
    return true;
}

static bool
id_ok(const char *id)
{
    size_t len;

    if (id == NULL)
        return false;
    len = strnlen(id, DIALBACK_KEY_MAX_ID + 1);
    return len > 0 && len <= DIALBACK_KEY_MAX_ID;
}

static void
entry_free(struct entry *e)
{
    free(e->local);
    free(e->remote);
    free(e->id);
    free(e);
}

static struct entry *
entry_new(const char *local, const char *remote, const char *id)
{
    struct entry *e;

    if ((e = calloc(1, sizeof(*e))) == NULL)
        return NULL;
    e->local = strdup(local);
    e->remote = strdup(remote);
    e->id = id != NULL ? strdup(id) : NULL;
    if (e->local == NULL || e->remote == NULL || (id != NULL && e->id == NULL)) {
        entry_free(e);
        return NULL;
    }
    return e;
}

/* local and remote are normalized already. */
static struct entry *
pair_find(const struct dialback_pairs *p, const char *local, const char *remote)
{
    struct entry *e;

    TAILQ_FOREACH(e, &p->pairs, link)
    if (strcmp(e->local, local) == 0 && strcmp(e->remote, remote) == 0)
        return e;
    return NULL;
}

static struct entry *
verify_find(const struct dialback_pairs *p, const char *local, const char *remote, const char *id)
{
    struct entry *e;

    TAILQ_FOREACH(e, &p->verifies, link)
    if (strcmp(e->local, local) == 0 && strcmp(e->remote, remote) == 0 && strcmp(e->id, id) == 0)
        return e;
    return NULL;
}

struct dialback_pairs *
dialback_pairs_new(const struct dialback_limits *limits)
{
    struct dialback_pairs *p;

    if ((p = calloc(1, sizeof(*p))) == NULL)
        return NULL;
    TAILQ_INIT(&p->pairs);
    TAILQ_INIT(&p->verifies);
    p->max_pairs = DIALBACK_DEFAULT_MAX_PAIRS;
    p->max_pending = DIALBACK_DEFAULT_MAX_PENDING;
    if (limits != NULL && limits->max_pairs > 0)
        p->max_pairs = limits->max_pairs;
    if (limits != NULL && limits->max_pending > 0)
        p->max_pending = limits->max_pending;
    return p;
}

void
dialback_pairs_free(struct dialback_pairs *p)
{
    struct entry *e, *tmp;

    if (p == NULL)
        return;
    TAILQ_FOREACH_SAFE(e, &p->pairs, link, tmp)
    entry_free(e);
    TAILQ_FOREACH_SAFE(e, &p->verifies, link, tmp)
    entry_free(e);
    free(p);
}

/*
 * Makes room for one more pair when the table is full by forgetting one that failed with
 * a dialback error: it holds nothing a peer could use, and so cycling through many failing
 * pairs cannot lock valid ones out.
 */
static bool
pair_make_room(struct dialback_pairs *p)
{
    struct entry *e;

    if (p->npairs < p->max_pairs)
        return true;
    TAILQ_FOREACH(e, &p->pairs, link)
    {
        if (e->state == DIALBACK_STATE_ERROR) {
            TAILQ_REMOVE(&p->pairs, e, link);
            entry_free(e);
            p->npairs--;
            return true;
        }
    }
    return false;
}

enum dialback_step
dialback_pair_request(struct dialback_pairs *p, const char *local, const char *remote)
{
    char l[NAMEBUF], r[NAMEBUF];
    struct entry *e;

    if (p == NULL || !name_norm(local, l) || !name_norm(remote, r))
        return DIALBACK_STEP_BAD;
    if (p->condemned)
        return DIALBACK_STEP_CLOSED;
    e = pair_find(p, l, r);
    if (e != NULL && e->state == DIALBACK_STATE_PENDING)
        return DIALBACK_STEP_DUPLICATE;
    if (e != NULL && e->state == DIALBACK_STATE_VALID)
        return DIALBACK_STEP_ALREADY_VALID;
    if (p->npending >= p->max_pending)
        return DIALBACK_STEP_LIMIT;
    if (e == NULL) {
        if (!pair_make_room(p))
            return DIALBACK_STEP_LIMIT;
        if ((e = entry_new(l, r, NULL)) == NULL)
            return DIALBACK_STEP_LIMIT;
        TAILQ_INSERT_TAIL(&p->pairs, e, link);
        p->npairs++;
    }
    /* none -> pending, or error -> pending (a retry after a dialback error). */
    e->state = DIALBACK_STATE_PENDING;
    p->npending++;
    return DIALBACK_STEP_OK;
}

enum dialback_step
dialback_pair_answer(struct dialback_pairs *p, const char *local, const char *remote,
                     enum dialback_state verdict)
{
    char l[NAMEBUF], r[NAMEBUF];
    struct entry *e;

    if (p == NULL || !name_norm(local, l) || !name_norm(remote, r))
        return DIALBACK_STEP_BAD;
    if (verdict != DIALBACK_STATE_VALID && verdict != DIALBACK_STATE_INVALID &&
        verdict != DIALBACK_STATE_ERROR)
        return DIALBACK_STEP_BAD;
    /* XEP-0220 §7.1: only an answer to our own pending request counts. */
    e = pair_find(p, l, r);
    if (e == NULL || e->state != DIALBACK_STATE_PENDING)
        return DIALBACK_STEP_UNSOLICITED;
    e->state = verdict;
    p->npending--;
    if (verdict == DIALBACK_STATE_INVALID)
        p->condemned = true;
    return DIALBACK_STEP_OK;
}

enum dialback_state
dialback_pair_state(const struct dialback_pairs *p, const char *local, const char *remote)
{
    char l[NAMEBUF], r[NAMEBUF];
    const struct entry *e;

    if (p == NULL || !name_norm(local, l) || !name_norm(remote, r))
        return DIALBACK_STATE_NONE;
    e = pair_find(p, l, r);
    return e != NULL ? e->state : DIALBACK_STATE_NONE;
}

enum dialback_step
dialback_pair_revoke(struct dialback_pairs *p, const char *local, const char *remote)
{
    char l[NAMEBUF], r[NAMEBUF];
    struct entry *e;

    if (p == NULL || !name_norm(local, l) || !name_norm(remote, r))
        return DIALBACK_STEP_BAD;
    e = pair_find(p, l, r);
    if (e == NULL || e->state != DIALBACK_STATE_VALID)
        return DIALBACK_STEP_UNSOLICITED;
    e->state = DIALBACK_STATE_ERROR;
    return DIALBACK_STEP_OK;
}

bool
dialback_pair_valid(const struct dialback_pairs *p, const char *local, const char *remote)
{
    if (p == NULL || p->condemned)
        return false;
    return dialback_pair_state(p, local, remote) == DIALBACK_STATE_VALID;
}

enum dialback_step
dialback_verify_request(struct dialback_pairs *p, const char *local, const char *remote,
                        const char *id)
{
    char l[NAMEBUF], r[NAMEBUF];
    struct entry *e;

    if (p == NULL || !name_norm(local, l) || !name_norm(remote, r) || !id_ok(id))
        return DIALBACK_STEP_BAD;
    if (p->condemned)
        return DIALBACK_STEP_CLOSED;
    if (verify_find(p, l, r, id) != NULL)
        return DIALBACK_STEP_DUPLICATE;
    if (p->npending >= p->max_pending)
        return DIALBACK_STEP_LIMIT;
    if ((e = entry_new(l, r, id)) == NULL)
        return DIALBACK_STEP_LIMIT;
    e->state = DIALBACK_STATE_PENDING;
    TAILQ_INSERT_TAIL(&p->verifies, e, link);
    p->npending++;
    return DIALBACK_STEP_OK;
}

enum dialback_step
dialback_verify_answer(struct dialback_pairs *p, const char *local, const char *remote,
                       const char *id)
{
    char l[NAMEBUF], r[NAMEBUF];
    struct entry *e;

    if (p == NULL || !name_norm(local, l) || !name_norm(remote, r) || !id_ok(id))
        return DIALBACK_STEP_BAD;
    /* XEP-0220 §2.1.2: from, to and id must match a request sent on this stream. */
    if ((e = verify_find(p, l, r, id)) == NULL)
        return DIALBACK_STEP_UNSOLICITED;
    TAILQ_REMOVE(&p->verifies, e, link);
    entry_free(e);
    p->npending--;
    return DIALBACK_STEP_OK;
}

size_t
dialback_pairs_fail_pending(struct dialback_pairs *p, dialback_pending_fn fn, void *arg)
{
    struct entry *e, *tmp;
    size_t n = 0;

    if (p == NULL)
        return 0;
    TAILQ_FOREACH(e, &p->pairs, link)
    {
        if (e->state != DIALBACK_STATE_PENDING)
            continue;
        e->state = DIALBACK_STATE_ERROR;
        p->npending--;
        n++;
        if (fn != NULL)
            fn(e->local, e->remote, NULL, arg);
    }
    TAILQ_FOREACH_SAFE(e, &p->verifies, link, tmp)
    {
        TAILQ_REMOVE(&p->verifies, e, link);
        p->npending--;
        n++;
        if (fn != NULL)
            fn(e->local, e->remote, e->id, arg);
        entry_free(e);
    }
    return n;
}

size_t
dialback_pairs_count(const struct dialback_pairs *p)
{
    return p != NULL ? p->npairs : 0;
}

size_t
dialback_pairs_pending(const struct dialback_pairs *p)
{
    return p != NULL ? p->npending : 0;
}

bool
dialback_pairs_condemned(const struct dialback_pairs *p)
{
    return p != NULL && p->condemned;
}

const char *
dialback_state_name(enum dialback_state state)
{
    switch (state) {
    case DIALBACK_STATE_NONE:
        return "none";
    case DIALBACK_STATE_PENDING:
        return "pending";
    case DIALBACK_STATE_VALID:
        return "valid";
    case DIALBACK_STATE_INVALID:
        return "invalid";
    case DIALBACK_STATE_ERROR:
        return "error";
    }
    return "?";
}

const char *
dialback_step_name(enum dialback_step step)
{
    switch (step) {
    case DIALBACK_STEP_OK:
        return "ok";
    case DIALBACK_STEP_DUPLICATE:
        return "duplicate";
    case DIALBACK_STEP_ALREADY_VALID:
        return "already-valid";
    case DIALBACK_STEP_LIMIT:
        return "limit";
    case DIALBACK_STEP_UNSOLICITED:
        return "unsolicited";
    case DIALBACK_STEP_CLOSED:
        return "closed";
    case DIALBACK_STEP_BAD:
        return "bad";
    }
    return "?";
}
