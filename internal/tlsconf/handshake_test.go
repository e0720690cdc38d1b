//go:debug tls10server=1

// tls10server=1 lowers crypto/tls's own default minimum to TLS 1.0, so the
// TLS 1.1 test below passes only because ServerConfig sets MinVersion.

package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
)

func generatedManager(t *testing.T) *Manager {
	t.Helper()
	log, _ := testLogger(t)
	m, err := Load(Options{Dir: t.TempDir(), Hostname: "mail.example.test", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestHandshakeVerifies(t *testing.T) {
	m := generatedManager(t)
	addr := serveTLS(t, m.ServerConfig("imap"))
	for _, name := range []string{"localhost", "127.0.0.1", "::1", "mail.example.test"} {
		t.Run(name, func(t *testing.T) {
			st, err := dial(addr, &tls.Config{RootCAs: m.CertPool(), ServerName: name, NextProtos: []string{"imap"}})
			if err != nil {
				t.Fatal(err)
			}
			if st.Version < tls.VersionTLS12 {
				t.Errorf("version %s", tls.VersionName(st.Version))
			}
			if st.NegotiatedProtocol != "imap" {
				t.Errorf("ALPN %q, want imap", st.NegotiatedProtocol)
			}
			if peerFingerprint(st) != m.Fingerprint() {
				t.Errorf("served %s, Fingerprint() %s", peerFingerprint(st), m.Fingerprint())
			}
		})
	}
	// The same client set-up must fail where trust or name are wrong, or the
	// successes above prove nothing.
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		want string
	}{
		{"other name", &tls.Config{RootCAs: m.CertPool(), ServerName: "other.example.test"}, "not other.example.test"},
		{"other IP", &tls.Config{RootCAs: m.CertPool(), ServerName: "127.0.0.2"}, "not 127.0.0.2"},
		{"untrusted", &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "localhost"}, "unknown authority"},
		{"another manager's pool", &tls.Config{RootCAs: generatedManager(t).CertPool(), ServerName: "localhost"}, "unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dial(addr, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestMinVersion(t *testing.T) {
	m := generatedManager(t)
	if v := m.ServerConfig().MinVersion; v != tls.VersionTLS12 {
		t.Errorf("MinVersion %s", tls.VersionName(v))
	}
	addr := serveTLS(t, m.ServerConfig("pop3"))
	base := &tls.Config{RootCAs: m.CertPool(), ServerName: "localhost"}

	old := base.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	_, err := dial(addr, old)
	if err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.1 client: err %v, want a protocol version alert", err)
	}

	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		c := base.Clone()
		c.MinVersion, c.MaxVersion = v, v
		st, err := dial(addr, c)
		if err != nil {
			t.Errorf("%s client: %v", tls.VersionName(v), err)
		} else if st.Version != v {
			t.Errorf("negotiated %s, want %s", tls.VersionName(st.Version), tls.VersionName(v))
		}
	}
}

func TestALPN(t *testing.T) {
	m := generatedManager(t)
	addr := serveTLS(t, m.ServerConfig("imap", "pop3"))
	noALPN := serveTLS(t, m.ServerConfig())
	for _, tc := range []struct {
		name    string
		addr    string
		offer   []string
		want    string
		wantErr bool
	}{
		{"no ALPN offered", addr, nil, "", false},
		{"ours", addr, []string{"pop3"}, "pop3", false},
		{"server preference wins", addr, []string{"pop3", "imap"}, "imap", false},
		{"ours among HTTP", addr, []string{"h2", "http/1.1", "imap"}, "imap", false},
		{"unrelated only", addr, []string{"foo", "managesieve"}, "", false},
		{"HTTP only (ALPACA)", addr, []string{"h2", "http/1.1"}, "", true},
		{"HTTP among unrelated", addr, []string{"foo", "http/1.1"}, "", true},
		{"listener without ALPN", noALPN, []string{"http/1.1"}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := dial(tc.addr, &tls.Config{RootCAs: m.CertPool(), ServerName: "localhost", NextProtos: tc.offer})
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "no application protocol") {
					t.Fatalf("err %v, want no_application_protocol", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.NegotiatedProtocol != tc.want {
				t.Errorf("ALPN %q, want %q", st.NegotiatedProtocol, tc.want)
			}
		})
	}
}

func TestServerConfigIsNewEachCall(t *testing.T) {
	m := generatedManager(t)
	alpn := []string{"ftp"}
	a, b := m.ServerConfig(alpn...), m.ServerConfig(alpn...)
	if a == b {
		t.Fatal("ServerConfig returned the same *tls.Config twice")
	}
	alpn[0] = "changed"
	if !slices.Equal(a.NextProtos, []string{"ftp"}) {
		t.Errorf("NextProtos aliases the caller's slice: %q", a.NextProtos)
	}
	if a.SessionTicketsDisabled {
		t.Error("session tickets disabled")
	}
}

// FTPS data connections resume the control connection's session, which
// works when both listeners share one config, and only then.
func TestSessionResumption(t *testing.T) {
	m := generatedManager(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			cfg := m.ServerConfig("ftp")
			control := serveTLS(t, cfg)
			data := serveTLS(t, cfg)
			other := serveTLS(t, m.ServerConfig("ftp"))
			for _, offer := range [][]string{{"ftp"}, nil, {"foo"}} {
				client := &tls.Config{
					RootCAs: m.CertPool(), ServerName: "localhost", NextProtos: offer,
					MinVersion: v, MaxVersion: v, ClientSessionCache: tls.NewLRUClientSessionCache(8),
				}
				steps := []struct {
					step, addr string
					resume     bool
				}{
					{"first control", control, false},
					{"second control", control, true},
					{"data on the same config", data, true},
					{"listener with its own config", other, false},
				}
				for _, s := range steps {
					st, err := dial(s.addr, client)
					if err != nil {
						t.Fatalf("offer %q, %s: %v", offer, s.step, err)
					}
					if st.Version != v {
						t.Fatalf("negotiated %s", tls.VersionName(st.Version))
					}
					if st.DidResume != s.resume {
						t.Errorf("offer %q, %s: DidResume %v, want %v", offer, s.step, st.DidResume, s.resume)
					}
				}
			}
		})
	}
}
