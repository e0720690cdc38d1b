package ftpserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"sync/atomic"
	"time"

	"posta/internal/tlsconf"
)

// binding is what a TLS handshake needs to know about its connection: the
// session it belongs to and whether it is a data connection.
type binding struct {
	tag  []byte // "posta-ftp-session:" + session id, stored in tickets
	data bool
	// foreign is set when a data connection offered a ticket of another
	// session (or none of ours), for the log.
	foreign atomic.Bool
}

const bindingPrefix = "posta-ftp-session:"

// newTLSConfig is the listener's one tls.Config (tlsconf doc.go: control and
// data connections must share it, for tickets). A ClientHello hook gives
// each handshake a clone that marks the tickets it issues with the session's
// tag (SessionState.Extra), and, on data connections, resumes only tickets
// carrying that tag. So a data connection resumes only a session of the
// control connection it belongs to (or of an earlier data connection of the
// same control connection): RFC 4217 10.2 lets the server insist on a
// cached session, and the tag makes "cached" mean "this client's".
//
// Tickets are encrypted and decrypted with the base config's keys (the
// clone's own would differ once rotated), so every connection of the
// listener agrees.
func (s *Server) newTLSConfig(m *tlsconf.Manager) *tls.Config {
	base := m.ServerConfig("ftp") // RFC 7301 ALPN name "ftp"
	prev := base.GetConfigForClient
	base.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		var cfg *tls.Config
		if prev != nil {
			c, err := prev(h)
			if err != nil {
				return nil, err
			}
			cfg = c
		}
		v, ok := s.bindings.Load(h.Conn)
		if !ok {
			return cfg, nil
		}
		b := v.(*binding)
		if cfg == nil {
			cfg = base.Clone()
		}
		cfg.GetConfigForClient = nil
		cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
			ss.Extra = append(ss.Extra, b.tag)
			return base.EncryptTicket(cs, ss)
		}
		if b.data {
			cfg.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
				ss, err := base.DecryptTicket(identity, cs)
				if ss == nil || err != nil {
					return ss, err
				}
				for _, e := range ss.Extra {
					if bytes.Equal(e, b.tag) {
						return ss, nil
					}
				}
				// Not this session's: a full handshake follows, and the
				// transfer is refused for not resuming.
				b.foreign.Store(true)
				return nil, nil
			}
		}
		return cfg, nil
	}
	return base
}

// handshake runs the server side of TLS on raw for session ss, bounded by
// the connect timeout and ctx.
func (s *Server) handshake(ctx context.Context, raw net.Conn, b *binding) (*tls.Conn, error) {
	s.bindings.Store(raw, b)
	defer s.bindings.Delete(raw)
	tc := tls.Server(raw, s.tlsConfig)
	raw.SetDeadline(time.Now().Add(s.lim.ConnectTimeout))
	ctx, cancel := context.WithTimeout(ctx, s.lim.ConnectTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Time{})
	return tc, nil
}
