# Drives Posta's IMAP server with Python's imaplib, over implicit TLS
# (IMAP4_SSL) and over STARTTLS (IMAP4 + starttls), and prints what it saw
# as one JSON object for e2e/imap_python_test.go to check.
#
# Usage: imap_imaplib.py PORT PORT_TLS CAFILE USER PASSWORD
import base64
import imaplib
import json
import ssl
import sys

port, port_s, cafile, user, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=cafile)
out = {}


def s(b):
    return b.decode("utf-8") if isinstance(b, bytes) else b


def lines(data):
    return [s(d) for d in data if d is not None]


def err_of(f):
    try:
        f()
    except imaplib.IMAP4.error as e:
        return str(e)
    return None


# Implicit TLS.
m = imaplib.IMAP4_SSL("localhost", port_s, ssl_context=ctx, timeout=30)
out["welcome"] = s(m.welcome)
out["bad_login"] = err_of(lambda: m.login(user, "wrong-password"))
typ, data = m.login(user, password)
out["login"] = [typ, lines(data)]
typ, data = m.capability()
out["capability"] = [typ, lines(data)]
typ, data = m.list()
out["list"] = [typ, lines(data)]
typ, data = m.select("INBOX")
out["select"] = [typ, lines(data)]
out["uidvalidity"] = lines(m.response("UIDVALIDITY")[1])
typ, data = m.search(None, "SUBJECT", '"second"')
out["search_subject"] = [typ, lines(data)]
typ, data = m.search(None, "ALL")
out["search_all"] = [typ, lines(data)]
typ, data = m.uid("SEARCH", "UNSEEN")
out["uid_search_unseen"] = [typ, lines(data)]
typ, data = m.fetch("1:2", "(UID RFC822.SIZE BODY.PEEK[])")
out["fetch"] = []
for item in data:
    if isinstance(item, tuple):
        out["fetch"].append({"head": s(item[0]), "body": base64.b64encode(item[1]).decode()})
typ, data = m.fetch("1", "(FLAGS)")
out["flags_after_peek"] = lines(data)
typ, data = m.fetch("2", "(RFC822)")  # sets \Seen
# imaplib splits the response at the literal: the head, then the rest.
out["flags_after_rfc822"] = [s(item[0]) if isinstance(item, tuple) else s(item) for item in data]
typ, data = m.store("1", "+FLAGS", "(\\Flagged $Label)")
out["store"] = [typ, lines(data)]
typ, data = m.create("Kept")
out["create"] = [typ, lines(data)]
typ, data = m.copy("1:2", "Kept")
out["copy"] = [typ, lines(data)]
typ, data = m.store("2", "+FLAGS.SILENT", "(\\Deleted)")
out["store_silent"] = [typ, lines(data)]
typ, data = m.expunge()
out["expunge"] = [typ, lines(data)]
typ, data = m.status("Kept", "(MESSAGES UNSEEN)")
out["status_kept"] = [typ, lines(data)]
typ, data = m.close()
out["close"] = [typ, lines(data)]
typ, data = m.logout()
out["logout"] = [typ, lines(data)]

# STARTTLS.
p = imaplib.IMAP4("localhost", port, timeout=30)
out["caps_plain"] = sorted(p.capabilities)
out["login_plain"] = err_of(lambda: p.login(user, password))
typ, data = p.starttls(ssl_context=ctx)
out["starttls"] = [typ, lines(data)]
out["caps_tls"] = sorted(p.capabilities)
typ, data = p.login(user, password)
out["login_tls"] = [typ, lines(data)]
typ, data = p.select("INBOX", readonly=True)
out["examine"] = [typ, lines(data)]
typ, data = p.fetch("1:*", "(UID FLAGS)")
out["examine_fetch"] = lines(data)
typ, data = p.logout()
out["logout_tls"] = [typ, lines(data)]

print(json.dumps(out))
