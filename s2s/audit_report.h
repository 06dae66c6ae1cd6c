/*
 * The audit report: text for people (grade first, then findings, then details) and one
 * JSON document per domain (schema "s2sproxy-audit/1", documented in docs/audit.md).
 */
#ifndef S2S_AUDIT_REPORT_H
#define S2S_AUDIT_REPORT_H

#include <stdio.h>

#include <jansson.h>

#include "s2s/audit.h"

#define AUDIT_SCHEMA "s2sproxy-audit/1"

/* A new reference, or NULL when memory runs out. d must be graded (audit_grade_domain). */
json_t *audit_report_json(const struct audit_domain *d);
void audit_report_text(FILE *fp, const struct audit_domain *d);

#endif
