"""One process of a PyTorch-style distributed job, without torch.

Checks the variables torchrun sets (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK, NODE_RANK,
LOCAL_WORLD_SIZE, GROUP_RANK), then does what ``init_process_group("env://")`` does first: rank 0 listens
at MASTER_ADDR:MASTER_PORT, every other rank connects and says who it is, and rank 0 answers everyone
with the full list of ranks once all have arrived. Each process writes ``rank_<n>.json`` to --report-dir.
Exit code 0 only if the environment is consistent and all WORLD_SIZE processes met.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path

DEADLINE_SECONDS = float(os.environ.get("RENDEZVOUS_TIMEOUT", "120"))


def environment() -> dict[str, int | str]:
    names = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_PORT")
    missing = [name for name in (*names, "MASTER_ADDR") if name not in os.environ]
    if missing:
        sys.exit(f"missing environment variables: {', '.join(missing)}")
    env: dict[str, int | str] = {name: int(os.environ[name]) for name in names}
    env["MASTER_ADDR"] = os.environ["MASTER_ADDR"]
    checks = {
        "0 <= RANK < WORLD_SIZE": 0 <= env["RANK"] < env["WORLD_SIZE"],
        "0 <= LOCAL_RANK < LOCAL_WORLD_SIZE": 0 <= env["LOCAL_RANK"] < env["LOCAL_WORLD_SIZE"],
        "RANK == NODE_RANK * LOCAL_WORLD_SIZE + LOCAL_RANK":
            env["RANK"] == env["NODE_RANK"] * env["LOCAL_WORLD_SIZE"] + env["LOCAL_RANK"],
        "GROUP_RANK == NODE_RANK": env["GROUP_RANK"] == env["NODE_RANK"],
        "WORLD_SIZE is a multiple of LOCAL_WORLD_SIZE": env["WORLD_SIZE"] % env["LOCAL_WORLD_SIZE"] == 0,
    }
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        sys.exit(f"inconsistent environment {env}: {'; '.join(failed)}")
    return env


def send(connection: socket.socket, message: dict) -> None:
    connection.sendall((json.dumps(message) + "\n").encode())


def receive(connection: socket.socket) -> dict:
    with connection.makefile("r") as stream:
        line = stream.readline()
    if not line:
        raise ConnectionError("peer closed the connection before answering")
    return json.loads(line)


def serve(env: dict, deadline: float) -> list[int]:
    """Rank 0: accept WORLD_SIZE - 1 peers, then tell each of them the ranks that arrived."""
    peers: dict[int, socket.socket] = {}
    with socket.create_server((env["MASTER_ADDR"], env["MASTER_PORT"]), reuse_port=False) as server:
        server.settimeout(1.0)
        while len(peers) < env["WORLD_SIZE"] - 1:
            if time.monotonic() > deadline:
                sys.exit(f"rank 0: only ranks {sorted(peers)} arrived before the deadline")
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            connection.settimeout(max(1.0, deadline - time.monotonic()))
            hello = receive(connection)
            if hello["rank"] in peers or hello["rank"] == 0 or hello["world_size"] != env["WORLD_SIZE"]:
                sys.exit(f"rank 0: unexpected peer {hello}")
            peers[hello["rank"]] = connection
    ranks = sorted([0, *peers])
    for connection in peers.values():
        with connection:
            send(connection, {"ranks": ranks})
    return ranks


def join(env: dict, deadline: float) -> list[int]:
    """Rank > 0: connect to rank 0 (retrying while it starts), say who we are, wait for the rank list."""
    while True:
        try:
            connection = socket.create_connection((env["MASTER_ADDR"], env["MASTER_PORT"]), timeout=2.0)
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"rank {env['RANK']}: rank 0 never listened at {env['MASTER_ADDR']}:{env['MASTER_PORT']}")
            time.sleep(0.1)
    with connection:
        connection.settimeout(max(1.0, deadline - time.monotonic()))
        send(connection, {"rank": env["RANK"], "world_size": env["WORLD_SIZE"]})
        return receive(connection)["ranks"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report-dir", required=True)
    args = parser.parse_args()
    env = environment()
    deadline = time.monotonic() + DEADLINE_SECONDS
    ranks = serve(env, deadline) if env["RANK"] == 0 else join(env, deadline)
    if ranks != list(range(env["WORLD_SIZE"])):
        sys.exit(f"rank {env['RANK']}: met ranks {ranks}, expected 0..{env['WORLD_SIZE'] - 1}")
    report = Path(args.report_dir)
    report.mkdir(parents=True, exist_ok=True)
    (report / f"rank_{env['RANK']}.json").write_text(json.dumps({**env, "ranks": ranks}))
    print(f"rank {env['RANK']}/{env['WORLD_SIZE']} (node {env['NODE_RANK']}, local {env['LOCAL_RANK']}): met {ranks}")
    if env["RANK"] == 0 and os.environ.get("MLFLOW_RUN_ID"):
        import mlflow  # only inside a job: the processes share the job's run

        mlflow.log_metric("rendezvous_world_size", len(ranks))


if __name__ == "__main__":
    main()
