package sasl

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// fuzzMechs are the mechanisms FuzzServer drives, chosen by the first argument.
var fuzzMechs = []string{Plain, Login, SCRAMSHA256, SCRAMSHA256Plus}

// FuzzServer feeds arbitrary client messages to every mechanism. It must
// never panic, every error must belong to one of the package's classes (the
// fake directory never fails here), success is only possible with the right
// password, and no error may echo the password.
//
// Seeds are the client messages of RFC 7677 3 and RFC 4616 4, plus LOGIN's
// and the PLUS variants', so the fuzzer starts deep in each state machine:
// the server nonce is fixed to the RFC's, so the RFC's client-final verifies.
func FuzzServer(f *testing.F) {
	f.Add(uint8(0), []byte("\x00tim\x00tanstaaftanstaaf"), []byte(nil), []byte(nil)) // RFC 4616 4
	f.Add(uint8(0), []byte("Ursel\x00Kurt\x00xipj3plmq"), []byte(nil), []byte(nil))  // RFC 4616 4
	f.Add(uint8(0), []byte(nil), []byte("user\x00user\x00pencil"), []byte(nil))
	f.Add(uint8(1), []byte(nil), []byte("user"), []byte("pencil"))
	f.Add(uint8(1), []byte("user"), []byte("pencil"), []byte(nil))
	f.Add(uint8(2), []byte(rfcClientFirst), []byte(rfcClientFinal), []byte(nil)) // RFC 7677 3
	f.Add(uint8(2), []byte(nil), []byte(rfcClientFirst), []byte(rfcClientFinal))
	f.Add(uint8(2), []byte("n,a=user,n=a=2Cb=3Dc,r=x,e=1"), []byte("c=bixhPXVzZXIs,r=x"+rfcServerNonce+",p=AAAA"), []byte(nil))
	f.Add(uint8(6), []byte("y,,n=user,r=rOprNGfwEbeRWgbNEkqO"), []byte(rfcClientFinal), []byte(nil))
	f.Add(uint8(3), []byte("p=tls-exporter,,n=user,r=rOprNGfwEbeRWgbNEkqO"), []byte("c=cD10bHMtZXhwb3J0ZXIsLGJpbmQ=,r=rOprNGfwEbeRWgbNEkqO"+rfcServerNonce+",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="), []byte(nil))
	f.Add(uint8(3), []byte("p=tls-unique,,n=user,r=r,m=x"), []byte(nil), []byte(nil))

	creds := newFakeCreds(f)
	f.Fuzz(func(t *testing.T, sel uint8, m1, m2, m3 []byte) {
		o := Options{TLS: true, NewNonce: func() string { return rfcServerNonce }}
		// Bit 2 of sel: whether the connection has a channel binding.
		if sel&4 == 0 {
			o.Binding = &ChannelBinding{Type: TLSUnique, Data: []byte("bind"), ExporterData: []byte("bind")}
		}
		mech := fuzzMechs[int(sel&3)]
		s, err := NewServer(context.Background(), mech, creds, o)
		if err != nil {
			if !errors.Is(err, ErrUnsupportedMechanism) {
				t.Fatalf("NewServer(%s): %v", mech, err)
			}
			return
		}
		for _, m := range [][]byte{m1, m2, m3} {
			_, done, err := s.Next(m)
			if err != nil {
				if !classified(err) {
					t.Fatalf("%s: unclassified error %v", mech, err)
				}
				if strings.Contains(err.Error(), "pencil") {
					t.Fatalf("%s: error %q contains the password", mech, err)
				}
				if s.Account() != "" {
					t.Fatalf("%s: failed exchange has account %q", mech, s.Account())
				}
				return
			}
			if done {
				if s.Account() != "user@example.test" && s.Account() != "alice@example.test" && s.Account() != "abc@example.test" {
					t.Fatalf("%s: done with account %q", mech, s.Account())
				}
				return
			}
		}
		if s.Account() != "" {
			t.Fatalf("%s: unfinished exchange has account %q", mech, s.Account())
		}
	})
}
