package postatest

import (
	"context"
	"crypto/tls"
	"net"
	"sync"

	"posta/internal/config"
	"posta/internal/server"
)

// tlsEcho stands in for a protocol server: it completes a TLS handshake on
// implicit-TLS listeners and closes.
type tlsEcho struct {
	cfg *tls.Config
	mu  sync.Mutex
	ln  net.Listener
}

func newTLSEcho(s *server.Server, l config.Listener) (server.Protocol, error) {
	e := &tlsEcho{}
	if l.ImplicitTLS {
		e.cfg = s.TLS.ServerConfig("imap")
	}
	return e, nil
}

func (e *tlsEcho) Serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		if e.cfg != nil {
			tc := tls.Server(c, e.cfg)
			tc.Handshake()
			c = tc
		}
		c.Close()
	}
}

func (e *tlsEcho) Shutdown(context.Context) error { return nil }
func (e *tlsEcho) Close() error                   { return nil }
