%%% mod_s2sproxy: send every stanza for a remote domain to the s2sproxy component.
%%%
%%% ejabberd 23.01. Every routed stanza passes the global filter_packet hook in
%%% ejabberd_router:do_route/1 before the router looks up its destination. When the
%%% destination domain is not routed here (no virtual host, no component, no MUC...) and
%%% the sender's domain is (a virtual host or a service of one, e.g. conference.a.test),
%%% the stanza is handed to the connection of the proxy's component (an ejabberd_service
%%% listener, check_from: false) and dropped from normal routing, so ejabberd_s2s never
%%% sees it. When the proxy is not connected the sender gets remote-server-timeout.
%%%
%%% Configuration (per virtual host, or top level for all):
%%%   modules:
%%%     mod_s2sproxy:
%%%       component: "s2s.a.test"
%%%
%%% Build: erlc -I /usr/lib/x86_64-linux-gnu/ejabberd-23.01-1/include \
%%%             -I /usr/lib/erlang/lib/p1_xmpp-1.6.1/include \
%%%             -pa /usr/lib/x86_64-linux-gnu/ejabberd-23.01-1/ebin \
%%%             -o EBIN mod_s2sproxy.erl
%%% Load: ERL_OPTIONS="-pa EBIN" (ejabberdctl.cfg) or erl -pa EBIN.

-module(mod_s2sproxy).
-behaviour(gen_mod).

-export([start/2, stop/1, reload/3, depends/2, mod_options/1, mod_opt_type/1, mod_doc/0]).
-export([filter_packet/1]).

-include("xmpp.hrl").
-include("logger.hrl").
-include("ejabberd_router.hrl").

%% Early: before other filter_packet users (mod_block_strangers and co. run per host
%% later, on the receiving side).
-define(SEQ, 10).

start(_Host, _Opts) ->
    %% filter_packet is a global hook; adding it again for another host is a no-op.
    ejabberd_hooks:add(filter_packet, ?MODULE, filter_packet, ?SEQ),
    ok.

stop(Host) ->
    case gen_mod:is_loaded_elsewhere(Host, ?MODULE) of
        true -> ok;
        false -> ejabberd_hooks:delete(filter_packet, ?MODULE, filter_packet, ?SEQ)
    end,
    ok.

reload(_Host, _NewOpts, _OldOpts) ->
    ok.

depends(_Host, _Opts) ->
    [].

mod_opt_type(component) ->
    econf:domain().

mod_options(_Host) ->
    [{component, undefined}].

mod_doc() ->
    #{desc => [<<"Routes every stanza for a remote domain to the s2sproxy component.">>]}.

-spec filter_packet(stanza() | drop) -> stanza() | drop.
filter_packet(drop) ->
    drop;
filter_packet(Pkt) ->
    try proxy_for(xmpp:get_from(Pkt), xmpp:get_to(Pkt)) of
        none ->
            Pkt;
        Component ->
            to_proxy(Component, Pkt),
            drop
    catch
        _:Why ->
            ?WARNING_MSG("s2sproxy: cannot classify ~ts: ~p", [xmpp:pp(Pkt), Why]),
            Pkt
    end.

%% The proxy component for a stanza from a local domain to a remote one, or none.
proxy_for(#jid{lserver = FromS}, #jid{lserver = ToS}) ->
    case ejabberd_router:is_my_route(ToS) of
        false ->
            case ejabberd_router:is_my_route(FromS) of
                true -> component_of(ejabberd_router:host_of_route(FromS));
                false -> none
            end;
        true ->
            none
    end;
proxy_for(_, _) ->
    none.

component_of(Host) ->
    case gen_mod:is_loaded(Host, ?MODULE) of
        true ->
            case gen_mod:get_module_opt(Host, ?MODULE, component) of
                undefined -> none;
                Component -> Component
            end;
        false ->
            none
    end.

%% What ejabberd_router does for a routed domain: send to the connection's process
%% (ejabberd_service:handle_info({route, Pkt}) writes it to the component stream).
%% ejabberd_router does not export its route lookup; its backend does (uncached, so
%% a component that just disconnected is never picked).
to_proxy(Component, Pkt) ->
    Backend = ejabberd_router:get_backend(),
    case Backend:find_routes(Component) of
        {ok, [#route{pid = Pid} | _]} when is_pid(Pid) ->
            ?DEBUG("s2sproxy: to ~ts: ~ts", [Component, xmpp:pp(Pkt)]),
            ejabberd_cluster:send(Pid, {route, Pkt});
        _ ->
            ?WARNING_MSG("s2sproxy: component ~ts not connected; bouncing stanza to ~ts",
                         [Component, jid:encode(xmpp:get_to(Pkt))]),
            Err = xmpp:err_remote_server_timeout(<<"Federation proxy not connected">>,
                                                 xmpp:get_lang(Pkt)),
            ejabberd_router:route_error(Pkt, Err)
    end.
