package sasl

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestMechanisms(t *testing.T) {
	b := &ChannelBinding{Type: TLSExporter, Data: []byte("0123456789abcdef0123456789abcdef")}
	tests := []struct {
		name string
		o    Options
		want []string
	}{
		{"plaintext connection", Options{}, []string{SCRAMSHA256}},
		{"plaintext allowed", Options{AllowPlaintext: true}, []string{SCRAMSHA256, Plain, Login}},
		{"TLS without binding", Options{TLS: true}, []string{SCRAMSHA256, Plain, Login}},
		{"TLS with binding", Options{TLS: true, Binding: b}, []string{SCRAMSHA256Plus, SCRAMSHA256, Plain, Login}},
		{"binding without data is none", Options{TLS: true, Binding: &ChannelBinding{Type: TLSUnique}}, []string{SCRAMSHA256, Plain, Login}},
		{"binding without type is none", Options{TLS: true, Binding: &ChannelBinding{Data: []byte("x")}}, []string{SCRAMSHA256, Plain, Login}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Mechanisms(tc.o); !slices.Equal(got, tc.want) {
				t.Fatalf("Mechanisms = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNewServer(t *testing.T) {
	b := &ChannelBinding{Type: TLSExporter, Data: []byte("0123456789abcdef0123456789abcdef")}
	creds := newFakeCreds(t)
	tests := []struct {
		mech string
		o    Options
		err  error // nil: must succeed
	}{
		{"PLAIN", Options{TLS: true}, nil},
		{"plain", Options{TLS: true}, nil}, // RFC 4422 3.1 names are upper-case; clients vary
		{"Login", Options{AllowPlaintext: true}, nil},
		{"scram-sha-256", Options{}, nil},
		{"SCRAM-SHA-256-PLUS", Options{TLS: true, Binding: b}, nil},
		{"PLAIN", Options{}, ErrUnsupportedMechanism},
		{"LOGIN", Options{}, ErrUnsupportedMechanism},
		{"SCRAM-SHA-256-PLUS", Options{TLS: true}, ErrUnsupportedMechanism},
		{"SCRAM-SHA-1", Options{TLS: true}, ErrUnsupportedMechanism},
		{"CRAM-MD5", Options{TLS: true}, ErrUnsupportedMechanism},
		{"", Options{TLS: true}, ErrUnsupportedMechanism},
	}
	for _, tc := range tests {
		s, err := NewServer(context.Background(), tc.mech, creds, tc.o)
		if tc.err == nil && (err != nil || s == nil) {
			t.Errorf("NewServer(%q, %+v) = %v, %v; want a server", tc.mech, tc.o, s, err)
		}
		if tc.err != nil && (!errors.Is(err, tc.err) || s != nil) {
			t.Errorf("NewServer(%q, %+v) = %v, %v; want %v", tc.mech, tc.o, s, err, tc.err)
		}
	}
	if _, err := NewServer(context.Background(), Plain, nil, Options{TLS: true}); err == nil {
		t.Error("NewServer with nil Credentials succeeded")
	}
}
