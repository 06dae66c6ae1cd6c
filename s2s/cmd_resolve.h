/* `s2sproxy resolve DOMAIN [-c FILE] [--json]`: the targets the proxy would try. */
#ifndef S2S_CMD_RESOLVE_H
#define S2S_CMD_RESOLVE_H

/* argv[0] is "resolve". Exit status: 0 targets found, 1 lookup failed, 2 usage/config. */
int cmd_resolve(int argc, char **argv);

#endif
