"""A test certificate authority made at test time with the ``openssl`` CLI.

Tests need certificates whose every property is chosen by the test: names
(SAN DNS, wildcards, XmppAddr, SRV-ID per RFC 6125 / XEP-0178), validity
(expired or not yet valid), issuer (our trusted CA or a second, untrusted one).
Nothing is checked in: keys are EC P-256, made fresh for every run.

Leaves are signed with ``openssl ca`` rather than ``openssl x509 -req``
because OpenSSL 3.0's ``x509`` cannot set an arbitrary notBefore/notAfter
(``-not_before`` arrived in 3.4), and ``ca -startdate/-enddate`` can.

``tlsa_311`` and ``tlsa_201`` give the DANE record data (RFC 6698): SHA-256 of
the leaf's SubjectPublicKeyInfo, and SHA-256 of the whole CA certificate.
"""

import datetime
import hashlib
import os
import subprocess

XMPPADDR_OID = "1.3.6.1.5.5.7.8.5"  # id-on-xmppAddr, RFC 6120 section 13.7.1.4
SRVNAME_OID = "1.3.6.1.5.5.7.8.7"   # id-on-dnsSRV, RFC 4985

CA_CNF = """\
[ ca ]
default_ca = testca
[ testca ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
email_in_dn = no
[ anything ]
commonName = supplied
[ req ]
distinguished_name = dn
[ dn ]
"""


def _openssl(*args, input=None):
    res = subprocess.run(["openssl"] + list(args), capture_output=True,
                         timeout=30, input=input)
    if res.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n"
                           f"{res.stderr.decode(errors='replace')}")
    return res.stdout


def _asn1_time(when):
    """openssl ca's date format, YYYYMMDDHHMMSSZ (UTC)."""
    return when.astimezone(datetime.timezone.utc).strftime("%Y%m%d%H%M%SZ")


class Leaf:
    """A leaf certificate and its files: ``cert``, ``key``, ``chain`` (leaf + CA)."""

    def __init__(self, name, cert, key, chain, ca):
        self.name = name
        self.cert = cert
        self.key = key
        self.chain = chain
        self.ca = ca

    def tlsa_311(self):
        """TLSA "3 1 1" data: SHA-256 of the leaf's SubjectPublicKeyInfo (hex)."""
        return spki_sha256(self.cert)

    def tlsa_201(self):
        """TLSA "2 0 1" data for the issuing CA (hex)."""
        return self.ca.tlsa_201()


class CA:
    """An EC P-256 certificate authority living in ``directory``.

    ``CA(dir, "Test CA")`` creates it; ``ca.issue("a.test", dns=[...])`` makes
    leaves.  ``ca.cert`` is the CA certificate file to trust.
    """

    def __init__(self, directory, name="s2sproxy test CA"):
        self.dir = directory
        self.name = name
        os.makedirs(os.path.join(directory, "newcerts"), exist_ok=True)
        open(os.path.join(directory, "index.txt"), "w").close()
        with open(os.path.join(directory, "serial"), "w") as f:
            f.write("1000\n")
        self.cnf = os.path.join(directory, "ca.cnf")
        with open(self.cnf, "w") as f:
            f.write(CA_CNF.format(dir=directory))
        self.key = os.path.join(directory, "ca.key")
        self.cert = os.path.join(directory, "ca.crt")
        _openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.key,
                 "-out", self.cert, "-days", "3650", "-subj", f"/CN={name}",
                 "-config", self.cnf,
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-addext", "subjectKeyIdentifier=hash")

    def tlsa_201(self):
        """TLSA "2 0 1" data: SHA-256 of the CA certificate (DER, hex)."""
        der = _openssl("x509", "-in", self.cert, "-outform", "DER")
        return hashlib.sha256(der).hexdigest()

    def _unused_base(self, stem):
        """A file stem in the CA directory no earlier leaf used (name, name-2, ...)."""
        base, n = os.path.join(self.dir, stem), 1
        while os.path.exists(base + ".crt"):
            n += 1
            base = os.path.join(self.dir, f"{stem}-{n}")
        return base

    def issue(self, name, dns=None, xmppaddr=(), srvname=(), days=365,
              not_before=None, not_after=None, expired=False, basename=None):
        """Issue a leaf for CN=``name`` and return a Leaf.

        ``dns``: SAN dNSName list (default ``[name]``; wildcards allowed, an
        empty list means no dNSName).  ``xmppaddr``: XmppAddr otherNames.
        ``srvname``: SRV-ID otherNames, e.g. ``"_xmpp-server.a.test"``.
        ``expired=True`` makes a certificate valid from 30 days ago to yesterday;
        ``not_before``/``not_after`` (datetime) set the validity exactly.
        """
        base = self._unused_base(basename or name.replace("*", "_wild"))
        key, csr, cert, chain = (base + ext for ext in (".key", ".csr", ".crt", ".chain.pem"))
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={name}",
                 "-config", self.cnf)
        ext = base + ".ext"
        with open(ext, "w") as f:
            f.write(_leaf_extensions(name if dns is None else None, dns or [],
                                     xmppaddr, srvname))
        now = datetime.datetime.now(datetime.timezone.utc)
        if expired:
            not_before = not_before or now - datetime.timedelta(days=30)
            not_after = not_after or now - datetime.timedelta(days=1)
        not_before = not_before or now - datetime.timedelta(hours=1)
        not_after = not_after or now + datetime.timedelta(days=days)
        _openssl("ca", "-batch", "-config", self.cnf, "-cert", self.cert,
                 "-keyfile", self.key, "-in", csr, "-out", cert, "-notext",
                 "-startdate", _asn1_time(not_before), "-enddate", _asn1_time(not_after),
                 "-extfile", ext, "-extensions", "leaf")
        with open(chain, "w") as out:
            for path in (cert, self.cert):
                with open(path) as f:
                    out.write(f.read())
        os.chmod(key, 0o644)  # read by daemons running as other users (test keys only)
        return Leaf(name, cert, key, chain, self)


def _leaf_extensions(default_dns, dns, xmppaddr, srvname):
    sans = [f"DNS:{d}" for d in ([default_dns] if default_dns else dns)]
    sans += [f"otherName:{XMPPADDR_OID};UTF8:{x}" for x in xmppaddr]
    sans += [f"otherName:{SRVNAME_OID};IA5STRING:{s}" for s in srvname]
    lines = ["[ leaf ]",
             "basicConstraints = critical,CA:FALSE",
             "keyUsage = critical,digitalSignature,keyAgreement",
             "extendedKeyUsage = serverAuth,clientAuth",
             "subjectKeyIdentifier = hash",
             "authorityKeyIdentifier = keyid"]
    if sans:
        lines.append("subjectAltName = " + ",".join(sans))
    return "\n".join(lines) + "\n"


def spki_sha256(cert_path):
    """SHA-256 (hex) of a certificate's SubjectPublicKeyInfo (DER)."""
    pem = _openssl("x509", "-in", cert_path, "-pubkey", "-noout")
    der = _openssl("pkey", "-pubin", "-outform", "DER", input=pem)
    return hashlib.sha256(der).hexdigest()


def verify(ca_cert, cert, hostname=None):
    """``openssl verify`` of ``cert`` against ``ca_cert``: (ok, output text)."""
    argv = ["openssl", "verify", "-CAfile", ca_cert]
    if hostname:
        argv += ["-verify_hostname", hostname]
    res = subprocess.run(argv + [cert], capture_output=True, text=True, timeout=30)
    return res.returncode == 0, res.stdout + res.stderr
