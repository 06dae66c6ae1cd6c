/*
 * Text and JSON output of an audit. The JSON keys are a stable interface (docs/audit.md):
 * add keys, never rename or retype them without changing AUDIT_SCHEMA.
 */
#include "s2s/audit_report.h"

#include <string.h>
#include <sys/socket.h>

#include "s2s/audit_grade.h"

/* ---- JSON ---- */

static json_t *
str_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

static json_t *
json_lookup_info(const struct dns_lookup_info *li)
{
    return json_pack("{s:s, s:s, s:I}", "status", dns_status_str(li->status), "dnssec",
                     dns_sec_str(li->sec), "ttl", (json_int_t)li->ttl);
}

static json_t *
json_score(const struct audit_score *s)
{
    return json_pack("{s:i, s:i, s:i, s:i}", "protocol", s->protocol, "key_exchange",
                     s->key_exchange, "cipher", s->cipher, "total", s->total);
}

static json_t *
json_features(const struct audit_features *f)
{
    json_t *mechs, *o;
    char buf[AUDIT_STR], *tok, *save = NULL;

    if (!f->seen)
        return json_null();
    mechs = json_array();
    snprintf(buf, sizeof(buf), "%s", f->sasl_mechanisms);
    for (tok = strtok_r(buf, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save))
        json_array_append_new(mechs, json_string(tok));
    o = json_pack("{s:b, s:b, s:b, s:b, s:o, s:b, s:b, s:b}", "starttls", f->starttls,
                  "starttls_required", f->starttls_required, "dialback", f->dialback,
                  "dialback_errors", f->dialback_errors, "sasl_mechanisms", mechs, "sasl_external",
                  f->sasl_external, "bidi", f->bidi, "compression", f->compression);
    json_object_set_new(
        o, "limits",
        json_pack("{s:o, s:o}", "max_bytes",
                  f->limit_max_bytes >= 0 ? json_integer(f->limit_max_bytes) : json_null(),
                  "idle_seconds",
                  f->limit_idle_seconds >= 0 ? json_integer(f->limit_idle_seconds) : json_null()));
    return o;
}

static json_t *
json_names(const char (*names)[AUDIT_STR], size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(names[i]));
    return a;
}

static json_t *
json_cert(const struct audit_cert *c)
{
    json_t *o;

    if (!c->present)
        return json_null();
    o = json_pack(
        "{s:s, s:s, s:o, s:o, s:o, s:s, s:i, s:s, s:s, s:s, s:I, s:s, s:i}", "subject", c->subject,
        "issuer", c->issuer, "dns_names", json_names(c->dns_names, c->ndns_names), "srv_ids",
        json_names(c->srv_ids, c->nsrv_ids), "xmpp_addrs",
        json_names(c->xmpp_addrs, c->nxmpp_addrs), "key_type", c->key_type, "key_bits", c->key_bits,
        "signature_algorithm", c->sig_alg, "not_before", c->not_before, "not_after", c->not_after,
        "days_left", (json_int_t)c->days_left, "sha256", c->sha256, "chain_length", c->chain_len);
    json_object_set_new(o, "chain_valid", json_boolean(c->chain_valid));
    json_object_set_new(o, "verify_error", str_or_null(c->chain_valid ? "" : c->verify_error));
    json_object_set_new(o, "name_valid", json_boolean(c->name_valid));
    json_object_set_new(o, "name_match", json_string(c->name_match));
    return o;
}

static json_t *
json_ciphers(const struct audit_endpoint *ep)
{
    json_t *o = json_object();

    for (int v = 0; v < AUDIT_NTLSV; v++) {
        json_t *a = json_array();
        for (size_t i = 0; i < ep->nciphers[v]; i++) {
            const struct audit_cipher *c = &ep->ciphers[v][i];
            json_array_append_new(a, json_pack("{s:s, s:i, s:s, s:i, s:b}", "name", c->name, "bits",
                                               c->bits, "kx", c->kx, "kx_security_bits",
                                               c->kx_secbits, "forward_secrecy", c->fs));
        }
        json_object_set_new(o, audit_tlsv_name(v), a);
    }
    return o;
}

static json_t *
json_endpoint(const struct audit_endpoint *ep, const struct audit_score *s)
{
    json_t *o, *protos = json_object(), *tlsa = json_array();

    for (int v = 0; v < AUDIT_NTLSV; v++)
        json_object_set_new(protos, audit_tlsv_name(v),
                            json_string(audit_vstate_name(ep->versions[v])));
    for (size_t i = 0; i < ep->ntlsa; i++)
        json_array_append_new(tlsa, json_string(ep->tlsa[i]));
    o = json_pack("{s:s, s:i, s:s, s:s, s:i, s:s, s:b, s:o, s:f, s:f}", "host", ep->host, "port",
                  ep->port, "mode", dns_tls_mode_str(ep->mode), "address", ep->addr, "family",
                  ep->family == AF_INET6 ? 6 : 4, "address_dnssec", dns_sec_str(ep->addr_sec),
                  "reachable", ep->reachable, "error", str_or_null(ep->error), "connect_ms",
                  ep->connect_ms, "probe_ms", ep->probe_ms);
    json_object_set_new(o, "cname", str_or_null(ep->cname));
    json_object_set_new(o, "grade", json_string(audit_grade_name(s->effective)));
    json_object_set_new(o, "grade_ignoring_trust", json_string(audit_grade_name(s->grade)));
    json_object_set_new(o, "trust_mark", json_boolean(s->trust_mark));
    json_object_set_new(o, "score", json_score(s));
    json_object_set_new(o, "stream",
                        json_pack("{s:o, s:o, s:o, s:o}", "version",
                                  str_or_null(ep->stream_version), "id", str_or_null(ep->stream_id),
                                  "from", str_or_null(ep->stream_from), "error",
                                  str_or_null(ep->stream_error)));
    json_object_set_new(o, "features_before_tls", json_features(&ep->pre_tls));
    json_object_set_new(o, "features_after_tls", json_features(&ep->post_tls));
    json_object_set_new(o, "tls",
                        json_pack("{s:b, s:o, s:o, s:o, s:o, s:o, s:b}", "ok", ep->tls, "error",
                                  str_or_null(ep->tls ? "" : ep->tls_error), "version",
                                  str_or_null(ep->tls_version), "cipher",
                                  str_or_null(ep->tls_cipher), "group", str_or_null(ep->tls_group),
                                  "alpn", str_or_null(ep->alpn), "ocsp_stapled", ep->ocsp_stapled));
    json_object_set_new(o, "certificate", json_cert(&ep->cert));
    json_object_set_new(o, "dane",
                        json_pack("{s:s, s:s, s:s, s:o}", "state", audit_dane_name(ep->dane),
                                  "tlsa_status", dns_status_str(ep->tlsa_status), "tlsa_dnssec",
                                  dns_sec_str(ep->tlsa_sec), "records", tlsa));
    json_object_set_new(o, "sasl_external",
                        json_pack("{s:s, s:o}", "state", audit_sasl_ext_name(ep->sasl_external),
                                  "detail", str_or_null(ep->sasl_external_detail)));
    json_object_set_new(o, "protocols", protos);
    json_object_set_new(o, "ciphers", json_ciphers(ep));
    json_object_set_new(o, "probes", json_integer(ep->probes));
    return o;
}

json_t *
audit_report_json(const struct audit_domain *d)
{
    json_t *o, *eps = json_array(), *fs = json_array(), *dns;

    for (size_t i = 0; i < d->nfindings; i++) {
        const struct audit_finding *f = &d->findings[i];
        json_array_append_new(fs, json_pack("{s:o, s:s, s:s, s:o}", "endpoint",
                                            str_or_null(f->endpoint), "what", f->what, "fix",
                                            f->fix, "cap", str_or_null(f->cap)));
    }
    for (size_t i = 0; i < d->nendpoints; i++)
        json_array_append_new(eps, json_endpoint(&d->endpoints[i], &d->scores[i]));
    dns = json_pack("{s:s, s:b, s:s, s:o, s:o, s:o, s:b, s:b}", "backend", d->dns_backend,
                    "dnssec_validated", d->dnssec_validating, "status",
                    dns_status_str(d->dns_status), "error", str_or_null(d->dns_error), "srv_xmpps",
                    json_lookup_info(&d->srv_xmpps), "srv_xmpp", json_lookup_info(&d->srv_xmpp),
                    "fallback", d->fallback, "service_available", !d->no_service);
    json_t *targets = json_array();
    for (size_t i = 0; i < d->ntargets; i++) {
        const struct audit_target *t = &d->targets[i];
        json_array_append_new(targets,
                              json_pack("{s:s, s:i, s:s, s:o, s:I}", "host", t->host, "port",
                                        t->port, "mode", dns_tls_mode_str(t->mode), "cname",
                                        str_or_null(t->cname), "addresses", (json_int_t)t->naddrs));
    }
    json_object_set_new(dns, "targets", targets);
    if (!d->dnssec_validating)
        json_object_set_new(dns, "note",
                            json_string("DNSSEC not validated: DNSSEC and DANE were not checked"));
    o = json_pack("{s:s, s:s, s:s, s:s, s:b, s:o, s:b, s:o, s:f, s:o, s:o, s:o, s:o}", "schema",
                  AUDIT_SCHEMA, "domain", d->domain, "grade", audit_grade_name(d->score.effective),
                  "grade_ignoring_trust", audit_grade_name(d->score.grade), "trust_mark",
                  d->score.trust_mark, "score", json_score(&d->score), "reachable", d->reachable,
                  "error", str_or_null(d->error), "elapsed_ms", d->elapsed_ms, "as",
                  str_or_null(d->as_domain), "findings", fs, "dns", dns, "endpoints", eps);
    return o;
}

/* ---- text ---- */

static void
text_features(FILE *fp, const char *when, const struct audit_features *f)
{
    if (!f->seen)
        return;
    fprintf(fp, "    features %s:", when);
    if (f->starttls)
        fprintf(fp, " starttls%s", f->starttls_required ? " (required)" : " (optional)");
    if (f->sasl)
        fprintf(fp, " sasl(%s)", f->sasl_mechanisms);
    if (f->dialback)
        fprintf(fp, " dialback%s", f->dialback_errors ? "(errors)" : "");
    if (f->bidi)
        fprintf(fp, " bidi");
    if (f->compression)
        fprintf(fp, " compression");
    if (f->limit_max_bytes >= 0 || f->limit_idle_seconds >= 0)
        fprintf(fp, " limits(max-bytes=%ld idle-seconds=%ld)", f->limit_max_bytes,
                f->limit_idle_seconds);
    fputc('\n', fp);
}

static void
text_cert(FILE *fp, const struct audit_cert *c)
{
    if (!c->present) {
        fprintf(fp, "    certificate: none\n");
        return;
    }
    fprintf(fp, "    certificate: %s\n      issuer %s\n", c->subject, c->issuer);
    for (size_t i = 0; i < c->ndns_names; i++)
        fprintf(fp, "      DNS %s\n", c->dns_names[i]);
    for (size_t i = 0; i < c->nsrv_ids; i++)
        fprintf(fp, "      SRV-ID %s\n", c->srv_ids[i]);
    for (size_t i = 0; i < c->nxmpp_addrs; i++)
        fprintf(fp, "      XmppAddr %s\n", c->xmpp_addrs[i]);
    fprintf(fp, "      key %s %d bits, signature %s\n", c->key_type, c->key_bits, c->sig_alg);
    fprintf(fp, "      valid %s .. %s (%ld days left)\n", c->not_before, c->not_after,
            c->days_left);
    fprintf(fp, "      chain: %s%s%s; name: %s (%s)\n", c->chain_valid ? "valid" : "INVALID",
            c->chain_valid ? "" : ": ", c->chain_valid ? "" : c->verify_error,
            c->name_valid ? "valid" : "NOT VALID", c->name_match);
    fprintf(fp, "      sha256 %s\n", c->sha256);
}

static void
text_endpoint(FILE *fp, const struct audit_endpoint *ep, const struct audit_score *s)
{
    char at[AUDIT_STR];

    audit_endpoint_label(ep, at, sizeof(at));
    fprintf(fp, "\n  %s (%s, %s): grade %s", at, ep->host,
            ep->mode == DNS_TLS_DIRECT ? "direct TLS" : "STARTTLS", audit_grade_name(s->effective));
    if (s->trust_mark)
        fprintf(fp, " (%s if trusted)", audit_grade_name(s->grade));
    fputc('\n', fp);
    if (!ep->reachable) {
        fprintf(fp, "    unreachable: %s\n", ep->error);
        return;
    }
    fprintf(fp, "    score %d (protocol %d, key exchange %d, cipher %d)\n", s->total, s->protocol,
            s->key_exchange, s->cipher);
    fprintf(fp, "    connect %.1f ms, probe %.1f ms; stream version=%s from=%s id=%s\n",
            ep->connect_ms, ep->probe_ms, ep->stream_version, ep->stream_from, ep->stream_id);
    if (ep->stream_error[0] != '\0')
        fprintf(fp, "    stream ended early: %s\n", ep->stream_error);
    text_features(fp, "before TLS", &ep->pre_tls);
    if (ep->tls)
        fprintf(fp, "    TLS: %s %s %s%s%s, OCSP stapled: %s\n", ep->tls_version, ep->tls_cipher,
                ep->tls_group, ep->alpn[0] ? ", ALPN " : "", ep->alpn,
                ep->ocsp_stapled ? "yes" : "no");
    else
        fprintf(fp, "    TLS: failed: %s\n", ep->tls_error);
    text_cert(fp, &ep->cert);
    fprintf(fp, "    DANE: %s (TLSA %s, %s)\n", audit_dane_name(ep->dane),
            dns_status_str(ep->tlsa_status), dns_sec_str(ep->tlsa_sec));
    for (size_t i = 0; i < ep->ntlsa; i++)
        fprintf(fp, "      TLSA %s\n", ep->tlsa[i]);
    text_features(fp, "after TLS", &ep->post_tls);
    if (ep->sasl_external != AUDIT_EXT_NOT_TRIED)
        fprintf(fp, "    SASL EXTERNAL from us: %s%s%s\n", audit_sasl_ext_name(ep->sasl_external),
                ep->sasl_external_detail[0] ? " " : "", ep->sasl_external_detail);
    fprintf(fp, "    protocols:");
    for (int v = 0; v < AUDIT_NTLSV; v++)
        fprintf(fp, " %s %s%s", audit_tlsv_name(v), audit_vstate_name(ep->versions[v]),
                v + 1 < AUDIT_NTLSV ? "," : "\n");
    for (int v = 0; v < AUDIT_NTLSV; v++) {
        if (ep->nciphers[v] == 0)
            continue;
        fprintf(fp, "    ciphers %s:\n", audit_tlsv_name(v));
        for (size_t i = 0; i < ep->nciphers[v]; i++)
            fprintf(fp, "      %-40s %3d bits  %s%s\n", ep->ciphers[v][i].name,
                    ep->ciphers[v][i].bits, ep->ciphers[v][i].kx,
                    ep->ciphers[v][i].fs ? "" : "  (no forward secrecy)");
    }
}

void
audit_report_text(FILE *fp, const struct audit_domain *d)
{
    fprintf(fp, "%s: grade %s", d->domain, audit_grade_name(d->score.effective));
    if (d->score.trust_mark)
        fprintf(fp, " (%s if trusted)", audit_grade_name(d->score.grade));
    if (d->score.effective != AUDIT_GRADE_NONE)
        fprintf(fp, ", score %d", d->score.total);
    if (!d->reachable)
        fprintf(fp, " (%s)", d->error);
    fputc('\n', fp);
    if (d->nfindings > 0)
        fprintf(fp, "findings:\n");
    for (size_t i = 0; i < d->nfindings; i++) {
        const struct audit_finding *f = &d->findings[i];
        fprintf(fp, "  - %s%s%s", f->endpoint[0] ? f->endpoint : "", f->endpoint[0] ? ": " : "",
                f->what);
        if (f->cap[0] != '\0')
            fprintf(fp, " [%s %s]", strcmp(f->cap, "T") == 0 ? "mark" : "caps at", f->cap);
        fprintf(fp, "\n      fix: %s\n", f->fix);
    }
    fprintf(fp, "DNS (%s%s): ", d->dns_backend,
            d->dnssec_validating ? ", DNSSEC validated" : ", DNSSEC not validated");
    fprintf(fp, "_xmpps-server %s/%s, _xmpp-server %s/%s%s%s\n",
            dns_status_str(d->srv_xmpps.status), dns_sec_str(d->srv_xmpps.sec),
            dns_status_str(d->srv_xmpp.status), dns_sec_str(d->srv_xmpp.sec),
            d->fallback ? ", fallback to the domain on 5269" : "",
            d->no_service ? ", service not available (SRV \".\")" : "");
    if (d->dns_error[0] != '\0')
        fprintf(fp, "  %s\n", d->dns_error);
    for (size_t i = 0; i < d->ntargets; i++) {
        const struct audit_target *t = &d->targets[i];
        fprintf(fp, "  target %s port %u %s: %zu address%s%s%s%s\n", t->host, t->port,
                dns_tls_mode_str(t->mode), t->naddrs, t->naddrs == 1 ? "" : "es",
                t->cname[0] ? ", alias (CNAME) of " : "", t->cname,
                t->cname[0] && !d->fallback ? " (RFC 2782: MUST NOT be an alias)" : "");
    }
    fprintf(fp, "endpoints: %zu", d->nendpoints);
    for (size_t i = 0; i < d->nendpoints; i++)
        text_endpoint(fp, &d->endpoints[i], &d->scores[i]);
    fprintf(fp, "\naudited in %.0f ms\n", d->elapsed_ms);
}
