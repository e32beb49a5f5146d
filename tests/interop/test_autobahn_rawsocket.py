"""Autobahn|Python over WAMP RawSocket (TCP and Unix socket): the way back-end workers connect.

Each test opens real Autobahn sessions with `WampRawSocketClientFactory` and checks pub/sub and
RPC values end to end, for json, msgpack and cbor, against the binary.
"""

import asyncio

import pytest
from autobahn.asyncio.rawsocket import WampRawSocketClientFactory
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.wamp.serializer import CBORSerializer, JsonSerializer, MsgPackSerializer
from autobahn.wamp.types import ComponentConfig, PublishOptions

SERIALIZERS = {"json": JsonSerializer, "msgpack": MsgPackSerializer, "cbor": CBORSerializer}
STEP = 5


class Joined(ApplicationSession):
    def __init__(self, config, ready):
        super().__init__(config)
        self._ready = ready

    async def onJoin(self, details):
        if not self._ready.done():
            self._ready.set_result(self)


async def open_session(server, ser_name, unix=False):
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    factory = WampRawSocketClientFactory(lambda: Joined(ComponentConfig("realm1"), ready), serializer=SERIALIZERS[ser_name]())
    if unix:
        await loop.create_unix_connection(factory, server.unix_path)
    else:
        host, port = server.rawsocket_addr.rsplit(":", 1)
        await loop.create_connection(factory, host, int(port))
    return await asyncio.wait_for(ready, STEP)


@pytest.mark.parametrize("ser", SERIALIZERS)
@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
def test_pubsub_and_rpc_over_rawsocket(raw_server, ser, unix):
    async def run():
        sub = await open_session(raw_server, ser, unix)
        pub = await open_session(raw_server, ser, unix)
        got = asyncio.get_running_loop().create_future()
        await asyncio.wait_for(sub.subscribe(lambda *a, **kw: got.done() or got.set_result((a, kw)), "com.raw.topic"), STEP)
        await asyncio.wait_for(
            pub.publish("com.raw.topic", 1, b"\x00\xffbin", k={"n": [1, 2]}, options=PublishOptions(acknowledge=True)), STEP
        )
        args, kwargs = await asyncio.wait_for(got, STEP)
        assert args == (1, b"\x00\xffbin")
        assert kwargs == {"k": {"n": [1, 2]}}

        await asyncio.wait_for(sub.register(lambda x, y: [x + y, b"\x01" * 3], "com.raw.add"), STEP)
        res = await asyncio.wait_for(pub.call("com.raw.add", 2, 3), STEP)
        assert res == [5, b"\x01\x01\x01"]
        for s in (sub, pub):
            s.leave()
        await asyncio.sleep(0.05)

    asyncio.run(run())
