package tlsconf

import (
	"crypto/tls"
	"slices"
	"strings"
)

// tolerateALPNMismatch returns a GetConfigForClient hook for base. When the
// client offers ALPN names of which none is ours, Go would abort with
// no_application_protocol, as RFC 7301 3.2 says a server SHALL. We deviate on
// purpose and answer without ALPN, so a mail client whose TLS library offers
// unrelated defaults still connects. HTTP names are the exception, see isHTTP.
//
// The clone keeps base's session ticket keys in use: crypto/tls takes the
// keys from the original config unless the returned one sets its own, so
// these connections resume like any other on the listener.
func tolerateALPNMismatch(base *tls.Config) func(*tls.ClientHelloInfo) (*tls.Config, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		offered := hello.SupportedProtos
		if len(offered) == 0 {
			return nil, nil // no ALPN: Go negotiates nothing and proceeds
		}
		for _, p := range offered {
			if slices.Contains(base.NextProtos, p) {
				return nil, nil // Go picks our preferred match
			}
		}
		if slices.ContainsFunc(offered, isHTTP) {
			return nil, nil // base's NextProtos make Go abort, as we want
		}
		c := base.Clone()
		c.NextProtos = nil
		c.GetConfigForClient = nil
		return c, nil
	}
}

// isHTTP reports an ALPN name of the HTTP family. A client offering one is a
// web client; on a mail or FTP port that is the ALPACA cross-protocol attack
// (a browser steered to our port with a certificate valid for the site), and
// refusing the handshake is the defence ALPN strictness exists for.
func isHTTP(proto string) bool {
	switch proto {
	case "http/0.9", "http/1.0", "http/1.1", "h2", "h2c", "h3":
		return true
	}
	return strings.HasPrefix(proto, "spdy/") || strings.HasPrefix(proto, "h3-") || strings.HasPrefix(proto, "hq-")
}
