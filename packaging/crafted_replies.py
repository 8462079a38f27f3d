#!/usr/bin/python3
"""Crafted keyboard-interactive replies: a real account and an unknown name
must fail the same way, whatever the reply bytes.

sshd hands PAM the client's reply bytes only for an account it knows; for an
unknown name it substitutes "\\b\\n\\r\\177INCORRECT" repeated to the same
strlen (openssh auth-pam.c, fake_password). So every byte class and every
length limit below reaches pam_veil verbatim for the real user and as ASCII
junk for the ghost. For each case, each name gets a fresh SSH connection
(the two run concurrently, never more than two at once) and the script
checks that both get the same outcome (never success), the same prompts,
the same exception class and the same ledger effect (`veilctl status NAME
--json`: `failures` of NAME's own (user, source) counter, before and after),
that a denial after both prompts was counted (>= 1) and came no earlier
than --min-delay-ms after the last reply (a quick denial means the module
decided locally: the old non-UTF-8 bug; any non-zero failure delay shows
that, so e2e.sh runs this at 200 ms, not the shipped 2 s). It also checks each case's
expected outcome (e.g. sshd itself drops a reply with an embedded NUL).
The two names' times are printed, never compared.

usage: crafted_replies.py --port PORT --real USER --ghost NAME --veilctl PATH
                          [--min-delay-ms N] [--rounds K]
                          [--veilctl-config PATH] [--only CASE[,CASE...]]
                          [--list]
Run as root (veilctl reads the ledger and unlocks both names and the
source 127.0.0.1 before each case). Needs python3-paramiko.
Exit status: 0 all checks pass, 1 a check failed, 2 could not run
(usage, no paramiko, veilctl failed).
"""

import argparse
import concurrent.futures
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import warnings

HOST = "127.0.0.1"
ATTEMPT_TIMEOUT_S = 30.0
# After an attempt that did not end in a USERAUTH_FAILURE, give anything the
# dropped PAM conversation may still do a moment before reading the ledger.
SETTLE_S = 0.3

PASSWORD = b"not the password"
CODE = b"123456"

# Outcomes.
DENY = "deny"  # USERAUTH_FAILURE after the prompts
DISCONNECT = "disconnect"  # the server closed the connection mid-auth
TIMEOUT = "timeout"  # no answer within ATTEMPT_TIMEOUT_S
SUCCESS = "SUCCESS"  # auth succeeded (must never happen)
PARTIAL = "PARTIAL-SUCCESS"  # kbd-int accepted, more methods wanted (never either)
ERROR = "error"  # connection or handshake failed before auth


def die(msg, status=2):
    print(f"crafted_replies: {msg}", file=sys.stderr)
    sys.exit(status)


with warnings.catch_warnings():
    # paramiko 2.x imports ciphers that newer cryptography calls deprecated.
    warnings.simplefilter("ignore")
    try:
        import paramiko
        from paramiko.auth_handler import AuthHandler
        from paramiko.common import MSG_USERAUTH_FAILURE
    except ImportError as e:
        die(f"needs paramiko (apt-get install python3-paramiko): {e}")

# Banner, "Authentication failed", socket errors: none of it is ours to show.
_plog = logging.getLogger("paramiko")
_plog.addHandler(logging.NullHandler())
_plog.setLevel(logging.CRITICAL + 1)
_plog.propagate = False

# paramiko reports a USERAUTH_FAILURE and a dropped connection with the same
# AuthenticationException. Note in the transport when a USERAUTH_FAILURE
# arrives (and when), so the two can be told apart without racing.
_table = getattr(AuthHandler, "_client_handler_table", None)
_orig_failure = _table.get(MSG_USERAUTH_FAILURE) if isinstance(_table, dict) else None
if _orig_failure is None:
    die("this paramiko has no AuthHandler._client_handler_table; cannot tell a denial from a disconnect")


def _on_failure(handler, m):
    handler.transport.crafted_failure_at = time.monotonic()
    return _orig_failure(handler, m)


_table[MSG_USERAUTH_FAILURE] = _on_failure


class Case:
    """One pair of replies. `shape` bends the answer to the first prompt:
    "extra-reply" sends two replies to it, "no-reply" sends none (sshd: wrong
    number of replies). `expect` and `prompts` are what OpenSSH does with
    it: a normal reply reaches PAM, which asks both prompts and denies."""

    def __init__(self, name, password, code=CODE, shape=None, expect=DENY, prompts=2):
        self.name = name
        self.password = password
        self.code = code
        self.shape = shape
        self.expect = expect
        self.prompts = prompts

    def length(self):
        return f"{len(self.password)}/{len(self.code)}"


def cases():
    c = []
    add = lambda *a, **k: c.append(Case(*a, **k))  # noqa: E731
    # Empty and blank.
    add("empty-password", b"")
    add("empty-both", b"", b"")
    add("whitespace-only", b"   \t  ", b" \t \r\n ")
    # Not UTF-8.
    add("ff-both", b"\xff", b"\xff")
    add("ff-password+code", b"\xff", b"123456")
    add("bad-utf8-c3-28", b"pa\xc3\x28ss")
    add("utf8-surrogate", b"\xed\xa0\x80")
    add("utf8-overlong", b"\xc0\xaf")
    add("lone-continuation", b"\x80")
    add("truncated-4byte-at-end", b"pass\xf0\x9f\x98")
    add("above-u10ffff", b"\xf4\x90\x80\x80")
    add("latin1-password", "pässwörd".encode("latin-1"))
    add("all-high-bytes", bytes(range(0x80, 0x100)))
    # UTF-8, not ASCII.
    add("utf8-accents-euro", "pässwörd€".encode())
    add("utf8-emoji", "🔑🙂👨‍👩‍👧".encode())
    add("utf8-bom-ls-nonchar", "\ufeffa\u2028b\u2029\uffff".encode())
    # ASCII controls.
    add("ascii-controls", bytes(range(0x01, 0x20)) + b"\x7f")
    add("bs-del-cr-lf-tab", b"pass\bwo\x7frd\r\n\t")
    add("sshd-junk-itself", b"\b\n\r\x7fINCORRECT" * 2)
    # JSON-special text.
    add("json-specials", b'"\\/\\u0000{"ok":true}\\"')
    # Lengths around Linux-PAM's 512 and veild's 8 KiB request limit; a quote
    # doubles under JSON escaping.
    for ch, tag in ((b"a", "a"), (b'"', "quote")):
        for n in (511, 512, 513, 1024, 4096, 7000, 8192, 20000):
            add(f"{tag}x{n}", ch * n)
    add("euro-x171", "€".encode() * 171)
    add("ctrl01-x1400", b"\x01" * 1400)
    add("both-long-4096", b"a" * 4096, b"a" * 4096)
    # NUL: sshd refuses a string with a NUL before its last byte (fatal, the
    # connection drops); a NUL as the last byte is allowed and cut off.
    add("nul-in-middle", b"pass\x00word", expect=DISCONNECT, prompts=1)
    add("nul-trailing", b"password\x00")
    add("nul-only", b"\x00")
    add("nul-in-code", PASSWORD, b"123\x00456", expect=DISCONNECT, prompts=2)
    # The code.
    add("ff-code", PASSWORD, b"\xff")
    add("code-trailing-junk", PASSWORD, b"123456 \t;junk!")
    add("code-arabic-digits", PASSWORD, "١٢٣٤٥٦".encode())
    add("code-x8192", PASSWORD, b"1" * 8192)
    # Reply counts sshd refuses outright.
    add("two-replies-to-one-prompt", PASSWORD, shape="extra-reply", expect=DISCONNECT, prompts=1)
    add("no-reply-to-prompt", PASSWORD, shape="no-reply", expect=DISCONNECT, prompts=1)
    return c


class Attempt:
    def __init__(self, user):
        self.user = user
        self.outcome = None
        self.exc = "-"
        self.detail = ""
        self.prompts = 0
        self.requests = []  # (title, instructions, [(prompt, echo)]) per info request
        self.ms = None
        self.delta = None


def attempt(case, user):
    """One fresh connection, one keyboard-interactive try."""
    a = Attempt(user)
    state = {"last": None, "timed_out": False, "t": None, "sock": None}
    answers = [case.password, case.code]

    def handler(title, instructions, prompt_list):
        a.requests.append((title, instructions, list(prompt_list)))
        first = a.prompts == 0
        out = []
        for _ in prompt_list:
            out.append(answers[a.prompts] if a.prompts < len(answers) else b"")
            a.prompts += 1
        if prompt_list and first and case.shape == "extra-reply":
            out.append(b"extra")
        if prompt_list and first and case.shape == "no-reply":
            out = []
        state["last"] = time.monotonic()  # paramiko sends `out` right after
        return out

    def expire():
        state["timed_out"] = True
        for thing in (state["t"], state["sock"]):
            try:
                if thing is not None:
                    thing.close()
            except Exception:
                pass

    watchdog = threading.Timer(ATTEMPT_TIMEOUT_S, expire)
    watchdog.daemon = True
    watchdog.start()
    started = time.monotonic()
    t = None
    authing = False
    try:
        state["sock"] = socket.create_connection((HOST, ARGS.port), timeout=ATTEMPT_TIMEOUT_S)
        t = paramiko.Transport(state["sock"])
        state["t"] = t
        t.banner_timeout = ATTEMPT_TIMEOUT_S
        t.handshake_timeout = ATTEMPT_TIMEOUT_S
        t.auth_timeout = ATTEMPT_TIMEOUT_S + 5  # the watchdog fires first
        t.crafted_failure_at = None
        t.start_client(timeout=ATTEMPT_TIMEOUT_S)
        authing = True
        started = time.monotonic()
        more = t.auth_interactive(user, handler)
        a.outcome = PARTIAL if more else SUCCESS
        ended = time.monotonic()
    except Exception as e:
        ended = time.monotonic()
        a.exc = type(e).__name__
        a.detail = str(e)[:120]
        if state["timed_out"]:
            a.outcome = TIMEOUT
        elif t is not None and t.crafted_failure_at is not None:
            a.outcome = DENY
            ended = t.crafted_failure_at
        elif authing:
            a.outcome = DISCONNECT
        else:
            a.outcome = ERROR
    finally:
        watchdog.cancel()
        try:
            if t is not None:
                t.close()
            elif state["sock"] is not None:
                state["sock"].close()
        except Exception:
            pass
    a.ms = (ended - (state["last"] or started)) * 1000.0
    return a


def veilctl(*args):
    cmd = [ARGS.veilctl]
    if ARGS.veilctl_config:
        cmd += ["--config", ARGS.veilctl_config]
    cmd += list(args)
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        die(f"{' '.join(cmd)}: {e}")
    if r.returncode != 0:
        die(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.decode(errors='replace').strip()}")
    return r.stdout


def ledger(name):
    """`failures` of NAME's own (user, source) counter in `veilctl status
    NAME --json`. Only that key: a real account that has logged in from
    127.0.0.1 is known-good there, so its attempts are charged to that pair
    alone while a name never seen also runs up the wide keys; the attacker
    sees nothing of this (the same denial at the same time), and the pair's
    own counter is what both names must share."""
    out = veilctl("status", name, "--json")
    try:
        status = json.loads(out)
        return sum(
            int(c["failures"])
            for c in status["counters"]
            if c.get("user") == name and c.get("kind") == "user+source"
        )
    except (ValueError, KeyError, TypeError) as e:
        die(f"veilctl status {name} --json: unexpected output ({e}): {out[:200]!r}")


def unlock_all():
    veilctl("unlock", ARGS.real)
    veilctl("unlock", ARGS.ghost)
    veilctl("unlock", "--source", HOST)


def run_case(pool, case, order):
    unlock_all()
    before = {n: ledger(n) for n in order}
    futures = {n: pool.submit(attempt, case, n) for n in order}
    got = {n: f.result() for n, f in futures.items()}
    if any(a.outcome != DENY for a in got.values()):
        time.sleep(SETTLE_S)
    for n in order:
        got[n].delta = ledger(n) - before[n]
    return got[ARGS.real], got[ARGS.ghost]


def check(case, real, ghost):
    v = []
    for who, a in (("real", real), ("ghost", ghost)):
        if a.outcome in (SUCCESS, PARTIAL):
            v.append(f"{who} {a.user}: authentication succeeded ({a.outcome})")
        if a.outcome == TIMEOUT:
            v.append(f"{who} {a.user}: no answer within {ATTEMPT_TIMEOUT_S:.0f} s")
        if a.outcome == ERROR:
            v.append(f"{who} {a.user}: could not connect/handshake: {a.exc}: {a.detail}")
    if real.outcome != ghost.outcome:
        v.append(f"outcome differs: real {real.outcome}, ghost {ghost.outcome}")
    if real.prompts != ghost.prompts:
        v.append(f"prompts differ: real {real.prompts}, ghost {ghost.prompts}")
    elif real.requests != ghost.requests:
        v.append(f"info requests differ: real {real.requests!r}, ghost {ghost.requests!r}")
    if real.exc != ghost.exc:
        v.append(f"exception differs: real {real.exc}, ghost {ghost.exc}")
    if real.delta != ghost.delta:
        v.append(f"ledger effect differs: real {real.delta:+d}, ghost {ghost.delta:+d}")
    for who, a in (("real", real), ("ghost", ghost)):
        if a.outcome != case.expect or a.prompts != case.prompts:
            v.append(
                f"{who}: expected {case.expect} after {case.prompts} prompt(s), "
                f"got {a.outcome} after {a.prompts}"
            )
        if a.outcome == DENY and a.prompts >= 2:
            if a.delta < 1:
                v.append(f"{who}: denied after both prompts but the ledger did not count it ({a.delta:+d})")
            if a.ms < ARGS.min_delay_ms:
                v.append(
                    f"{who}: denied {a.ms:.0f} ms after the last reply, before the "
                    f"failure delay ({ARGS.min_delay_ms} ms): decided locally?"
                )
    return v


def cell(a):
    ms = f"{a.ms:.0f}" if a.ms is not None else "-"
    exc = a.exc[: -len("Exception")] if a.exc.endswith("Exception") and a.exc != "Exception" else a.exc
    return f"{a.outcome}/{a.prompts}p {ms:>6}ms {a.delta:+d} {exc}"


def main():
    global ARGS
    p = argparse.ArgumentParser(
        description="Crafted kbd-int replies: a real account and an unknown name must fail alike."
    )
    # Required unless --list (checked below, so --list runs on its own).
    p.add_argument("--port", type=int, help="sshd on 127.0.0.1:PORT (required)")
    p.add_argument("--real", metavar="USER", help="a real account enrolled in veil (required)")
    p.add_argument("--ghost", metavar="NAME", help="a name with no account (required)")
    p.add_argument("--veilctl", metavar="PATH", help="veilctl to read and clear the ledger (required)")
    p.add_argument("--veilctl-config", metavar="PATH", help="passed to veilctl as --config PATH")
    p.add_argument("--min-delay-ms", type=int, default=200, metavar="N",
                   help="a denial after both prompts must take at least N ms, veild's "
                        "failure_delay_ms (default 200, as e2e.sh runs it)")
    p.add_argument("--rounds", type=int, default=1, metavar="K", help="run every case K times")
    p.add_argument("--only", metavar="CASE[,CASE...]", help="run only these cases")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    ARGS = p.parse_args()
    missing = [f"--{k}" for k in ("port", "real", "ghost", "veilctl") if getattr(ARGS, k) is None]
    if missing and not ARGS.list:
        p.error(f"the following arguments are required: {', '.join(missing)}")
    if ARGS.real is not None and ARGS.real == ARGS.ghost:
        p.error("--real and --ghost must differ")
    if ARGS.rounds < 1:
        p.error("--rounds must be >= 1")

    todo = cases()
    if ARGS.list:
        for c in todo:
            print(f"{c.name:<28} {c.length():>11}  expect {c.expect} after {c.prompts} prompt(s)")
        return 0
    if ARGS.only:
        want = set(ARGS.only.split(","))
        unknown = want - {c.name for c in todo}
        if unknown:
            p.error(f"no such case: {', '.join(sorted(unknown))}")
        todo = [c for c in todo if c.name in want]

    print(f"crafted replies: real {ARGS.real!r}, ghost {ARGS.ghost!r}, sshd {HOST}:{ARGS.port}, "
          f"{len(todo)} cases x {ARGS.rounds} round(s); cell = outcome/prompts ms-after-last-reply ledger-delta exception")
    head = f"{'case':<28} {'pw/code':>11} | {'real':<40} | {'ghost':<40} | check"
    print(head)
    print("-" * len(head), flush=True)
    failures = []
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        i = 0
        for rnd in range(ARGS.rounds):
            for case in todo:
                # Alternate which name is submitted first.
                order = (ARGS.real, ARGS.ghost) if i % 2 == 0 else (ARGS.ghost, ARGS.real)
                i += 1
                real, ghost = run_case(pool, case, order)
                v = check(case, real, ghost)
                label = case.name if ARGS.rounds == 1 else f"{case.name} #{rnd + 1}"
                print(f"{label:<28} {case.length():>11} | {cell(real):<40} | {cell(ghost):<40} | "
                      f"{'ok' if not v else 'FAIL'}", flush=True)
                failures += [f"{label}: {m}" for m in v]
    unlock_all()
    print(f"{i} pairs in {time.monotonic() - t0:.0f} s")
    if failures:
        print(f"crafted_replies: FAIL: {len(failures)} violation(s):", file=sys.stderr)
        for m in failures:
            print(f"  {m}", file=sys.stderr)
        return 1
    print("crafted_replies: all cases: same outcome, prompts, exception and ledger effect")
    return 0


ARGS = None

if __name__ == "__main__":
    sys.exit(main())
