"""The web chat demo in a real browser: ``parley dev`` serves the page, headless Chromium runs it.

Why Playwright: the page's whole point is what a browser does with it (the WebSocket subprotocol
handshake, DOM updates from frames, escaping, layout on a phone), which no HTTP-level test sees.
Playwright for Python drives Debian's ``chromium`` (``executable_path``; its own browser download
does not work here, so ``playwright install`` is never run). ``make test`` installs both.

One ``parley dev`` subprocess (as a newcomer runs it) and one browser serve the whole module; each
test uses its own room, so tests do not see each other's messages. With ``PARLEY_UPDATE_SCREENSHOTS=1``
the screenshot test also refreshes the images under ``docs/`` that the README shows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from parley.testing.cluster import ROOT, parley_dev

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, WebSocketRoute

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: run `make install`")
expect = playwright_api.expect

CHROMIUM = "/usr/bin/chromium"
# As python-svc.md prescribes for this machine: no sandbox as root, and no background traffic the
# closed network would refuse. Playwright adds --headless and a fresh temporary --user-data-dir itself.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000
DOCS = ROOT / "docs"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: `make test` installs chromium"),
]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with parley_dev() as ports:
        yield f"http://127.0.0.1:{ports['api']}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def room() -> str:
    return "t-" + uuid.uuid4().hex[:10]


@pytest.fixture
def open_page(browser: Browser, base_url: str) -> Iterator[Callable[..., Page]]:
    contexts = []

    def open_page(query: str = "", *, width: int = 1200, height: int = 800) -> Page:
        # One context per page: like two people on two machines (no shared storage).
        context = browser.new_context(viewport={"width": width, "height": height}, locale="en-GB")
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{base_url}/{query}")
        return page

    yield open_page
    for context in contexts:
        context.close()


def join(page: Page, room: str, name: str, *, moderator: bool = False) -> None:
    page.get_by_role("textbox", name="Room", exact=True).fill(room)
    page.get_by_label("Display name").fill(name)
    if moderator:
        page.get_by_label("Moderator view").check()
    page.get_by_role("button", name="Join").click()
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    expect(page.locator("#status")).to_have_text(f"Connected to {room} as {name}")


def say(page: Page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_label("Message", exact=True).press("Enter")


def wait_until(page: Page, condition: Callable[[], bool], timeout_ms: int = TIMEOUT_MS) -> None:
    """Poll a Python-side condition while letting Playwright's event loop deliver callbacks."""
    for _ in range(timeout_ms // 50):
        if condition():
            return
        page.wait_for_timeout(50)
    assert condition()


def message(page: Page, text: str) -> Locator:
    return page.locator("#messages li.msg", has=page.locator(".content", has_text=text))


def test_two_pages_chat_with_sender_names_and_escaping(open_page, room: str) -> None:
    ana, ben = open_page(), open_page()
    join(ana, room, "Ana")
    join(ben, room, "Ben")

    say(ana, "hello from Ana")
    on_ben = message(ben, "hello from Ana")
    expect(on_ben.locator(".sender")).to_have_text("Ana")
    expect(on_ben.locator("time")).not_to_be_empty()
    expect(message(ana, "hello from Ana").locator(".sender")).to_have_text("Ana (you)")

    # User content is text, never markup: the tags arrive as characters and no element is made.
    markup = "<img src=x onerror=alert(1)><b>bold</b>"
    say(ben, markup)
    expect(message(ana, "bold").locator(".content")).to_have_text(markup)
    assert ana.locator("#messages img, #messages b").count() == 0
    # presence (parley extension): both are listed as connected, with their display names
    expect(ana.locator("#people")).to_contain_text("Ben")
    expect(ana.locator("#people")).to_contain_text("Ana (you)")


def test_moderator_deletes_a_message_on_every_page(open_page, room: str) -> None:
    mod, user = open_page("?mod=1"), open_page()
    join(mod, room, "Mo")  # ?mod=1 ticks the moderator box
    join(user, room, "Uma")
    expect(mod.locator("#role")).to_have_text("Moderator view")
    expect(user.get_by_role("button", name="Delete message from Mo")).to_have_count(0)  # no buttons for users

    say(user, "buy cheap stuff")
    mod.get_by_role("button", name="Delete message from Uma").click()

    for page in (mod, user):
        line = page.locator("#messages li.msg.deleted")
        expect(line.locator(".content")).to_have_text("Message deleted by a moderator: Against the room rules.")
        expect(page.locator("#messages")).not_to_contain_text("buy cheap stuff")


def test_moderator_disconnects_a_user(open_page, room: str) -> None:
    mod, user = open_page(), open_page()
    join(mod, room, "Mo", moderator=True)
    join(user, room, "Vic")
    say(user, "I am Vic")
    mod.get_by_role("button", name="Disconnect Vic").click()

    expect(user.locator("#status")).to_have_attribute("data-state", "disconnected")
    expect(user.locator("#status")).to_have_text("Disconnected by a moderator")
    expect(user.locator("#notice")).to_have_text("A moderator disconnected you from this room.")
    expect(user.get_by_role("button", name="Send")).to_be_disabled()
    expect(mod.locator("#messages")).to_contain_text("Vic was disconnected by a moderator (Against the room rules).")
    # A close frame means "do not come back": the page stays disconnected instead of reconnecting.
    user.wait_for_timeout(600)
    expect(user.locator("#status")).to_have_attribute("data-state", "disconnected")
    expect(mod.locator("#status")).to_have_attribute("data-state", "connected")


def test_too_long_message_shows_its_error_in_words(open_page, room: str) -> None:
    page = open_page()
    join(page, room, "Lena")
    expect(page.locator("#counter")).to_have_text("0 / 500")
    page.get_by_label("Message", exact=True).fill("x" * 501)
    expect(page.locator("#counter")).to_have_text("501 / 500: 1 over the limit")
    page.get_by_role("button", name="Send").click()

    expect(page.locator("#notice")).to_have_text(
        "Message too long: it has 501 characters and this room allows at most 500. It was not sent."
    )
    expect(page.get_by_label("Message", exact=True)).to_have_value("x" * 501)  # given back to shorten
    expect(page.locator("#messages li")).to_have_count(0)


def test_screenshots_desktop_moderator_and_phone(open_page, tmp_path: Path) -> None:
    out = DOCS if os.environ.get("PARLEY_UPDATE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(exist_ok=True)
    mod = open_page(width=1200, height=760)
    ana = open_page(width=1200, height=760)
    phone = open_page(width=390, height=844)  # a phone-sized viewport
    join(mod, "lobby", "Mo", moderator=True)
    join(ana, "lobby", "Ana")
    join(phone, "lobby", "Pat")
    say(ana, "Hi all! Is the stream starting soon?")
    say(phone, "Starts at 8, I think!")
    say(ana, "buy followers at example.com")
    mod.get_by_role("button", name="Delete message from Ana").last.click()
    expect(ana.locator("#messages li.msg.deleted")).to_have_count(1)
    say(mod, "Welcome! Be kind.")
    expect(ana.locator("#messages li.msg")).to_have_count(4)
    expect(phone.locator("#messages li.msg")).to_have_count(4)

    ana.screenshot(path=str(out / "demo-chat.png"))
    mod.screenshot(path=str(out / "demo-moderator.png"))
    phone.screenshot(path=str(out / "demo-phone.png"), full_page=True)
    # On a phone nothing scrolls sideways and the send box is on screen.
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    expect(phone.get_by_role("button", name="Send")).to_be_in_viewport()
    for name in ("demo-chat.png", "demo-moderator.png", "demo-phone.png"):
        assert (out / name).stat().st_size > 10_000


def test_error_401_and_a_dropped_socket_reconnect_with_fresh_tokens(open_page, room: str) -> None:
    page = open_page()
    token_requests: list[str] = []
    page.on("request", lambda r: token_requests.append(r.post_data or "") if r.url.endswith("/demo/token") else None)
    sockets: list[WebSocketRoute] = []

    def through(ws: WebSocketRoute) -> None:
        ws.connect_to_server()  # a pass-through proxy: every frame still goes to parley and back
        sockets.append(ws)

    page.route_web_socket("**/*", through)
    join(page, room, "Ines")
    assert len(token_requests) == 1 and len(sockets) == 1
    # What the gateway sends when a session ends (spec §1.4): the page must fetch a new token and reconnect.
    sockets[0].send('{"Type":"ERROR","Id":"AAAAAAAAAAAA","ErrorCode":401,"ErrorMessage":"Session expired"}')
    wait_until(page, lambda: len(sockets) == 2)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    assert len(token_requests) == 2
    assert '"userId"' in token_requests[1]  # same chat user after the reconnect
    # A connection that ends without a "go away" close (here 1012, service restart) is also retried.
    sockets[1].close(code=1012, reason="restarting")
    wait_until(page, lambda: len(sockets) == 3)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    assert len(token_requests) == 3
    say(page, "still here")
    expect(message(page, "still here").locator(".sender")).to_have_text("Ines (you)")


def test_flooding_shows_slow_down_and_bad_names_are_refused_in_words(open_page, room: str) -> None:
    page = open_page()
    page.get_by_role("textbox", name="Room", exact=True).fill(room)
    page.get_by_label("Display name").fill("<b>")
    page.get_by_role("button", name="Join").click()
    expect(page.locator("#join-error")).to_contain_text("Display name: use 1 to 32 letters")
    join(page, room, "Flo")
    # 30 submits in one task: well over the 10 requests/s a connection may make (ERROR 429).
    page.evaluate(
        """() => {
            const input = document.getElementById('message');
            const form = document.getElementById('send');
            for (let i = 0; i < 30; i++) { input.value = `m${i}`; form.requestSubmit(); }
        }"""
    )
    expect(page.locator("#notice")).to_have_text("Slow down: you are sending too fast. Wait a moment, then try again.")
