"""Pre-fork master (DESIGN.md §4): binds every listener once, forks one pinned worker per CPU,
supervises them, reloads on SIGHUP without closing a listening socket, drains on SIGTERM.

The master never serves traffic and never creates an event loop: it is a small selector loop
over the workers' control pipes (``R`` ready, ``H`` heartbeat) and a signal wake-up pipe.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from gwcore import runtime, tls
from gwcore.cache.purge import PurgeBoard
from gwcore.config import Config, ConfigError
from gwcore.observability import admin as admin_api
from gwcore.observability import metrics as m
from gwcore.process import worker
from gwcore.proxy.health import HealthBoard

log = logging.getLogger("gwcore")

RESPAWN_BASE = 0.25          # seconds; doubles with each quick crash of a slot
RESPAWN_CAP = 30.0
STABLE_AFTER = 10.0          # a worker that lived this long resets its slot's back-off
KILL_GRACE = 5.0             # after drain_timeout, stragglers are killed
PURGE_TIMEOUT = 5.0          # seconds a purge waits for every worker to apply it


def set_title(title: str) -> None:
    """Process title shown by ps/top (``gwcore: worker 0 [gen 3]``)."""
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setproctitle(title)


def sd_notify(state: str) -> None:
    """systemd Type=notify readiness protocol (sd_notify(3)); no-op outside systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(state.encode(), addr)
        except OSError as e:
            log.warning("sd_notify failed: %s", e)


class BindError(OSError):
    """A listener's address cannot be bound (in use, not local, no permission)."""


@dataclass
class Worker:
    slot: int
    gen: int
    pid: int
    ctrl: int                  # read end of the control pipe
    started: float
    last_beat: float
    ready: bool = False
    retiring: bool = False     # told to drain (older generation or shutdown)
    row: int = 0               # its metrics row (0: records nothing)
    purge_index: int | None = None   # its acknowledgement slot on the purge board


@dataclass
class Slot:
    failures: int = 0          # quick crashes in a row
    respawn_at: float = 0.0


@dataclass
class Master:
    config_path: str
    cfg: Config
    workers_override: int | None = None
    pid_file: str | None = None
    gen: int = 0
    workers: dict[int, Worker] = field(default_factory=dict)          # pid → worker
    slots: dict[int, Slot] = field(default_factory=dict)
    # address → one SO_REUSEPORT socket per worker slot; never shrinks, so no socket with
    # queued connections is ever closed by a reload
    sockets: dict[str, list[socket.socket]] = field(default_factory=dict)
    signals: deque[int] = field(default_factory=deque)
    stopping: float = 0.0      # time the drain started (0: running)
    pending_reload: list[Worker] = field(default_factory=list)
    sel: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    wake: tuple[int, int] = (-1, -1)
    board: HealthBoard | None = None     # the current generation's shared health board
    hub: m.Hub | None = None             # metrics: the shared region and its layout
    layout: m.Layout | None = None       # the current generation's, None: not recording
    admin: admin_api.AdminServer | None = None
    reload_waiters: list[tuple[admin_api.Reply, int]] = field(default_factory=list)
    purges: PurgeBoard = field(default_factory=PurgeBoard)
    purge_waiters: list[tuple[int, admin_api.Reply, float]] = field(default_factory=list)
    # the host's rate limit table (gwcore.limits.Table): mapped once, before the first fork,
    # for the master's whole life, so reloads and respawned workers keep every counter
    limits: Any = None
    # the current generation's TLS listener contexts (gwcore.tls), made before its workers
    # fork: they share its session ticket keys
    contexts: dict[str, tls.ListenerContexts] = field(default_factory=dict)
    rotate_at: float = 0.0     # ticket_key_rotation: when a new generation starts (0: never)

    # -- setup ---------------------------------------------------------------------------

    def worker_count(self, cfg: Config) -> int:
        return self.workers_override or cfg.worker_count()

    def bind_all(self, cfg: Config) -> dict[str, list[socket.socket]]:
        """Sockets for cfg's listeners: the ones already bound (same address) plus new ones
        up to one per worker slot. Accept balance: a shared socket spread wrk -c64 as
        unevenly as 11/53 over 2 workers here; per-slot SO_REUSEPORT sockets hash evenly."""
        socks = {}
        n = self.worker_count(cfg)
        for lst in cfg.listeners:
            group = list(self.sockets.get(lst.address, []))
            try:
                if not group:
                    # SO_REUSEPORT would let us join another process's listening group and
                    # silently split its traffic: a plain bind first proves the address free
                    worker.bind(lst, listen=False).close()
                while len(group) < n:
                    group.append(worker.bind(lst, reuseport=True))
            except OSError as e:
                raise BindError(f"listeners: {lst.name}: cannot listen on {lst.address}: "
                                f"{e.strerror}") from None
            if lst.address not in self.sockets:
                log.info("bound listener %s on %s (backlog %d, %d sockets)", lst.name,
                         lst.address, lst.backlog, len(group))
            socks[lst.address] = group
        return socks

    def run(self) -> int:
        """Run until stopped; returns the exit status."""
        set_title("gwcore: master")
        self.sockets = self.bind_all(self.cfg)
        self.hub = m.Hub(self.worker_count(self.cfg))
        self.limits = self.limit_table(self.cfg)
        self.admin = self.bind_admin(self.cfg)
        self.contexts = tls.build_listeners(self.cfg)
        if self.pid_file:
            with open(self.pid_file, "w") as f:
                f.write(f"{os.getpid()}\n")
        wake_r, wake_w = self.wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.sel.register(wake_r, selectors.EVENT_READ)
        signal.set_wakeup_fd(wake_w)
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT,
                    signal.SIGUSR1, signal.SIGCHLD):
            signal.signal(sig, lambda s, _f: self.signals.append(s))
        self.start_generation(self.cfg)
        try:
            return self.loop(wake_r)
        finally:
            signal.set_wakeup_fd(-1)
            if self.admin is not None:
                self.admin.close()
            if self.pid_file:
                try:
                    os.unlink(self.pid_file)
                except OSError:
                    pass

    def limit_table(self, cfg: Config) -> Any:
        """The shared rate limit table: the running one (a changed ``rate_limit_table.slots``
        waits for a restart), or a new one when cfg is the first config with a local limit."""
        if self.limits is not None:
            if self.limits.slots < cfg.rate_limit_table.slots:
                log.warning("rate_limit_table.slots: %d slots kept until a restart (%d asked)",
                            self.limits.slots, cfg.rate_limit_table.slots)
            return self.limits
        if not any(rl.scope == "local" for rl in cfg.rate_limits.values()):
            return None
        from gwcore.limits import Table

        table = Table(cfg.rate_limit_table.slots)
        log.info("rate limit table: %d slots, %d KiB shared", table.slots, table.nbytes >> 10)
        return table

    def bind_admin(self, cfg: Config) -> admin_api.AdminServer | None:
        """The admin listener for cfg: the running one if its address is unchanged, else a
        new socket (BindError); None without ``admin``. The old one is not closed here."""
        if cfg.admin is None:
            return None
        if self.admin is not None and self.cfg.admin is not None \
                and self.cfg.admin.address == cfg.admin.address:
            return self.admin
        try:
            sock = admin_api.bind((cfg.admin.host, cfg.admin.port))
        except OSError as e:
            raise BindError(f"admin: cannot listen on {cfg.admin.address}: {e.strerror}") \
                from None
        log.info("admin listener on %s", cfg.admin.address)
        return admin_api.AdminServer(sock, self.sel, self)

    # -- workers -------------------------------------------------------------------------

    def start_generation(self, cfg: Config) -> list[Worker]:
        self.gen += 1
        period = tls.ticket_rotation(cfg)
        self.rotate_at = 0.0 if period is None else time.monotonic() + period
        # mapped before fork: shared by the generation; known endpoints keep their health
        self.board = HealthBoard(cfg, self.board)
        self.layout = None
        if cfg.admin is not None and cfg.admin.metrics and self.hub is not None:
            try:
                self.layout = self.hub.set_config(cfg)
            except ValueError as e:
                log.error("%s: generation %d records no metrics", e, self.gen)
        n = self.worker_count(cfg)
        log.info("starting generation %d: %d workers", self.gen, n)
        started = []
        for slot in range(n):
            try:
                started.append(self.spawn(cfg, slot))
            except OSError as e:            # supervise() tries this slot again
                log.error("worker %d [gen %d]: cannot start: %s", slot, self.gen, e)
        return started

    def spawn(self, cfg: Config, slot: int) -> Worker:
        r, w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(r, False)
        n = self.worker_count(cfg)
        socks = [[sock for i, sock in enumerate(self.sockets[lst.address]) if i % n == slot]
                 for lst in cfg.listeners]
        row, recorder = 0, None
        if self.layout is not None and self.hub is not None:
            got = self.hub.acquire()
            if got is None:
                log.error("worker %d [gen %d]: no free metrics row; it records nothing", slot,
                          self.gen)
            else:
                row, recorder = got[0], m.Recorder(got[1], self.layout)
        purge_index = self.purges.acquire()
        pid = os.fork()
        if pid == 0:
            os._exit(self.worker_main(cfg, slot, socks, r, w, recorder, purge_index))
        os.close(w)
        now = time.monotonic()
        wk = Worker(slot, self.gen, pid, r, now, now, row=row, purge_index=purge_index)
        self.workers[pid] = wk
        self.sel.register(r, selectors.EVENT_READ, wk)
        log.info("worker %d [gen %d] started, pid %d", slot, self.gen, pid)
        return wk

    def worker_main(self, cfg: Config, slot: int, socks: list[list[socket.socket]], r: int,
                    w: int, recorder: m.Recorder | None, purge_index: int | None) -> int:
        """Runs in the child after fork; never returns into the master's loop."""
        try:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1,
                        signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            self.sel.close()
            if self.admin is not None:
                self.admin.close_in_child()
            for fd in (r, *self.wake, *(wk.ctrl for wk in self.workers.values())):
                os.close(fd)
            set_title(f"gwcore: worker {slot} [gen {self.gen}]")
            if cfg.pin_cpus:
                cpus = sorted(os.sched_getaffinity(0))
                os.sched_setaffinity(0, {cpus[slot % len(cpus)]})
            os.set_blocking(w, False)
            return worker.serve(cfg, socks, control=w, board=self.board, prober=slot == 0,
                                metrics=recorder,
                                purges=None if purge_index is None else (self.purges,
                                                                         purge_index),
                                limits=self.limits, contexts=self.contexts)
        except BaseException:
            log.exception("worker %d failed", slot)
            return 1

    def read_control(self, wk: Worker) -> None:
        try:
            data = os.read(wk.ctrl, 4096)
        except BlockingIOError:
            return
        if not data:
            return
        wk.last_beat = time.monotonic()
        if b"R" in data and not wk.ready:
            wk.ready = True
            log.info("worker %d [gen %d] pid %d serving", wk.slot, wk.gen, wk.pid)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            wk = self.workers.pop(pid, None)
            if wk is None:
                continue
            self.sel.unregister(wk.ctrl)
            os.close(wk.ctrl)
            if wk.row and self.hub is not None:
                self.hub.release(wk.row)      # its counters join the master's row
            if wk.purge_index is not None:
                self.purges.release(wk.purge_index)
            how = (f"signal {signal.Signals(-code).name}" if (code := os.waitstatus_to_exitcode(
                status)) < 0 else f"status {code}")
            if wk.retiring:
                log.info("worker %d [gen %d] pid %d exited (%s)", wk.slot, wk.gen, pid, how)
                continue
            slot = self.slots.setdefault(wk.slot, Slot())
            if self.hub is not None:
                self.hub.state.restarts += 1
            lived = time.monotonic() - wk.started
            slot.failures = 0 if lived >= STABLE_AFTER else slot.failures + 1
            delay = 0.0 if slot.failures == 0 else min(
                RESPAWN_BASE * 2 ** (slot.failures - 1), RESPAWN_CAP)
            slot.respawn_at = time.monotonic() + delay
            log.error("worker %d [gen %d] pid %d exited unexpectedly (%s) after %.1fs; "
                      "respawning in %.2fs%s", wk.slot, wk.gen, pid, how, lived, delay,
                      " (crash loop)" if slot.failures >= 3 else "")

    def supervise(self) -> None:
        """Respawn dead slots when their back-off is over; kill hung workers."""
        now = time.monotonic()
        for wk in list(self.workers.values()):
            if not wk.retiring and now - wk.last_beat > self.cfg.heartbeat_timeout:
                log.error("worker %d [gen %d] pid %d hung (no heartbeat for %.1fs): killing",
                          wk.slot, wk.gen, wk.pid, now - wk.last_beat)
                wk.last_beat = now
                os.kill(wk.pid, signal.SIGKILL)
        if self.stopping:
            return
        live = {wk.slot for wk in self.workers.values() if wk.gen == self.gen}
        for slot_no in range(self.worker_count(self.cfg)):
            slot = self.slots.setdefault(slot_no, Slot())
            if slot_no not in live and now >= slot.respawn_at:
                try:
                    self.spawn(self.cfg, slot_no)
                except OSError as e:        # out of fds or processes: try again later
                    log.error("worker %d: cannot start: %s", slot_no, e)
                    slot.respawn_at = now + RESPAWN_BASE

    def retire(self, workers: list[Worker], sig: int = signal.SIGTERM) -> None:
        for wk in workers:
            wk.retiring = True
            try:
                os.kill(wk.pid, sig)
            except ProcessLookupError:
                pass

    # -- signals -------------------------------------------------------------------------

    def reload(self) -> None:
        sd_notify("RELOADING=1")
        try:
            cfg = runtime.load(self.config_path)     # parsed, and its key files read
            contexts = tls.build_listeners(cfg)     # new contexts: new session ticket keys
            socks = self.bind_all(cfg)
            admin = self.bind_admin(cfg)
        except (ConfigError, OSError) as e:      # BindError is an OSError
            log.error("reload rejected, keeping the running config: %s", e)
            if self.hub is not None:
                self.hub.state.reloads_rejected += 1
                self.hub.state.last_reload_ok = False
            self.answer_reload_waiters(400, f"rejected: {e}")
            sd_notify("READY=1")
            return
        if admin is not self.admin and self.admin is not None:
            self.admin.close()
        self.admin = admin
        if self.hub is not None:
            self.hub.state.reloads_accepted += 1
            self.hub.state.last_reload_ok = True
            self.hub.state.last_success = time.time()
        old = [wk for wk in self.workers.values() if not wk.retiring]
        for addr, group in self.sockets.items():
            if addr not in socks:
                for sock in group:
                    sock.close()    # removed listener: old workers keep their own copies
        self.sockets = socks
        self.cfg = cfg
        self.limits = self.limit_table(cfg)
        self.contexts = contexts
        self.slots.clear()
        self.pending_reload = old + self.pending_reload
        log.info("reload accepted: generation %d replaces %d workers", self.gen + 1, len(old))
        self.start_generation(cfg)

    def finish_reload(self) -> None:
        """Once every worker of the new generation serves, the old ones drain."""
        if not self.pending_reload:
            return
        new = [wk for wk in self.workers.values() if wk.gen == self.gen]
        if new and all(wk.ready for wk in new):
            log.info("generation %d serving; draining %d old workers", self.gen,
                     len(self.pending_reload))
            self.retire(self.pending_reload)
            self.pending_reload = []
            sd_notify("READY=1")
            self.answer_reload_waiters(200, f"accepted: generation {self.gen} serving")

    def shutdown(self, sig: int) -> None:
        if not self.stopping:
            log.info("received %s: draining %d workers", signal.Signals(sig).name,
                     len(self.workers))
            sd_notify("STOPPING=1")
            self.stopping = time.monotonic()
            if self.hub is not None:
                self.hub.state.draining = True
            self.answer_reload_waiters(503, "draining: no reload")
            self.retire(list(self.workers.values()))

    # -- the admin API (gwcore/observability/admin.py) ------------------------------------

    def admin_reload(self, reply: admin_api.Reply) -> None:
        """POST /reload: as SIGHUP; ``reply`` gets the outcome once it is known."""
        if self.stopping:
            reply(503, b"draining: no reload\n", "text/plain")
            return
        self.reload_waiters.append((reply, self.gen + 1))
        self.signals.append(signal.SIGHUP)

    def admin_purge(self, kind: int, url: bytes, reply: admin_api.Reply) -> None:
        """A cache purge (gwcore.cache.purge): posted to every worker; ``reply`` gets how many
        responses were removed once every worker of the current generation has applied it."""
        seq = self.purges.post(kind, url)
        self.purge_waiters.append((seq, reply, time.monotonic() + PURGE_TIMEOUT))
        self.answer_purge_waiters()

    def answer_purge_waiters(self) -> None:
        if not self.purge_waiters:
            return
        current = [wk for wk in self.current_workers() if wk.purge_index is not None]
        now = time.monotonic()
        left = []
        for seq, reply, deadline in self.purge_waiters:
            acks = [self.purges.acked(wk.purge_index) for wk in current]     # type: ignore
            done = [removed for got, removed in acks if got >= seq]
            if len(done) == len(acks):
                body = {"purged": sum(done), "workers": len(done)}
                reply(200, json.dumps(body).encode() + b"\n", "application/json")
            elif now > deadline:
                reply(504, f"{len(done)} of {len(acks)} workers applied the purge\n".encode(),
                      "text/plain")
            else:
                left.append((seq, reply, deadline))
        self.purge_waiters = left

    def answer_reload_waiters(self, status: int, text: str) -> None:
        waiters, self.reload_waiters = self.reload_waiters, []
        for reply, _ in waiters:
            reply(status, text.encode() + b"\n", "text/plain")

    def current_workers(self) -> list[Worker]:
        return [wk for wk in self.workers.values() if wk.gen == self.gen and not wk.retiring]

    def ready_problems(self) -> list[str]:
        """Why /readyz is 503 (empty: ready)."""
        if self.stopping:
            return ["draining"]
        problems = []
        current = self.current_workers()
        serving = sum(wk.ready for wk in current)
        if serving < self.worker_count(self.cfg):
            problems.append(f"{serving} of {self.worker_count(self.cfg)} workers of "
                            f"generation {self.gen} serving")
        status = self.clusters_status()
        for name, c in status.items():
            if not any(ep["healthy"] and (ep["ejected_workers"] is None
                                          or ep["ejected_workers"] < max(serving, 1))
                       for ep in c["endpoints"]):
                problems.append(f"cluster {name}: no healthy endpoint")
        return problems

    def metrics(self, accept: str | None) -> tuple[bytes, str]:
        hub = self.hub
        assert hub is not None
        st = hub.state
        st.workers = {"starting": 0, "serving": 0, "draining": 0}
        for wk in self.workers.values():
            st.workers["draining" if wk.retiring else "serving" if wk.ready else "starting"] += 1
        st.healthy = {(c.name, m.endpoint_address(ep)): self.board.healthy(c.name, i)
                      for c in self.cfg.clusters for i, ep in enumerate(c.endpoints)} \
            if self.board is not None else {}
        if self.layout is None:
            return b"# metrics are off (admin.metrics: false)\n", "text/plain; charset=utf-8"
        return hub.render(accept)

    def clusters_status(self) -> dict[str, Any]:
        """/clusters: per cluster, its endpoints' health and load summed over the workers
        (None where metrics are off)."""
        hub, lay = self.hub, self.layout
        v = hub.region.sum(bytes(hub.live), hub.registry.used) if hub and lay else None
        out: dict[str, Any] = {}
        for c in self.cfg.clusters:
            eps = []
            for i, ep in enumerate(c.endpoints):
                e: dict[str, Any] = {
                    "address": m.endpoint_address(ep),
                    "healthy": self.board.healthy(c.name, i) if self.board else True}
                base = lay.endpoints[(c.name, m.endpoint_address(ep))] if lay else None
                for key, off in (("ejected_workers", m.E_EJECTED), ("ejections", m.E_EJECTIONS),
                                 ("in_flight", m.E_IN_FLIGHT), ("connections", m.E_CONNECTIONS),
                                 ("idle", m.E_IDLE)):
                    e[key] = m.signed(v[base + off]) if v is not None and base is not None \
                        else None
                eps.append(e)
            cl: dict[str, Any] = {"endpoints": eps}
            if v is not None and lay is not None:
                base = lay.clusters[c.name]
                cl["errors"] = {k: v[base + m.C_ERRORS + i]
                                for i, k in enumerate(m.UPSTREAM_ERRORS)}
                cl["retries"] = v[base + m.C_RETRIES]
                cl["overflows"] = {k: v[base + m.C_OVERFLOWS + i]
                                   for i, k in enumerate(m.OVERFLOW_LIMITS)}
            out[c.name] = cl
        return out

    def loop(self, wake_r: int) -> int:
        first_ready = False
        while True:
            for key, mask in self.sel.select(timeout=0.2):
                if key.data is None:
                    try:
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        pass
                elif isinstance(key.data, Worker):
                    self.read_control(key.data)
                else:
                    try:
                        key.data.on_event(mask)     # the admin listener and its clients
                    except Exception:
                        log.exception("admin listener failed")
            if self.admin is not None:
                self.admin.expire(time.monotonic())
                self.answer_purge_waiters()
            while self.signals:
                sig = self.signals.popleft()
                if sig == signal.SIGCHLD:
                    continue
                if sig == signal.SIGHUP and not self.stopping:
                    self.reload()
                elif sig == signal.SIGTERM or (sig == signal.SIGINT and not self.stopping):
                    self.shutdown(sig)
                elif sig in (signal.SIGINT, signal.SIGQUIT):
                    log.warning("received %s: exiting at once", signal.Signals(sig).name)
                    self.retire(list(self.workers.values()), signal.SIGKILL)
                    return 1 if sig == signal.SIGINT else 0
                elif sig == signal.SIGUSR1:
                    worker.reopen_log_files()
                    for wk in self.workers.values():
                        os.kill(wk.pid, signal.SIGUSR1)
            if self.rotate_at and time.monotonic() >= self.rotate_at and not self.stopping:
                log.info("ticket_key_rotation: new generation, new session ticket keys")
                self.rotate_at = 0.0
                self.reload()
                if not self.rotate_at:      # rejected: the running generation rotates later
                    self.rotate_at = time.monotonic() + (tls.ticket_rotation(self.cfg) or 0)
            self.reap()
            self.supervise()
            self.finish_reload()
            if not first_ready and self.workers and all(w.ready for w in self.workers.values()):
                first_ready = True
                sd_notify("READY=1")
            if self.stopping:
                if not self.workers:
                    log.info("all workers exited; master exits")
                    return 0
                if time.monotonic() - self.stopping > self.cfg.drain_timeout + KILL_GRACE:
                    self.retire(list(self.workers.values()), signal.SIGKILL)


def run(config_path: str, workers: int | None = None, pid_file: str | None = None) -> int:
    """``gwcore serve``: load the config and run the master. Exit status 1 on a bad config."""
    try:
        cfg = runtime.load(config_path)
    except ConfigError as e:
        print(f"gwcore: {e}", file=sys.stderr)
        return 1
    try:
        return Master(config_path, cfg, workers, pid_file).run()
    except BindError as e:
        print(f"gwcore: {e}", file=sys.stderr)
        return 1
