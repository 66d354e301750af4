"""(a): how many authenticated connections one worker holds with heartbeats running, and at what cost."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path

from bench import harness
from bench.ws_clients import Client, start_client
from bench.ws_logout import logout_samples
from bench.ws_profile import Profile
from bench.ws_report import Judged, code_names, log_summary, mib
from bench.ws_setup import (
    Plan,
    connection_rows,
    make_sessions,
    open_fds,
    proc_fd_limit,
    rss_bytes,
    server_env,
    start_worker,
)

CAPACITY_TARGET = 10_000


class Capacity:
    """(a): one server, its sessions and its client processes; each step prints its part of the report."""

    def __init__(self, stack: contextlib.ExitStack, workdir: Path, plan: Plan) -> None:
        self.stack = stack
        self.workdir = workdir
        self.plan = plan
        self.url = f"sqlite:///{workdir / 'capacity.db'}"
        self.clients: list[Client] = []
        self.rss_idle = self.fds_idle = 0
        self.profile: Profile | None = None

    def start(self) -> None:
        """Sessions, then the server, warmed up; its RSS before any held connection."""
        plan = self.plan
        per_session = -(-plan.connections // plan.sessions)
        env = server_env(self.url, secrets.token_urlsafe(48), plan.heartbeat, 2 * per_session, plan.connections + 100)
        print(
            f"\n(a) capacity: one worker, SQLite; {plan.connections:,} connections over {plan.sessions:,} sessions"
            f" ({per_session:,} each), Authorization: Bearer on the handshake"
        )
        sessions, made_in = make_sessions(env, plan.sessions + 1)
        warm, sessions = sessions[0], sessions[1:]
        self.tokens = self.workdir / "capacity-tokens.txt"
        self.tokens.touch(mode=0o600)
        self.tokens.write_text("".join(f"{token}\n" for _, token in sessions))
        self.server = start_worker(self.stack, "capacity server", env, self.workdir / "capacity-server.log")
        print(
            f"  settings    heartbeat interval {plan.heartbeat:g} s (the server pings every connection that often and"
            f" drops it after 3 missed pongs); hold {plan.hold:g} s after the ramp"
        )
        print(
            "              SESSIONFLOW_WS_MAX_CONNECTIONS_PER_ADDRESS="
            f"{env['SESSIONFLOW_WS_MAX_CONNECTIONS_PER_ADDRESS']}, SESSIONFLOW_WS_MAX_CONNECTIONS_PER_SESSION="
            f"{env['SESSIONFLOW_WS_MAX_CONNECTIONS_PER_SESSION']}; permessage-deflate"
            f" {'negotiated (as browsers do)' if plan.compression else 'off (--no-compression)'}"
        )
        print(f"  sessions    {len(sessions):,} made beforehand by Flows.login_user in {made_in:.1f} s, untimed")
        # Warm up (imports, compiled statements, pools) with a few connections, then the baseline.
        asyncio.run(logout_samples(self.server.port, [self.server.port], [warm], 5, plan.compression))
        time.sleep(1.0)
        self.rss_idle, self.fds_idle = rss_bytes(self.server.pid), open_fds(self.server.pid)

    def ramp(self) -> None:
        plan = self.plan
        n, extra = divmod(plan.connections, plan.clients)
        share = [n + (1 if k < extra else 0) for k in range(plan.clients)]
        first = 0
        began, wall = time.monotonic(), time.time()
        for k, count in enumerate(share):
            argv = [str(self.server.port), str(self.tokens), str(first), str(count), str(plan.window)]
            log = self.workdir / f"capacity-client-{k}.log"
            argv += [f"{plan.ramp_budget:g}", str(int(plan.compression))]
            self.clients.append(start_client(self.stack, argv, log))
            first += count
        ramped = [client.expect("RAMPED", plan.ramp_budget + 90) for client in self.clients]
        seconds = time.monotonic() - began
        opened = sum(r["open"] for r in ramped)
        failures: Counter[str] = Counter()
        for r in ramped:
            failures.update(r["failures"])
        print(
            f"  clients     {plan.clients} processes ({', '.join(f'{n:,}' for n in share)} connections), at most"
            f" {plan.window} handshakes in flight each, none started after {plan.ramp_budget:g} s"
        )
        print(
            f"  fd limits   server process {proc_fd_limit(self.server.pid)};"
            f" client processes {proc_fd_limit(self.clients[0].process.pid)}"
        )
        print(
            f"  ramp        {opened:,} of {plan.connections:,} open and welcomed in {seconds:.1f} s"
            f" ({opened / seconds:,.0f}/s, from the first client start); failures: {code_names(failures)};"
            f" server RSS then {mib(rss_bytes(self.server.pid))}"
        )
        times = sorted(t for r in ramped for t in r["opened"])
        if len(times) >= 50:
            edges = [wall] + [times[min(len(times) - 1, len(times) * i // 5)] for i in range(1, 6)]
            rates = [(len(times) / 5) / max(b - a, 1e-3) for a, b in itertools.pairwise(edges)]
            shown = ", ".join(f"{r:,.0f}" for r in rates)
            print(f"              welcomes per second, by fifth of the connections opened: {shown}")

    def hold(self) -> int:
        """Hold for ``plan.hold`` seconds; the connections still open that answered two pings or more."""
        plan, pid = self.plan, self.server.pid
        for client in self.clients:
            client.send("mark")
        for client in self.clients:
            client.expect("MARKED", 30)
        pids = [client.process.pid for client in self.clients]
        cpu0, clients0, wall0 = harness.cpu_seconds(pid), sum(harness.cpu_seconds(p) for p in pids), time.monotonic()
        profile = Profile(pid, plan.hold - 2, self.workdir / "server.pyspy.txt") if plan.profile else None
        time.sleep(plan.hold)
        for client in self.clients:
            client.send("status 2")
        held = [client.expect("STATUS", 60) for client in self.clients]
        elapsed = time.monotonic() - wall0
        cpu = (harness.cpu_seconds(pid) - cpu0) / elapsed
        clients_cpu = (sum(harness.cpu_seconds(p) for p in pids) - clients0) / elapsed
        rss_full, fds_full = rss_bytes(pid), open_fds(pid)
        rows_open, rows_beating = connection_rows(self.url, 1.5 * plan.heartbeat)
        still_open = sum(h["open"] for h in held)
        answering: int = sum(h["answering"] for h in held)  # the clients' STATUS lines are JSON
        pinged = sum(h["pinged"] for h in held)
        pongs = sum(h["pongs"] for h in held)
        counts = [h["pings"] for h in held if h["open"]]
        pings = (
            (min(c[0] for c in counts), statistics.median(c[1] for c in counts), max(c[2] for c in counts))
            if counts
            else (0, 0, 0)
        )
        print(
            f"  hold        {plan.hold:g} s: {still_open:,} open; {answering:,} answered >= 2 pings during the hold"
            f" (the judged figure), {pinged:,} answered >= 1"
        )
        print(
            f"              pings answered per connection: min {pings[0]}, median {pings[1]:g}, max {pings[2]};"
            f" {pongs / plan.hold:,.0f} pongs/s in all, where the interval asks for"
            f" {still_open / plan.heartbeat:,.0f}/s"
        )
        gaps = [h["gaps"] for h in held if h["gaps"]]
        if gaps:
            print(
                f"              seconds between two pings on one connection (interval {plan.heartbeat:g} s):"
                f" p50 {statistics.median(g[0] for g in gaps):.2f}, p99 {max(g[1] for g in gaps):.2f},"
                f" max {max(g[2] for g in gaps):.2f}"
            )
        print(
            f"              the server's rows: {rows_open:,} connections open, {rows_beating:,} with a heartbeat"
            f" recorded in the last {1.5 * plan.heartbeat:g} s"
        )
        print(
            f"              CPU during the hold: server {100 * cpu:.0f}% of one core, clients {100 * clients_cpu:.0f}%;"
            f" load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus"
        )
        closes: Counter[int] = Counter()
        failures: Counter[str] = Counter()
        for h in held:
            closes.update({int(code): n for code, n in h["closes"].items()})
            failures.update(h["failures"])
        print(
            f"  closed      by the server or lost, after welcome: {code_names(closes)}; before: {code_names(failures)}"
        )
        per_connection = (rss_full - self.rss_idle) / still_open if still_open else float("nan")
        print(
            f"  memory      server RSS {mib(self.rss_idle)} before connecting, {mib(rss_full)} at the end of the hold:"
            f" {per_connection / 1024:,.1f} KiB per connection"
        )
        client_delta = sum(h["rss"] - h["rss_before"] for h in held)
        print(
            f"              clients RSS grew by {mib(client_delta)} in all"
            f" ({client_delta / max(still_open, 1) / 1024:,.1f} KiB per connection);"
            f" server open fds {self.fds_idle:,} before, {fds_full:,} at full load"
        )
        self.profile = profile
        return answering

    def close(self) -> None:
        for client in self.clients:
            client.send("close")
        closed = [client.expect("CLOSED", 150) for client in self.clients]
        began = time.monotonic()
        while (left := connection_rows(self.url, 1.0)[0]) and time.monotonic() - began < 15:
            time.sleep(0.5)
        print(
            f"  close       clients closed {sum(c['open'] for c in closed):,} with 1000 in"
            f" {max(c['close_seconds'] for c in closed):.1f} s; {left:,} rows still open"
            f" {time.monotonic() - began:.1f} s later; server RSS then {mib(rss_bytes(self.server.pid))}"
        )
        for client in self.clients:
            with contextlib.suppress(subprocess.TimeoutExpired):
                client.process.wait(15)
        print(f"  server log  {log_summary(self.server.log)}")
        if self.profile is not None:
            self.profile.report()


def capacity(stack: contextlib.ExitStack, workdir: Path, plan: Plan) -> Judged:
    run = Capacity(stack, workdir, plan)
    run.start()
    run.ramp()
    answering = run.hold()
    run.close()
    label = "(a) connections one worker holds, heartbeats running"
    if plan.connections < CAPACITY_TARGET:
        shown = f"{answering:,} of {plan.connections:,} (only {plan.connections:,} opened: not judged)"
        return Judged(label, shown, f">= {CAPACITY_TARGET:,}", None)
    return Judged(label, f"{answering:,}", f">= {CAPACITY_TARGET:,}", answering >= CAPACITY_TARGET)
