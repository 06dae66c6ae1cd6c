-- Prosody 0.12 behind s2sproxy: the lines to add to prosody.cfg.lua (a.test as example).
-- The proxy connects to the component port as "s2s.a.test" with the secret below; its
-- configuration names the same host, port, component name and secret.

---------- global section ----------

-- Where mod_s2sproxy.lua lives (contrib/prosody/ of s2sproxy, installed).
plugin_paths = { "/usr/local/share/s2sproxy/prosody" }

-- The proxy is the only way out: native s2s off (no listener on 5269, no outgoing s2s).
-- mod_dialback and mod_s2s_bidi are useless then; leave them out of modules_enabled.
modules_disabled = { "s2s" }

-- The component port the proxy connects to; keep it on loopback or a private network
-- (the component is trusted with any 'from' address).
component_ports = { 5347 }
component_interfaces = { "127.0.0.1" }

-- Which component carries remote traffic (read by mod_s2sproxy on every host).
s2sproxy_component = "s2s.a.test"

---------- hosts ----------

VirtualHost "a.test"
	modules_enabled = { "s2sproxy" }
	-- (mod_offline, loaded by default, stores what the proxy delivers to offline users)

-- Every component that talks to remote JIDs loads the module too.
Component "conference.a.test" "muc"
	modules_enabled = { "s2sproxy" }

-- The proxy's component. validate_from_addresses = false lets it deliver stanzas from
-- remote JIDs (with the default, Prosody closes the link with invalid-from).
Component "s2s.a.test"
	component_secret = "change this secret"
	validate_from_addresses = false
