"""Server-side request forgery through ``messageReviewHandler.uri``, end to end:
CreateRoom/UpdateRoom refuse handler URLs at addresses the reviewer must not call, and the
reviewer refuses them again at call time, after DNS, connecting only to the address it checked.

Every connection these tests make goes to this machine: the ``loopback_only`` tripwire records
(and blocks) any other destination, so a regression fails here instead of reaching a metadata
service. DNS answers come from the reviewer's resolver seam, never from a real resolver.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any

import aiohttp.connector
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from parley.embedded import Node
from parley.testing.chatclient import ChatClient
from parley.testing.cluster import free_port
from reviewer.config import ReviewConfig
from reviewer.protocol import HandlerRefused
from reviewer.service import ReviewService
from reviewer.webhook import GuardedResolver, Webhook
from shared.address_policy import LOOPBACK_NETWORKS, parse_networks
from shared.config import Settings
from shared.engine.memory import MemoryBus, MemoryStore
from shared.protocol.review import ReviewRequest, Verdict
from tests.nodes import make_room, mint_token, ws_url

if TYPE_CHECKING:
    from tests.api_helpers import ApiServer

pytest_plugins = ["api_helpers"]

LOOPBACK = parse_networks(LOOPBACK_NETWORKS)
MAPPED_ARN = "arn:aws:lambda:us-east-1:123456789012:function:parley-ssrf-mapped"
UNAVAILABLE = "review handler unavailable"
StartApi = Callable[..., "ApiServer"]


# --- harness ------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse (and remember) any connection aiohttp attempts to a non-local address."""
    attempted: list[str] = []
    real = aiohttp.connector.aiohappyeyeballs.start_connection

    async def start_connection(addr_infos: list[Any], *args: Any, **kwargs: Any) -> socket.socket:
        for info in addr_infos:
            host = info[4][0]
            address = ip_address(host.split("%")[0])
            mapped = getattr(address, "ipv4_mapped", None) or address
            if not (mapped.is_loopback or str(mapped) == "0.0.0.0"):
                attempted.append(host)
        if attempted:
            raise OSError(f"test tripwire: connection to {attempted} blocked")
        return await real(addr_infos, *args, **kwargs)

    monkeypatch.setattr(aiohttp.connector.aiohappyeyeballs, "start_connection", start_connection)
    yield attempted
    assert attempted == [], "the reviewer tried to connect somewhere other than this machine"


class Handler:
    """A review handler on 127.0.0.1 that upper-cases; ``/redirect`` answers 307 to the metadata service."""

    def __init__(self) -> None:
        self.calls = 0
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/upper", self._upper)
        app.router.add_post("/redirect", self._redirect)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def url(self, host: str = "127.0.0.1", path: str = "upper") -> str:
        return f"http://{host}:{self.port}/{path}"

    async def _upper(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.json()
        return web.json_response({"ReviewResult": "ALLOW", "Content": body["Content"].upper()})

    async def _redirect(self, request: web.Request) -> web.Response:
        self.calls += 1
        raise web.HTTPTemporaryRedirect("http://169.254.169.254/latest/meta-data/iam/")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def handler() -> AsyncIterator[Handler]:
    server = Handler()
    await server.start()
    yield server
    await server.stop()


class FakeDNS(AbstractResolver):
    """The resolver seam: fixed answers per name; records what was asked."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError(f"no such test name: {host}")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.answers[host]
        ]

    async def close(self) -> None:
        pass


def _request(uri: str, fallback: str = "DENY") -> ReviewRequest:
    room_arn = "arn:aws:ivschat:us-east-1:1:room/r"
    return ReviewRequest(uri, fallback, 100, "MsgId123abcd", room_arn, "hello", None, "u", None, "203.0.113.7")


def _invocation_errors(uri: str) -> float:
    return REGISTRY.get_sample_value("InvocationErrors_total", {"Uri": uri}) or 0.0


async def _review(config: ReviewConfig, uri: str, resolver: AbstractResolver | None = None) -> Verdict | None:
    service = ReviewService(config, resolver=resolver)
    try:
        return await service.review(_request(uri))
    finally:
        await service.close()


def _refused(verdict: Verdict | None) -> bool:
    return verdict == Verdict(False, "hello", None, UNAVAILABLE)


# --- CreateRoom / UpdateRoom ------------------------------------------------------------------------
FORBIDDEN_URIS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.170.2/v2/credentials",
    "http://evil@169.254.169.254/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[fe80::1%25eth0]/",
    "http://100.100.100.200/latest/meta-data/",
    "http://0.0.0.0:8080/",
    "http://2852039166/",
    "http://0xa9fea9fe/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
]


@pytest.mark.parametrize("uri", FORBIDDEN_URIS)
def test_create_and_update_room_refuse_metadata_link_local_and_odd_spellings(ivs: Any, uri: str) -> None:
    """Even with loopback allowed (the suite's settings), as no setting can allow these."""
    with pytest.raises(ivs.exceptions.ValidationException) as caught:
        ivs.create_room(messageReviewHandler={"uri": uri})
    (problem,) = caught.value.response["fieldList"]
    assert problem["name"] == "messageReviewHandler.uri"
    assert problem["message"].startswith("Member must be a URL the reviewer may call: ")
    assert uri not in problem["message"]
    room = ivs.create_room(messageReviewHandler={"uri": "https://review.example.com/hook"})
    with pytest.raises(ivs.exceptions.ValidationException):
        ivs.update_room(identifier=room["arn"], messageReviewHandler={"uri": uri})
    assert ivs.get_room(identifier=room["arn"])["messageReviewHandler"]["uri"] == "https://review.example.com/hook"


def test_loopback_and_private_literals_need_the_setting(settings: Settings, start_api: StartApi) -> None:
    strict = start_api(settings.with_(review_allowed_networks="")).client()
    lenient = start_api(settings.with_(review_allowed_networks="127.0.0.0/8,::1/128,10.0.0.0/8")).client()
    for uri in ("http://127.0.0.1:9000/x", "http://[::1]:9000/x", "http://localhost:9000/x", "http://10.1.2.3/x"):
        with pytest.raises(strict.exceptions.ValidationException) as caught:
            strict.create_room(messageReviewHandler={"uri": uri})
        assert "PARLEY_REVIEW_ALLOWED_NETWORKS" in caught.value.response["fieldList"][0]["message"]
        assert lenient.create_room(messageReviewHandler={"uri": uri})["messageReviewHandler"]["uri"] == uri
    with pytest.raises(lenient.exceptions.ValidationException):
        lenient.create_room(messageReviewHandler={"uri": "http://192.168.0.10/x"})  # not listed
    # Names, ARNs and built-ins are judged when called (names) or need no network at all.
    for uri in ("https://review.example.com/hook", MAPPED_ARN, "parley:deny-all"):
        assert strict.create_room(messageReviewHandler={"uri": uri})["messageReviewHandler"]["uri"] == uri


@pytest.mark.parametrize("uri", ["http://[x", "http://[::1/", "http://]:[@/x", "http://@/"])
def test_broken_authorities_are_validation_errors(ivs: Any, uri: str) -> None:
    """Not a 500: urllib and yarl raise on these, and the answer is that the URL is invalid."""
    with pytest.raises(ivs.exceptions.ValidationException) as caught:
        ivs.create_room(messageReviewHandler={"uri": uri})
    assert caught.value.response["fieldList"][0]["name"] == "messageReviewHandler.uri"


def test_list_rooms_can_still_filter_by_a_refused_uri(ivs: Any) -> None:
    """Rooms stored before this policy keep their URI; an operator must still be able to find them."""
    assert ivs.list_rooms(messageReviewHandlerUri="http://169.254.169.254/latest/")["rooms"] == []


# --- the reviewer, at call time -------------------------------------------------------------------
async def test_loopback_handler_is_refused_unless_allowed(handler: Handler) -> None:
    uri = handler.url()
    before = _invocation_errors(uri)
    with capture_logs() as logs:
        assert _refused(await _review(ReviewConfig(), uri + "?token=s3cret"))
    assert handler.calls == 0
    assert _invocation_errors(uri) == before + 1  # counted under the URI without its query
    (event,) = [e for e in logs if e["event"] == "review handler address refused; fallback applied"]
    assert event["uri"] == uri and "loopback" in event["error"]
    assert "s3cret" not in repr(logs)

    assert await _review(ReviewConfig(allowed_networks=LOOPBACK), uri) == Verdict(True, "HELLO", None)
    assert handler.calls == 1


@pytest.mark.parametrize("host", ["[::ffff:127.0.0.1]", "0x7f.1", "127.1", "2130706433", "localhost"])
async def test_loopback_spellings_are_refused_unless_allowed(handler: Handler, host: str) -> None:
    assert _refused(await _review(ReviewConfig(), handler.url(host)))
    assert handler.calls == 0


async def test_this_network_address_is_refused_even_with_loopback_allowed(handler: Handler) -> None:
    """0.0.0.0 reaches local listeners on Linux: never allowed, whatever the setting."""
    assert _refused(await _review(ReviewConfig(allowed_networks=LOOPBACK), handler.url("0.0.0.0")))
    assert handler.calls == 0


async def test_a_name_resolving_to_the_metadata_service_is_refused_at_call_time(handler: Handler) -> None:
    dns = FakeDNS({"metadata.test": ["169.254.169.254"], "mapped.test": ["::ffff:169.254.169.254"]})
    everything = parse_networks("0.0.0.0/0,::/0")  # not even an operator allowing everything reopens it
    for name in ("metadata.test", "mapped.test"):
        uri = handler.url(name)
        before = _invocation_errors(uri)
        with capture_logs() as logs:
            assert _refused(await _review(ReviewConfig(allowed_networks=everything), uri, dns))
        assert _invocation_errors(uri) == before + 1
        (event,) = [e for e in logs if e["event"] == "review handler address refused; fallback applied"]
        assert "link-local (cloud metadata)" in event["error"]
    assert dns.asked == ["metadata.test", "mapped.test"]


async def test_a_name_is_judged_on_what_it_resolves_to(handler: Handler) -> None:
    dns = FakeDNS({"handler.test": ["127.0.0.1"]})
    assert _refused(await _review(ReviewConfig(), handler.url("handler.test"), dns))
    assert handler.calls == 0
    verdict = await _review(ReviewConfig(allowed_networks=LOOPBACK), handler.url("handler.test"), dns)
    assert verdict == Verdict(True, "HELLO", None)


async def test_only_the_checked_addresses_are_connected_to(handler: Handler) -> None:
    """A name answering the metadata address first (DNS rebinding, or a poisoned record) next to
    an allowed one: the connection goes to the allowed one, as the resolver drops the other."""
    dns = FakeDNS({"rebind.test": ["169.254.169.254", "0.0.0.0", "127.0.0.1"]})
    verdict = await _review(ReviewConfig(allowed_networks=LOOPBACK), handler.url("rebind.test"), dns)
    assert verdict == Verdict(True, "HELLO", None)
    assert handler.calls == 1


async def test_guarded_resolver_filters_and_refuses() -> None:
    dns = FakeDNS({"mixed.test": ["169.254.169.254", "10.0.0.7", "93.184.216.34"], "meta.test": ["169.254.169.254"]})
    guarded = GuardedResolver(parse_networks("10.0.0.0/8"), dns)
    assert [answer["host"] for answer in await guarded.resolve("mixed.test", 80)] == ["10.0.0.7", "93.184.216.34"]
    with pytest.raises(HandlerRefused, match=r"resolved to 169\.254\.169\.254: .*never allowed"):
        await guarded.resolve("meta.test", 80)


async def test_literal_hosts_are_judged_before_any_connection() -> None:
    """aiohttp skips the resolver for literal IPs, so the webhook judges them itself."""
    webhook = Webhook(1, ())
    for uri in ("http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://evil@169.254.169.254/"):
        with pytest.raises(HandlerRefused, match="never allowed"):
            await webhook.post(uri, {}, 0.2)
    await webhook.close()


async def test_redirects_are_not_followed(handler: Handler) -> None:
    verdict = await _review(ReviewConfig(allowed_networks=LOOPBACK), handler.url(path="redirect"))
    assert _refused(verdict)
    assert handler.calls == 1  # and the tripwire saw no attempt at 169.254.169.254


async def test_mapped_lambda_targets_are_operator_configuration(handler: Handler) -> None:
    """PARLEY_REVIEW_LAMBDA_MAP is trusted: its loopback target works with no network allowed."""
    config = ReviewConfig(lambda_map={MAPPED_ARN: handler.url()})
    assert await _review(config, MAPPED_ARN) == Verdict(True, "HELLO", None)
    assert _refused(await _review(config, handler.url()))  # the same URL as a room's own is judged
    assert handler.calls == 1


# --- the data plane: a stored room whose handler is refused gets its fallback ----------------------
async def _started(settings: Settings) -> Node:
    node = Node(settings, MemoryStore(), MemoryBus(settings.shards), api=False, router_all_shards=True)
    await node.start(gateway_port=0)
    return node


@pytest.mark.parametrize(("allowed", "reviewed"), [("", False), ("127.0.0.0/8", True)])
async def test_room_on_a_loopback_handler(settings: Settings, handler: Handler, allowed: str, reviewed: bool) -> None:
    """A room stored with a loopback handler (created under another setting, or before this
    policy): refused while loopback is not allowed, so its fallback (DENY) answers 406."""
    node = await _started(settings.with_(review_allowed_networks=allowed))
    try:
        room = await make_room(node, review_uri=handler.url(), review_fallback="DENY")
        sender = await ChatClient.open(ws_url(node), mint_token(node, room, "alice"))
        rid = await sender.send_message("hello")
        frame = await sender.recv(timeout=3)
        assert frame["RequestId"] == rid
        if reviewed:
            assert (frame["Type"], frame["Content"]) == ("MESSAGE", "HELLO")
        else:
            assert (frame["Type"], frame["ErrorCode"]) == ("ERROR", 406)
        assert handler.calls == (1 if reviewed else 0)
        await sender.close()
    finally:
        await node.stop()
