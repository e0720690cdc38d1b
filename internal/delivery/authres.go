package delivery

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"posta/internal/blob"
	"posta/internal/mailauth"
)

// checked reports whether env's message gets the mail-authentication checks:
// mail arriving on the MX listener without authentication. Submitted mail
// is the account's own and is signed, not verified.
func (d *Delivery) checked(env *Envelope) bool {
	return d.verifier != nil && env.Listener == "smtp" && !env.Auth
}

// verify runs SPF, DKIM and DMARC on msg (the message as received, our
// Received field first). A verifier error is not a verdict and must not
// cost the message: it is logged and the message is accepted with an
// Authentication-Results field saying temperror, so nothing downstream
// takes it for authenticated.
func (d *Delivery) verify(ctx context.Context, env *Envelope, msg io.Reader) mailauth.Verdict {
	in := mailauth.Inbound{IP: env.RemoteIP, HELO: env.HELO, MailFrom: env.MailFrom}
	vd, err := d.verifier.Check(ctx, in, msg)
	if err != nil {
		d.log.Warn("mail authentication failed; delivering unverified", "id", env.ID, "err", err.Error())
		return mailauth.Verdict{Header: tempErrorHeader(d.verifier.Hostname),
			SPF: "temperror", DKIM: "temperror", DMARC: "temperror", Action: mailauth.Accept}
	}
	d.log.Info("mail authentication", "id", env.ID, "spf", vd.SPF, "dkim", vd.DKIM, "dmarc", vd.DMARC,
		"action", vd.Action.String(), "reason", vd.Reason)
	return vd
}

// tempErrorHeader is the Authentication-Results field (RFC 8601 2.2) of a
// message whose verification failed for a reason of our own. A host name
// that cannot be written as a bare authserv-id gives no field at all.
func tempErrorHeader(host string) string {
	if host == "" || strings.IndexFunc(host, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_')
	}) >= 0 {
		return ""
	}
	return "Authentication-Results: " + host + ";\r\n\tspf=temperror;\r\n\tdkim=temperror;\r\n\tdmarc=temperror (not verified: local error)\r\n"
}

// spoolVerified is the large-message path of checked mail. The verdict
// must go into the Authentication-Results field at the top of the stored
// message, and it is known only once the whole message has been read, so
// the message is first written as received to a scratch file (never held
// in memory, never fsynced: it is not what we acknowledge), verified from
// there, and then copied behind the Return-Path and Authentication-Results
// fields into the body file, which the caller commits (fsync, rename, dir
// fsync) like any other. head is what Deliver already read of the message,
// rest the remainder, limit the size bound of the whole.
//
// A Reject verdict returns an error wrapping ErrDMARCReject and no writer:
// nothing is stored. The body copy is one extra pass over large MX mail
// only; io.Copy from the scratch *os.File lets the kernel do it
// (copy_file_range).
func (d *Delivery) spoolVerified(ctx context.Context, env *Envelope, returnPath string, head []byte, rest io.Reader, limit int64) (*blob.Writer, mailauth.Verdict, error) {
	var vd mailauth.Verdict
	// The blob store's temp directory: under the data directory (the
	// size the operator provisioned, not a tmpfs), and swept when the
	// store opens, so a crash leaves nothing behind.
	scratch, err := os.CreateTemp(filepath.Join(d.store.Blobs().Dir(), "tmp"), "mx-*")
	if err != nil {
		return nil, vd, fmt.Errorf("delivery: scratch file: %w", err)
	}
	defer func() {
		scratch.Close()
		os.Remove(scratch.Name())
	}()
	if _, err := scratch.Write(head); err != nil {
		return nil, vd, fmt.Errorf("delivery: scratch file: %w", err)
	}
	n := int64(len(head))
	// Read one byte past the limit to tell "exactly the limit" from "over".
	m, err := io.Copy(scratch, io.LimitReader(rest, limit-n+1))
	if err != nil {
		// A read error or a write error: which side failed only the
		// message tells.
		return nil, vd, fmt.Errorf("delivery: read message: %w", err)
	}
	if n += m; n > limit {
		return nil, vd, fmt.Errorf("%w: over %d bytes", ErrMessageTooBig, limit)
	}

	vd = d.verify(ctx, env, io.NewSectionReader(scratch, 0, n))
	if vd.Action == mailauth.Reject {
		return nil, vd, &DMARCRejectError{Reason: vd.Reason}
	}

	w, err := d.store.Blobs().Create()
	if err != nil {
		return nil, vd, err
	}
	fail := func(err error) (*blob.Writer, mailauth.Verdict, error) {
		w.Abort()
		return nil, vd, err
	}
	if _, err := io.WriteString(w, returnPath+vd.Header); err != nil {
		return fail(err)
	}
	hdr, err := copyHeader(w, io.NewSectionReader(scratch, 0, n), d.verifier.Hostname)
	if err != nil {
		return fail(fmt.Errorf("delivery: copy message: %w", err))
	}
	if _, err := scratch.Seek(hdr, io.SeekStart); err != nil {
		return fail(fmt.Errorf("delivery: copy message: %w", err))
	}
	if _, err := io.Copy(w, io.LimitReader(scratch, n-hdr)); err != nil {
		return fail(fmt.Errorf("delivery: copy message: %w", err))
	}
	return w, vd, nil
}

// verifiedInline is the small-message path of checked mail: raw is the
// whole message, in memory. It returns the body to store (Return-Path,
// Authentication-Results, raw with forged fields renamed), or an error
// wrapping ErrDMARCReject.
func (d *Delivery) verifiedInline(ctx context.Context, env *Envelope, returnPath string, raw []byte) ([]byte, mailauth.Verdict, error) {
	vd := d.verify(ctx, env, bytes.NewReader(raw))
	if vd.Action == mailauth.Reject {
		return nil, vd, &DMARCRejectError{Reason: vd.Reason}
	}
	var out bytes.Buffer
	out.Grow(len(returnPath) + len(vd.Header) + len(raw) + 64)
	out.WriteString(returnPath)
	out.WriteString(vd.Header)
	hdr, err := copyHeader(&out, bytes.NewReader(raw), d.verifier.Hostname)
	if err != nil { // a bytes.Buffer and a bytes.Reader do not fail
		return nil, vd, fmt.Errorf("delivery: copy message: %w", err)
	}
	out.Write(raw[hdr:])
	return out.Bytes(), vd, nil
}

// junkMailbox is the name of account's \Junk mailbox (RFC 6154), where
// quarantined mail goes; "Junk" when it has none or the lookup fails (the
// store then delivers to INBOX if there is no such mailbox: quarantined
// mail is never dropped).
func (d *Delivery) junkMailbox(ctx context.Context, account string) string {
	mbs, err := d.store.Mailboxes(ctx, account)
	if err != nil {
		d.log.Warn("delivery: mailboxes for quarantine", "account", account, "err", err.Error())
		return "Junk"
	}
	for _, mb := range mbs {
		if strings.EqualFold(mb.SpecialUse, `\Junk`) {
			return mb.Name
		}
	}
	return "Junk"
}

// The field Authentication-Results fields claiming our authserv-id are
// renamed to, so the recipient's software never mistakes them for ours
// (RFC 8601 5: a border MTA MUST delete or otherwise obscure them).
const (
	arName        = "Authentication-Results"
	renamedARName = "X-Original-Authentication-Results"
	// maxARField bounds the part of one Authentication-Results field
	// held in memory while deciding whether it claims our authserv-id;
	// a longer field is renamed without looking further.
	maxARField = 64 << 10
)

// copyHeader copies the header section of the message in r to w, up to and
// including the empty line that ends it (or to EOF, for a message that is
// all header), renaming every Authentication-Results field that claims
// authservID to X-Original-Authentication-Results. Everything else is
// copied byte for byte. It returns the number of bytes of r consumed,
// where the body starts; r may have been read further than that.
func copyHeader(w io.Writer, r io.Reader, authservID string) (int64, error) {
	br := bufio.NewReaderSize(r, 16<<10)
	var consumed int64
	var held []byte // an Authentication-Results field being collected
	holding := false
	lineStart := true
	var werr error
	write := func(b []byte) {
		if werr == nil {
			_, werr = w.Write(b)
		}
	}
	release := func() {
		if !holding {
			return
		}
		if len(held) > maxARField || claimsID(held, authservID) {
			write([]byte(renamedARName))
			held = held[len(arName):]
		}
		write(held)
		held, holding = held[:0], false
	}
	for {
		frag, err := br.ReadSlice('\n')
		consumed += int64(len(frag))
		if len(frag) > 0 {
			start := lineStart
			lineStart = frag[len(frag)-1] == '\n'
			switch {
			case start && (frag[0] == ' ' || frag[0] == '\t'), !start:
				// A continuation line, or more of a long line.
				if holding {
					held = append(held, frag...)
					if len(held) > maxARField {
						release() // the rest of the field follows unheld
					}
				} else {
					write(frag)
				}
			case string(frag) == "\r\n" || string(frag) == "\n":
				release()
				write(frag)
				return consumed, werr
			default:
				release()
				if isARField(frag, lineStart) {
					held, holding = append(held, frag...), true
				} else {
					write(frag)
				}
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			release()
			return consumed, werr
		}
		if err != nil {
			return consumed, err
		}
		if werr != nil {
			return consumed, werr
		}
	}
}

// isARField reports whether the line fragment frag starts an
// Authentication-Results field: the name in any case, optional white
// space (RFC 5322 4.5.3 obsolete syntax), then the colon, or the end of
// a fragment cut short before it (complete is false).
func isARField(frag []byte, complete bool) bool {
	if len(frag) < len(arName) || !strings.EqualFold(string(frag[:len(arName)]), arName) {
		return false
	}
	rest := bytes.TrimLeft(frag[len(arName):], " \t")
	return len(rest) > 0 && rest[0] == ':' || len(rest) == 0 && !complete
}

// claimsID reports whether the Authentication-Results field f (name,
// colon, value, folded) claims the authserv-id id: whether the part of the
// value before the first ';', where the authserv-id is (RFC 8601 2.2),
// contains id in any case. Matching anywhere there, rather than parsing
// the id out of comments, quotes and a version, errs on the side of
// renaming: a foreign field is renamed only if its id contains ours.
func claimsID(f []byte, id string) bool {
	id = strings.ToLower(strings.TrimSuffix(id, "."))
	if id == "" {
		return false
	}
	_, v, _ := bytes.Cut(f, []byte(":"))
	v, _, _ = bytes.Cut(v, []byte(";"))
	return strings.Contains(strings.ToLower(string(v)), id)
}
