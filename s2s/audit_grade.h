/*
 * The audit grade: a pure function of the facts (docs/audit.md explains every number).
 *
 * Per endpoint: protocol support, key exchange and cipher strength scored 0..100 and
 * weighted 30/30/40 (the well-known web TLS rating method), the score mapped to a letter,
 * then the XMPP caps (no TLS: F; TLS not required: C; TLS 1.0/1.1, no forward secrecy or
 * stream compression: B; ciphers under 128 bits: C), the trust mark T (chain, name or
 * DANE failure) and A+ (DNSSEC-signed SRV, matching DANE, nothing below TLS 1.2).
 * The domain gets its weakest endpoint's grade.
 */
#ifndef S2S_AUDIT_GRADE_H
#define S2S_AUDIT_GRADE_H

#include "s2s/audit.h"

/* Scores one endpoint of d (which gives the DNS context) and appends its findings to d. */
void audit_grade_endpoint(struct audit_domain *d, size_t i, struct audit_score *out);
/* Grades every endpoint and the domain; clears and refills d->findings. */
void audit_grade_domain(struct audit_domain *d);

/* "A+", "A", …, "F", "T", "-". */
const char *audit_grade_name(enum audit_grade g);
/* Parses a grade name (case-insensitive); -1 if unknown. */
int audit_grade_parse(const char *s);
/* True when g is at least as good as min (T and NONE meet nothing but themselves' rank). */
bool audit_grade_meets(enum audit_grade g, enum audit_grade min);

#endif
