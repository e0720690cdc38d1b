package mailauth

import (
	"context"
	"crypto"
	"fmt"
	"io"

	"github.com/emersion/go-msgauth/dkim"
)

// signedHeaders are the fields a signature covers: RFC 6376 5.4.1's
// recommended list plus Message-ID and the MIME fields that decide how the
// body renders, minus the Resent-* and List-* fields that a message from our
// users does not carry and that mailing lists legitimately add. From appears
// twice: RFC 6376 5.4.2, a signer MAY name a field more times than it occurs
// so that one added in transit breaks the signature ("oversigning"); From is
// the field DMARC protects and the one a second copy of would fool a reader
// (RFC 6376 8.15).
var signedHeaders = []string{
	"From", "From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Reply-To",
}

// Signer makes DKIM signatures for outbound mail with each domain's keys.
type Signer struct {
	keys KeySource
}

// NewSigner returns a Signer taking keys from keys (a *KeyStore).
func NewSigner(keys KeySource) *Signer {
	return &Signer{keys: keys}
}

// Sign reads the whole message from msg and returns the DKIM-Signature
// header fields (one per key: ed25519, then RSA; RFC 8463 6), each ending in
// CRLF, for the caller to prepend to the message unchanged. The message is
// streamed through the hashes, never held. Canonicalization is
// relaxed/relaxed (RFC 6376 3.4), which survives the re-folding and
// trailing-space changes relays make. A domain without keys gives ErrNoKeys:
// the caller may send unsigned.
func (s *Signer) Sign(ctx context.Context, domain string, msg io.Reader) ([]byte, error) {
	d, err := normalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	k, err := s.keys.Get(ctx, d)
	if err != nil {
		return nil, err
	}
	type key struct {
		sel    string
		signer crypto.Signer
	}
	var ks []key
	if k.Ed25519 != nil {
		ks = append(ks, key{k.Ed25519Selector, k.Ed25519})
	}
	if k.RSA != nil {
		ks = append(ks, key{k.RSASelector, k.RSA})
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoKeys, d)
	}
	signers := make([]*dkim.Signer, 0, len(ks))
	writers := make([]io.Writer, 0, len(ks))
	// Every signer runs a goroutine until closed: close them all, whatever
	// happens (Close after a successful Close is harmless).
	defer func() {
		for _, sg := range signers {
			sg.Close()
		}
	}()
	for _, key := range ks {
		sg, err := dkim.NewSigner(&dkim.SignOptions{
			Domain:                 d,
			Selector:               key.sel,
			Signer:                 key.signer,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             signedHeaders,
		})
		if err != nil {
			return nil, fmt.Errorf("mailauth: sign for %s: %w", d, err)
		}
		signers = append(signers, sg)
		writers = append(writers, sg)
	}
	if _, err := io.Copy(io.MultiWriter(writers...), ctxReader{ctx, msg}); err != nil {
		return nil, fmt.Errorf("mailauth: sign for %s: %w", d, err)
	}
	var out []byte
	for i, sg := range signers {
		if err := sg.Close(); err != nil {
			return nil, fmt.Errorf("mailauth: sign for %s with %s: %w", d, ks[i].sel, err)
		}
		out = append(out, sg.Signature()...)
	}
	return out, nil
}

// ctxReader stops a long copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
