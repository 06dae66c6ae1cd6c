/* Placeholder until the daemon is wired (conf, tls, signals): see s2s/conf.h. */
#include "s2s/log.h"

int
main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    log_init("s2sproxy", LOG_LVL_INFO, false);
    return 0;
}
