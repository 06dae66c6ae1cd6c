/*
 * A tiny DNS response builder for the dns/ unit tests (header-only: each test program
 * includes it once). Writes wire format by hand so tests can also write broken packets.
 */
#ifndef TEST_DNS_PKT_H
#define TEST_DNS_PKT_H

#include <stdint.h>
#include <string.h>

struct pkt {
    uint8_t b[4096];
    size_t len;
};

static inline void
pkt_u8(struct pkt *p, unsigned int v)
{
    p->b[p->len++] = (uint8_t)v;
}

static inline void
pkt_u16(struct pkt *p, unsigned int v)
{
    pkt_u8(p, (v >> 8) & 0xff);
    pkt_u8(p, v & 0xff);
}

static inline void
pkt_u32(struct pkt *p, uint32_t v)
{
    pkt_u16(p, v >> 16);
    pkt_u16(p, v & 0xffff);
}

static inline void
pkt_bytes(struct pkt *p, const void *d, size_t n)
{
    memcpy(p->b + p->len, d, n);
    p->len += n;
}

/* Writes "a.b.c" as labels and the root label; "" or "." is the root. */
static inline void
pkt_name(struct pkt *p, const char *name)
{
    while (*name && strcmp(name, ".") != 0) {
        const char *dot = strchr(name, '.');
        size_t n = dot ? (size_t)(dot - name) : strlen(name);
        pkt_u8(p, (unsigned int)n);
        pkt_bytes(p, name, n);
        name += n + (dot ? 1 : 0);
    }
    pkt_u8(p, 0);
}

static inline void
pkt_ptr(struct pkt *p, size_t off)
{
    pkt_u16(p, 0xc000 | (unsigned int)off);
}

/* Header of a response with RCODE rcode and the given counts, then the question. */
static inline void
pkt_start(struct pkt *p, unsigned int rcode, unsigned int an, unsigned int ns, const char *qname,
          unsigned int qtype)
{
    p->len = 0;
    pkt_u16(p, 0x1234);
    pkt_u16(p, 0x8180 | rcode); /* QR, RD, RA */
    pkt_u16(p, 1);
    pkt_u16(p, an);
    pkt_u16(p, ns);
    pkt_u16(p, 0);
    pkt_name(p, qname);
    pkt_u16(p, qtype);
    pkt_u16(p, 1);
}

/* Record header with owner as a pointer to the question name (offset 12). */
static inline void
pkt_rr(struct pkt *p, unsigned int type, uint32_t ttl, unsigned int rdlen)
{
    pkt_ptr(p, 12);
    pkt_u16(p, type);
    pkt_u16(p, 1);
    pkt_u32(p, ttl);
    pkt_u16(p, rdlen);
}

static inline void
pkt_rr_named(struct pkt *p, const char *owner, unsigned int type, uint32_t ttl, unsigned int rdlen)
{
    pkt_name(p, owner);
    pkt_u16(p, type);
    pkt_u16(p, 1);
    pkt_u32(p, ttl);
    pkt_u16(p, rdlen);
}

static inline size_t
pkt_name_len(const char *name)
{
    struct pkt tmp = {.len = 0};
    pkt_name(&tmp, name);
    return tmp.len;
}

static inline void
pkt_srv(struct pkt *p, uint32_t ttl, unsigned int prio, unsigned int weight, unsigned int port,
        const char *target)
{
    pkt_rr(p, 33, ttl, 6 + (unsigned int)pkt_name_len(target));
    pkt_u16(p, prio);
    pkt_u16(p, weight);
    pkt_u16(p, port);
    pkt_name(p, target);
}

static inline void
pkt_a(struct pkt *p, uint32_t ttl, uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    pkt_rr(p, 1, ttl, 4);
    pkt_u8(p, a);
    pkt_u8(p, b);
    pkt_u8(p, c);
    pkt_u8(p, d);
}

/* SOA in the authority section: owner = the question name. */
static inline void
pkt_soa(struct pkt *p, uint32_t ttl, uint32_t minimum)
{
    size_t rd = pkt_name_len("ns.test") + pkt_name_len("host.test") + 20;
    pkt_rr(p, 6, ttl, (unsigned int)rd);
    pkt_name(p, "ns.test");
    pkt_name(p, "host.test");
    pkt_u32(p, 1);
    pkt_u32(p, 3600);
    pkt_u32(p, 600);
    pkt_u32(p, 86400);
    pkt_u32(p, minimum);
}

#endif
