/*
 * A bounded DNS message parser (RFC 1035 §4.1), just enough for SRV, A, AAAA, TLSA, CNAME
 * chains and the SOA of negative answers (RFC 2308). See msg.h.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dns/msg.h"

#define HDR_LEN         12
#define WIRE_NAME_MAX   255 /* RFC 1035 §2.3.4 */
#define MAX_POINTERS    64
#define MAX_CNAME_LINKS 8
#define TYPE_CNAME      5
#define TYPE_SOA        6
#define CLASS_IN        1

struct cursor {
    const uint8_t *pkt;
    size_t len;
};

static uint16_t
get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static bool
label_char_ok(uint8_t c)
{
    return c > 0x20 && c < 0x7f && c != '.' && c != '\\';
}

/*
 * Reads the name at off into out (lower case, no trailing dot, "" for the root) and sets
 * *next to the first byte after it. A compression pointer must point before the start of
 * the labels being read, so every jump goes strictly backwards and loops cannot happen.
 */
static int
name_read(const struct cursor *c, size_t off, char *out, size_t outlen, size_t *next)
{
    size_t pos = off, limit = off, wire = 1, o = 0;
    int jumps = 0;
    bool jumped = false;

    for (;;) {
        if (pos >= c->len)
            return -1;
        uint8_t l = c->pkt[pos];
        if ((l & 0xc0) == 0xc0) {
            if (pos + 1 >= c->len)
                return -1;
            size_t ptr = ((size_t)(l & 0x3f) << 8) | c->pkt[pos + 1];
            if (!jumped)
                *next = pos + 2;
            if (ptr >= limit || ++jumps > MAX_POINTERS)
                return -1;
            jumped = true;
            limit = pos = ptr;
            continue;
        }
        if (l & 0xc0) /* 0x40 and 0x80: extended label types (RFC 6891 §5) */
            return -1;
        if (l == 0) {
            if (!jumped)
                *next = pos + 1;
            break;
        }
        if (pos + 1 + l > c->len)
            return -1;
        wire += 1 + (size_t)l;
        if (wire > WIRE_NAME_MAX)
            return -1;
        if (o != 0) {
            if (o + 1 >= outlen)
                return -1;
            out[o++] = '.';
        }
        for (size_t i = 0; i < l; i++) {
            uint8_t ch = c->pkt[pos + 1 + i];
            if (!label_char_ok(ch) || o + 1 >= outlen)
                return -1;
            out[o++] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : (char)ch;
        }
        pos += 1 + (size_t)l;
    }
    if (outlen == 0)
        return -1;
    out[o] = '\0';
    return 0;
}

int
dns_name_normalize(const char *in, char *out, size_t outlen)
{
    size_t n = strlen(in), o = 0, label = 0;

    if (n > 0 && in[n - 1] == '.')
        n--;
    if (n == 0 || n > DNS_NAME_MAX || n + 1 > outlen)
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = (uint8_t)in[i];
        if (ch == '.') {
            if (label == 0)
                return -1;
            label = 0;
            out[o++] = '.';
            continue;
        }
        if (!label_char_ok(ch) || ++label > 63)
            return -1;
        out[o++] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : (char)ch;
    }
    if (label == 0)
        return -1;
    out[o] = '\0';
    return 0;
}

struct rr {
    char owner[DNS_NAME_MAX + 2];
    uint16_t type;
    uint16_t class;
    uint32_t ttl;
    size_t rdoff;
    uint16_t rdlen;
};

/* Reads one resource record header at *off and advances *off past its RDATA. */
static int
rr_read(const struct cursor *c, size_t *off, struct rr *rr)
{
    size_t p;

    if (name_read(c, *off, rr->owner, sizeof(rr->owner), &p) == -1)
        return -1;
    if (p + 10 > c->len)
        return -1;
    rr->type = get16(c->pkt + p);
    rr->class = get16(c->pkt + p + 2);
    rr->ttl = get32(c->pkt + p + 4);
    if (rr->ttl > 0x7fffffff) /* RFC 2181 §8: treat as zero */
        rr->ttl = 0;
    rr->rdlen = get16(c->pkt + p + 8);
    rr->rdoff = p + 10;
    if (rr->rdoff + rr->rdlen > c->len)
        return -1;
    *off = rr->rdoff + rr->rdlen;
    return 0;
}

static size_t
record_size(uint16_t qtype)
{
    switch (qtype) {
    case DNS_TYPE_SRV:
        return sizeof(struct dns_srv);
    case DNS_TYPE_TLSA:
        return sizeof(struct dns_tlsa);
    default:
        return sizeof(struct dns_addr);
    }
}

static void *
record_slot(struct dns_answer *ans)
{
    switch (ans->type) {
    case DNS_TYPE_SRV:
        return &ans->rr.srv[ans->n];
    case DNS_TYPE_TLSA:
        return &ans->rr.tlsa[ans->n];
    default:
        return &ans->rr.addr[ans->n];
    }
}

/*
 * Decodes one record of the asked type into the next free slot. Returns 1 if taken, 0 if
 * skipped (a TLSA too long to keep), -1 if its RDATA is malformed.
 */
static int
record_take(const struct cursor *c, const struct rr *rr, struct dns_answer *ans)
{
    const uint8_t *rd = c->pkt + rr->rdoff;
    size_t next;

    switch (ans->type) {
    case DNS_TYPE_A:
    case DNS_TYPE_AAAA: {
        size_t alen = ans->type == DNS_TYPE_A ? 4 : 16;
        struct dns_addr *a = record_slot(ans);
        if (rr->rdlen != alen)
            return -1;
        memset(a, 0, sizeof(*a));
        a->family = ans->type == DNS_TYPE_A ? AF_INET : AF_INET6;
        memcpy(a->addr, rd, alen);
        a->ttl = rr->ttl;
        return 1;
    }
    case DNS_TYPE_SRV: {
        struct dns_srv *s = record_slot(ans);
        if (rr->rdlen < 7)
            return -1;
        s->priority = get16(rd);
        s->weight = get16(rd + 2);
        s->port = get16(rd + 4);
        if (name_read(c, rr->rdoff + 6, s->target, sizeof(s->target), &next) == -1)
            return -1;
        if (next != rr->rdoff + rr->rdlen)
            return -1;
        if (s->target[0] == '\0')
            strcpy(s->target, ".");
        return 1;
    }
    case DNS_TYPE_TLSA: {
        struct dns_tlsa *t = record_slot(ans);
        size_t dlen;
        if (rr->rdlen < 3)
            return -1;
        dlen = rr->rdlen - 3;
        if (dlen > DNS_TLSA_DATA_MAX)
            return 0;
        t->usage = rd[0];
        t->selector = rd[1];
        t->mtype = rd[2];
        t->len = (uint16_t)dlen;
        t->data = malloc(dlen ? dlen : 1);
        if (t->data == NULL)
            return -1;
        memcpy(t->data, rd + 3, dlen);
        return 1;
    }
    }
    return -1;
}

/* RFC 2308 §5: the negative TTL is the minimum of the SOA's TTL and its MINIMUM field. */
static int
soa_negative_ttl(const struct cursor *c, const struct rr *rr, uint32_t *ttl)
{
    char scratch[DNS_NAME_MAX + 2];
    size_t p, end = rr->rdoff + rr->rdlen;
    uint32_t min;

    if (name_read(c, rr->rdoff, scratch, sizeof(scratch), &p) == -1 || p > end)
        return -1;
    if (name_read(c, p, scratch, sizeof(scratch), &p) == -1 || p + 20 != end)
        return -1;
    min = get32(c->pkt + p + 16);
    if (min > 0x7fffffff)
        min = 0;
    *ttl = rr->ttl < min ? rr->ttl : min;
    return 0;
}

static int
fail(struct dns_answer *ans, const char *why)
{
    dns_answer_clear(ans);
    ans->status = DNS_FORMERR;
    snprintf(ans->why, sizeof(ans->why), "malformed answer: %s", why);
    return -1;
}

static enum dns_status
rcode_status(unsigned int rcode)
{
    switch (rcode) {
    case 0:
        return DNS_OK;
    case 3:
        return DNS_NXDOMAIN;
    case 2: /* SERVFAIL */
    case 5: /* REFUSED */
        return DNS_SERVFAIL;
    default:
        return DNS_ERROR;
    }
}

int
dns_msg_parse_answer(const uint8_t *pkt, size_t len, const char *qname, uint16_t qtype,
                     uint32_t neg_ttl, struct dns_answer *ans)
{
    struct cursor c = {pkt, len};
    char cur[DNS_NAME_MAX + 2];
    struct rr rr;
    size_t off = HDR_LEN;
    unsigned int qd, an, ns, rcode, links = 0;
    uint32_t ttl = UINT32_MAX;

    ans->type = qtype;
    ans->n = 0;
    ans->rr.srv = NULL;
    ans->ttl = 0;
    ans->why[0] = '\0';
    ans->cname[0] = '\0';
    snprintf(ans->name, sizeof(ans->name), "%s", qname);
    if (len < HDR_LEN)
        return fail(ans, "short header");
    if (!(pkt[2] & 0x80))
        return fail(ans, "not a response");
    rcode = pkt[3] & 0x0f;
    qd = get16(pkt + 4);
    an = get16(pkt + 6);
    ns = get16(pkt + 8);
    if (qd > 1)
        return fail(ans, "several questions");
    for (unsigned int i = 0; i < qd; i++) {
        size_t p;
        if (name_read(&c, off, cur, sizeof(cur), &p) == -1 || p + 4 > len)
            return fail(ans, "bad question");
        off = p + 4;
    }
    ans->status = rcode_status(rcode);
    if (ans->status != DNS_OK && ans->status != DNS_NXDOMAIN) {
        snprintf(ans->why, sizeof(ans->why), "rcode %u", rcode);
        return 0;
    }

    ans->rr.srv = calloc(DNS_MAX_RECORDS, record_size(qtype));
    if (ans->rr.srv == NULL) {
        ans->status = DNS_ERROR;
        snprintf(ans->why, sizeof(ans->why), "out of memory");
        return 0;
    }
    snprintf(cur, sizeof(cur), "%s", qname);
    for (unsigned int i = 0; i < an; i++) {
        if (rr_read(&c, &off, &rr) == -1)
            return fail(ans, "bad answer record");
        if (rr.class != CLASS_IN || strcmp(rr.owner, cur) != 0)
            continue;
        if (rr.type == TYPE_CNAME && qtype != TYPE_CNAME) {
            size_t p;
            if (++links > MAX_CNAME_LINKS)
                return fail(ans, "CNAME chain too long");
            if (name_read(&c, rr.rdoff, cur, sizeof(cur), &p) == -1 || p != rr.rdoff + rr.rdlen)
                return fail(ans, "bad CNAME");
            ttl = rr.ttl < ttl ? rr.ttl : ttl;
            /* cur holds at most DNS_NAME_MAX characters (name_read's bound): it fits. */
            memcpy(ans->cname, cur, sizeof(ans->cname) - 1);
            ans->cname[sizeof(ans->cname) - 1] = '\0';
            continue;
        }
        if (rr.type != qtype || ans->n >= DNS_MAX_RECORDS)
            continue;
        int r = record_take(&c, &rr, ans);
        if (r == -1)
            return fail(ans, "bad record data");
        if (r == 1) {
            ans->n++;
            ttl = rr.ttl < ttl ? rr.ttl : ttl;
        }
    }
    if (ans->status == DNS_OK && ans->n > 0) {
        ans->ttl = ttl;
        return 0;
    }

    /* NXDOMAIN, or NOERROR without records of the type (NODATA, RFC 2308 §2.2). */
    if (ans->status == DNS_OK)
        ans->status = DNS_NODATA;
    ans->ttl = neg_ttl;
    for (unsigned int i = 0; i < ns; i++) {
        uint32_t soa_ttl;
        if (rr_read(&c, &off, &rr) == -1)
            return fail(ans, "bad authority record");
        if (rr.type != TYPE_SOA || rr.class != CLASS_IN)
            continue;
        if (soa_negative_ttl(&c, &rr, &soa_ttl) == -1)
            return fail(ans, "bad SOA");
        ans->ttl = soa_ttl;
        break;
    }
    dns_answer_clear(ans);
    return 0;
}

void
dns_answer_clear(struct dns_answer *ans)
{
    if (ans->type == DNS_TYPE_TLSA && ans->rr.tlsa != NULL) {
        for (size_t i = 0; i < ans->n; i++)
            free(ans->rr.tlsa[i].data);
    }
    free(ans->rr.srv);
    ans->rr.srv = NULL;
    ans->n = 0;
}

int
dns_answer_copy(struct dns_answer *dst, const struct dns_answer *src)
{
    size_t sz = record_size(src->type);

    *dst = *src;
    dst->rr.srv = NULL;
    dst->n = 0;
    if (src->n == 0)
        return 0;
    dst->rr.srv = calloc(src->n, sz);
    if (dst->rr.srv == NULL)
        return -1;
    memcpy(dst->rr.srv, src->rr.srv, src->n * sz);
    if (src->type == DNS_TYPE_TLSA) {
        for (size_t i = 0; i < src->n; i++) {
            dst->rr.tlsa[i].data = malloc(src->rr.tlsa[i].len ? src->rr.tlsa[i].len : 1);
            if (dst->rr.tlsa[i].data == NULL) {
                dst->n = i;
                dns_answer_clear(dst);
                return -1;
            }
            memcpy(dst->rr.tlsa[i].data, src->rr.tlsa[i].data, src->rr.tlsa[i].len);
        }
    }
    dst->n = src->n;
    return 0;
}
