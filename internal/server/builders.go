package server

import (
	"posta/internal/config"
	"posta/internal/smtpserver"
)

// builders holds the protocol servers that exist, by config.Listener.Protocol.
// A protocol without a builder opens no listener.
var builders = map[string]Builder{
	"smtp": func(s *Server, l config.Listener) (Protocol, error) {
		return smtpserver.New(smtpserver.Options{
			Config: s.Config, Listener: l, Directory: s.Directory, Guard: s.Guard, TLS: s.TLS,
			Deliverer: s.Delivery, Logger: s.Log.With("listener", l.Name),
		})
	},
}
