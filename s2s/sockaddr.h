/*
 * Socket address helpers: formatting for log lines, parsing numeric addresses.
 */
#ifndef S2S_SOCKADDR_H
#define S2S_SOCKADDR_H

#include <stddef.h>

#include <sys/socket.h>

/* Longest "[v6addr]:port" text, with its NUL. */
#define SOCKADDR_STRLEN 64

/* "192.0.2.1:5269" or "[2001:db8::1]:5269"; "?" for anything else. Returns buf. */
const char *sockaddr_str(const struct sockaddr *sa, socklen_t salen, char *buf, size_t len);

/* Numeric IPv4/IPv6 address and port into ss; -1 if ip is not a numeric address. */
int sockaddr_from_ip(const char *ip, unsigned short port, struct sockaddr_storage *ss,
                     socklen_t *salen);

#endif
