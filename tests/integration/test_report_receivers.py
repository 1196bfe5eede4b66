#!/usr/bin/env python3
"""meshd-report's receivers (workers/report/send*.c, contract in send.h) through
tests/fakes/report_send_probe (REPORT_SEND_PROBE, set by CMake), each against a local fixture
of tests/integration/notifyfix.py:

  webhook  json with its HMAC signature checked here (hmac module) and Idempotency-Key; the
           Slack form within Slack's limits; 500 / 408 -> retry, 429 with Retry-After 7 ->
           retry_after_ms 7000, 400 -> failed, the server down -> retry, up again -> sent; a
           timeout; a stop (SIGTERM) cuts a slow answer short
  email    STARTTLS with AUTH (headers Date, Message-ID from the idempotency key, an RFC 2047
           subject, multipart/alternative text + HTML, CRLF), SMTPS, a server without
           STARTTLS refused under tls: starttls (and taken under tls: none), 451 -> retry,
           550 -> failed, no server -> retry
  github   against FakeGitHub with the registry (sql/workers/report.sql applied, as the worker
           does): firing creates (labels, marker, auth headers), a retried firing creates no
           second issue, repeat comments, resolved comments and closes, firing again reopens
           the same issue, a deleted mapping row is rebuilt through the label listing (no
           duplicate), an old closed issue gives way to a new one, escalation mentions, a wrong
           token fails (401, never echoed), rate limits retry with retry_after_ms; and without
           the registry

No meshd.  Every server is started and stopped by the test (its own threads), every probe is
waited for or killed by PID; each probe's job and output are appended to the test dir's
meshd.log, which the harness prints on a failure.
"""

import email.utils
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, eq  # noqa: E402
from notifyfix import FakeGitHub, SmtpServer, WebhookServer, self_signed  # noqa: E402
from test_workers import Db, cleanly, psql  # noqa: E402

PROBE = os.environ.get("REPORT_SEND_PROBE", "")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPORT_SQL = os.path.join(ROOT, "sql", "workers", "report.sql")
FP = "0123456789abcdef"
TOKEN = "ghs_fake_token_4c1d2e"


# ---- helpers ---------------------------------------------------------------------------------


def note(kind="firing", n=1, idem="chat/route1/1/firing", message="rows loaded: 0",
         job="load", key=None, fp=FP, status=None, level=0):
    """A note as plan.c writes it (send.h)."""
    resolved = kind == "resolved"
    alerts = []
    for i in range(n):
        k = key or ("rows-low" if n == 1 else "rows-low-%d" % i)
        labels = {"alertname": k, "key": k, "severity": "critical", "node": "pc"}
        if job:
            labels["job"] = job
        alerts.append({
            "status": "resolved" if resolved else "firing", "labels": labels,
            "annotations": {"message": message}, "startsAt": "2026-11-25T07:00:00Z",
            "endsAt": "2026-11-25T08:00:00Z" if resolved else "0001-01-01T00:00:00Z",
            "generatorURL": "http://pc:8080/#job=%s" % job, "fingerprint": fp, "count": 3,
            "id": 40 + i})
    return {"version": "4", "groupKey": 'route1/{job="%s"}' % job,
            "status": status or ("resolved" if resolved else "firing"), "receiver": "r",
            "groupLabels": {"job": job} if job else {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://pc:8080/", "truncatedAlerts": 0,
            "alerts": alerts,
            "meshd": {"kind": kind, "idempotencyKey": idem, "route": "route1", "level": level,
                      "node": "pc", "createdAt": "2026-11-25T07:00:30Z"}}


def _probe_bin():
    check(PROBE and os.access(PROBE, os.X_OK),
          "REPORT_SEND_PROBE not set or not executable (%r): run it through ctest" % PROBE)
    return PROBE


def _env(h, env, db):
    e = dict(os.environ, ITEST_MESHD_TOKEN=h.token)
    e.pop("DATABASE_URL", None)
    for k in list(e):
        if k.startswith("MESHD_"):
            e.pop(k)
    if db is not None:
        e["DATABASE_URL"] = db.url
    e.update(env or {})
    return e


def _log(h, job, out, err):
    with open(h.log_path, "a") as f:
        f.write("--- probe job: %s\n--- stdout: %s\n--- stderr: %s\n" % (json.dumps(job)[:4000],
                                                                       out, err))


def send(h, receiver, n, env=None, db=None, timeout=60, term_after=None, transaction=False):
    """Runs the probe on one receiver and one note; returns its answer (a dict).  term_after:
    SIGTERM it that many seconds after it started; transaction: send inside a transaction on
    the registry connection (the answer's "tx" says whether it survived)."""
    job = {"receiver": receiver, "note": n}
    if transaction:
        job["transaction"] = True
    p = subprocess.Popen([_probe_bin()], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=_env(h, env, db), text=True)
    try:
        if term_after is not None:
            p.stdin.write(json.dumps(job))
            p.stdin.close()
            p.stdin = None  # communicate() must not touch it again
            time.sleep(term_after)
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=timeout)
        else:
            out, err = p.communicate(json.dumps(job), timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise
    _log(h, job, out, err)
    eq(0, p.returncode, "probe exit status (stderr: %s)" % err.strip())
    return json.loads(out.strip().splitlines()[-1])


def webhook(url, **over):
    r = {"name": "hook", "type": "webhook", "url": url, "timeout": "5s"}
    r.update(over)
    return r


def crlf_only(raw):
    """Every LF of raw (bytes) follows a CR."""
    return all(i > 0 and raw[i - 1:i] == b"\r" for i in range(len(raw)) if raw[i:i + 1] == b"\n")


# ---- webhook ---------------------------------------------------------------------------------


@cleanly
def test_webhook_json_signed(h):
    """The note as compact JSON, its Idempotency-Key, and X-Meshd-Signature = HMAC-SHA256 of
    "<X-Meshd-Timestamp>.<body>" with the secret; without a secret, no signature."""
    w = WebhookServer()
    h.servers.append(w)
    n = note(n=2)
    a = send(h, webhook(w.url(), secret_env="HOOK_SECRET"), n, env={"HOOK_SECRET": "s3cr3t"})
    eq("SENT", a["outcome"], a["detail"])
    eq(200, a["code"])
    eq(0, a["rc"])
    eq("HTTP 200 OK: ok", a["detail"])
    r = w.wait_requests(1)[0]
    eq("POST", r["method"])
    eq("/hook", r["path"])
    eq("application/json", r["headers"]["content-type"])
    eq("chat/route1/1/firing", r["headers"]["idempotency-key"])
    check(r["headers"]["user-agent"].startswith("meshd-report/"), r["headers"]["user-agent"])
    eq(n, r["json"])
    check(b"\n" not in r["body"] and b'": ' not in r["body"], "not compact: %r" % r["body"][:80])
    ts = r["headers"]["x-meshd-timestamp"]
    check(abs(int(ts) - time.time()) < 60, "timestamp %s" % ts)
    want = hmac.new(b"s3cr3t", ts.encode() + b"." + r["body"], hashlib.sha256).hexdigest()
    eq("sha256=" + want, r["headers"]["x-meshd-signature"])
    check("s3cr3t" not in json.dumps(a), "the secret in the answer")

    w.clear()
    a = send(h, webhook(w.url()), n)
    eq("SENT", a["outcome"])
    r = w.wait_requests(1)[0]
    check("x-meshd-signature" not in r["headers"] and "x-meshd-timestamp" not in r["headers"],
          "signed without a secret: %s" % r["headers"])


@cleanly
def test_webhook_slack_limits(h):
    """format slack: {"text", "blocks"}; a 10,000-character message and 80 alerts stay within
    3000 characters a section and 50 blocks; &, <, > escaped."""
    w = WebhookServer()
    h.servers.append(w)
    big = ("rows < 1000 & falling > fast\n" * 400)[:10000]
    a = send(h, webhook(w.url(), format="slack"), note(n=80, message=big))
    eq("SENT", a["outcome"], a["detail"])
    m = w.wait_requests(1)[0]["json"]
    eq({"text", "blocks"}, set(m))
    eq("[meshd] FIRING: 80 alerts job=load", m["text"])
    check(len(m["blocks"]) <= 50, "%d blocks" % len(m["blocks"]))
    eq(50, len(m["blocks"]))
    for b in m["blocks"]:
        t = b["text"]["text"] if b["type"] == "section" else b["elements"][0]["text"]
        check(0 < len(t) <= 3000, "a block of %d characters" % len(t))
    first = m["blocks"][1]["text"]["text"]
    check("rows &lt; 1000 &amp; falling &gt; fast" in first, first[:200])
    check("<" not in first and first.endswith("..."), first[-50:])
    check("and 33 more alerts" in m["blocks"][-2]["text"]["text"], m["blocks"][-2])
    eq("context", m["blocks"][-1]["type"])
    check("<http://pc:8080/|status page>" in m["blocks"][-1]["elements"][0]["text"],
          m["blocks"][-1])


@cleanly
def test_webhook_answers(h):
    """500 and 408 retry, 429 retries after its Retry-After (seconds, or an HTTP date), 400
    fails with the body's start, a refused connection retries, and the same port up again
    takes it."""
    w = WebhookServer()
    h.servers.append(w)
    r = webhook(w.url())
    w.plan([500])
    a = send(h, r, note())
    eq(("RETRY", 500, 0), (a["outcome"], a["code"], a["retry_after_ms"]), a["detail"])
    eq("HTTP 500 Internal Server Error: fault 500 from notifyfix", a["detail"])
    w.plan([408])
    eq("RETRY", send(h, r, note())["outcome"])
    w.plan([{"status": 429, "retry_after": "7"}])
    a = send(h, r, note())
    eq(("RETRY", 429, 7000), (a["outcome"], a["code"], a["retry_after_ms"]), a["detail"])
    w.plan([{"status": 503, "retry_after": email.utils.formatdate(time.time() + 30,
                                                                  usegmt=True)}])
    a = send(h, r, note())
    eq(("RETRY", 503), (a["outcome"], a["code"]))
    check(25000 <= a["retry_after_ms"] <= 31000, "retry_after_ms %d" % a["retry_after_ms"])
    w.plan([{"status": 400, "body": '{"error": "invalid_blocks"}\n\x1b[31m'}])
    a = send(h, r, note())
    eq(("FAILED", 400), (a["outcome"], a["code"]))
    eq('HTTP 400 Bad Request: {"error": "invalid_blocks"} ?[31m', a["detail"])
    w.plan([404])
    eq("FAILED", send(h, r, note())["outcome"])
    w.plan([301])
    eq("FAILED", send(h, r, note())["outcome"])
    port = w.port
    w.down()
    a = send(h, r, note())
    eq(("RETRY", 0), (a["outcome"], a["code"]), a["detail"])
    check("onnect" in a["detail"], a["detail"])
    w.up()
    eq(port, w.port)
    eq("SENT", send(h, r, note())["outcome"])


@cleanly
def test_webhook_timeout_and_stop(h):
    """A receiver slower than timeout: retry when it expires; a stop (SIGTERM) during a slow
    answer ends the send within about a second: rc -ECANCELED, outcome RETRY."""
    w = WebhookServer()
    h.servers.append(w)
    w.plan([{"delay": 20}])
    a = send(h, webhook(w.url(), timeout="1s"), note())
    eq(("RETRY", 0), (a["outcome"], a["code"]), a["detail"])
    check("imed out" in a["detail"], a["detail"])
    check(a["seconds"] < 3, "took %.1f s" % a["seconds"])
    w.plan([{"delay": 20}])
    a = send(h, webhook(w.url(), timeout="30s"), note(), term_after=0.5)
    eq((-125, "RETRY"), (a["rc"], a["outcome"]), a["detail"])
    check(a["seconds"] < 2.5, "the stop took %.1f s" % a["seconds"])


# ---- e-mail ----------------------------------------------------------------------------------


def mail_receiver(srv, **over):
    r = {"name": "mail", "type": "email", "url": srv.url(), "from": "meshd <alerts@example.org>",
         "to": ["ops@example.org", "Dev Team <dev@example.org>"], "timeout": "10s"}
    r.update(over)
    return r


def message_id(idem, domain="example.org"):
    return "<meshd.%s@%s>" % (hashlib.sha256(idem.encode()).hexdigest()[:32], domain)


@cleanly
def test_email_starttls_auth(h):
    """STARTTLS (required) with AUTH from the environment; the message's headers, its
    multipart/alternative parts, CRLF, and the same Message-ID when the note is sent again."""
    cert = self_signed(h.path("tls"))
    s = SmtpServer(tls="starttls", cert=cert, user="mailer", password="pw-9f3")
    h.servers.append(s)
    r = mail_receiver(s, ca_file=cert[0], username_env="SMTP_USER", password_env="SMTP_PASS")
    env = {"SMTP_USER": "mailer", "SMTP_PASS": "pw-9f3"}
    # a job name long enough that the subject takes several RFC 2047 words, folded
    job = "Grüße-aus-Köln-und-Düsseldorf"
    n = note(n=2, job=job, message="rows < 1000 & <b>falling</b>\nsecond line")
    a = send(h, r, n, env=env)
    eq(("SENT", 250, 0), (a["outcome"], a["code"], a["rc"]), a["detail"])
    eq(message_id("chat/route1/1/firing"), a["ref"])
    m = s.wait_messages(1)[0]
    check(m["tls"] and m["auth"], "tls %s auth %s" % (m["tls"], m["auth"]))
    eq("<alerts@example.org>", "<%s>" % m["mail_from"])
    eq(["ops@example.org", "dev@example.org"], m["rcpt_tos"])
    msg, raw = m["msg"], m["raw"]
    check(crlf_only(raw), "a bare LF in the message")
    eq("[meshd] FIRING: 2 alerts job=" + job, str(msg["Subject"]))
    # the header as sent: up to the first CRLF not followed by a space (a fold)
    subject_raw = re.search(rb"\r\nSubject: ((?:[^\r]|\r\n )*)\r\n", raw).group(1)
    words = subject_raw.split(b"\r\n ")
    check(len(words) >= 2, "subject not folded: %r" % subject_raw)
    for w in words:
        check(w.startswith(b"=?UTF-8?B?") and w.endswith(b"?=") and len(w) <= 75,
              "not an RFC 2047 word: %r" % w)
    eq("meshd <alerts@example.org>", str(msg["From"]))
    eq("ops@example.org, Dev Team <dev@example.org>", str(msg["To"]))
    eq(a["ref"], str(msg["Message-ID"]))
    eq("1.0", str(msg["MIME-Version"]))
    eq("auto-generated", str(msg["Auto-Submitted"]))
    sent_at = email.utils.parsedate_to_datetime(str(msg["Date"])).timestamp()
    check(abs(sent_at - time.time()) < 300, "Date: %s" % msg["Date"])
    check(str(msg["Date"]).endswith("+0000"), msg["Date"])
    eq("multipart/alternative", msg.get_content_type())
    parts = list(msg.iter_parts())
    eq(["text/plain", "text/html"], [p.get_content_type() for p in parts])
    eq(["utf-8", "utf-8"], [p.get_content_charset() for p in parts])
    text, html = parts[0].get_content(), parts[1].get_content()
    check("rows < 1000 & <b>falling</b>" in text and "second line" in text, text)
    check("FIRING: 2 alerts job=" + job in text, text)
    check("rows &lt; 1000 &amp; &lt;b&gt;falling&lt;/b&gt;" in html and "<b>falling" not in html,
          html)
    check("pw-9f3" not in json.dumps(a), "the password in the answer")
    check(a["detail"].startswith("SMTP 250 Message accepted for delivery"), a["detail"])

    # Bad credentials: 535, failed, the password not echoed.
    bad = send(h, r, n, env={"SMTP_USER": "mailer", "SMTP_PASS": "wrong-pw-77"})
    eq(("FAILED", 535), (bad["outcome"], bad["code"]), bad["detail"])
    check("wrong-pw-77" not in json.dumps(bad), "the password in the answer")
    eq(1, len(s.messages()))

    # A re-send of the same notification (after a crash) is the same message.
    send(h, r, n, env=env)
    eq(a["ref"], str(s.wait_messages(2)[1]["msg"]["Message-ID"]))
    # Another notification, another Message-ID.
    send(h, r, note(idem="chat/route1/2/repeat", kind="repeat"), env=env)
    m3 = s.wait_messages(3)[2]["msg"]
    eq(message_id("chat/route1/2/repeat"), str(m3["Message-ID"]))
    eq("[meshd] STILL FIRING: rows-low job=load", str(m3["Subject"]))


@cleanly
def test_email_smtps(h):
    """smtps://: TLS from the first byte, the server's certificate trusted through ca_file; a
    certificate nobody trusts is a retry (it may be fixed), insecure skips the check."""
    cert = self_signed(h.path("tls"))
    s = SmtpServer(tls="smtps", cert=cert)
    h.servers.append(s)
    a = send(h, mail_receiver(s, ca_file=cert[0]), note(kind="resolved"))
    eq(("SENT", 250), (a["outcome"], a["code"]), a["detail"])
    m = s.wait_messages(1)[0]
    check(m["tls"], "not TLS")
    eq("[meshd] RESOLVED: rows-low job=load", str(m["msg"]["Subject"]))
    a = send(h, mail_receiver(s), note())
    eq(("RETRY", 0), (a["outcome"], a["code"]), a["detail"])
    a = send(h, mail_receiver(s, insecure=True), note())
    eq("SENT", a["outcome"], a["detail"])


@cleanly
def test_email_starttls_required(h):
    """tls: starttls (the default) refuses a server that offers no STARTTLS, before anything
    is sent; tls: none sends in plain text."""
    s = SmtpServer(tls=None)
    h.servers.append(s)
    a = send(h, mail_receiver(s), note())
    eq(("FAILED", 0), (a["outcome"], a["code"]), a["detail"])
    check("STARTTLS" in a["detail"], a["detail"])
    time.sleep(0.3)
    eq(0, len(s.messages()))
    a = send(h, mail_receiver(s, tls="none"), note())
    eq("SENT", a["outcome"], a["detail"])
    check(not s.wait_messages(1)[0]["tls"], "TLS?")


@cleanly
def test_email_replies(h):
    """SMTP 4xx retries, 5xx fails (at the end of DATA, or a refused recipient); no server at
    all retries."""
    s = SmtpServer(tls=None, reply={"reply": "451 4.3.0 Try again later", "at": "data"})
    h.servers.append(s)
    r = mail_receiver(s, tls="none")
    a = send(h, r, note())
    eq(("RETRY", 451), (a["outcome"], a["code"]), a["detail"])
    check(a["detail"].startswith("SMTP 451 4.3.0 Try again later ("), a["detail"])
    s.set_reply({"reply": "550 5.7.1 Message rejected", "at": "data"})
    a = send(h, r, note())
    eq(("FAILED", 550), (a["outcome"], a["code"]), a["detail"])
    s.set_reply({"reply": "550 5.1.1 No such user", "at": "rcpt"})
    a = send(h, r, note())
    eq(("FAILED", 550), (a["outcome"], a["code"]), a["detail"])
    check(a["detail"].startswith("SMTP 550 5.1.1 No such user ("), a["detail"])
    s.set_reply({"reply": "452 4.2.2 Mailbox full", "at": "rcpt"})
    a = send(h, r, note())
    eq(("RETRY", 452), (a["outcome"], a["code"]), a["detail"])
    eq(0, len(s.messages()))
    s.set_reply(None)
    eq("SENT", send(h, r, note())["outcome"])
    port = s.port
    s.stop()
    a = send(h, dict(r, url="smtp://127.0.0.1:%d" % port), note())
    eq(("RETRY", 0), (a["outcome"], a["code"]), a["detail"])


# ---- GitHub ----------------------------------------------------------------------------------


def registry(h):
    """A fresh database with meshd-report's own tables, applied as the worker applies them."""
    db = Db(h, "rpt")
    r = subprocess.run(["psql", db.url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-f", REPORT_SQL],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "report.sql: %s" % r.stderr)
    return db


def github(gh, **over):
    r = {"name": "issues", "type": "github", "repo": "acme/data", "url": gh.url("/api/v3"),
         "token_env": "GH_TOKEN", "labels": ["ops"], "mention": "@acme/oncall",
         "reopen_within": "1h", "timeout": "10s"}
    r.update(over)
    return r


def mapping(db, fp=FP):
    row = psql(db.url, "SELECT number, state, occurrences, closed_at IS NOT NULL, repo, url "
                       "FROM meshd_report.github_issues WHERE receiver = 'issues' AND "
                       "fingerprint = '%s'" % fp)
    if not row:
        return None
    v = row.split("|")
    return {"number": int(v[0]), "state": v[1], "occurrences": int(v[2]),
            "closed": v[3] == "t", "repo": v[4], "url": v[5]}


def labels(issue):
    return sorted(l["name"] for l in issue["labels"])


def calls(gh):
    return [(r["method"], r["path"]) for r in gh.requests()]


@cleanly
def test_github_life_cycle(h):
    """firing creates; the same firing again (a retry) creates nothing; repeat comments
    (through the mapping, no listing); resolved comments and closes; firing again reopens the
    same issue; a deleted mapping row is rebuilt through the label listing; an issue closed
    longer ago than reopen_within gives way to a new one; escalation mentions."""
    db = registry(h)
    gh = FakeGitHub(TOKEN)
    h.servers.append(gh)
    r, env = github(gh), {"GH_TOKEN": TOKEN}
    repo = "acme/data"
    issues_path = "/repos/acme/data/issues"

    a = send(h, r, note(idem="k1"), env=env, db=db)
    eq(("SENT", 201, 0), (a["outcome"], a["code"], a["rc"]), a["detail"])
    eq("https://github.example/acme/data/issues/1", a["ref"])
    eq("HTTP 201: opened issue #1", a["detail"])
    eq(1, len(gh.issues(repo)))
    i = gh.issue(repo, 1)
    eq("[meshd] rows-low (job load)", i["title"])
    eq(sorted(["meshd", "meshd-fp:" + FP, "severity:critical", "job:load", "ops"]), labels(i))
    check("<!-- meshd:fp=%s -->" % FP in i["body"], i["body"])
    check("<!-- meshd:note=k1 -->" in i["body"], i["body"])
    check("cc @acme/oncall" in i["body"], i["body"])
    eq([("GET", issues_path), ("POST", issues_path)], calls(gh))
    lst = gh.requests()[0]
    eq({"labels": "meshd-fp:" + FP, "state": "all", "sort": "created", "direction": "desc",
        "per_page": "30"}, lst["query"])
    for req in gh.requests():
        eq("Bearer " + TOKEN, req["headers"]["authorization"])
        eq("2022-11-28", req["headers"]["x-github-api-version"])
        eq("application/vnd.github+json", req["headers"]["accept"])
        check(req["headers"]["user-agent"].startswith("meshd-report/"), req["headers"])
    eq({"number": 1, "state": "open", "occurrences": 1, "closed": False, "repo": repo,
        "url": a["ref"]}, mapping(db))

    # A retry of that very notification (its answer was lost): no second issue, no comment.
    gh.clear()
    a = send(h, r, note(idem="k1"), env=env, db=db)
    eq("SENT", a["outcome"], a["detail"])
    check("already" in a["detail"], a["detail"])
    eq(1, len(gh.issues(repo)))
    eq([], gh.comments(repo, 1))
    eq([("GET", issues_path)], calls(gh))

    # repeat: one comment, found through the mapping alone.
    gh.clear()
    a = send(h, r, note(kind="repeat", idem="k2", message="still 0 rows"), env=env, db=db)
    eq(("SENT", 201), (a["outcome"], a["code"]), a["detail"])
    eq([("POST", issues_path + "/1/comments")], calls(gh))
    c = gh.comments(repo, 1)
    eq(1, len(c))
    check("**Still firing**" in c[0]["body"] and "raised 3 times" in c[0]["body"] and
          "still 0 rows" in c[0]["body"], c[0]["body"])
    check("@acme/oncall" not in c[0]["body"], "a repeat mentions")

    # resolved: a comment, then closed as completed.
    gh.clear()
    a = send(h, r, note(kind="resolved", idem="k3"), env=env, db=db)
    eq(("SENT", 200), (a["outcome"], a["code"]), a["detail"])
    eq([("POST", issues_path + "/1/comments"), ("PATCH", issues_path + "/1")], calls(gh))
    eq({"state": "closed", "state_reason": "completed"}, json.loads(gh.requests()[1]["body"]))
    i = gh.issue(repo, 1)
    eq(("closed", "completed"), (i["state"], i["state_reason"]))
    check("**Resolved**" in gh.comments(repo, 1)[-1]["body"], gh.comments(repo, 1)[-1])
    m = mapping(db)
    eq(("closed", True), (m["state"], m["closed"]))
    # resolved again (a retry): nothing to do
    gh.clear()
    eq("SENT", send(h, r, note(kind="resolved", idem="k3"), env=env, db=db)["outcome"])
    eq([], calls(gh))

    # firing again, within reopen_within: the same issue reopened, with a comment.
    gh.clear()
    a = send(h, r, note(idem="k4", message="0 rows again"), env=env, db=db)
    eq("SENT", a["outcome"], a["detail"])
    check("reopened issue #1" in a["detail"], a["detail"])
    eq(1, len(gh.issues(repo)))
    i = gh.issue(repo, 1)
    eq(("open", "reopened"), (i["state"], i["state_reason"]))
    eq({"state": "open", "state_reason": "reopened"},
       json.loads([q for q in gh.requests() if q["method"] == "PATCH"][0]["body"]))
    last = gh.comments(repo, 1)[-1]["body"]
    check("**Firing again** (reopened), occurrence 2" in last and "0 rows again" in last, last)
    eq(("open", 2), (mapping(db)["state"], mapping(db)["occurrences"]))

    # The mapping row is lost: a repeat finds the issue by its label, and the row is back.
    psql(db.url, "DELETE FROM meshd_report.github_issues")
    gh.clear()
    a = send(h, r, note(kind="repeat", idem="k5"), env=env, db=db)
    eq("SENT", a["outcome"], a["detail"])
    eq([("GET", issues_path), ("POST", issues_path + "/1/comments")], calls(gh))
    eq(1, len(gh.issues(repo)))
    eq((1, "open"), (mapping(db)["number"], mapping(db)["state"]))

    # Closed longer ago than reopen_within (1h): a new issue, and the mapping moves to it.
    send(h, r, note(kind="resolved", idem="k6"), env=env, db=db)
    gh.set_closed_at(repo, 1, time.time() - 7200)
    a = send(h, r, note(idem="k7"), env=env, db=db)
    eq(("SENT", 201), (a["outcome"], a["code"]), a["detail"])
    eq("https://github.example/acme/data/issues/2", a["ref"])
    eq(2, len(gh.issues(repo)))
    eq("closed", gh.issue(repo, 1)["state"])
    eq((2, "open", 1), (mapping(db)["number"], mapping(db)["state"],
                        mapping(db)["occurrences"]))

    # escalation on the open issue: a comment with the mention.
    gh.clear()
    a = send(h, r, note(kind="escalation", idem="k8", level=1), env=env, db=db)
    eq("SENT", a["outcome"], a["detail"])
    last = gh.comments(repo, 2)[-1]["body"]
    check("**Escalated (level 1):**" in last and "cc @acme/oncall" in last, last)
    check(TOKEN not in open(h.log_path).read(), "the token in the probe's output")


@cleanly
def test_github_refusals(h):
    """A wrong token: 401, failed, the token never echoed; rate limits (403 with
    x-ratelimit-remaining 0, 429 with Retry-After) retry with retry_after_ms; a note with two
    alerts, or a digest, is refused before any request."""
    db = registry(h)
    gh = FakeGitHub(TOKEN)
    h.servers.append(gh)
    r = github(gh)
    a = send(h, r, note(), env={"GH_TOKEN": "ghs_wrong_token_000"}, db=db)
    eq(("FAILED", 401), (a["outcome"], a["code"]), a["detail"])
    check("Bad credentials" in a["detail"], a["detail"])
    check("ghs_wrong" not in json.dumps(a), "the token in the answer")
    eq([], gh.issues("acme/data"))

    gh.rate_limit(1, status=403, reset_in=120)
    a = send(h, r, note(), env={"GH_TOKEN": TOKEN}, db=db)
    eq(("RETRY", 403), (a["outcome"], a["code"]), a["detail"])
    check(110000 <= a["retry_after_ms"] <= 121000, "retry_after_ms %d" % a["retry_after_ms"])
    check("rate limit" in a["detail"], a["detail"])
    gh.rate_limit(1, status=429, retry_after=30)
    a = send(h, r, note(), env={"GH_TOKEN": TOKEN}, db=db)
    eq(("RETRY", 429, 30000), (a["outcome"], a["code"], a["retry_after_ms"]), a["detail"])
    eq([], gh.issues("acme/data"))
    # the limit lifted: the retry goes through
    eq("SENT", send(h, r, note(), env={"GH_TOKEN": TOKEN}, db=db)["outcome"])

    gh.clear()
    a = send(h, r, note(n=2), env={"GH_TOKEN": TOKEN}, db=db)
    eq("FAILED", a["outcome"], a["detail"])
    a = send(h, r, note(kind="digest"), env={"GH_TOKEN": TOKEN}, db=db)
    eq("FAILED", a["outcome"], a["detail"])
    eq([], calls(gh))


@cleanly
def test_github_issue_gone(h):
    """A mapped issue that is gone (404): the step retries and drops the mapping row; the
    next attempt finds no issue by its label and opens a new one."""
    db = registry(h)
    gh = FakeGitHub(TOKEN)
    h.servers.append(gh)
    r, env = github(gh), {"GH_TOKEN": TOKEN}
    eq("SENT", send(h, r, note(idem="g1"), env=env, db=db)["outcome"])
    gh.delete_issue("acme/data", 1)
    a = send(h, r, note(kind="repeat", idem="g2"), env=env, db=db)
    eq(("RETRY", 404), (a["outcome"], a["code"]), a["detail"])
    check("is gone" in a["detail"], a["detail"])
    eq(None, mapping(db))
    a = send(h, r, note(kind="repeat", idem="g2"), env=env, db=db)
    eq(("SENT", "https://github.example/acme/data/issues/2"), (a["outcome"], a["ref"]),
       a["detail"])
    eq(2, mapping(db)["number"])


@cleanly
def test_github_registry_failure_keeps_the_transaction(h):
    """The registry failing under the send (here: no meshd_report tables) inside the caller's
    transaction: rpt_send returns the registry's code with a retry, before any request, and
    the caller's transaction is still usable (the mapping's statements ran under a
    savepoint).  With the tables, a send inside a transaction commits its mapping."""
    db = Db(h, "rptnotab")
    gh = FakeGitHub(TOKEN)
    h.servers.append(gh)
    r, env = github(gh), {"GH_TOKEN": TOKEN}
    a = send(h, r, note(), env=env, db=db, transaction=True)
    eq(-1009, a["rc"], a["detail"])  # MD_ESQL: relation does not exist
    eq("RETRY", a["outcome"])
    check("github_issues" in a["detail"], a["detail"])
    eq("ok", a["tx"])
    eq([], gh.requests())
    reg = registry(h)
    a = send(h, r, note(), env=env, db=reg, transaction=True)
    eq(("SENT", 0, "ok"), (a["outcome"], a["rc"], a["tx"]), a["detail"])
    eq(1, mapping(reg)["number"])


@cleanly
def test_github_without_registry(h):
    """No registry connection: every step finds the issue by its label, and still no
    duplicate."""
    gh = FakeGitHub(TOKEN)
    h.servers.append(gh)
    r, env = github(gh, url=gh.url()), {"GH_TOKEN": TOKEN}
    eq("SENT", send(h, r, note(idem="n1"), env=env)["outcome"])
    a = send(h, r, note(kind="repeat", idem="n2"), env=env)
    eq("SENT", a["outcome"], a["detail"])
    a = send(h, r, note(kind="resolved", idem="n3"), env=env)
    eq("SENT", a["outcome"], a["detail"])
    eq(1, len(gh.issues("acme/data")))
    eq("closed", gh.issue("acme/data", 1)["state"])
    eq(2, len(gh.comments("acme/data", 1)))


if __name__ == "__main__":
    harness.main(globals())
