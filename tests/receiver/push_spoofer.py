"""A second local process claiming a producer's id (the spoofing test): one send, then it prints the seq.

Usage: python -m tests.receiver.push_spoofer PORT PRODUCER_ID
Prints {"seq": N}: the sequence number its record got (it continues after the producer's durable seq).
"""

from __future__ import annotations

import json
import sys

from dstream.client import PushClient


def main() -> None:
    port, producer_id = int(sys.argv[1]), sys.argv[2]
    with PushClient("127.0.0.1", port, producer_id, timeout_s=30) as client:
        print(json.dumps({"seq": client.send(["spoofed"])}), flush=True)


if __name__ == "__main__":
    main()
