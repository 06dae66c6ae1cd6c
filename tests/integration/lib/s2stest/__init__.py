"""s2stest: the integration-test harness of s2sproxy.

Modules:
  procs    scratch directory, process registry (stop by PID), event waits, ports
  ca       test CA (openssl CLI): leaves with chosen names/validity/issuer, TLSA data
  knot     Knot DNS: zones, DNSSEC signing, secure/insecure/bogus delegations
  prosody  Prosody 0.12 instances: config, accounts, admin shell, s2s state
  clients  slixmpp clients: login, send/await messages, bounces, ping, disco
  runner   one line per case, "N passed, M failed", exit status

Test scripts put ``tests/integration/lib`` on sys.path and import from here.
Everything runs on 127.0.0.0/8; see tests/integration/README.md.
"""
