package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Config is the whole configuration. Every field has a default (Default);
// a file only needs the keys it changes.
type Config struct {
	Hostname    string `toml:"hostname" comment:"Name this server uses for itself: in greetings, Received headers and the generated certificate."`
	DataDir     string `toml:"data_dir" comment:"Where everything lives: posta.db, message bodies, file trees, keys and certificates.\nA relative path is taken from the directory of this file (or the working directory without one)."`
	BindAddress string `toml:"bind_address" comment:"Address every listener binds to; empty means all interfaces (IPv4 and IPv6)."`
	PortOffset  int    `toml:"port_offset" comment:"Added to every port below, so 10000 runs SMTP on 10025, IMAP on 10143 and so on (the serve flag --port-offset overrides it)."`
	// AllowPlaintextAuth permits passwords on connections without TLS.
	AllowPlaintextAuth bool `toml:"allow_plaintext_auth" comment:"Accept passwords on connections that are not encrypted (USER/PASS, LOGIN, AUTH PLAIN before STARTTLS).\nNever needed with modern clients; leave it off."`

	Log      Log      `toml:"log" comment:"Logging goes to standard error."`
	TLS      TLS      `toml:"tls" comment:"Certificate for every TLS listener. Without files, a self-signed certificate is generated once in <data_dir>/tls."`
	Guard    Guard    `toml:"guard" comment:"Connection caps and protection against password guessing, shared by every protocol."`
	Shutdown Shutdown `toml:"shutdown"`

	Queue Queue `toml:"queue" comment:"Outbound mail: delivery to other domains' servers, retries and bounces."`

	Mailstore Mailstore `toml:"mailstore" comment:"The mail store shared by SMTP, POP3 and IMAP."`

	SMTP SMTP `toml:"smtp" comment:"Mail in (MX, port 25) and out from your users (submission 587 with STARTTLS, 465 with implicit TLS).\nA port set to 0 turns that one listener off."`
	POP3 POP3 `toml:"pop3" comment:"Mail download (RFC 1939). Port 0 turns a listener off; enabled = false turns the protocol off."`
	IMAP IMAP `toml:"imap" comment:"Mail kept on the server in folders (RFC 9051 and RFC 3501)."`
	FTP  FTP  `toml:"ftp" comment:"File transfer (RFC 959) with FTPS (RFC 4217)."`
	SFTP SFTP `toml:"sftp" comment:"SFTP over SSH, on the same file trees as FTP."`

	// EphemeralPorts makes every enabled listener bind port 0 (a free port
	// chosen by the kernel). Tests use it; it cannot be set from a file.
	EphemeralPorts bool `toml:"-"`
	// file is the path Load read, for messages.
	file string `toml:"-"`
}

// Log settings.
type Log struct {
	Level  string `toml:"level" comment:"debug, info, warn or error."`
	Format string `toml:"format" comment:"text or json."`
}

// TLS settings.
type TLS struct {
	CertFile string `toml:"cert_file" comment:"PEM certificate chain (e.g. from certbot: fullchain.pem). Reloaded when the file changes."`
	KeyFile  string `toml:"key_file" comment:"PEM private key for cert_file."`
}

// Guard settings; see internal/guard.
type Guard struct {
	MaxConnsPerIP  int      `toml:"max_conns_per_ip" comment:"Concurrent connections from one IP address (an IPv6 /64 counts as one)."`
	MaxConns       int      `toml:"max_conns" comment:"Concurrent connections in total, all protocols together."`
	FailDelay      Duration `toml:"fail_delay" comment:"Wait before answering a failed login; doubles with each further failure from the same address."`
	MaxFailDelay   Duration `toml:"max_fail_delay" comment:"Cap on that wait."`
	BanAfter       int      `toml:"ban_after" comment:"Failed logins within ban_window that ban the address."`
	BanWindow      Duration `toml:"ban_window"`
	BanDuration    Duration `toml:"ban_duration" comment:"How long a ban lasts."`
	ExemptLoopback bool     `toml:"exempt_loopback" comment:"Never delay, ban or cap connections from 127.0.0.0/8 and ::1 (webmail or a proxy on this host)."`
}

// Shutdown settings.
type Shutdown struct {
	Grace Duration `toml:"grace" comment:"On SIGINT/SIGTERM: how long busy sessions may take to finish before they are cut."`
}

// Mailstore settings.
type Mailstore struct {
	FlagSyncDelay Duration `toml:"flag_sync_delay" comment:"How long a change of flags only (read, flagged, deleted marks) may wait for its fsync; a power\nfailure can lose that window's flag changes, never a message, expunge or folder (Dovecot's default\nnever bounds it). 0 syncs every flag change before replying (IMAP load ~25% slower)."`
}

// Queue settings.
type Queue struct {
	Enabled     bool     `toml:"enabled" comment:"Deliver queued mail to other servers; false keeps it queued (posta queue list shows it)."`
	MaxAge      Duration `toml:"max_age" comment:"Give up on a message and bounce it after this long (RFC 5321 4.5.4.1 suggests 4-5 days)."`
	DelayNotice Duration `toml:"delay_notice" comment:"Tell the sender once that a message is delayed after this long."`
	Workers     int      `toml:"workers" comment:"Messages sent at the same time."`
	// DNSServer is "host:port" of the resolver asked for outbound MX, A,
	// TXT and TLSA records and for the SPF/DKIM/DMARC checks of inbound
	// mail; empty means the system resolver.
	DNSServer string `toml:"dns_server" comment:"DNS resolver (\"host:port\") for outbound delivery and inbound SPF/DKIM/DMARC checks; empty uses the system resolver.\nA local validating resolver (127.0.0.1:53, e.g. unbound) also turns DANE on for outbound mail."`
	// RemotePort is the TCP port outbound mail is sent to on MX hosts.
	RemotePort int `toml:"remote_port" comment:"Port of other domains' MX hosts (RFC 5321: 25). Change it only for tests or a relay on another port."`
	// TLSReports sends SMTP TLS reports (RFC 8460).
	TLSReports bool `toml:"tls_reports" comment:"Send a daily SMTP TLS report (RFC 8460) to each domain that asks for one with a _smtp._tls record:\nhow TLS went with its servers. Mailed reports come from postmaster@ of the local domain of hostname\n(else the first local domain), DKIM-signed."`
}

// SMTP settings.
type SMTP struct {
	Enabled         bool `toml:"enabled"`
	Port            int  `toml:"port" comment:"MX: mail from other servers to your domains."`
	SubmissionPort  int  `toml:"submission_port" comment:"Submission with STARTTLS (RFC 6409)."`
	SubmissionsPort int  `toml:"submissions_port" comment:"Submission with implicit TLS (RFC 8314)."`
	// SenderMustOwn limits MAIL FROM of an authenticated session to the
	// account's own address and the aliases that reach it.
	SenderMustOwn bool `toml:"sender_must_own" comment:"An authenticated sender may only use its own address, its +detail forms, and aliases that deliver to it in MAIL FROM."`
	// CheckInbound evaluates SPF, DKIM and DMARC of MX mail.
	CheckInbound bool       `toml:"check_inbound" comment:"Evaluate SPF, DKIM and DMARC of mail arriving on the MX port (an Authentication-Results header; DMARC p=reject refused with 550, p=quarantine to Junk). Needs working DNS."`
	Limits       SMTPLimits `toml:"limits"`
}

// SMTPLimits bound every SMTP session; none of them may be zero.
type SMTPLimits struct {
	MaxMessageSize Size     `toml:"max_message_size" comment:"Largest message accepted (advertised with SIZE, RFC 1870)."`
	MaxRecipients  int      `toml:"max_recipients" comment:"Recipients per message (RFC 5321 4.5.3.1.8 requires at least 100)."`
	MaxLineLength  int      `toml:"max_line_length" comment:"Longest command line in octets (RFC 5321 4.5.3.1.4 requires at least 512)."`
	CommandTimeout Duration `toml:"command_timeout" comment:"Idle time allowed between commands (RFC 5321 4.5.3.2.7 suggests 5 minutes)."`
	DataTimeout    Duration `toml:"data_timeout" comment:"Time allowed for the whole message data after DATA or BDAT."`
	MaxErrors      int      `toml:"max_errors" comment:"Failed commands after which the session is closed."`
}

// POP3 settings.
type POP3 struct {
	Enabled        bool       `toml:"enabled"`
	Port           int        `toml:"port" comment:"POP3 with STLS."`
	TLSPort        int        `toml:"tls_port" comment:"POP3 with implicit TLS."`
	ExpireDays     int        `toml:"expire_days" comment:"Keep mail a client downloaded over POP3 for this many days, then remove it (advertised with EXPIRE, RFC 2449 6.7); 0 keeps it until the client deletes it."`
	DeletedToTrash bool       `toml:"deleted_to_trash" comment:"Move mail deleted over POP3 to Trash instead of removing it."`
	LoginDelay     Duration   `toml:"login_delay" comment:"Minimum time between two POP3 logins of one account (LOGIN-DELAY, RFC 2449 6.5); 0s for none."`
	Limits         POP3Limits `toml:"limits"`
}

// POP3Limits bound every POP3 session.
type POP3Limits struct {
	MaxLineLength         int      `toml:"max_line_length" comment:"Longest command line in octets (RFC 2449 4 requires at least 255)."`
	MaxAuthLineLength     int      `toml:"max_auth_line_length" comment:"Longest AUTH response line (RFC 5034 4)."`
	IdleTimeout           Duration `toml:"idle_timeout" comment:"Idle time allowed between commands (RFC 1939 3 requires at least 10 minutes)."`
	WriteTimeout          Duration `toml:"write_timeout" comment:"A client that reads nothing of a reply for this long is cut."`
	MaxCommandsBeforeAuth int      `toml:"max_commands_before_auth"`
	MaxErrors             int      `toml:"max_errors" comment:"Refused commands after which the session is closed."`
}

// IMAP settings.
type IMAP struct {
	Enabled bool       `toml:"enabled"`
	Port    int        `toml:"port" comment:"IMAP with STARTTLS."`
	TLSPort int        `toml:"tls_port" comment:"IMAP with implicit TLS."`
	Limits  IMAPLimits `toml:"limits"`
}

// IMAPLimits bound every IMAP session.
type IMAPLimits struct {
	MaxLineLength         Size     `toml:"max_line_length" comment:"Longest command line, literals excluded (RFC 9051 4 sets no limit; RFC 7162 4 asks for at least 8192 octets)."`
	MaxCommandLength      Size     `toml:"max_command_length" comment:"Longest command, its literals included (APPEND messages excluded)."`
	MaxLiteral            Size     `toml:"max_literal" comment:"Largest literal in a command other than APPEND."`
	MaxAppend             Size     `toml:"max_append" comment:"Largest message APPEND accepts (announced as APPENDLIMIT, RFC 7889)."`
	IdleTimeout           Duration `toml:"idle_timeout" comment:"Idle time allowed between commands and in IDLE (RFC 9051 5.4 requires at least 30 minutes)."`
	LoginTimeout          Duration `toml:"login_timeout" comment:"Idle time allowed before login."`
	WriteTimeout          Duration `toml:"write_timeout" comment:"A client that reads nothing of a response for this long is cut."`
	MaxCommandsBeforeAuth int      `toml:"max_commands_before_auth"`
	MaxErrors             int      `toml:"max_errors" comment:"Commands answered BAD in a row after which the session is closed."`
	MaxSessionsPerUser    int      `toml:"max_sessions_per_user" comment:"Concurrent IMAP sessions one account may hold."`
}

// FTP settings.
type FTP struct {
	Enabled                 bool      `toml:"enabled"`
	Port                    int       `toml:"port" comment:"FTP with AUTH TLS."`
	TLSPort                 int       `toml:"tls_port" comment:"FTPS with implicit TLS."`
	TLSLogin                string    `toml:"tls_login" comment:"Who must use TLS before sending a password: non-loopback, required or optional (allow_plaintext_auth overrides it)."`
	TLSData                 string    `toml:"tls_data" comment:"Who must protect data connections (PROT P): non-loopback, required or optional."`
	TLSDataResume           bool      `toml:"tls_data_resume" comment:"A protected data connection must resume its own control connection's TLS session (as vsftpd requires)."`
	Anonymous               bool      `toml:"anonymous" comment:"Allow anonymous/ftp logins, read-only, in anonymous_dir."`
	AnonymousDir            string    `toml:"anonymous_dir"`
	PassivePortMin          int       `toml:"passive_port_min" comment:"Passive data port range; 0 and 0 let the kernel choose."`
	PassivePortMax          int       `toml:"passive_port_max"`
	PassiveAddress          string    `toml:"passive_address" comment:"Address announced in PASV replies behind NAT (an IPv4 address or host name); empty: the control connection's."`
	PassiveAddressByNetwork string    `toml:"passive_address_by_network" comment:"Per-client-network overrides, e.g. \"192.168.0.0/16=192.168.1.2, 10.0.0.0/8=10.0.0.5\"."`
	Limits                  FTPLimits `toml:"limits"`
}

// FTPLimits bound every FTP session.
type FTPLimits struct {
	MaxLineLength        int      `toml:"max_line_length" comment:"Longest command line in octets."`
	IdleTimeout          Duration `toml:"idle_timeout"`
	DataTimeout          Duration `toml:"data_timeout" comment:"A data connection that moves nothing for this long is cut."`
	ConnectTimeout       Duration `toml:"connect_timeout" comment:"Time for the client to open a data connection."`
	MaxErrors            int      `toml:"max_errors"`
	MaxErrorsBeforeLogin int      `toml:"max_errors_before_login"`
	MaxLoginFailures     int      `toml:"max_login_failures" comment:"Failed logins on one connection before it is closed."`
	MaxASCIIScan         Size     `toml:"max_ascii_scan" comment:"Largest file whose ASCII-mode size SIZE computes."`
	MaxDrain             Size     `toml:"max_drain" comment:"Data read and discarded after a refused upload, so the client sees the reply."`
}

// SFTP settings.
type SFTP struct {
	Enabled bool       `toml:"enabled"`
	Port    int        `toml:"port" comment:"SSH for SFTP only (22 usually belongs to the system's sshd)."`
	Limits  SFTPLimits `toml:"limits"`
}

// SFTPLimits bound every SSH connection.
type SFTPLimits struct {
	LoginTimeout     Duration `toml:"login_timeout" comment:"Time allowed from connect to a successful login."`
	IdleTimeout      Duration `toml:"idle_timeout" comment:"Idle time allowed on a logged-in connection."`
	MaxAuthTries     int      `toml:"max_auth_tries" comment:"Authentication attempts (passwords and keys offered) per connection."`
	MaxSessions      int      `toml:"max_sessions" comment:"SSH channels per connection."`
	MaxHandles       int      `toml:"max_handles" comment:"Open files and directories per SFTP session."`
	MaxReorderBuffer Size     `toml:"max_reorder_buffer" comment:"Out-of-order upload data held per session while earlier writes arrive."`
}

// DefaultDataDir is the data directory when neither the file nor a flag sets one.
const DefaultDataDir = "./posta-data"

// Default returns the embedded default configuration: every key set.
func Default() *Config {
	host, err := os.Hostname()
	if err != nil || !validHostname(host) {
		host = "localhost"
	}
	return &Config{
		Hostname: strings.ToLower(host),
		DataDir:  DefaultDataDir,
		Log:      Log{Level: "info", Format: "text"},
		Guard: Guard{
			MaxConnsPerIP: 50,
			MaxConns:      5000,
			FailDelay:     Duration(500 * 1e6),
			MaxFailDelay:  Duration(15 * 1e9),
			BanAfter:      10,
			BanWindow:     Duration(10 * 60 * 1e9),
			BanDuration:   Duration(30 * 60 * 1e9),
		},
		Shutdown:  Shutdown{Grace: Duration(10 * 1e9)},
		Mailstore: Mailstore{FlagSyncDelay: Duration(200 * 1e6)},
		Queue:     Queue{Enabled: true, MaxAge: Duration(5 * 24 * 3600 * 1e9), DelayNotice: Duration(4 * 3600 * 1e9), Workers: 4, RemotePort: 25, TLSReports: true},
		SMTP: SMTP{Enabled: true, Port: 25, SubmissionPort: 587, SubmissionsPort: 465, SenderMustOwn: true, CheckInbound: true,
			Limits: SMTPLimits{
				MaxMessageSize: 50 << 20,
				MaxRecipients:  100,
				MaxLineLength:  2000,
				CommandTimeout: Duration(5 * 60 * 1e9),
				DataTimeout:    Duration(10 * 60 * 1e9),
				MaxErrors:      20,
			}},
		POP3: POP3{Enabled: true, Port: 110, TLSPort: 995,
			Limits: POP3Limits{
				MaxLineLength:         512,
				MaxAuthLineLength:     4096,
				IdleTimeout:           Duration(10 * 60 * 1e9),
				WriteTimeout:          Duration(5 * 60 * 1e9),
				MaxCommandsBeforeAuth: 30,
				MaxErrors:             20,
			}},
		IMAP: IMAP{Enabled: true, Port: 143, TLSPort: 993,
			Limits: IMAPLimits{
				MaxLineLength:         64 << 10,
				MaxCommandLength:      256 << 10,
				MaxLiteral:            64 << 10,
				MaxAppend:             50 << 20,
				IdleTimeout:           Duration(30 * 60 * 1e9),
				LoginTimeout:          Duration(60 * 1e9),
				WriteTimeout:          Duration(5 * 60 * 1e9),
				MaxCommandsBeforeAuth: 30,
				MaxErrors:             20,
				MaxSessionsPerUser:    50,
			}},
		FTP: FTP{Enabled: true, Port: 21, TLSPort: 990, TLSLogin: "non-loopback", TLSData: "non-loopback", TLSDataResume: true,
			Limits: FTPLimits{
				MaxLineLength:        4608,
				IdleTimeout:          Duration(5 * 60 * 1e9),
				DataTimeout:          Duration(5 * 60 * 1e9),
				ConnectTimeout:       Duration(60 * 1e9),
				MaxErrors:            20,
				MaxErrorsBeforeLogin: 5,
				MaxLoginFailures:     3,
				MaxASCIIScan:         128 << 20,
				MaxDrain:             16 << 20,
			}},
		SFTP: SFTP{Enabled: true, Port: 2022,
			Limits: SFTPLimits{
				LoginTimeout:     Duration(60 * 1e9),
				IdleTimeout:      Duration(15 * 60 * 1e9),
				MaxAuthTries:     6,
				MaxSessions:      10,
				MaxHandles:       256,
				MaxReorderBuffer: 32 << 20,
			}},
	}
}

// Load reads a TOML file over the defaults and validates the result. An
// empty path returns the validated defaults. Unknown keys are errors, so a
// typo never silently leaves a default in force.
func Load(path string) (*Config, error) {
	c := Default()
	if path == "" {
		return c, c.Validate()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.decode(b); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c.file = path
	if !filepath.IsAbs(c.DataDir) {
		c.DataDir = filepath.Join(filepath.Dir(path), c.DataDir)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

func (c *Config) decode(b []byte) error {
	d := toml.NewDecoder(bytes.NewReader(b)).DisallowUnknownFields()
	err := d.Decode(c)
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		keys := make([]string, 0, len(strict.Errors))
		for _, e := range strict.Errors {
			keys = append(keys, strings.Join(e.Key(), "."))
		}
		return fmt.Errorf("unknown key %s", strings.Join(keys, ", "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		if k := de.Key(); len(k) > 0 {
			return fmt.Errorf("%s (line %d, column %d): %s", strings.Join(k, "."), row, col, de.Error())
		}
		return fmt.Errorf("line %d, column %d: %s", row, col, de.Error())
	}
	return err
}

// File is the path the configuration was loaded from, or "" for the defaults.
func (c *Config) File() string { return c.file }

// Listener is one socket a protocol serves, with the config key that sets its port.
type Listener struct {
	Name        string // "smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps", "ftp", "ftps", "sftp"
	Protocol    string // "smtp", "pop3", "imap", "ftp", "sftp"
	Key         string // config key of the port, e.g. "smtp.submission_port"
	Port        int    // configured port before the offset; 0 = off
	ImplicitTLS bool
}

// Listeners returns every listener of every enabled protocol whose port is
// not 0, in a fixed order.
func (c *Config) Listeners() []Listener {
	var out []Listener
	for _, l := range c.allListeners() {
		if l.enabled && l.Port != 0 {
			out = append(out, l.Listener)
		}
	}
	return out
}

type listenerSetting struct {
	Listener
	enabled bool
}

// allListeners is the one table of listeners and the keys that set them.
func (c *Config) allListeners() []listenerSetting {
	l := func(enabled bool, proto, name, key string, port int, tls bool) listenerSetting {
		return listenerSetting{Listener{Name: name, Protocol: proto, Key: key, Port: port, ImplicitTLS: tls}, enabled}
	}
	return []listenerSetting{
		l(c.SMTP.Enabled, "smtp", "smtp", "smtp.port", c.SMTP.Port, false),
		l(c.SMTP.Enabled, "smtp", "submission", "smtp.submission_port", c.SMTP.SubmissionPort, false),
		l(c.SMTP.Enabled, "smtp", "submissions", "smtp.submissions_port", c.SMTP.SubmissionsPort, true),
		l(c.POP3.Enabled, "pop3", "pop3", "pop3.port", c.POP3.Port, false),
		l(c.POP3.Enabled, "pop3", "pop3s", "pop3.tls_port", c.POP3.TLSPort, true),
		l(c.IMAP.Enabled, "imap", "imap", "imap.port", c.IMAP.Port, false),
		l(c.IMAP.Enabled, "imap", "imaps", "imap.tls_port", c.IMAP.TLSPort, true),
		l(c.FTP.Enabled, "ftp", "ftp", "ftp.port", c.FTP.Port, false),
		l(c.FTP.Enabled, "ftp", "ftps", "ftp.tls_port", c.FTP.TLSPort, true),
		l(c.SFTP.Enabled, "sftp", "sftp", "sftp.port", c.SFTP.Port, false),
	}
}

// Addr is the host:port a listener binds, with the offset applied.
func (c *Config) Addr(l Listener) string {
	port := l.Port + c.PortOffset
	if c.EphemeralPorts {
		port = 0
	}
	return net.JoinHostPort(c.BindAddress, fmt.Sprint(port))
}

// Marshal renders the configuration as commented TOML: `posta init` writes
// Default() through it, so the file shows every key with its default.
func (c *Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# Posta configuration. Every key is shown with its default; delete what you do not change.\n")
	buf.WriteString("# Use it with: posta serve --config FILE\n\n")
	enc := toml.NewEncoder(&buf).SetIndentTables(true)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("config: encode: %w", err)
	}
	return buf.Bytes(), nil
}
