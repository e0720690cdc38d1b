package sasl

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xdg-go/scram"
)

// testCert is a self-signed certificate for 127.0.0.1.
func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "posta test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serverResult is what the server side of saslOverTLS saw.
type serverResult struct {
	account string
	err     error
	binding *ChannelBinding
	mechs   []string
}

// saslOverTLS runs one SASL exchange over a real TLS connection on
// 127.0.0.1 with a line protocol shaped like IMAP AUTHENTICATE:
//
//	C: <mechanism>               S: + <base64 challenge>
//	C: <base64 response>         S: OK <base64 final data> | NO <reason>
//
// The server side takes its channel binding from its own end of the
// connection with ChannelBindingFromTLS (unless noBinding); the client side
// is the xdg-go/scram client, given the client's connection state.
func saslOverTLS(t *testing.T, version uint16, noBinding bool, mech string,
	newConv func(t *testing.T, cs *tls.ConnectionState) *scram.ClientConversation) (clientErr error, res serverResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cert := testCert(t)
	creds := newFakeCreds(t)              // made here: t.Fatal must not run on the server goroutine
	results := make(chan serverResult, 1) // one result; the server goroutine never blocks on it

	go func() {
		res := serverResult{}
		defer func() { results <- res }()
		raw, err := ln.Accept()
		if err != nil {
			res.err = err
			return
		}
		conn := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: version, MaxVersion: version})
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if err := conn.Handshake(); err != nil {
			res.err = err
			return
		}
		cs := conn.ConnectionState()
		o := Options{TLS: true}
		if !noBinding {
			o.Binding = ChannelBindingFromTLS(&cs)
		}
		res.binding, res.mechs = o.Binding, Mechanisms(o)
		r := bufio.NewReader(conn)
		line, err := r.ReadString('\n')
		if err != nil {
			res.err = err
			return
		}
		s, err := NewServer(context.Background(), strings.TrimSpace(line), creds, o)
		if err != nil {
			res.err = err
			fmt.Fprintf(conn, "NO %v\n", err)
			return
		}
		var resp []byte // no initial response: the server starts with an empty challenge
		for {
			ch, done, err := s.Next(resp)
			if err != nil {
				res.err = err
				fmt.Fprintf(conn, "NO %v\n", errClass(err))
				return
			}
			if done {
				res.account = s.Account()
				fmt.Fprintf(conn, "OK %s\n", base64.StdEncoding.EncodeToString(ch))
				return
			}
			fmt.Fprintf(conn, "+ %s\n", base64.StdEncoding.EncodeToString(ch))
			line, err := r.ReadString('\n')
			if err != nil {
				res.err = err
				return
			}
			if resp, err = base64.StdEncoding.DecodeString(strings.TrimSpace(line)); err != nil {
				res.err = err
				return
			}
		}
	}()

	clientErr = func() error {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
			InsecureSkipVerify: true, MinVersion: version, MaxVersion: version,
		})
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		cs := conn.ConnectionState()
		if cs.Version != version {
			return fmt.Errorf("negotiated TLS %x, want %x", cs.Version, version)
		}
		conv := newConv(t, &cs)
		r := bufio.NewReader(conn)
		fmt.Fprintf(conn, "%s\n", mech)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			kind, data, _ := strings.Cut(strings.TrimSpace(line), " ")
			switch kind {
			case "NO":
				return fmt.Errorf("server: NO %s", data)
			case "+", "OK":
				ch, err := base64.StdEncoding.DecodeString(data)
				if err != nil {
					return err
				}
				out, err := conv.Step(string(ch))
				if err != nil {
					return fmt.Errorf("client: %w", err)
				}
				if kind == "OK" {
					if !conv.Valid() {
						return errors.New("client: server signature not verified")
					}
					return nil
				}
				fmt.Fprintf(conn, "%s\n", base64.StdEncoding.EncodeToString([]byte(out)))
			default:
				return fmt.Errorf("unexpected line %q", line)
			}
		}
	}()
	select {
	case res = <-results:
	case <-time.After(20 * time.Second):
		t.Fatal("server side did not finish")
	}
	return clientErr, res
}

func xdgClient(t *testing.T, password string) *scram.Client {
	t.Helper()
	c, err := scram.SHA256.NewClient("user", password, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// clientBinding is the xdg-go client's own view of the channel binding.
func clientBinding(t *testing.T, cs *tls.ConnectionState, typ string) scram.ChannelBinding {
	t.Helper()
	switch typ {
	case TLSExporter:
		b, err := scram.NewTLSExporterBinding(cs)
		if err != nil {
			t.Fatalf("client tls-exporter: %v", err)
		}
		return b
	case TLSUnique:
		return scram.NewTLSUniqueBinding(cs.TLSUnique)
	}
	t.Fatalf("no such binding %q", typ)
	return scram.ChannelBinding{}
}

func TestSCRAMWithXDGClientOverTLS(t *testing.T) {
	versions := []struct {
		name    string
		version uint16
		types   []string // binding types a client may ask for
	}{
		{"TLS1.3", tls.VersionTLS13, []string{TLSExporter}},
		{"TLS1.2", tls.VersionTLS12, []string{TLSUnique, TLSExporter}},
	}
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			for _, typ := range v.types {
				t.Run("PLUS "+typ, func(t *testing.T) {
					cerr, res := saslOverTLS(t, v.version, false, SCRAMSHA256Plus, func(t *testing.T, cs *tls.ConnectionState) *scram.ClientConversation {
						return xdgClient(t, "pencil").NewConversationWithChannelBinding(clientBinding(t, cs, typ))
					})
					if cerr != nil || res.err != nil || res.account != "user@example.test" {
						t.Fatalf("client %v, server %v, account %q", cerr, res.err, res.account)
					}
					want := []string{SCRAMSHA256Plus, SCRAMSHA256, Plain, Login}
					if strings.Join(res.mechs, " ") != strings.Join(want, " ") {
						t.Errorf("Mechanisms = %v, want %v", res.mechs, want)
					}
				})
				t.Run("PLUS "+typ+" wrong password", func(t *testing.T) {
					cerr, res := saslOverTLS(t, v.version, false, SCRAMSHA256Plus, func(t *testing.T, cs *tls.ConnectionState) *scram.ClientConversation {
						return xdgClient(t, "wrongpass").NewConversationWithChannelBinding(clientBinding(t, cs, typ))
					})
					if cerr == nil || !errors.Is(res.err, ErrInvalidCredentials) || res.account != "" {
						t.Fatalf("client %v, server %v, account %q; want ErrInvalidCredentials", cerr, res.err, res.account)
					}
				})
				t.Run("PLUS "+typ+" binding mismatch", func(t *testing.T) {
					cerr, res := saslOverTLS(t, v.version, false, SCRAMSHA256Plus, func(t *testing.T, cs *tls.ConnectionState) *scram.ClientConversation {
						// A man in the middle has two TLS connections with
						// different binding data; model it by changing a bit.
						b := clientBinding(t, cs, typ)
						b.Data = bytes.Clone(b.Data)
						b.Data[0] ^= 1
						return xdgClient(t, "pencil").NewConversationWithChannelBinding(b)
					})
					if cerr == nil || !errors.Is(res.err, ErrBindingMismatch) {
						t.Fatalf("client %v, server %v; want ErrBindingMismatch", cerr, res.err)
					}
				})
			}
			t.Run("bare name without binding", func(t *testing.T) {
				cerr, res := saslOverTLS(t, v.version, false, SCRAMSHA256, func(t *testing.T, _ *tls.ConnectionState) *scram.ClientConversation {
					return xdgClient(t, "pencil").NewConversation()
				})
				if cerr != nil || res.err != nil || res.account != "user@example.test" {
					t.Fatalf("client %v, server %v, account %q", cerr, res.err, res.account)
				}
			})
			t.Run("downgrade: y while PLUS offered", func(t *testing.T) {
				cerr, res := saslOverTLS(t, v.version, false, SCRAMSHA256, func(t *testing.T, _ *tls.ConnectionState) *scram.ClientConversation {
					return xdgClient(t, "pencil").NewConversationAdvertisingChannelBinding()
				})
				if cerr == nil || !errors.Is(res.err, ErrDowngrade) {
					t.Fatalf("client %v, server %v; want ErrDowngrade", cerr, res.err)
				}
			})
			t.Run("y while PLUS not offered", func(t *testing.T) {
				cerr, res := saslOverTLS(t, v.version, true, SCRAMSHA256, func(t *testing.T, _ *tls.ConnectionState) *scram.ClientConversation {
					return xdgClient(t, "pencil").NewConversationAdvertisingChannelBinding()
				})
				if cerr != nil || res.err != nil || res.account != "user@example.test" {
					t.Fatalf("client %v, server %v, account %q", cerr, res.err, res.account)
				}
				want := []string{SCRAMSHA256, Plain, Login}
				if strings.Join(res.mechs, " ") != strings.Join(want, " ") {
					t.Errorf("Mechanisms = %v, want %v", res.mechs, want)
				}
			})
			t.Run("PLUS refused without binding", func(t *testing.T) {
				cerr, res := saslOverTLS(t, v.version, true, SCRAMSHA256Plus, func(t *testing.T, cs *tls.ConnectionState) *scram.ClientConversation {
					return xdgClient(t, "pencil").NewConversationWithChannelBinding(clientBinding(t, cs, v.types[0]))
				})
				if cerr == nil || !errors.Is(res.err, ErrUnsupportedMechanism) {
					t.Fatalf("client %v, server %v; want ErrUnsupportedMechanism", cerr, res.err)
				}
			})
		})
	}
}

// Non-ASCII passwords: the xdg-go client SASLpreps, we apply OpaqueString;
// they agree on composed/decomposed forms and non-ASCII spaces.
func TestSCRAMXDGClientNonASCIIPassword(t *testing.T) {
	creds := newFakeCreds(t)
	creds.users["user"] = fakeUser{account: "user@example.test", keys: mustKeys(t, "p\u00e4ss\u00a0w\u00f6rd", rfcSalt)}
	c, err := scram.SHA256.NewClient("user", "pa\u0308ss\u2003wo\u0308rd", "") // decomposed, em space
	if err != nil {
		t.Fatal(err)
	}
	conv := c.NewConversation()
	s := newServer(t, SCRAMSHA256, creds, Options{})
	msg, _ := conv.Step("")
	for !conv.Done() {
		ch, done, err := s.Next([]byte(msg))
		if err != nil {
			t.Fatalf("server: %v", err)
		}
		if msg, err = conv.Step(string(ch)); err != nil {
			t.Fatalf("client: %v", err)
		}
		if done != conv.Done() {
			t.Fatalf("server done=%v, client done=%v", done, conv.Done())
		}
	}
	if !conv.Valid() || s.Account() != "user@example.test" {
		t.Fatalf("valid=%v account=%q", conv.Valid(), s.Account())
	}
}

// ChannelBindingFromTLS must produce what a client computes on its end of the
// same connection.
func TestChannelBindingFromTLS(t *testing.T) {
	if ChannelBindingFromTLS(nil) != nil {
		t.Error("nil state gave a binding")
	}
	if ChannelBindingFromTLS(&tls.ConnectionState{}) != nil {
		t.Error("incomplete handshake gave a binding")
	}
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			cert := testCert(t)
			states := make(chan tls.ConnectionState, 1)
			go func() {
				raw, err := ln.Accept()
				if err != nil {
					close(states)
					return
				}
				conn := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: version})
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				if err := conn.Handshake(); err != nil {
					close(states)
					return
				}
				states <- conn.ConnectionState()
			}()
			conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: version})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ccs := conn.ConnectionState()
			scs, ok := <-states
			if !ok {
				t.Fatal("server handshake failed")
			}
			b := ChannelBindingFromTLS(&scs)
			ekm, err := ccs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
			if err != nil {
				t.Fatal(err)
			}
			switch version {
			case tls.VersionTLS13:
				if b == nil || b.Type != TLSExporter || !bytes.Equal(b.Data, ekm) || b.ExporterData != nil {
					t.Fatalf("binding %+v, want tls-exporter %x", b, ekm)
				}
			case tls.VersionTLS12:
				if b == nil || b.Type != TLSUnique || len(b.Data) == 0 || !bytes.Equal(b.Data, ccs.TLSUnique) || !bytes.Equal(b.ExporterData, ekm) {
					t.Fatalf("binding %+v, want tls-unique %x and exporter %x", b, ccs.TLSUnique, ekm)
				}
			}
		})
	}
}
