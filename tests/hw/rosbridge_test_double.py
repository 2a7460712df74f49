"""TEST DOUBLE: a minimal rosbridge-protocol websocket server, for tests only.

No rosbridge server installs on the project's machines (ENVIRONMENT.md), so the rosbridge
backend is tested against this stand-in. It is NOT rosbridge_suite: it relays JSON messages
between its own websocket clients (no ROS graph behind it) and implements just what
:mod:`robotrl.hw.rosbridge` uses:

- ops ``advertise`` / ``unadvertise`` / ``publish`` / ``subscribe`` / ``unsubscribe``
  (a publish reaches every subscriber of the topic whose declared type matches the topic's);
- ``call_service`` for ``/rosapi/topics`` (topics and types), ``/rosapi/topic_type`` and
  ``/rosapi/subscribers``.

Run: ``python tests/hw/rosbridge_test_double.py --port N`` (loopback only); prints ``READY`` when
it listens.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys

from autobahn.asyncio.websocket import WebSocketServerFactory, WebSocketServerProtocol

TOPIC_TYPES: dict[str, str] = {}  # first declared type wins (like a ROS graph)
SUBSCRIBERS: dict[str, dict["BridgeProtocol", str]] = {}  # topic -> client -> declared type
ADVERTISERS: dict[str, set] = {}
CLIENT_IDS: dict["BridgeProtocol", str] = {}


class BridgeProtocol(WebSocketServerProtocol):
    def onOpen(self) -> None:
        CLIENT_IDS[self] = f"/client_{len(CLIENT_IDS)}"

    def onClose(self, wasClean, code, reason) -> None:  # noqa: N802 - autobahn API
        for subs in SUBSCRIBERS.values():
            subs.pop(self, None)
        for advs in ADVERTISERS.values():
            advs.discard(self)
        CLIENT_IDS.pop(self, None)

    def send_json(self, obj: dict) -> None:
        self.sendMessage(json.dumps(obj).encode("utf8"), isBinary=False)

    def onMessage(self, payload, isBinary) -> None:  # noqa: N802 - autobahn API
        msg = json.loads(payload.decode("utf8"))
        op = msg.get("op")
        topic = msg.get("topic")
        if op == "advertise":
            TOPIC_TYPES.setdefault(topic, msg.get("type", ""))
            ADVERTISERS.setdefault(topic, set()).add(self)
        elif op == "unadvertise":
            ADVERTISERS.get(topic, set()).discard(self)
        elif op == "subscribe":
            declared = msg.get("type") or TOPIC_TYPES.get(topic, "")
            if declared:
                TOPIC_TYPES.setdefault(topic, declared)
            SUBSCRIBERS.setdefault(topic, {})[self] = declared
        elif op == "unsubscribe":
            SUBSCRIBERS.get(topic, {}).pop(self, None)
        elif op == "publish":
            ttype = TOPIC_TYPES.get(topic, "")
            out = {"op": "publish", "topic": topic, "msg": msg.get("msg", {})}
            for client, declared in list(SUBSCRIBERS.get(topic, {}).items()):
                if not declared or not ttype or declared == ttype:  # a mismatched subscriber gets nothing
                    client.send_json(out)
        elif op == "call_service":
            self.call_service(msg)

    def call_service(self, msg: dict) -> None:
        service, args = msg.get("service"), msg.get("args") or {}
        if service == "/rosapi/topics":
            names = sorted(TOPIC_TYPES)
            values, ok = {"topics": names, "types": [TOPIC_TYPES[n] for n in names]}, True
        elif service == "/rosapi/topic_type":
            values, ok = {"type": TOPIC_TYPES.get(args.get("topic"), "")}, True
        elif service == "/rosapi/subscribers":
            values, ok = {"subscribers": sorted(CLIENT_IDS.get(c, "?") for c in SUBSCRIBERS.get(args.get("topic"), {}))}, True
        else:
            values, ok = f"service {service} not implemented by the test double", False
        self.send_json({"op": "service_response", "service": service, "id": msg.get("id"), "values": values, "result": ok})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    factory = WebSocketServerFactory(f"ws://127.0.0.1:{args.port}", loop=loop)
    factory.protocol = BridgeProtocol
    server = loop.run_until_complete(loop.create_server(factory, "127.0.0.1", args.port))
    print("READY", flush=True)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
