/*
 * Server Dialback elements (XEP-0220): attribute checks and error conditions.
 */
#include <string.h>

#include "dialback/elem.h"
#include "dialback/key.h"

static const struct {
    enum dialback_cond cond;
    const char *name;
} conds[] = {
    {DIALBACK_ERR_ITEM_NOT_FOUND, "item-not-found"},
    {DIALBACK_ERR_REMOTE_CONNECTION_FAILED, "remote-connection-failed"},
    {DIALBACK_ERR_REMOTE_SERVER_NOT_FOUND, "remote-server-not-found"},
    {DIALBACK_ERR_REMOTE_SERVER_TIMEOUT, "remote-server-timeout"},
    {DIALBACK_ERR_POLICY_VIOLATION, "policy-violation"},
    {DIALBACK_ERR_NOT_AUTHORIZED, "not-authorized"},
    {DIALBACK_ERR_FORBIDDEN, "forbidden"},
    {DIALBACK_ERR_NOT_ACCEPTABLE, "not-acceptable"},
    {DIALBACK_ERR_RESOURCE_CONSTRAINT, "resource-constraint"},
    {DIALBACK_ERR_UNDEFINED, "undefined-condition"},
    {DIALBACK_STREAM_BAD_FORMAT, "bad-format"},
    {DIALBACK_STREAM_IMPROPER_ADDRESSING, "improper-addressing"},
    {DIALBACK_STREAM_INVALID_FROM, "invalid-from"},
    {DIALBACK_STREAM_NOT_AUTHORIZED, "not-authorized"},
};

enum dialback_type
dialback_type_parse(const char *type)
{
    if (type == NULL)
        return DIALBACK_TYPE_NONE;
    if (strcmp(type, "valid") == 0)
        return DIALBACK_TYPE_VALID;
    if (strcmp(type, "invalid") == 0)
        return DIALBACK_TYPE_INVALID;
    if (strcmp(type, "error") == 0)
        return DIALBACK_TYPE_ERROR;
    return DIALBACK_TYPE_UNKNOWN;
}

const char *
dialback_type_name(enum dialback_type type)
{
    switch (type) {
    case DIALBACK_TYPE_VALID:
        return "valid";
    case DIALBACK_TYPE_INVALID:
        return "invalid";
    case DIALBACK_TYPE_ERROR:
        return "error";
    case DIALBACK_TYPE_NONE:
    case DIALBACK_TYPE_UNKNOWN:
        break;
    }
    return NULL;
}

const char *
dialback_cond_name(enum dialback_cond cond)
{
    for (size_t i = 0; i < sizeof(conds) / sizeof(conds[0]); i++)
        if (conds[i].cond == cond)
            return conds[i].name;
    return "";
}

bool
dialback_cond_is_stream_error(enum dialback_cond cond)
{
    return cond >= DIALBACK_STREAM_BAD_FORMAT && cond <= DIALBACK_STREAM_NOT_AUTHORIZED;
}

const char *
dialback_cond_error_type(enum dialback_cond cond)
{
    if (cond == DIALBACK_OK || dialback_cond_is_stream_error(cond))
        return NULL;
    if (cond == DIALBACK_ERR_REMOTE_SERVER_TIMEOUT || cond == DIALBACK_ERR_RESOURCE_CONSTRAINT)
        return "wait";
    return "cancel";
}

enum dialback_cond
dialback_cond_parse(const char *name)
{
    if (name == NULL)
        return DIALBACK_ERR_UNDEFINED;
    for (size_t i = 0; i < sizeof(conds) / sizeof(conds[0]); i++)
        if (!dialback_cond_is_stream_error(conds[i].cond) && strcmp(conds[i].name, name) == 0)
            return conds[i].cond;
    return DIALBACK_ERR_UNDEFINED;
}

/*
 * A plausible domain: what we may log, hash and echo. 1..1023 octets (RFC 7622 §3.2),
 * labels of letters, digits, hyphens or non-ASCII octets (U-labels; the XML parser
 * guarantees UTF-8), no empty label except one trailing dot. No '@', '/', spaces,
 * controls or IP literals. The strict check (s2s/certname.h) is the caller's.
 */
static bool
domain_plausible(const char *s)
{
    size_t len, labellen = 0;

    if (s == NULL)
        return false;
    len = strnlen(s, DIALBACK_KEY_MAX_DOMAIN + 1);
    if (len == 0 || len > DIALBACK_KEY_MAX_DOMAIN)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '.') {
            if (labellen == 0)
                return false;
            labellen = 0;
            continue;
        }
        if (!(c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-'))
            return false;
        labellen++;
    }
    return len > 1 || labellen > 0;
}

/* A stream id we can hash (XEP-0185): 1..1023 octets, no spaces or controls. */
static bool
id_plausible(const char *s)
{
    size_t len;

    if (s == NULL)
        return false;
    len = strnlen(s, DIALBACK_KEY_MAX_ID + 1);
    if (len == 0 || len > DIALBACK_KEY_MAX_ID)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

static bool
xml_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The character data without surrounding XML whitespace (XML 1.0 §2.3 S). */
static void
trim(const char *text, size_t len, const char **out, size_t *outlen)
{
    if (text == NULL)
        len = 0;
    while (len > 0 && xml_space(text[0])) {
        text++;
        len--;
    }
    while (len > 0 && xml_space(text[len - 1]))
        len--;
    *out = len > 0 ? text : "";
    *outlen = len;
}

/* A key fit to relay: printable ASCII without spaces, bounded. */
static bool
key_plausible(const char *key, size_t len)
{
    if (len == 0 || len > DIALBACK_MAX_KEY)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < 0x21 || c > 0x7e)
            return false;
    }
    return true;
}

/* What both requests share: direction, addressing (RFC 6120 §4.9.3), hosted target. */
static enum dialback_cond
check_request(const struct dialback_attrs *a)
{
    /* XEP-0220 §2.2 and §7.1: a verdict on an inbound stream is unsolicited. */
    if (a->type != NULL)
        return DIALBACK_STREAM_NOT_AUTHORIZED;
    if (a->from == NULL || a->to == NULL)
        return DIALBACK_STREAM_IMPROPER_ADDRESSING;
    if (!domain_plausible(a->from))
        return DIALBACK_STREAM_INVALID_FROM;
    if (!domain_plausible(a->to))
        return DIALBACK_STREAM_IMPROPER_ADDRESSING;
    return DIALBACK_OK;
}

enum dialback_cond
dialback_check_result_request(const struct dialback_attrs *a, bool to_hosted, const char **key,
                              size_t *keylen)
{
    enum dialback_cond cond;

    *key = "";
    *keylen = 0;
    if ((cond = check_request(a)) != DIALBACK_OK)
        return cond;
    /* XEP-0220 §2.2.1: an unknown target is a dialback error, not a stream error. */
    if (!to_hosted)
        return DIALBACK_ERR_ITEM_NOT_FOUND;
    trim(a->text, a->textlen, key, keylen);
    if (!key_plausible(*key, *keylen)) {
        *key = "";
        *keylen = 0;
        return DIALBACK_ERR_NOT_ACCEPTABLE;
    }
    return DIALBACK_OK;
}

enum dialback_cond
dialback_check_verify_request(const struct dialback_attrs *a, bool to_hosted, const char **key,
                              size_t *keylen)
{
    enum dialback_cond cond;

    *key = "";
    *keylen = 0;
    if ((cond = check_request(a)) != DIALBACK_OK)
        return cond;
    if (!id_plausible(a->id))
        return DIALBACK_STREAM_BAD_FORMAT;
    /* XEP-0220 §2.2.2: not our domain is a dialback error. */
    if (!to_hosted)
        return DIALBACK_ERR_ITEM_NOT_FOUND;
    trim(a->text, a->textlen, key, keylen);
    return DIALBACK_OK;
}

enum dialback_cond
dialback_check_response(const struct dialback_attrs *a, bool is_verify, enum dialback_type *type)
{
    *type = dialback_type_parse(a->type);
    /* A request on an outbound stream would need XEP-0288, which we do not offer. */
    if (*type == DIALBACK_TYPE_NONE)
        return DIALBACK_STREAM_NOT_AUTHORIZED;
    if (*type == DIALBACK_TYPE_UNKNOWN)
        return DIALBACK_STREAM_BAD_FORMAT;
    if (a->from == NULL || a->to == NULL || !domain_plausible(a->from) || !domain_plausible(a->to))
        return DIALBACK_STREAM_IMPROPER_ADDRESSING;
    if (is_verify && !id_plausible(a->id))
        return DIALBACK_STREAM_BAD_FORMAT;
    return DIALBACK_OK;
}
