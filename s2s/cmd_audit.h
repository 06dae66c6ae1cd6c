/*
 * `s2sproxy audit [-c FILE] [--json] [--as DOMAIN] [-4|-6] [--timeout SECONDS]
 *  [--min-grade GRADE] [-f FILE] [-j N] DOMAIN...`: graded reports of remote domains.
 */
#ifndef S2S_CMD_AUDIT_H
#define S2S_CMD_AUDIT_H

/* argv[0] is "audit". Exit status: 0 every domain audited (and meeting --min-grade), 1 one
 * fell short or could not be reached, 2 usage or configuration error. */
int cmd_audit(int argc, char **argv);

#endif
