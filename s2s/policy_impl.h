/*
 * The inside of a struct policy, shared by the file that decides (policy.c) and the file
 * that builds one from the configuration (policy_conf.c). Nothing else includes it.
 */
#ifndef S2S_POLICY_IMPL_H
#define S2S_POLICY_IMPL_H

#include <stdatomic.h>

#include "s2s/domainlist.h"
#include "s2s/policy.h"

/* A list file, loaded once per policy however many entries and rules name it. */
struct policy_list {
    struct policy_list *next;
    size_t index; /* 0.. in order of creation: rows of the rule index */
    char *path;   /* absolute */
    unsigned flags;
    struct domainlist_file *file;
};

/* Where a rule or entry is written; file NULL for the built-in default. */
struct policy_origin {
    char *name;
    char *file;
    unsigned line;
};

struct policy_domain {
    struct policy_origin at;
    struct policy_list *list; /* NULL: inline patterns only (in policy.patterns) */
    struct policy_terms terms;
};

struct policy_rule {
    struct policy_origin at;
    unsigned dirs;  /* POLICY_IN | POLICY_OUT; 0: any */
    unsigned kinds; /* POLICY_KIND_*; 0: any */
    char **types;   /* "normal"/"available" also match an absent type */
    size_t ntypes;
    char **ns;
    size_t nns;
    bool has_larger_than;
    size_t larger_than;
    char **local; /* normalized patterns; none: any */
    size_t nlocal;
    char **remote; /* normalized patterns; remote matches these or remote_list */
    size_t nremote;
    struct policy_list *remote_list; /* NULL: none */
    struct ratelimit_spec limit;     /* active: matches only stanzas over this rate */
    struct ratelimit_table *limit_table;
    enum policy_verdict action;
    enum xmpp_stanza_error condition;
    enum xmpp_error_type error_type;
    char *text;
    uint64_t hits;
};

struct policy {
    atomic_int refs; /* the engine's current pointer, each stream/route that took one */
    struct policy_domain deflt;
    struct policy_domain *domains;
    size_t ndomains;
    struct domainlist *patterns; /* inline patterns of every domain entry -> index */
    size_t *listed;              /* indexes of entries with a list file */
    size_t nlisted;
    struct policy_rule *rules;
    size_t nrules;
    uint64_t default_hits;
    struct policy_list *lists;
    size_t nlists;
    struct policy_index *index; /* the rules compiled for policy_check_stanza() */
    bool rate_varies;           /* some entry's rate differs from the default's */
    struct ratelimit_spec address_rate;
    unsigned max_conns_per_address;
    double list_check_interval; /* seconds; 0: never */
};

/* An empty policy with the built-in defaults; the builder fills it in. */
struct policy *policy_alloc(void);
/* Frees p whatever its reference count (the builder's error path). */
void policy_destroy(struct policy *p);
/* Compiles the stanza rules into bitmaps; the builder calls it last. */
void policy_index_build(struct policy *p);

#endif
