package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Validate checks every key; each error names the key and what is wrong.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if !validHostname(c.Hostname) {
		bad("hostname", "%q is not a valid host name (letters, digits, hyphens and dots)", c.Hostname)
	}
	if strings.TrimSpace(c.DataDir) == "" {
		bad("data_dir", "must not be empty")
	}
	if c.BindAddress != "" {
		if _, err := netip.ParseAddr(c.BindAddress); err != nil {
			bad("bind_address", "%q is not an IP address", c.BindAddress)
		}
	}
	if c.PortOffset < 0 || c.PortOffset > 65535 {
		bad("port_offset", "%d is out of range 0-65535", c.PortOffset)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "cert_file and key_file must be set together")
	}

	positive := func(key string, v int) {
		if v <= 0 {
			bad(key, "must be at least 1 (got %d)", v)
		}
	}
	positiveD := func(key string, v Duration) {
		if v <= 0 {
			bad(key, "must be a positive duration (got %s)", v.D())
		}
	}
	g := c.Guard
	positive("guard.max_conns_per_ip", g.MaxConnsPerIP)
	positive("guard.max_conns", g.MaxConns)
	positive("guard.ban_after", g.BanAfter)
	positiveD("guard.fail_delay", g.FailDelay)
	positiveD("guard.max_fail_delay", g.MaxFailDelay)
	positiveD("guard.ban_window", g.BanWindow)
	positiveD("guard.ban_duration", g.BanDuration)
	if g.MaxFailDelay < g.FailDelay {
		bad("guard.max_fail_delay", "%s is less than guard.fail_delay %s", g.MaxFailDelay.D(), g.FailDelay.D())
	}
	if g.MaxConnsPerIP > g.MaxConns {
		bad("guard.max_conns_per_ip", "%d is more than guard.max_conns %d", g.MaxConnsPerIP, g.MaxConns)
	}
	positiveD("shutdown.grace", c.Shutdown.Grace)
	if d := c.Mailstore.FlagSyncDelay.D(); d < 0 || d > 10*time.Second {
		bad("mailstore.flag_sync_delay", "%s is out of range 0-10s", d)
	}
	positiveD("queue.max_age", c.Queue.MaxAge)
	positiveD("queue.delay_notice", c.Queue.DelayNotice)
	positive("queue.workers", c.Queue.Workers)
	if c.Queue.RemotePort < 1 || c.Queue.RemotePort > 65535 {
		bad("queue.remote_port", "%d is out of range 1-65535", c.Queue.RemotePort)
	}
	if c.Queue.DNSServer != "" {
		if err := validHostPort(c.Queue.DNSServer); err != nil {
			bad("queue.dns_server", "%q %v", c.Queue.DNSServer, err)
		}
	}
	sl := c.SMTP.Limits
	if sl.MaxMessageSize < 1024 {
		bad("smtp.limits.max_message_size", "%s is below 1KiB", sl.MaxMessageSize)
	}
	if sl.MaxRecipients < 1 {
		bad("smtp.limits.max_recipients", "must be at least 1 (got %d)", sl.MaxRecipients)
	}
	if sl.MaxLineLength < 512 {
		bad("smtp.limits.max_line_length", "must be at least 512 (RFC 5321 4.5.3.1.4; got %d)", sl.MaxLineLength)
	}
	positiveD("smtp.limits.command_timeout", sl.CommandTimeout)
	positiveD("smtp.limits.data_timeout", sl.DataTimeout)
	positive("smtp.limits.max_errors", sl.MaxErrors)
	p := c.POP3
	if p.ExpireDays < 0 {
		bad("pop3.expire_days", "must not be negative (got %d)", p.ExpireDays)
	}
	if p.LoginDelay < 0 {
		bad("pop3.login_delay", "must not be negative (got %s)", p.LoginDelay.D())
	}
	pl := p.Limits
	if pl.MaxLineLength < 255 {
		bad("pop3.limits.max_line_length", "must be at least 255 (RFC 2449 4; got %d)", pl.MaxLineLength)
	}
	if pl.MaxAuthLineLength < pl.MaxLineLength {
		bad("pop3.limits.max_auth_line_length", "%d is less than pop3.limits.max_line_length %d", pl.MaxAuthLineLength, pl.MaxLineLength)
	}
	if pl.IdleTimeout.D() < 10*time.Minute {
		bad("pop3.limits.idle_timeout", "must be at least 10m (RFC 1939 3; got %s)", pl.IdleTimeout.D())
	}
	positiveD("pop3.limits.write_timeout", pl.WriteTimeout)
	positive("pop3.limits.max_commands_before_auth", pl.MaxCommandsBeforeAuth)
	positive("pop3.limits.max_errors", pl.MaxErrors)
	il := c.IMAP.Limits
	if il.MaxLineLength < 8192 {
		bad("imap.limits.max_line_length", "must be at least 8KiB (RFC 7162 4; got %d)", il.MaxLineLength)
	}
	if il.MaxCommandLength < il.MaxLineLength {
		bad("imap.limits.max_command_length", "%d is less than imap.limits.max_line_length %d", il.MaxCommandLength, il.MaxLineLength)
	}
	if il.MaxLiteral < 1024 {
		bad("imap.limits.max_literal", "must be at least 1KiB (got %d)", il.MaxLiteral)
	}
	if il.MaxAppend < 64<<10 {
		bad("imap.limits.max_append", "must be at least 64KiB (got %d)", il.MaxAppend)
	}
	if il.IdleTimeout.D() < 30*time.Minute {
		bad("imap.limits.idle_timeout", "must be at least 30m (RFC 9051 5.4; got %s)", il.IdleTimeout.D())
	}
	positiveD("imap.limits.login_timeout", il.LoginTimeout)
	positiveD("imap.limits.write_timeout", il.WriteTimeout)
	positive("imap.limits.max_commands_before_auth", il.MaxCommandsBeforeAuth)
	positive("imap.limits.max_errors", il.MaxErrors)
	positive("imap.limits.max_sessions_per_user", il.MaxSessionsPerUser)
	f := c.FTP
	for key, val := range map[string]string{"ftp.tls_login": f.TLSLogin, "ftp.tls_data": f.TLSData} {
		switch val {
		case "non-loopback", "required", "optional":
		default:
			bad(key, "%q is not one of non-loopback, required, optional", val)
		}
	}
	if f.Anonymous && f.AnonymousDir == "" {
		bad("ftp.anonymous_dir", "must be set when ftp.anonymous is on")
	}
	if (f.PassivePortMin == 0) != (f.PassivePortMax == 0) {
		bad("ftp.passive_port_min", "set both passive_port_min and passive_port_max, or neither")
	} else if f.PassivePortMin != 0 && (f.PassivePortMin < 1024 || f.PassivePortMax > 65535 || f.PassivePortMin > f.PassivePortMax) {
		bad("ftp.passive_port_min", "range %d-%d must lie within 1024-65535, min not above max", f.PassivePortMin, f.PassivePortMax)
	}
	ftl := f.Limits
	if ftl.MaxLineLength < 512 {
		bad("ftp.limits.max_line_length", "must be at least 512 (got %d)", ftl.MaxLineLength)
	}
	positiveD("ftp.limits.idle_timeout", ftl.IdleTimeout)
	positiveD("ftp.limits.data_timeout", ftl.DataTimeout)
	positiveD("ftp.limits.connect_timeout", ftl.ConnectTimeout)
	positive("ftp.limits.max_errors", ftl.MaxErrors)
	positive("ftp.limits.max_errors_before_login", ftl.MaxErrorsBeforeLogin)
	positive("ftp.limits.max_login_failures", ftl.MaxLoginFailures)
	if ftl.MaxASCIIScan <= 0 || ftl.MaxDrain <= 0 {
		bad("ftp.limits", "max_ascii_scan and max_drain must be positive")
	}
	fl := c.SFTP.Limits
	positiveD("sftp.limits.login_timeout", fl.LoginTimeout)
	positiveD("sftp.limits.idle_timeout", fl.IdleTimeout)
	positive("sftp.limits.max_auth_tries", fl.MaxAuthTries)
	positive("sftp.limits.max_sessions", fl.MaxSessions)
	positive("sftp.limits.max_handles", fl.MaxHandles)
	if fl.MaxReorderBuffer < 1<<20 {
		bad("sftp.limits.max_reorder_buffer", "%s is below 1MiB", fl.MaxReorderBuffer)
	}

	seen := map[int]string{}
	for _, l := range c.allListeners() {
		if l.Port < 0 || l.Port > 65535 {
			bad(l.Key, "%d is out of range 0-65535 (0 turns the listener off)", l.Port)
			continue
		}
		if l.Port == 0 {
			continue
		}
		if p := l.Port + c.PortOffset; p > 65535 {
			bad(l.Key, "%d plus port_offset %d is above 65535", l.Port, c.PortOffset)
		}
		if other, dup := seen[l.Port]; dup {
			bad(l.Key, "port %d is also used by %s", l.Port, other)
		}
		seen[l.Port] = l.Key
	}
	return errors.Join(errs...)
}

// validHostPort accepts "host:port" with a valid host name or IP address
// (IPv6 in brackets) and a port 1-65535.
func validHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("is not host:port (an IPv6 address goes in brackets: \"[::1]:53\")")
	}
	if host == "" || !validHostname(host) {
		return errors.New("has no valid host name or IP address")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return errors.New("has no port 1-65535")
	}
	return nil
}

// validHostname accepts an RFC 1123 host name (labels of letters, digits and
// hyphens, 1-63 octets, 253 in all) or an IP literal.
func validHostname(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
