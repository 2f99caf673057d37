"""A misbehaving origin for the deadline tests: a real process on 127.0.0.1.

    python bad_origin.py --port P --mode MODE

MODE:
  close    accept, then close at once (FIN) without reading
  reset    accept, then reset at once (RST)
  noread   accept and never read (receive buffer kept small), never answer
  silent   accept, read everything, never answer

Prints ``listening PORT`` once bound and ``accepted N`` after every accepted connection.
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import threading


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=("close", "reset", "noread", "silent"), required=True)
    args = ap.parse_args()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if args.mode == "noread":     # inherited by accepted sockets: the window fills quickly
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    srv.bind(("127.0.0.1", args.port))
    srv.listen(1024)
    print(f"listening {args.port}", flush=True)
    kept = []
    accepted = 0
    while True:
        conn, _ = srv.accept()
        accepted += 1
        if args.mode == "close":
            conn.close()
        elif args.mode == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
        elif args.mode == "noread":
            kept.append(conn)
        else:
            threading.Thread(target=_drain, args=(conn,), daemon=True).start()
        print(f"accepted {accepted}", file=sys.stdout, flush=True)


def _drain(conn: socket.socket) -> None:
    with conn:
        while conn.recv(65536):
            pass


if __name__ == "__main__":
    main()
