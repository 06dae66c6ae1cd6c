/*
 * Domain lists: sets of domain patterns looked up in constant time.
 *
 * A pattern is a DNS name ("example.org": that domain only) or "*." and a DNS name
 * ("*.example.org": every subdomain, at any depth, but NOT example.org itself; write both
 * to cover both). Names are lower-case A-labels (domainlist_normalize() makes them so).
 *
 * A lookup hashes the domain once for the exact entry, then once per parent suffix for
 * the subtree entries: cost grows with the number of labels, never with the list size.
 * It answers how specific the match was (domainlist_lookup()'s score), so that several
 * lists and patterns can be compared: most specific wins.
 *
 * Files hold one pattern per line, '#' starts a comment (whole line or after the
 * pattern), blank lines are ignored: the format of the public community block lists.
 * A file is read in full into a new table; any bad line refuses the whole file with
 * "FILE:LINE: why". A domainlist_file keeps the current table of one file and can
 * re-read it when the file changes (checked by a libevent timer): the new table is built
 * in full, then replaces the old one; a bad new file keeps the old table. Reading 100,000
 * lines takes tens of milliseconds (bench/README-policy.md), so the timer's re-read runs
 * in a thread of its own and the loop only swaps the finished table in.
 *
 * Threads: a list and a domainlist_file belong to the thread of the loop that uses them.
 * domainlist_add()/domainlist_remove() are there for lists fed at run time (a real-time
 * block list) and change the table in place.
 */
#ifndef S2S_DOMAINLIST_H
#define S2S_DOMAINLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct domainlist;
struct domainlist_file;
struct event_base;

/* Longest DNS name plus "*." and NUL. */
#define DOMAINLIST_NAME_MAX 256

/* How a pattern applies. */
#define DOMAINLIST_EXACT   0x1 /* the domain itself */
#define DOMAINLIST_SUBTREE 0x2 /* its subdomains ("*.domain") */

/*
 * Checks and lower-cases a domain or, with allow_wildcard, a "*.domain" pattern into out
 * (a trailing dot is removed). Returns NULL when valid, else why not (static text or
 * written into why).
 */
const char *domainlist_normalize(const char *in, bool allow_wildcard, char *out, size_t outlen,
                                 char *why, size_t whylen);

struct domainlist *domainlist_new(void);
void domainlist_free(struct domainlist *dl);

/*
 * Adds a pattern ("example.org" or "*.example.org", normalized or not) with a value the
 * caller chooses (an index into its own table). An existing pattern keeps its first
 * value: the first writer wins. Returns 1 added, 0 already present, -1 invalid pattern.
 */
int domainlist_add(struct domainlist *dl, const char *pattern, uint32_t value);
/* Removes a pattern; returns 1 removed, 0 absent. */
int domainlist_remove(struct domainlist *dl, const char *pattern);
size_t domainlist_count(const struct domainlist *dl);

/*
 * How well the lower-case domain matches: 0 no match; an exact entry scores 2N+1 and a
 * "*.S" entry 2M, where N is the domain's number of labels and M that of S. So exact
 * beats any wildcard and a longer suffix beats a shorter one. *value (may be NULL) is
 * the matching entry's value.
 */
unsigned domainlist_lookup(const struct domainlist *dl, const char *domain, uint32_t *value);
bool domainlist_contains(const struct domainlist *dl, const char *domain);

/*
 * A domain prepared for many lookups (one per list or rule): the hashes of all its
 * suffixes, computed in one pass. Domains of more than DOMAINLIST_KEY_LABELS labels
 * match nothing.
 */
#define DOMAINLIST_KEY_LABELS 128
struct domainlist_key {
    const char *name;
    unsigned nlabels;                     /* 0: unusable (empty, too long) */
    uint32_t off[DOMAINLIST_KEY_LABELS];  /* start of each suffix, longest first */
    uint64_t hash[DOMAINLIST_KEY_LABELS]; /* its hash */
};
void domainlist_key_init(struct domainlist_key *k, const char *domain);
unsigned domainlist_lookup_key(const struct domainlist *dl, const struct domainlist_key *k,
                               uint32_t *value);
/*
 * Every entry that matches k, not only the most specific: the exact entry for the name,
 * then the "*." entries of its parent suffixes, longest first. Writes up to max values
 * and returns how many matched (possibly more than max).
 */
size_t domainlist_matches(const struct domainlist *dl, const struct domainlist_key *k,
                          uint32_t *values, size_t max);
/* The value of exactly this pattern ("*.example.org" is not "example.org"): 1 found. */
int domainlist_get(const struct domainlist *dl, const char *pattern, uint32_t *value);

/*
 * Reads a list file (value 0 for every entry). flags: DOMAINLIST_SUBTREE makes every
 * plain entry cover its subdomains too. NULL with "FILE:LINE: why" in err on failure.
 */
struct domainlist *domainlist_load(const char *path, unsigned flags, char *err, size_t errlen);

/* A list file and its current table. */
struct domainlist_file *domainlist_file_open(const char *path, unsigned flags, char *err,
                                             size_t errlen);
void domainlist_file_free(struct domainlist_file *f);
/* The current table: borrowed, valid until the next domainlist_file_check(). */
struct domainlist *domainlist_file_list(const struct domainlist_file *f);
const char *domainlist_file_path(const struct domainlist_file *f);
/*
 * Re-reads the file now, in the caller's thread (SIGHUP, tests), if its inode, size or
 * modification time changed: 1 replaced, 0 unchanged, -1 error (err set, the old table
 * stays).
 */
int domainlist_file_check(struct domainlist_file *f, char *err, size_t errlen);
/*
 * Checks every interval seconds on base (0 stops): a stat() in the loop; a changed file is
 * read by a thread and its table swapped in by the loop when done. Changes and errors are
 * logged (a broken version once).
 */
int domainlist_file_watch(struct domainlist_file *f, struct event_base *base, double interval);

#endif
