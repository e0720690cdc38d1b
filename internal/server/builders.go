package server

import (
	"posta/internal/config"
	"posta/internal/pop3server"
	"posta/internal/sftpserver"
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
	"pop3": func(s *Server, l config.Listener) (Protocol, error) {
		p := s.Config.POP3
		return pop3server.New(pop3server.Options{
			Config: s.Config, Listener: l, Directory: s.Directory, Guard: s.Guard, TLS: s.TLS,
			Store: s.Mail, Locks: s.pop3Locks, Logger: s.Log.With("listener", l.Name),
			Limits: pop3server.Limits{
				MaxLineLength: p.Limits.MaxLineLength, MaxAuthLineLength: p.Limits.MaxAuthLineLength,
				IdleTimeout: p.Limits.IdleTimeout.D(), WriteTimeout: p.Limits.WriteTimeout.D(),
				MaxCommandsBeforeAuth: p.Limits.MaxCommandsBeforeAuth, MaxErrors: p.Limits.MaxErrors,
			},
			Policy: pop3server.Policy{ExpireDays: p.ExpireDays, DeletedToTrash: p.DeletedToTrash, LoginDelay: p.LoginDelay.D()},
		})
	},
	"sftp": func(s *Server, l config.Listener) (Protocol, error) {
		p := s.Config.SFTP.Limits
		return sftpserver.New(sftpserver.Options{
			Config: s.Config, Listener: l, Directory: s.Directory, Guard: s.Guard,
			Files: s.Files, DB: s.DB, Logger: s.Log.With("listener", l.Name),
			Limits: sftpserver.Limits{
				LoginTimeout: p.LoginTimeout.D(), IdleTimeout: p.IdleTimeout.D(), MaxAuthTries: p.MaxAuthTries,
				MaxSessions: p.MaxSessions, MaxHandles: p.MaxHandles, MaxReorderBytes: int64(p.MaxReorderBuffer),
			},
		})
	},
}
