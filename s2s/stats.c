/* The counters of s2s/stats.h. */
#include "s2s/stats.h"

struct s2s_stats s2s_stats;
