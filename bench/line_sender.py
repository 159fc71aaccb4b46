"""The line sender of the socket benchmarks: a 127.0.0.1 server in its own process (its own GIL).

`SENDER` is a program for `python -c`: it prints its port, then sends lines of 10 words to the one
connection it accepts until that connection closes. bench/gil.py and bench/socket_ingest.py use it.
"""

SENDER = """
import socket, sys
srv = socket.create_server(("127.0.0.1", 0))
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
data = b"w1 w2 w3 w4 w5 w6 w7 w8 w9 w10\\n" * 50_000
try:
    while True:
        conn.sendall(data)
except OSError:
    pass
"""
