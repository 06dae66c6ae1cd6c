/*
 * `s2sproxy policy-check -c FILE --from JID --to JID [...]`: what the policy of FILE
 * decides for one stanza between two JIDs, and which rule decided.
 */
#ifndef S2S_CMD_POLICY_CHECK_H
#define S2S_CMD_POLICY_CHECK_H

/* argv[0] is "policy-check". Exit status: 0 pass, 1 refuse/bounce/drop, 2 usage/config. */
int cmd_policy_check(int argc, char **argv);

#endif
