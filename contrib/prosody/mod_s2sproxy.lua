-- mod_s2sproxy: send every stanza for a remote domain to the s2sproxy component.
--
-- Prosody 0.12. Load it on every host that sends remote traffic: each VirtualHost and
-- each component that talks to remote JIDs (MUC, pubsub, ...). Configure the name of
-- the component the proxy connects as (XEP-0114):
--
--   s2sproxy_component = "s2s.a.test"
--
-- How it works: core_route_stanza fires "route/remote" on the sending host for every
-- stanza whose destination domain is not hosted here; native s2s (mod_s2s) listens there
-- at priorities -1 and -10. This module answers first and fires the stanza on the
-- proxy component's host as if it were addressed to it ("message/bare", "iq/full", ...),
-- which is exactly where mod_component hands stanzas to its connection. When the proxy
-- is not connected, mod_component answers the sender with remote-server-timeout
-- ("Component unavailable"), so nothing vanishes silently.
--
-- Switch native s2s off with modules_disabled = { "s2s" }: then no stanza can leave any
-- other way, even if this module is missing on a host (the sender gets not-allowed,
-- "Communication with remote domains is not enabled").

local jid_split = require "util.jid".split;

local hosts = prosody.hosts;
local component = module:get_option_string("s2sproxy_component");

if not component then
	module:log("error", "s2sproxy_component is not set: remote stanzas are not routed to the proxy");
	return;
end

if module.host == component then
	-- Stanzas the proxy delivers come from remote JIDs; replies never pass here.
	return;
end

-- The event name core_post_stanza would use for this 'to' (stanza_router.lua).
local function event_name(stanza)
	local node, host, resource = jid_split(stanza.attr.to);
	local to_type;
	if node then
		to_type = resource and "/full" or "/bare";
	elseif host then
		to_type = "/host";
	else
		to_type = "/bare";
	end
	return stanza.name .. to_type;
end

local function route_to_proxy(event)
	local proxy = hosts[component];
	if not proxy then
		module:log("error", "s2sproxy_component %q is not a host of this server; not routing to %s",
			component, event.to_host or "?");
		return; -- falls through: native s2s if loaded, else not-allowed to the sender
	end
	module:log("debug", "to s2sproxy %s: %s", component, event.stanza:top_tag());
	return proxy.events.fire_event(event_name(event.stanza),
		{ origin = event.origin, stanza = event.stanza });
end

-- Above native s2s (-1, -10) and any module that would look at remote traffic later.
module:hook("route/remote", route_to_proxy, 200);

module:log("info", "routing remote stanzas of %s through s2sproxy component %s", module.host, component);
