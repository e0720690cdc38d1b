package ftpserver

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"posta/internal/files"
	"posta/internal/sasl"
)

// isAnonymousName: RFC 1635 2, the conventional anonymous login names.
func isAnonymousName(u string) bool {
	return strings.EqualFold(u, "anonymous") || strings.EqualFold(u, "ftp")
}

// cmdUSER: RFC 959 4.1.1. The login name is the full account address. A
// USER while logged in starts a new login (RFC 959 4.1.1: "a change of
// user").
func (ss *session) cmdUSER(arg string) (*reply, error) {
	if ss.state == stateLoggedIn {
		ss.logout()
	}
	anon := ss.s.o.Anonymous && isAnonymousName(arg)
	// RFC 4217 10.1: a server may deny USER before TLS (not for anonymous,
	// who sends no secret).
	if !anon && ss.tlsState == nil && !ss.s.o.AllowPlaintextAuth && ss.s.o.TLSLogin.requires(ss.ip) {
		ss.state = stateNew
		return nil, errTLSLogin
	}
	ss.user, ss.anonymous, ss.state = arg, anon, stateUser
	if anon {
		return ok(331, "Anonymous login ok, send your e-mail address as password"), nil
	}
	return ok(331, "Password required"), nil
}

// cmdPASS: RFC 959 4.1.1.
func (ss *session) cmdPASS(arg string) (*reply, error) {
	switch ss.state {
	case stateLoggedIn:
		return ok(202, "Already logged in"), nil
	case stateNew:
		return nil, refuse(503, "Login with USER first")
	}
	user := ss.user
	ss.state = stateNew
	if ss.anonymous {
		tree, err := ss.s.o.Files.AnonymousTree()
		if err != nil {
			return nil, err
		}
		ss.loggedIn(tree, "anonymous")
		return ok(230, "Anonymous access granted, read-only"), nil
	}
	// internal/guard: a ban placed by another session stops this one too.
	if banned, _ := ss.s.o.Guard.Banned(ss.ip); banned {
		ss.hangup(replyBanned)
		return nil, errHungUp
	}
	addr, err := ss.s.o.Directory.VerifyPassword(ss.ctx, user, arg)
	if errors.Is(err, sasl.ErrInvalidCredentials) {
		return ss.loginFailed(user)
	}
	if err != nil {
		return nil, err
	}
	acct, err := ss.s.o.Directory.Account(ss.ctx, addr)
	if err != nil {
		return nil, err
	}
	tree, err := ss.s.o.Files.Tree(ss.ctx, files.Account{
		Address: acct.Address, QuotaBytes: acct.QuotaBytes, ReadOnly: acct.FilesReadOnly,
	})
	if err != nil {
		return nil, err
	}
	ss.s.o.Guard.AuthSucceeded(ss.ip, user)
	ss.loggedIn(tree, acct.Address)
	return ok(230, "User logged in"), nil
}

func (ss *session) loggedIn(tree *files.Tree, account string) {
	ss.tree, ss.account, ss.state, ss.cwd = tree, account, stateLoggedIn, "/"
	ss.preErrs = 0
	ss.s.log.Info("ftp login", "conn", ss.id, "ip", ss.ip.String(), "account", account,
		"read_only", tree.ReadOnly(), "tls", ss.tlsState != nil)
}

// loginFailed answers a wrong password: the guard's delay first, 421 and
// close when the guard bans the address or the session used up its tries.
func (ss *session) loginFailed(user string) (*reply, error) {
	delay, banned := ss.s.o.Guard.AuthFailed(ss.ip, user)
	ss.loginFail++
	ss.s.log.Info("ftp login failed", "conn", ss.id, "ip", ss.ip.String(), "user", user, "delay", delay, "banned", banned)
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ss.ctx.Done():
			t.Stop()
		}
	}
	if banned {
		ss.hangup(replyBanned)
		return nil, errHungUp
	}
	if ss.loginFail >= ss.s.lim.MaxLoginFailures {
		ss.hangup(replyLoginFails)
		return nil, errHungUp
	}
	return nil, refuse(530, "Login incorrect")
}

// cmdACCT: RFC 959 4.1.1; accounts are not used (202 superfluous).
func (ss *session) cmdACCT(string) (*reply, error) {
	if ss.state != stateLoggedIn {
		return nil, refuse(503, "Login with USER and PASS first")
	}
	return ok(202, "ACCT not needed"), nil
}

// cmdREIN: RFC 959 4.1.1, the state right after connection (RFC 7151
// 3.2.1: HOST too). RFC 4217 13 says REIN also clears TLS; we keep the
// control connection protected instead (clearing it is what CCC does, and
// that is refused for the same reason) and say so in the reply.
func (ss *session) cmdREIN(string) (*reply, error) {
	ss.logout()
	ss.resetParams()
	ss.pbsz, ss.protP = false, false
	if ss.tlsState != nil {
		return ok(220, "Service ready for new user (TLS stays on)"), nil
	}
	return ok(220, "Service ready for new user"), nil
}

// cmdQUIT: RFC 959 4.1.1. A transfer in progress finishes and gets its
// reply first.
func (ss *session) cmdQUIT(string) (*reply, error) {
	ss.waitTransfer()
	ss.quitting = true
	return ok(221, "Goodbye"), nil
}

// cmdAUTH: RFC 2228 3 and RFC 4217 4.
func (ss *session) cmdAUTH(arg string) (*reply, error) {
	mech := strings.ToUpper(strings.TrimSpace(arg))
	switch mech {
	case "TLS", "TLS-C", "SSL", "TLS-P":
	default:
		return nil, refuse(504, "Unknown security mechanism; use AUTH TLS")
	}
	if ss.s.tlsConfig == nil {
		return nil, refuse(431, "TLS is not available")
	}
	if ss.tlsState != nil {
		return nil, refuse(503, "TLS is already in use")
	}
	// RFC 4217 4.2: 234 for an AUTH TLS the server honours.
	if err := ss.writeReply(ok(234, "AUTH "+mech+" ok, start TLS")); err != nil {
		return nil, errHungUp
	}
	// ARCHITECTURE.md: bytes the client pipelined after AUTH in plaintext
	// are not commands of the protected session (command injection).
	if n := ss.in.buffered(); n > 0 {
		ss.s.log.Warn("ftp plaintext after AUTH TLS discarded", "conn", ss.id, "ip", ss.ip.String(), "bytes", n)
		ss.in.reset()
	}
	tc, err := ss.s.handshake(ss.ctx, ss.raw, &binding{tag: ss.tag})
	if err != nil {
		// RFC 4217 10.1: a handshake that failed part-way leaves the
		// connection in an unknown state: drop it.
		ss.s.log.Info("ftp tls handshake failed", "conn", ss.id, "ip", ss.ip.String(), "err", err.Error())
		ss.raw.Close()
		return nil, errHungUp
	}
	ss.setTLS(tc)
	// RFC 4217 4.2 (after RFC 2228 3): the user must log in again and the
	// transfer parameters are reset, as after REIN.
	ss.logout()
	ss.resetParams()
	ss.pbsz, ss.protP = false, false
	if mech == "SSL" || mech == "TLS-P" {
		// The historical names also protect the data connection.
		ss.pbsz, ss.protP = true, true
	}
	return nil, nil
}

// cmdPBSZ: RFC 4217 9 (after RFC 2228 3): only after TLS, and the size is
// always 0 for a streaming mechanism.
func (ss *session) cmdPBSZ(arg string) (*reply, error) {
	if ss.tlsState == nil {
		return nil, refuse(503, "PBSZ needs AUTH TLS first")
	}
	if _, err := strconv.ParseUint(strings.TrimSpace(arg), 10, 32); err != nil {
		return nil, errArg
	}
	ss.pbsz = true
	return ok(200, "PBSZ=0"), nil
}

// cmdPROT: RFC 4217 9: C or P; S and E are not supported by TLS (536);
// PBSZ must come first (503). Whether the level is acceptable is checked at
// the transfer (RFC 4217 10.2, 521).
func (ss *session) cmdPROT(arg string) (*reply, error) {
	if !ss.pbsz {
		return nil, refuse(503, "PROT needs PBSZ first")
	}
	switch strings.ToUpper(strings.TrimSpace(arg)) {
	case "C":
		ss.protP = false
		return ok(200, "Protection level set to Clear"), nil
	case "P":
		ss.protP = true
		return ok(200, "Protection level set to Private"), nil
	case "S", "E":
		return nil, refuse(536, "Only C and P are supported")
	default:
		return nil, refuse(504, "Unknown protection level")
	}
}

// cmdCCC: RFC 4217 5: 533 without TLS, 534 when the server will not clear
// it (never: a cleared control connection exposes every later command).
func (ss *session) cmdCCC(string) (*reply, error) {
	if ss.tlsState == nil {
		return nil, refuse(533, "Control connection is not protected")
	}
	return nil, refuse(534, "CCC refused by policy")
}

// cmdHOST: RFC 7151 3. There is one virtual host: any name is accepted
// (3.2 allows routing every name to one host), but an address literal must
// be the address the client reached (504), a port is a syntax error (501),
// and a TLS server name must match (3.2.2).
func (ss *session) cmdHOST(arg string) (*reply, error) {
	if ss.state == stateLoggedIn {
		return nil, errBadSequence // RFC 7151 3: HOST after login is 503
	}
	h := strings.TrimSpace(arg)
	switch {
	case strings.HasPrefix(h, "["):
		end := strings.IndexByte(h, ']')
		if end < 0 || end != len(h)-1 {
			return nil, errArg
		}
		ip, err := netip.ParseAddr(h[1:end])
		if err != nil || !ip.Is6() {
			return nil, errArg
		}
		if ip.Unmap() != ss.local {
			return nil, refuse(504, "Not an address of this server")
		}
	case strings.Contains(h, ":"):
		return nil, errArg
	default:
		if ip, err := netip.ParseAddr(h); err == nil {
			if ip.Unmap() != ss.local {
				return nil, refuse(504, "Not an address of this server")
			}
		} else if !validHostname(h) {
			return nil, errArg
		}
		if ss.tlsState != nil && ss.tlsState.ServerName != "" && !strings.EqualFold(ss.tlsState.ServerName, h) {
			return nil, refuse(504, "HOST does not match the TLS server name")
		}
	}
	ss.host = strings.ToLower(h)
	ss.state, ss.user = stateNew, ""
	return ok(220, "Host accepted"), nil
}

// validHostname: RFC 7151 3.1's domain (letters, digits, hyphens; labels of
// 1-63; at most 253 octets).
func validHostname(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
