package server

import (
	"fmt"

	"posta/internal/config"
	"posta/internal/ftpserver"
	"posta/internal/imapserver"
	"posta/internal/imapwire"
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
	"imap": func(s *Server, l config.Listener) (Protocol, error) {
		p := s.Config.IMAP.Limits
		return imapserver.New(imapserver.Options{
			Config: s.Config, Listener: l, Directory: s.Directory, Guard: s.Guard, TLS: s.TLS,
			Store: s.Mail, Spool: s.Delivery, Sessions: s.imapSessions, Logger: s.Log.With("listener", l.Name),
			Limits: imapserver.Limits{
				Wire: imapwire.Limits{
					MaxLine: int(p.MaxLineLength), MaxCommand: int(p.MaxCommandLength),
					MaxLiteral: int64(p.MaxLiteral), MaxAppend: int64(p.MaxAppend),
				},
				IdleTimeout: p.IdleTimeout.D(), LoginTimeout: p.LoginTimeout.D(), WriteTimeout: p.WriteTimeout.D(),
				MaxCommandsBeforeAuth: p.MaxCommandsBeforeAuth, MaxErrors: p.MaxErrors,
				MaxSessionsPerUser: p.MaxSessionsPerUser,
			},
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
	"ftp": func(s *Server, l config.Listener) (Protocol, error) {
		f := s.Config.FTP
		byNet, err := ftpserver.ParseNetworkAddresses(f.PassiveAddressByNetwork)
		if err != nil {
			return nil, fmt.Errorf("ftp.passive_address_by_network: %w", err)
		}
		lim := f.Limits
		return ftpserver.New(ftpserver.Options{
			Listener: l, Hostname: s.Config.Hostname, Directory: s.Directory, Files: s.Files, Guard: s.Guard,
			TLS: s.TLS, Logger: s.Log.With("listener", l.Name),
			Limits: ftpserver.Limits{
				MaxLineLength: lim.MaxLineLength, IdleTimeout: lim.IdleTimeout.D(), DataTimeout: lim.DataTimeout.D(),
				ConnectTimeout: lim.ConnectTimeout.D(), MaxErrors: lim.MaxErrors,
				MaxErrorsBeforeLogin: lim.MaxErrorsBeforeLogin, MaxLoginFailures: lim.MaxLoginFailures,
				MaxASCIIScan: int64(lim.MaxASCIIScan), MaxDrain: int64(lim.MaxDrain),
			},
			AllowPlaintextAuth:      s.Config.AllowPlaintextAuth,
			TLSLogin:                ftpserver.TLSPolicy(f.TLSLogin),
			TLSData:                 ftpserver.TLSPolicy(f.TLSData),
			AllowTLSWithoutResume:   !f.TLSDataResume,
			Anonymous:               f.Anonymous,
			PassivePortMin:          f.PassivePortMin,
			PassivePortMax:          f.PassivePortMax,
			PassiveAddress:          f.PassiveAddress,
			PassiveAddressByNetwork: byNet,
		})
	},
}
