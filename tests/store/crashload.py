"""Helper process for the crash-safety tests: delivers messages until killed, printing acknowledgements.

usage: python crashload.py DATADIR MODE  (MODE: deliver or import)
Each line "ACK <message id> <size>" is printed only after the store returned
the committed message, i.e. when a server would acknowledge it.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from mox.store.account import MessageInfo, NewMessage, open_account


def body(n: int) -> bytes:
    return f"Subject: message {n}\r\nMessage-ID: <{n}@crash>\r\n\r\n".encode() + (b"line of text %d\r\n" % n) * (50 + n % 200)


async def main(data_dir: Path, mode: str) -> None:
    acc = await open_account(data_dir, "crash")
    counter = iter(range(10**9))

    async def deliverer() -> None:
        while True:
            n = next(counter)
            m = await acc.add_message("Inbox", body(n), info=MessageInfo(message_id=f"{n}@crash"))
            print(f"ACK {m.id} {n}", flush=True)

    async def importer() -> None:
        while True:
            ns = [next(counter) for _ in range(50)]
            ms = await acc.add_messages("Imported", [NewMessage(body(n), info=MessageInfo(message_id=f"{n}@crash")) for n in ns])
            for m, n in zip(ms, ns, strict=True):
                print(f"ACK {m.id} {n}", flush=True)

    print("READY", flush=True)
    if mode == "deliver":
        await asyncio.gather(*(deliverer() for _ in range(16)))
    else:
        await asyncio.gather(importer(), deliverer())


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
