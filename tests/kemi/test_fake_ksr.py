"""The fake KSR's own behaviour, and its drift check against Kamailio 5.6's KEMI API."""

from __future__ import annotations

from typing import Any

import pytest

from tests.kemi.fake_ksr import (
    ACTIVE,
    API_FILE,
    REFRESH_NOTIFY,
    REFRESH_RULES,
    SDP,
    TERMINATED,
    Contact,
    Credentials,
    FakeKamailio,
    Notify,
    Reply,
    Request,
    offered_functions,
    parse_api_file,
    parse_api_list,
    posix_regex,
    sip_request,
    uri_host_port,
)

ALICE, BOB = "sip:alice@lab.example", "sip:bob@lab.example"


@pytest.fixture
def kam() -> FakeKamailio:
    fake = FakeKamailio(defines={"WITH_AUTH": "", "VM_ON_STATUS": '"486"'})
    fake.receive(
        sip_request(
            "INVITE",
            BOB,
            from_=ALICE,
            body=SDP,
            headers=(("P-App-Param", "usr=x"), ("X-Other", "1")),
        )
    )
    return fake


# ----- drift -----


def test_every_function_the_fake_offers_is_in_the_kemi_api() -> None:
    api = parse_api_file(API_FILE.read_text())
    offered = offered_functions()
    assert len(offered) > 50
    missing = {f"{m}.{n}" for m, n in offered if (m, n) not in api}
    assert missing == set()
    different = {k: (v, api[k]) for k, v in offered.items() if api[k] != v}
    assert different == {}


def test_api_file_parser() -> None:
    text = "# comment\n[tm]\n  t_relay(none) -> int\n  t_set_fr(int, int) -> int\n"
    assert parse_api_file(text) == {
        ("tm", "t_relay"): ("none", "int"),
        ("tm", "t_set_fr"): ("int, int", "int"),
    }
    with pytest.raises(ValueError, match=r"^line 2: not a KEMI function: 'tm'$"):
        parse_api_file("[tm]\ntm\n")


def test_api_list_parser() -> None:
    output = (
        "{\n\tmsize: 2\n\tmethods: {\n"
        "\t\tfunc: {\n\t\t\tret: none\n\t\t\tmodule: \n\t\t\tname: info\n\t\t\tparams: str\n\t\t}\n"
        "\t\tfunc: {\n\t\t\tret: int\n\t\t\tmodule: tm\n\t\t\tname: t_set_fr\n"
        "\t\t\tparams: int, int\n\t\t}\n\t}\n}\n"
    )
    assert parse_api_list(output) == {
        ("core", "info"): ("str", "none"),
        ("tm", "t_set_fr"): ("int, int", "int"),
    }
    with pytest.raises(ValueError, match="msize 3 but 2 found"):
        parse_api_list(output.replace("msize: 2", "msize: 3"))


def test_an_unimplemented_function_fails_loudly(kam: FakeKamailio) -> None:
    with pytest.raises(AttributeError, match=r"does not implement KSR\.tm\.t_relay_to_proxy$"):
        kam.ksr.tm.t_relay_to_proxy("udp:1.2.3.4:5060")
    with pytest.raises(AttributeError, match=r"does not implement KSR\.uac$"):
        kam.ksr.uac.uac_replace_from("", "sip:a@b")
    with pytest.raises(AttributeError, match=r"does not implement KSR\.is_UPDATE$"):
        kam.ksr.is_UPDATE()


def test_calls_are_checked_like_app_python3_parses_them(kam: FakeKamailio) -> None:
    with pytest.raises(TypeError, match=r"^KSR\.tm\.t_set_fr: argument fr must be int, not str$"):
        kam.ksr.tm.t_set_fr(1000, "0")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^KSR\.sl\.sl_send_reply: takes 2 arguments, 1 given$"):
        kam.ksr.sl.sl_send_reply(404)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="no keyword arguments"):
        kam.ksr.sl.sl_send_reply(status=404, reason="x")
    with pytest.raises(KeyError, match=r"does not implement the pv \$xyz"):
        kam.ksr.pv.get("$xyz")


# ----- pvs -----


def test_pvs(kam: FakeKamailio) -> None:
    get = kam.ksr.pv.get
    assert (get("$rm"), get("$ru"), get("$rU"), get("$rd")) == ("INVITE", BOB, "bob", "lab.example")
    assert (get("$fu"), get("$fU"), get("$fd")) == (ALICE, "alice", "lab.example")
    assert (get("$tU"), get("$ci"), get("$si"), get("$sp")) == (
        "bob",
        "call-1@192.0.2.10",
        "192.0.2.10",
        5060,
    )
    assert get("$du") is None
    assert get("$hdr(X-Other)") == "1"


def test_defines(kam: FakeKamailio) -> None:
    assert kam.ksr.pv.get("$def(WITH_AUTH)") == ""
    assert kam.ksr.pv.get("$def(VM_ON_STATUS)") == '"486"'
    assert kam.ksr.pv.get("$def(WITH_PGSQL)") is None


def test_avps_stack_and_unset(kam: FakeKamailio) -> None:
    assert kam.ksr.pv.get("$avp(x)") is None
    kam.ksr.pv.sets("$avp(x)", "a")
    kam.ksr.pv.seti("$avp(x)", 2)
    assert kam.ksr.pv.get("$avp(x)") == 2
    kam.ksr.pv.unset("$avp(x)")
    assert kam.ksr.pv.is_null("$avp(x)")


def test_uri_changes(kam: FakeKamailio) -> None:
    kam.ksr.seturi("sip:carol@lab.example")
    kam.ksr.setdsturi("sip:127.0.0.1:5080")
    assert (kam.ksr.pv.get("$rU"), kam.ksr.pv.get("$du")) == ("carol", "sip:127.0.0.1:5080")
    assert kam.ksr.isdsturiset()
    kam.ksr.resetdsturi()
    assert not kam.ksr.isdsturiset()
    with pytest.raises(KeyError, match="cannot assign"):
        kam.ksr.pv.sets("$fu", "sip:x@y")


def test_flags(kam: FakeKamailio) -> None:
    kam.ksr.setflag(5)
    assert kam.ksr.isflagset(5)
    assert not kam.ksr.isflagset(6)
    kam.ksr.resetflag(5)
    assert not kam.ksr.isflagset(5)
    with pytest.raises(ValueError, match=r"outside 0\.\.31"):
        kam.ksr.setflag(32)


def test_methods(kam: FakeKamailio) -> None:
    assert kam.ksr.is_INVITE()
    assert not kam.ksr.is_ACK()
    assert kam.ksr.is_method_in("IS")
    assert not kam.ksr.is_method_in("RP")
    with pytest.raises(ValueError, match="no method letter"):
        kam.ksr.is_method_in("Z")


# ----- headers -----


def test_header_changes_show_when_sent_not_when_read(kam: FakeKamailio) -> None:
    assert kam.ksr.textops.remove_hf_re("^P-App-") == 1
    kam.ksr.hdr.append("P-App-Name: voicemail\r\n")
    assert kam.ksr.hdr.get("P-App-Param") == "usr=x"  # lumps are not read back
    assert kam.ksr.hdr.is_present("P-App-Name") == -1
    kam.ksr.tm.t_relay()
    [relay] = kam.relays
    assert relay.header_values("P-App-Param") == []
    assert relay.header_values("P-App-Name") == ["voicemail"]
    assert relay.header("X-Other") == "1"


def test_remove_hf_re_is_a_case_sensitive_posix_regex(kam: FakeKamailio) -> None:
    assert kam.ksr.textops.remove_hf_re("^p-app-") == -1
    assert kam.ksr.textops.remove_hf_re("^[Pp]-[Aa][Pp][Pp]-") == 1
    assert posix_regex("^[[:alpha:]]+-[[:digit:]]$").search("Ab-1")
    with pytest.raises(ValueError, match="not a POSIX extended regex"):
        kam.ksr.textops.remove_hf_re(r"^\w+")


def test_header_text_must_be_one_line_with_crlf(kam: FakeKamailio) -> None:
    for text in ("P-App-Name: voicemail", "A: 1\r\nB: 2\r\n", "no colon\r\n"):
        with pytest.raises(ValueError, match="one 'Name: value"):
            kam.ksr.hdr.append(text)


def test_has_body_type(kam: FakeKamailio) -> None:
    assert kam.ksr.textops.has_body_type("application/sdp") == 1
    assert kam.ksr.textops.has_body_type("text/plain") == -1
    kam.receive(sip_request("BYE", BOB, from_=ALICE))
    assert kam.ksr.textops.has_body_type("application/sdp") == -1


# ----- replies, relays and the failure route -----


def test_replies_are_recorded(kam: FakeKamailio) -> None:
    kam.ksr.sl.sl_send_reply(404, "Not Found")
    kam.ksr.tm.t_send_reply(500, "Oops")
    assert kam.replies == [Reply(404, "Not Found", "sl"), Reply(500, "Oops", "tm")]


def test_failure_route_restores_the_relayed_request(kam: FakeKamailio) -> None:
    kam.ksr.seturi("sip:bob@192.0.2.20")
    kam.ksr.pv.sets("$avp(vm_user)", "bob")
    kam.ksr.setflag(8)
    kam.ksr.tm.t_on_failure("ksr_failure_phone")
    kam.ksr.tm.t_set_fr(20000, 0)
    kam.ksr.tm.t_relay()
    assert kam.relays[0].fr_timers == (20000, 0)
    kam.ksr.pv.sets("$avp(vm_user)", "set after relay")  # AVPs live with the transaction
    kam.ksr.setflag(9)  # flags reach the transaction at t_relay only
    assert kam.failure(486) == "ksr_failure_phone"
    assert kam.relays == []
    assert kam.ksr.pv.get("$avp(vm_user)") == "set after relay"
    assert kam.ksr.isflagset(8)
    assert not kam.ksr.isflagset(9)
    assert kam.ksr.pv.get("$ru") == "sip:bob@192.0.2.20"
    assert kam.ksr.tm.t_get_status_code() == 486
    assert kam.ksr.tm.t_branch_timeout() == -1
    assert kam.ksr.tm.t_is_canceled() == -1
    with pytest.raises(AssertionError, match="failure route armed"):
        kam.failure(486)  # not re-armed


def test_the_transaction_keeps_the_r_uri_of_its_creation(kam: FakeKamailio) -> None:
    """tm clones the request at t_newtran; a later seturi reaches the relay only."""
    kam.ksr.tm.t_newtran()
    kam.ksr.seturi("sip:carol@lab.example")
    kam.ksr.tm.t_on_failure("ksr_failure")
    kam.ksr.tm.t_relay()
    assert kam.relays[0].ruri == "sip:carol@lab.example"
    kam.failure(503)
    assert kam.ruri == BOB


class BranchScript:
    """Routes for the branch tests: what a KEMI script's branch route would do."""

    def __init__(self, kam: FakeKamailio, *, drop_to: str | None = None) -> None:
        self.kam, self.drop_to = kam, drop_to
        self.seen: list[tuple[str, str | None, bool]] = []  # ($ru, $du, flag 9 set)

    def ksr_branch(self, msg: object) -> int:
        ksr = self.kam.ksr
        du = ksr.pv.get("$du")
        self.seen.append(
            (str(ksr.pv.get("$ru")), None if du is None else str(du), ksr.isflagset(9))
        )
        ksr.hdr.append(f"X-Branch: {ksr.pv.get('$avp(tag)')}\r\n")
        ksr.rr.add_rr_param(";vm=1")
        ksr.rtpengine.rtpengine_offer("to-worker")
        if du is not None and du == self.drop_to:
            ksr.set_drop()
        return 1


def relay_with_branch_route(kam: FakeKamailio, script: BranchScript) -> int:
    kam.script = script
    kam.ksr.pv.sets("$avp(tag)", "a")
    kam.ksr.setflag(9)
    kam.ksr.setdsturi("sip:127.0.0.1:5080")
    kam.branches = ["sip:bob@192.0.2.30"]
    kam.ksr.tm.t_on_branch("ksr_branch")
    kam.ksr.tm.t_on_failure("ksr_failure")
    return kam.ksr.tm.t_relay()


def test_a_branch_route_changes_its_branch_only(kam: FakeKamailio) -> None:
    script = BranchScript(kam)
    assert relay_with_branch_route(kam, script) == 1
    # Flags and AVPs set before t_relay are seen; each branch has its own R-URI and $du.
    assert script.seen == [(BOB, "sip:127.0.0.1:5080", True), ("sip:bob@192.0.2.30", None, True)]
    assert [(r.branch, r.on_branch) for r in kam.relays] == [(0, "ksr_branch"), (1, "ksr_branch")]
    for relay in kam.relays:
        assert relay.header_values("X-Branch") == ["a"]
        assert relay.header_values("P-App-Param") == ["usr=x"]
        assert relay.rr_params == (";vm=1",)
        assert [c.operation for c in relay.rtpengine] == ["offer"]
    # Nothing of it is on the request, nor on what tm keeps for the failure route.
    assert kam.current_headers() == kam.transaction_headers() == kam.request.headers
    assert kam.dropped_branches == []
    kam.failure(503)
    assert kam.current_headers() == kam.request.headers
    kam.ksr.tm.t_relay()  # t_on_branch arms one t_relay only
    assert [(r.header_values("X-Branch"), r.on_branch) for r in kam.relays] == [([], None)]


def test_set_drop_in_a_branch_route_drops_that_branch(kam: FakeKamailio) -> None:
    assert relay_with_branch_route(kam, BranchScript(kam, drop_to="sip:127.0.0.1:5080")) == 1
    assert [r.ruri for r in kam.relays] == ["sip:bob@192.0.2.30"]
    [dropped] = kam.dropped_branches
    assert dropped.dst_uri == "sip:127.0.0.1:5080"
    assert [c.operation for c in dropped.rtpengine] == ["offer"]


def test_a_relay_whose_every_branch_is_dropped_fails(kam: FakeKamailio) -> None:
    kam.script = BranchScript(kam, drop_to="sip:127.0.0.1:5080")
    kam.ksr.setdsturi("sip:127.0.0.1:5080")
    kam.ksr.tm.t_on_branch("ksr_branch")
    kam.ksr.tm.t_on_failure("ksr_failure")
    assert kam.ksr.tm.t_relay() == -1
    assert kam.relays == []
    assert len(kam.dropped_branches) == 1
    with pytest.raises(AssertionError, match="no relayed transaction"):
        kam.failure(503)


def test_set_drop_outside_a_branch_route_is_not_modelled(kam: FakeKamailio) -> None:
    with pytest.raises(NotImplementedError, match="branch routes only"):
        kam.ksr.set_drop()


def test_a_branch_route_needs_the_script(kam: FakeKamailio) -> None:
    kam.ksr.tm.t_on_branch("ksr_branch")
    with pytest.raises(AssertionError, match="branch route ksr_branch armed but no script"):
        kam.ksr.tm.t_relay()


def test_a_failure_route_starts_from_the_request_routes_request(kam: FakeKamailio) -> None:
    """What failure route A changed reaches A's relay, not failure route B; flags and
    AVPs are the transaction's and stay."""
    ksr = kam.ksr
    kam.ksr.textops.remove_hf("X-Other")
    ksr.rr.record_route()
    ksr.tm.t_on_failure("ksr_failure_a")
    ksr.tm.t_relay()
    assert kam.failure(486) == "ksr_failure_a"
    ksr.hdr.append("X-From-A: 1\r\n")
    ksr.rr.add_rr_param(";a=1")
    ksr.seturi("sip:carol@lab.example")
    ksr.setdsturi("sip:127.0.0.1:5080")
    ksr.setflag(9)
    ksr.pv.sets("$avp(from_a)", "yes")
    ksr.tm.t_on_failure("ksr_failure_b")
    ksr.tm.t_relay()
    [relay] = kam.relays
    assert (relay.ruri, relay.dst_uri) == ("sip:carol@lab.example", "sip:127.0.0.1:5080")
    assert relay.header_values("X-From-A") == ["1"]
    assert relay.header_values("X-Other") == []
    assert (relay.record_route, relay.rr_params) == (True, (";a=1",))
    assert kam.failure(503) == "ksr_failure_b"
    assert kam.current_headers() == [h for h in kam.request.headers if h[0] != "X-Other"]
    assert (kam.ruri, kam.dst_uri) == (BOB, None)
    assert ksr.isflagset(9)
    assert ksr.pv.get("$avp(from_a)") == "yes"
    ksr.tm.t_relay()
    [relay] = kam.relays
    assert (relay.ruri, relay.header_values("X-From-A"), relay.rr_params) == (BOB, [], ())
    assert relay.record_route


def test_reply_routes_see_the_flags_of_the_relay(kam: FakeKamailio) -> None:
    kam.ksr.tm.t_on_failure("ksr_failure")
    kam.ksr.tm.t_relay()
    kam.failure(503)
    kam.ksr.setflag(9)
    kam.ksr.tm.t_on_reply("ksr_onreply")
    kam.ksr.tm.t_relay()
    assert kam.reply(200, body=SDP) == "ksr_onreply"
    assert kam.ksr.isflagset(9)
    assert kam.ksr.textops.has_body_type("application/sdp") == 1


def test_failure_functions_outside_a_failure_route_fail(kam: FakeKamailio) -> None:
    with pytest.raises(AssertionError, match="outside a failure route"):
        kam.ksr.tm.t_get_status_code()


def test_t_check_trans(kam: FakeKamailio) -> None:
    assert kam.ksr.tm.t_check_trans() == -1
    kam.receive(sip_request("INVITE", BOB, from_=ALICE, known_transaction=True))
    assert kam.ksr.tm.t_check_trans() == 0
    kam.receive(sip_request("CANCEL", BOB, from_=ALICE, known_transaction=True))
    assert kam.ksr.tm.t_check_trans() == 1


def test_t_precheck_trans(kam: FakeKamailio) -> None:
    assert kam.ksr.tmx.t_precheck_trans() == -1
    kam.receive(sip_request("INVITE", BOB, from_=ALICE, in_process=True))
    assert kam.ksr.tmx.t_precheck_trans() == 1


# ----- tables -----


def test_registrar_save_and_lookup(kam: FakeKamailio) -> None:
    kam.receive(sip_request("REGISTER", "sip:lab.example", from_=BOB, to=BOB))
    assert kam.ksr.registrar.save("location", 0) == 1
    assert kam.replies == [Reply(200, "OK", "registrar")]
    kam.receive(sip_request("INVITE", BOB, from_=ALICE))
    assert kam.ksr.registrar.lookup("location") == 1
    assert kam.ksr.pv.get("$ru") == "sip:bob@192.0.2.10:5060"
    with pytest.raises(ValueError, match=r"usrloc domain \[loc\] not found"):
        kam.ksr.registrar.lookup("loc")


def test_registrar_return_codes(kam: FakeKamailio) -> None:
    assert kam.ksr.registrar.lookup("location") == -1
    kam.register("bob@lab.example", Contact("sip:bob@192.0.2.20", methods=frozenset({"MESSAGE"})))
    assert kam.ksr.registrar.lookup("location") == -2
    kam.registrar_error = True
    assert kam.ksr.registrar.lookup("location") == -3


def test_register_with_expires_zero_removes(kam: FakeKamailio) -> None:
    kam.register("bob@lab.example", Contact("sip:bob@192.0.2.10:5060"))
    kam.receive(
        sip_request("REGISTER", "sip:lab.example", from_=BOB, to=BOB, headers=(("Expires", "0"),))
    )
    kam.ksr.registrar.save("location", 0)
    assert kam.location == {}


def test_auth_check(kam: FakeKamailio) -> None:
    kam.add_subscriber("alice@lab.example", "pw")
    check = kam.ksr.auth_db.auth_check
    assert check("lab.example", "subscriber", 1) == -5  # no credentials
    kam.request.credentials = Credentials("alice@lab.example")
    assert check("lab.example", "subscriber", 1) == 1
    kam.request.credentials = Credentials("alice@lab.example", valid=False)
    assert check("lab.example", "subscriber", 1) == -2
    kam.request.credentials = Credentials("mallory@lab.example")
    assert check("lab.example", "subscriber", 1) == -3
    kam.add_subscriber("bob@lab.example", "pw")
    kam.request.credentials = Credentials("bob@lab.example")
    assert check("lab.example", "subscriber", 1) == -8  # From is alice
    assert check("lab.example", "subscriber", 0) == 1
    assert kam.ksr.auth_db.is_subscriber(BOB, "subscriber", 3) == 1
    assert kam.ksr.auth_db.is_subscriber("sip:nobody@lab.example", "subscriber", 3) == -1


def test_auth_challenge(kam: FakeKamailio) -> None:
    kam.ksr.auth.auth_challenge("lab.example", 0)
    assert kam.replies == [Reply(407, "Proxy Authentication Required", "auth")]


def test_sqlops_serves_usr_preferences(kam: FakeKamailio) -> None:
    kam.add_preference("bob@lab.example", "email", "bob@mail.example")
    kam.add_preference("alice@lab.example", "email", "alice@mail.example")
    sql = kam.ksr.sqlops
    query = "SELECT attribute, value FROM usr_preferences WHERE username = 'bob'"
    assert sql.sql_query("vm", query, "r") == 0
    assert sql.sql_num_rows("r") == 1
    assert (sql.sql_result_get("r", 0, 0), sql.sql_result_get("r", 0, 1)) == (
        "email",
        "bob@mail.example",
    )
    with pytest.raises(IndexError):
        sql.sql_result_get("r", 1, 0)
    sql.sql_result_free("r")
    with pytest.raises(KeyError, match="no result"):
        sql.sql_num_rows("r")
    assert sql.sql_query("vm", "SELEC nonsense", "r") == -1
    assert kam.sql_queries == [query, "SELEC nonsense"]
    with pytest.raises(ValueError, match="no connection 'other'"):
        sql.sql_query("other", query, "r")


def test_dispatcher_round_robin_failover_and_marks(kam: FakeKamailio) -> None:
    for port in (5080, 5081, 5082):
        kam.add_worker(f"sip:127.0.0.1:{port}")
    ds = kam.ksr.dispatcher
    assert ds.ds_select_dst(1, 4) == 1
    assert kam.dst_uri == "sip:127.0.0.1:5080"
    assert ds.ds_mark_dst_state("ip") == 1
    assert ds.ds_next_dst() == 1
    assert kam.dst_uri == "sip:127.0.0.1:5081"
    assert ds.ds_next_dst() == 1
    assert ds.ds_next_dst() == -1
    assert kam.ds_marks == [("sip:127.0.0.1:5080", "ip")]
    # round robin over the active ones: 5080 is inactive now
    assert ds.ds_select_dst(1, 4) == 1
    assert kam.dst_uri == "sip:127.0.0.1:5082"
    assert ds.ds_select_dst(2, 4) == -1
    with pytest.raises(NotImplementedError, match="algorithm 0"):
        ds.ds_select_dst(1, 0)


def test_ds_is_from_list_matches_address_and_port_of_any_state(kam: FakeKamailio) -> None:
    kam.add_worker("sip:127.0.0.1:5080;transport=udp", active=False)
    kam.add_worker("sip:192.0.2.30", set_id=2)  # no port: any port
    ds = kam.ksr.dispatcher
    for source, set_id, expected in [
        (("127.0.0.1", 5080), 1, 1),
        (("127.0.0.1", 5081), 1, -1),
        (("127.0.0.2", 5080), 1, -1),
        (("127.0.0.1", 5080), 2, -1),
        (("192.0.2.30", 6000), 2, 1),
        (("192.0.2.30", 6000), -1, 1),  # -1: every set
        (("127.0.0.1", 5080), 3, -1),  # no such set
    ]:
        kam.receive(sip_request("PUBLISH", BOB, from_=BOB, src_ip=source[0], src_port=source[1]))
        assert ds.ds_is_from_list(set_id) == expected, (source, set_id)


def test_uri_host_port() -> None:
    assert uri_host_port("sip:127.0.0.1:5080;transport=udp") == ("127.0.0.1", 5080)
    assert uri_host_port("sip:bob@lab.example") == ("lab.example", 0)


def test_rr(kam: FakeKamailio) -> None:
    assert kam.ksr.rr.loose_route() == -1
    kam.receive(
        sip_request(
            "BYE", BOB, from_=ALICE, to_tag="t", headers=(("Route", "<sip:127.0.0.1;lr;vm=1>"),)
        )
    )
    assert kam.ksr.rr.loose_route() == 1
    assert kam.ksr.rr.check_route_param("vm=1") == 1
    assert kam.ksr.rr.check_route_param("nat=yes") == -1
    with pytest.raises(ValueError, match="must start with ';'"):
        kam.ksr.rr.add_rr_param("vm=1")


def test_siputils_maxfwd_sanity(kam: FakeKamailio) -> None:
    assert kam.ksr.siputils.has_totag() == -1
    assert kam.ksr.siputils.is_first_hop() == 1
    assert kam.ksr.siputils.options_reply() == -1
    assert kam.ksr.maxfwd.process_maxfwd(10) == 1
    assert kam.ksr.sanity.sanity_check_defaults() == 1
    kam.request.sane = False
    assert kam.ksr.sanity.sanity_check_defaults() == -1


def test_rtpengine_and_nathelper_are_recorded(kam: FakeKamailio) -> None:
    assert kam.ksr.rtpengine.rtpengine_offer("replace-origin") == 1
    kam.rtpengine_available = False
    assert kam.ksr.rtpengine.rtpengine_delete0() == -1
    assert [(c.operation, c.flags) for c in kam.rtpengine] == [
        ("offer", "replace-origin"),
        ("delete", ""),
    ]
    assert kam.ksr.nathelper.nat_uac_test(19) == -1
    kam.ksr.force_rport()
    assert kam.nat_calls == ["nat_uac_test(19)", "force_rport"]


# ----- presence -----

SUMMARY = "Messages-Waiting: yes\r\n"


def mwi_request(method: str, *headers: tuple[str, str], body: str = "", **fields: Any) -> Request:
    return sip_request(
        method,
        BOB,
        from_=BOB,
        headers=(("Event", "message-summary"), *headers),
        body=body,
        content_type="application/simple-message-summary",
        **fields,
    )


def test_presence_keeps_publications_and_notifies_the_watchers(kam: FakeKamailio) -> None:
    presence, store = kam.ksr.presence, kam.presence
    kam.receive(mwi_request("SUBSCRIBE", ("Expires", "600")))
    assert presence.handle_subscribe() == 1
    [subscription] = store.subscriptions
    assert (subscription.presentity, subscription.watcher, subscription.expires) == (BOB, BOB, 600)
    assert kam.replies == [Reply(200, "OK", "presence")]
    kam.receive(mwi_request("PUBLISH", body=SUMMARY))
    assert presence.handle_publish() == 1
    [publication] = store.publications
    assert (publication.presentity, publication.body, publication.expires) == (BOB, SUMMARY, 3600)
    # A refresh (no body) keeps the state under a new ETag, and NOTIFYs it again.
    kam.receive(mwi_request("PUBLISH", ("SIP-If-Match", publication.etag)))
    assert presence.handle_publish() == 1
    [refreshed] = store.publications
    assert (refreshed.body, refreshed.etag != publication.etag) == (SUMMARY, True)
    kam.receive(mwi_request("PUBLISH", ("SIP-If-Match", refreshed.etag), ("Expires", "0")))
    assert presence.handle_publish() == 1
    assert store.publications == []
    call = "call-1@192.0.2.10"
    assert store.notifies == [
        Notify(BOB, BOB, "message-summary", call, ACTIVE, ""),
        Notify(BOB, BOB, "message-summary", call, ACTIVE, SUMMARY),
        Notify(BOB, BOB, "message-summary", call, ACTIVE, SUMMARY),
        Notify(BOB, BOB, "message-summary", call, ACTIVE, ""),
    ]


def test_presence_refuses_what_it_cannot_take(kam: FakeKamailio) -> None:
    presence = kam.ksr.presence
    for request, status, reason in [
        (mwi_request("PUBLISH", ("SIP-If-Match", "etag-9"), body=SUMMARY), 412,
         "Conditional request failed"),
        (mwi_request("PUBLISH"), 400, "Invalid request"),  # no body, no ETag
        (sip_request("PUBLISH", BOB, from_=BOB, headers=(("Event", "presence"),)), 489,
         "Bad Event"),
        (sip_request("PUBLISH", BOB, from_=BOB, body=SUMMARY,
                     headers=(("Event", "message-summary;id=1"),)), 489, "Bad Event"),
    ]:  # fmt: skip
        kam.receive(request)
        assert presence.handle_publish() == -1
        assert kam.replies == [Reply(status, reason, "presence")]
    kam.receive(mwi_request("SUBSCRIBE", to_tag="pres-9"))
    assert presence.handle_subscribe() == -1
    assert kam.replies == [Reply(481, "Subscription does not exist", "presence")]
    with pytest.raises(NotImplementedError, match="handle_publish for a PUBLISH only"):
        presence.handle_publish()
    assert (kam.presence.publications, kam.presence.subscriptions) == ([], [])


def test_a_subscription_lives_in_its_dialog(kam: FakeKamailio) -> None:
    presence, store = kam.ksr.presence, kam.presence
    kam.receive(mwi_request("SUBSCRIBE", ("Expires", "7200")))  # capped at max_expires
    presence.handle_subscribe()
    [subscription] = store.subscriptions
    assert subscription.expires == 3600
    to_tag = subscription.to_tag
    kam.receive(mwi_request("SUBSCRIBE", ("Expires", "60"), call_id="other@192.0.2.10",
                            to_tag=to_tag))  # fmt: skip
    assert presence.handle_subscribe() == -1  # another dialog
    kam.receive(mwi_request("SUBSCRIBE", ("Expires", "60"), to_tag=to_tag))
    assert presence.handle_subscribe() == 1
    assert [s.expires for s in store.subscriptions] == [60]
    kam.receive(mwi_request("SUBSCRIBE", ("Expires", "0"), to_tag=to_tag))
    assert presence.handle_subscribe() == 1
    assert store.subscriptions == []
    assert [n.state for n in store.notifies] == [ACTIVE, ACTIVE, TERMINATED]


def test_pres_has_subscribers_and_refresh_watchers(kam: FakeKamailio) -> None:
    presence, store = kam.ksr.presence, kam.presence
    assert presence.pres_has_subscribers(BOB, "message-summary") == -1
    kam.receive(mwi_request("SUBSCRIBE"))
    presence.handle_subscribe()
    assert presence.pres_has_subscribers(BOB, "message-summary") == 1
    assert presence.pres_has_subscribers(ALICE, "message-summary") == -1
    assert presence.pres_has_subscribers(BOB, "presence") == -1  # not registered
    assert presence.pres_refresh_watchers(BOB, "message-summary", REFRESH_NOTIFY) == 0
    assert len(store.notifies) == 2
    assert presence.pres_refresh_watchers(BOB, "message-summary", REFRESH_RULES) == -1
    assert presence.pres_refresh_watchers(BOB, "dialog", REFRESH_NOTIFY) == -1
    with pytest.raises(NotImplementedError, match="type 1, not 2"):
        presence.pres_refresh_watchers(BOB, "message-summary", 2)
    with pytest.raises(TypeError, match="argument kind must be int, not str"):
        presence.pres_refresh_watchers(BOB, "message-summary", "1")  # type: ignore[arg-type]
