package sasl

import (
	"bytes"
	"crypto/tls"
)

// Channel binding type names (RFC 5056 7 "unique prefix"), as they appear
// after "p=" in a SCRAM gs2 header.
const (
	TLSExporter = "tls-exporter" // RFC 9266
	TLSUnique   = "tls-unique"   // RFC 5929 3
)

// exporterLabel and exporterLength are RFC 9266 2's inputs to the TLS keying
// material exporter: this label, no context, 32 bytes.
const (
	exporterLabel  = "EXPORTER-Channel-Binding"
	exporterLength = 32
)

// ChannelBinding is the channel binding data of a TLS connection, for
// SCRAM-*-PLUS (RFC 5802 6, RFC 5929, RFC 9266).
type ChannelBinding struct {
	// Type is the connection's default binding type: "tls-exporter" on TLS
	// 1.3, "tls-unique" on TLS 1.2.
	Type string
	// Data is the binding data for Type.
	Data []byte
	// ExporterData is the "tls-exporter" data of a TLS 1.2 connection that
	// negotiated the extended master secret, so a client that asks for
	// tls-exporter there is served as well; nil otherwise (on TLS 1.3 Type is
	// already tls-exporter).
	ExporterData []byte
}

// dataFor returns the binding data for a type the client named, or false if
// this connection has no such binding.
func (b *ChannelBinding) dataFor(typ string) ([]byte, bool) {
	switch {
	case b == nil:
		return nil, false
	case typ == b.Type && len(b.Data) > 0:
		return b.Data, true
	case typ == TLSExporter && len(b.ExporterData) > 0:
		return b.ExporterData, true
	}
	return nil, false
}

// ChannelBindingFromTLS derives the channel binding of a completed TLS
// connection. It returns nil when the connection has none that is safe to
// use; then -PLUS must not be advertised.
//
// The process must not set GODEBUG=tlsunsafeekm=1: crypto/tls then exports
// keying material on TLS 1.2 without extended master secret, where RFC 9266 2
// says tls-exporter is not defined, and this function cannot tell.
func ChannelBindingFromTLS(cs *tls.ConnectionState) *ChannelBinding {
	if cs == nil || !cs.HandshakeComplete {
		return nil
	}
	// RFC 9266 2: EKM with this label, empty context, 32 bytes. It is defined
	// only when master secrets are unique: always on TLS 1.3, and on TLS 1.2
	// with extended master secret (RFC 7627), which is exactly when crypto/tls
	// agrees to export. RFC 9266 4.2: never with renegotiation; a crypto/tls
	// server does not renegotiate.
	ekm, err := cs.ExportKeyingMaterial(exporterLabel, nil, exporterLength)
	if err != nil {
		ekm = nil
	}
	if cs.Version >= tls.VersionTLS13 {
		// RFC 9266 3: tls-exporter is the default (and mandatory) binding on
		// TLS 1.3; tls-unique is not defined there.
		if ekm == nil {
			return nil
		}
		return &ChannelBinding{Type: TLSExporter, Data: ekm}
	}
	// RFC 9266 3: on TLS 1.2 the default stays tls-unique (RFC 5802 6.1).
	// crypto/tls leaves TLSUnique nil on a resumed session without extended
	// master secret, where RFC 7677 4 says it is not safe.
	if len(cs.TLSUnique) > 0 {
		return &ChannelBinding{Type: TLSUnique, Data: bytes.Clone(cs.TLSUnique), ExporterData: ekm}
	}
	if ekm != nil {
		return &ChannelBinding{Type: TLSExporter, Data: ekm}
	}
	return nil
}
