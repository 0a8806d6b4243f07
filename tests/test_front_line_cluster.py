"""The line front distributed: ``parley api``, a router and two ``parley front line`` replicas on
the real RabbitMQ and Redis. Accounts come from ``POST /CreateUser``; users on different replicas
see each other in ``show``, message each other, and an inbox is taken once however many replicas
its user is logged in on."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from parley.testing.cluster import Cluster, new_namespace, running_cluster, suite_settings
from shared.config import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture(scope="module")
def module_settings() -> Settings:
    return suite_settings(new_namespace())


@pytest.fixture(scope="module")
def cluster(module_settings: Settings, redis_url: str, amqp_url: str) -> Iterator[Cluster]:
    with running_cluster(module_settings, redis_url, amqp_url, gateways=0) as cluster:
        cluster.start_front("lineA", "line")
        cluster.start_front("lineB", "line")
        yield cluster


class LineClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def login(cls, cluster: Cluster, replica: str, username: str, password: str) -> LineClient:
        client = cls(*await asyncio.open_connection("127.0.0.1", cluster.ports[replica]))
        assert re.fullmatch(
            rf"username {username} logged in, token [0-9a-f-]{{36}}", await client.ask(f"auth {username} {password}")
        )
        return client

    async def ask(self, line: str) -> str:
        self.writer.write(line.encode() + b"\r\n")
        return (await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 15))[:-4].decode()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def test_users_on_different_replicas_talk(cluster: Cluster) -> None:
    api = cluster.parleychat()
    messi_id = api.create_user(username="messi", password="surabaya", attributes={"nama": "Lionel Messi"})["userId"]
    api.create_user(username="henderson", password="anfield", attributes={"nama": "Jordan Henderson"})
    with pytest.raises(api.exceptions.ConflictException):
        api.create_user(username="messi", password="again")
    with pytest.raises(api.exceptions.ValidationException):
        api.create_user(username="has space", password="x")
    assert re.fullmatch(r"[A-Za-z0-9]{12}", messi_id)

    messi = await LineClient.login(cluster, "lineA", "messi", "surabaya")
    henderson_b = await LineClient.login(cluster, "lineB", "henderson", "anfield")
    henderson_a = await LineClient.login(cluster, "lineA", "henderson", "anfield")
    table = await messi.ask("show")
    assert table.startswith("Daftar User Online\n")
    assert table.split("\n")[2].split() == ["username", "henderson", "henderson", "messi"]  # both replicas

    for index in range(6):
        assert await messi.ask(f"send henderson pesan {index}") == "message sent to henderson"
    both = await asyncio.gather(henderson_a.ask("inbox"), henderson_b.ask("inbox"))
    got = [entry["msg"] for reply in both for entry in json.loads(reply).get("messi", [])]
    assert sorted(got) == sorted(f" pesan {index} \r\n" for index in range(6))  # each once, on one replica or the other
    assert await henderson_b.ask("send messi sampai jumpa") == "message sent to messi"
    assert json.loads(await messi.ask("inbox")) == {
        "henderson": [{"msg_from": "Jordan Henderson", "msg_to": "Lionel Messi", "msg": " sampai jumpa \r\n"}]
    }

    await henderson_b.close()
    await asyncio.sleep(1.0)  # a fresh second of messi's command rate
    for _ in range(40):
        if (await messi.ask("show")).split("\n")[2].split().count("henderson") == 1:
            break
        await asyncio.sleep(0.25)
    assert (await messi.ask("show")).split("\n")[2].split() == ["username", "henderson", "messi"]
    for client in (messi, henderson_a):
        await client.close()


async def test_parley_users_add_creates_an_account_the_front_accepts(cluster: Cluster) -> None:
    command = [sys.executable, "-m", "parley", "users", "add", "kane", "--password-stdin", "--attr", "nama=Harry Kane"]
    created = subprocess.run(command, input=b"tottenham\n", env=cluster.env(), capture_output=True, timeout=30)
    assert created.returncode == 0, created.stderr
    assert re.fullmatch(rb"[A-Za-z0-9]{12}\n", created.stdout) and b"tottenham" not in created.stdout + created.stderr
    again = subprocess.run(command, input=b"x\n", env=cluster.env(), capture_output=True, timeout=30)
    assert again.returncode == 1 and b"taken" in again.stderr
    kane = await LineClient.login(cluster, "lineB", "kane", "tottenham")
    assert await kane.ask("send kane catatan") == "message sent to kane"  # a note to oneself
    assert json.loads(await kane.ask("inbox")) == {
        "kane": [{"msg_from": "Harry Kane", "msg_to": "Harry Kane", "msg": " catatan \r\n"}]
    }
    await kane.close()


def test_no_password_reached_any_log(cluster: Cluster) -> None:
    for name in ("api", "lineA", "lineB", "router1"):
        text = (cluster.log_dir / f"parley-{cluster.settings.namespace}-{name}.log").read_bytes()
        for password in (b"surabaya", b"anfield", b"tottenham"):
            assert password not in text, name
