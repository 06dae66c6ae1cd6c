/*
 * Socket address helpers.
 */
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "s2s/sockaddr.h"

const char *
sockaddr_str(const struct sockaddr *sa, socklen_t salen, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    const struct sockaddr_in *sin;
    const struct sockaddr_in6 *sin6;

    snprintf(buf, len, "?");
    if (sa == NULL)
        return buf;
    if (sa->sa_family == AF_INET && salen >= (socklen_t)sizeof(*sin)) {
        sin = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip)) != NULL)
            snprintf(buf, len, "%s:%u", ip, ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6 && salen >= (socklen_t)sizeof(*sin6)) {
        sin6 = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip)) != NULL)
            snprintf(buf, len, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    }
    return buf;
}

int
sockaddr_from_ip(const char *ip, unsigned short port, struct sockaddr_storage *ss, socklen_t *salen)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        *salen = sizeof(*sin);
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        *salen = sizeof(*sin6);
        return 0;
    }
    return -1;
}
