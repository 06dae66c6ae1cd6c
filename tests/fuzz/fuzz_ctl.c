/*
 * Fuzz target for the admin socket's request parser: any line gets a JSON object back,
 * either an answer or {"error": ...}, that serializes; one fake stream is registered so
 * that "close" and "streams" have something to act on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "s2s/ctl.h"
#include "s2s/peerauth.h"
#include "s2s/stats.h"

static const char *
fake_state(const void *session)
{
    (void)session;
    return "READY";
}

static const struct conn *
fake_conn(const void *session)
{
    (void)session;
    return NULL;
}

static void
fake_close(void *session, const char *why)
{
    (void)session;
    (void)why;
}

static const struct s2s_stream_ops fake_ops = {fake_state, fake_conn, fake_close};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct peerauth pa = {.method = PEERAUTH_DIALBACK};
    static struct s2s_stream st;
    static bool registered;
    struct ctl_env env = {0};
    char line[CTL_MAX_LINE + 1];
    json_t *ans;
    char *text;

    if (!registered) {
        s2s_stream_register(&st, true, &st, &fake_ops, &pa, "192.0.2.1:5269");
        s2s_stream_add_pair(&st, "a.example", "b.example");
        registered = true;
    }
    if (size > CTL_MAX_LINE)
        size = CTL_MAX_LINE;
    memcpy(line, data, size);
    line[size] = '\0';
    if ((ans = ctl_answer(&env, line)) == NULL || !json_is_object(ans))
        abort();
    if ((text = json_dumps(ans, JSON_COMPACT)) == NULL)
        abort();
    free(text);
    json_decref(ans);
    return 0;
}
