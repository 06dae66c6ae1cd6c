/*
 * `s2sproxy ctl [-c FILE] [-s SOCKET] COMMAND [ARG] [--json]`: one request to the admin
 * socket of a running daemon (s2s/ctl.h). The socket path is ctl.socket from the
 * configuration, read without validating the rest of it (a reload after a bad edit must
 * still be possible), or -s.
 */
#ifndef S2S_CMD_CTL_H
#define S2S_CMD_CTL_H

#include <stdio.h>

#include <jansson.h>

/* argv[0] is "ctl". Exit status: 0 ok, 1 the daemon answered an error or cannot be
 * reached, 2 usage. */
int cmd_ctl(int argc, char **argv);

/* The text form of an answer to cmd (what `ctl` prints without --json). */
void cmd_ctl_render(FILE *fp, const char *cmd, const json_t *ans);

#endif
