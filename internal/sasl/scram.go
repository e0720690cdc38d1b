package sasl

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
)

// SCRAMKeys is what the directory stores for SCRAM-SHA-256 in place of a
// password (RFC 5802 3).
type SCRAMKeys struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte // H(ClientKey)
	ServerKey  []byte // HMAC(SaltedPassword, "Server Key")
}

// MinSCRAMIterations is the lowest iteration count SCRAMSHA256Keys accepts.
// RFC 7677 3: the count a server announces SHOULD be at least 4096.
const MinSCRAMIterations = 4096

// maxSCRAMMessage bounds each SCRAM client message. The largest legitimate
// one is a client-first with a 255-octet name and authzid, each up to three
// times longer when "," and "=" are escaped, and a nonce; the client-final
// carries a 32- to 64-byte binding, the nonce and a 44-character proof.
const maxSCRAMMessage = 4096

// PreparePassword is the password preparation every Posta login uses: the
// PRECIS OpaqueString profile (RFC 8265 4.2), or the password unchanged when
// OpaqueString rejects it.
//
// RFC 7677 (through RFC 5802 2.2 Normalize) names SASLprep (RFC 4013), which
// RFC 8265 obsoletes with OpaqueString. The two agree on ASCII, on mapping
// non-ASCII spaces to U+0020 and on NFC-equivalent input; they differ where
// NFKC and NFC differ (SASLprep turns U+00BD into "1⁄2", OpaqueString keeps
// it), so a client that SASLpreps such a password computes other SCRAM keys
// than we stored and must use PLAIN. Falling back to the raw string (instead
// of failing as RFC 4616 2 asks when preparation fails) keeps passwords with
// characters OpaqueString disallows (e.g. some control characters) usable
// rather than locking their owners out.
func PreparePassword(password string) string {
	p, err := precis.OpaqueString.String(password)
	if err != nil {
		return password
	}
	return p
}

// SCRAMSHA256Keys computes the stored keys for a password, to be called by
// the directory when a password is set. The salt should be at least 16
// random bytes, fresh for every password (RFC 5802 9).
//
// It returns an error, rather than the bare SCRAMKeys, because the iteration
// count may be too low and crypto/pbkdf2 refuses short salts in FIPS 140-only
// mode.
func SCRAMSHA256Keys(password string, salt []byte, iterations int) (SCRAMKeys, error) {
	if iterations < MinSCRAMIterations {
		return SCRAMKeys{}, fmt.Errorf("sasl: SCRAM iteration count %d below %d", iterations, MinSCRAMIterations)
	}
	if len(salt) == 0 {
		return SCRAMKeys{}, errors.New("sasl: empty SCRAM salt")
	}
	// RFC 5802 3: SaltedPassword := Hi(Normalize(password), salt, i), where
	// Hi is PBKDF2 with HMAC as the PRF and one hash-length block (2.2).
	salted, err := pbkdf2.Key(sha256.New, PreparePassword(password), salt, iterations, sha256.Size)
	if err != nil {
		return SCRAMKeys{}, fmt.Errorf("sasl: deriving SCRAM keys: %w", err)
	}
	clientKey := hmacSHA256(salted, []byte("Client Key"))
	storedKey := sha256.Sum256(clientKey)
	return SCRAMKeys{
		Salt:       append([]byte(nil), salt...),
		Iterations: iterations,
		StoredKey:  storedKey[:],
		ServerKey:  hmacSHA256(salted, []byte("Server Key")),
	}, nil
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// decoySaltKey keys the salts invented for unknown users. It is random per
// process so an outsider cannot predict them, and fixed for the process so
// that asking twice for the same unknown user gives the same salt, as it
// would for a real one.
var decoySaltKey = func() []byte {
	k := make([]byte, 32)
	rand.Read(k) // crypto/rand.Read never fails (Go 1.24+)
	return k
}()

// scramServer is SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677).
// On failure it sends no server-final "e=" message: RFC 5802 5.1 e lets the
// server end with a plain failure, and the protocol's failure reply says
// enough without telling a guesser which check failed.
type scramServer struct {
	ctx   context.Context
	creds Credentials
	opts  Options
	plus  bool // the client chose the -PLUS name
	phase phase

	username string // authcid, saslname-decoded
	authzid  string // "" when absent
	account  string // canonical account; set only on success
	found    string // account name from the lookup, if the user exists
	known    bool   // false: unknown user, keys are a decoy
	keys     SCRAMKeys

	gs2Header   string // "n,,", "y,a=x,", "p=tls-exporter,," as received
	cbindData   []byte // binding data the client must prove; nil unless "p="
	clientFirst string // client-first-message-bare, for AuthMessage
	serverFirst string
	nonce       string // c-nonce + s-nonce
}

func newSCRAMServer(ctx context.Context, creds Credentials, o Options, plus bool) *scramServer {
	return &scramServer{ctx: ctx, creds: creds, opts: o, plus: plus}
}

func (s *scramServer) Account() string  { return s.account }
func (s *scramServer) Username() string { return s.username }

func (s *scramServer) Next(response []byte) ([]byte, bool, error) {
	switch s.phase {
	case phaseStart:
		if len(response) == 0 {
			// RFC 5802 5.2 2a: SCRAM is client-first; RFC 4422 5 2a: without an
			// initial response the first server challenge MUST be empty.
			s.phase = phaseWaiting
			return []byte{}, false, nil
		}
		fallthrough
	case phaseWaiting:
		challenge, err := s.first(response)
		if err != nil {
			s.phase = phaseOver
			return nil, false, err
		}
		s.phase = phaseFinal
		return challenge, false, nil
	case phaseFinal:
		s.phase = phaseOver
		challenge, err := s.final(response)
		if err != nil {
			return nil, false, err
		}
		return challenge, true, nil
	}
	return nil, false, ErrExchangeOver
}

// first handles client-first-message = gs2-header client-first-message-bare
// and returns server-first-message.
func (s *scramServer) first(msg []byte) ([]byte, error) {
	if len(msg) > maxSCRAMMessage {
		return nil, malformed("SCRAM client-first too long")
	}
	m := string(msg)
	// RFC 5802 7: gs2-header = gs2-cbind-flag "," [ authzid ] ","
	flag, rest, ok := strings.Cut(m, ",")
	if !ok {
		return nil, malformed("SCRAM gs2 header incomplete")
	}
	authzField, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, malformed("SCRAM gs2 header incomplete")
	}
	s.gs2Header = m[:len(flag)+1+len(authzField)+1]
	s.clientFirst = bare

	if authzField != "" {
		v, ok := strings.CutPrefix(authzField, "a=")
		if !ok {
			return nil, malformed("SCRAM gs2 authzid not a=")
		}
		a, err := decodeSASLName(v)
		if err != nil {
			return nil, err
		}
		s.authzid = a
	}

	// RFC 5802 7: client-first-message-bare =
	//   [reserved-mext ","] username "," nonce ["," extensions]
	fields := strings.Split(bare, ",")
	if len(fields) < 2 {
		return nil, malformed("SCRAM client-first needs n= and r=")
	}
	// RFC 5802 5.1 m: a mandatory extension we cannot know MUST cause
	// authentication failure. Its place is first; checkExtensions below
	// refuses it anywhere else too.
	if strings.HasPrefix(fields[0], "m=") {
		return nil, malformed("SCRAM mandatory extension (m=) not supported")
	}
	v, ok := strings.CutPrefix(fields[0], "n=")
	if !ok {
		return nil, malformed("SCRAM client-first lacks n=")
	}
	username, err := decodeSASLName(v)
	if err != nil {
		return nil, err
	}
	s.username = username
	cnonce, ok := strings.CutPrefix(fields[1], "r=")
	// RFC 5802 7: c-nonce = printable, i.e. one or more of %x21-2B / %x2D-7E.
	if !ok || !isPrintable(cnonce) {
		return nil, malformed("SCRAM client nonce missing or not printable")
	}
	if err := checkExtensions(fields[2:]); err != nil {
		return nil, err
	}

	// Syntax first, then policy: the binding flag is judged only once the
	// whole message parsed, so Username() is known for the log either way.
	if err := s.checkBindingFlag(flag); err != nil {
		return nil, err
	}
	if err := s.lookup(); err != nil {
		return nil, err
	}

	snonce := s.newNonce()
	if !isPrintable(snonce) {
		return nil, errors.New("sasl: SCRAM server nonce generator returned a non-printable nonce")
	}
	// RFC 5802 5.1 r: the server appends its own nonce to the client's.
	s.nonce = cnonce + snonce
	// RFC 5802 7: server-first-message = nonce "," salt "," iteration-count
	s.serverFirst = "r=" + s.nonce +
		",s=" + base64.StdEncoding.EncodeToString(s.keys.Salt) +
		",i=" + strconv.Itoa(s.keys.Iterations)
	return []byte(s.serverFirst), nil
}

// checkBindingFlag applies RFC 5802 6 to the gs2-cbind-flag and records the
// binding data the client-final "c=" must carry.
func (s *scramServer) checkBindingFlag(flag string) error {
	advertised := s.opts.binding() != nil
	switch {
	case flag == "n":
		// RFC 5802 4 and 6: the -PLUS name is how channel binding is
		// negotiated; a client that picked it and then says "n" contradicts
		// itself, and accepting it would let a -PLUS exchange run unbound.
		if s.plus {
			return fmt.Errorf("%w: %s without channel binding", ErrBindingMismatch, SCRAMSHA256Plus)
		}
		return nil
	case flag == "y":
		if s.plus {
			return fmt.Errorf("%w: %s without channel binding", ErrBindingMismatch, SCRAMSHA256Plus)
		}
		// RFC 5802 6: "y" means the client supports channel binding but
		// thinks we do not. If we do (we advertised -PLUS), someone stripped
		// -PLUS from our list: the server MUST fail authentication.
		if advertised {
			return ErrDowngrade
		}
		return nil
	case strings.HasPrefix(flag, "p="):
		typ := flag[2:]
		// RFC 5802 7: cb-name = 1*(ALPHA / DIGIT / "." / "-")
		if !isCBName(typ) {
			return malformed("SCRAM channel binding name")
		}
		// RFC 5802 4: channel binding is only negotiated under the -PLUS
		// name; "p=" under the bare name would bind to a channel we did not
		// offer to bind to under that name.
		if !s.plus {
			return fmt.Errorf("%w: channel binding requested under %s", ErrBindingMismatch, SCRAMSHA256)
		}
		// RFC 5802 6: if the flag is "p" and the server does not support the
		// indicated type, it MUST fail; 6.1: the server MUST use the type the
		// client chose or fail.
		data, ok := s.opts.Binding.dataFor(typ)
		if !ok {
			return fmt.Errorf("%w: channel binding type not available on this connection", ErrBindingMismatch)
		}
		s.cbindData = data
		return nil
	}
	// RFC 5802 5: the client-first message starts with "n", "y" or "p";
	// otherwise authentication MUST fail.
	return malformed("SCRAM gs2 channel binding flag")
}

// lookup fetches the user's keys, or invents decoy keys for an unknown user.
func (s *scramServer) lookup() error {
	account, keys, err := s.creds.SCRAMSHA256(s.ctx, s.username)
	switch {
	case errors.Is(err, ErrInvalidCredentials):
		// RFC 5802 7 lets the server say e=unknown-user, but also allows
		// substituting "other-error" against disclosure. We go further and
		// carry on with a decoy salt and iteration count, so that the
		// server-first message for an unknown user looks like a real one
		// and the exchange fails only at the proof, like a wrong password.
		s.known = false
		s.keys = s.decoyKeys()
		return nil
	case err != nil:
		return credentialsError("SCRAM-SHA-256 key lookup", err)
	}
	if len(keys.StoredKey) != sha256.Size || len(keys.ServerKey) != sha256.Size ||
		len(keys.Salt) == 0 || keys.Iterations < 1 {
		// Not the client's fault: a broken directory entry is our failure,
		// answered as a temporary one.
		return errors.New("sasl: stored SCRAM-SHA-256 keys are unusable")
	}
	s.known = true
	s.found = account
	s.keys = keys
	return nil
}

// decoyKeys returns keys for a user that does not exist: a salt derived from
// the name (stable across attempts), the configured iteration count, and
// random StoredKey/ServerKey that no proof can match.
func (s *scramServer) decoyKeys() SCRAMKeys {
	salt := hmacSHA256(decoySaltKey, []byte(s.username))[:16]
	iter := s.opts.UnknownUserIterations
	if iter <= 0 {
		iter = MinSCRAMIterations
	}
	stored, server := make([]byte, sha256.Size), make([]byte, sha256.Size)
	rand.Read(stored)
	rand.Read(server)
	return SCRAMKeys{Salt: salt, Iterations: iter, StoredKey: stored, ServerKey: server}
}

func (s *scramServer) newNonce() string {
	if s.opts.NewNonce != nil {
		return s.opts.NewNonce()
	}
	b := make([]byte, 18)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// final handles client-final-message and returns server-final-message.
func (s *scramServer) final(msg []byte) ([]byte, error) {
	if len(msg) > maxSCRAMMessage {
		return nil, malformed("SCRAM client-final too long")
	}
	m := string(msg)
	// RFC 5802 7: client-final-message =
	//   client-final-message-without-proof "," proof
	// The proof is the last attribute and base64 has no ",", so the last
	// ",p=" starts it.
	i := strings.LastIndex(m, ",p=")
	if i < 0 {
		return nil, malformed("SCRAM client-final lacks p=")
	}
	withoutProof := m[:i]
	proof, err := base64.StdEncoding.Strict().DecodeString(m[i+3:])
	if err != nil || len(proof) != sha256.Size {
		return nil, malformed("SCRAM proof not base64 of 32 octets")
	}
	// client-final-message-without-proof =
	//   channel-binding "," nonce ["," extensions]
	fields := strings.Split(withoutProof, ",")
	if len(fields) < 2 {
		return nil, malformed("SCRAM client-final needs c= and r=")
	}
	if err := checkExtensions(fields[2:]); err != nil {
		return nil, err
	}
	cb, ok := strings.CutPrefix(fields[0], "c=")
	if !ok {
		return nil, malformed("SCRAM client-final lacks c=")
	}
	cbind, err := base64.StdEncoding.Strict().DecodeString(cb)
	if err != nil {
		return nil, malformed("SCRAM c= not base64")
	}
	nonce, ok := strings.CutPrefix(fields[1], "r=")
	if !ok {
		return nil, malformed("SCRAM client-final lacks r=")
	}
	// RFC 5802 5.1 r: the server MUST verify that the nonce in the client's
	// second message is the one it sent in its first.
	if nonce != s.nonce {
		return nil, malformed("SCRAM nonce differs from server-first")
	}
	// RFC 5802 6: the server MUST always validate c=, by building the value
	// itself: RFC 5802 7 cbind-input = gs2-header [ cbind-data ], with
	// cbind-data present for "p" and absent for "y" and "n".
	want := make([]byte, 0, len(s.gs2Header)+len(s.cbindData))
	want = append(want, s.gs2Header...)
	want = append(want, s.cbindData...)
	if subtle.ConstantTimeCompare(cbind, want) != 1 {
		return nil, ErrBindingMismatch
	}

	// RFC 5802 3: AuthMessage := client-first-message-bare + "," +
	//   server-first-message + "," + client-final-message-without-proof
	authMessage := []byte(s.clientFirst + "," + s.serverFirst + "," + withoutProof)
	// RFC 5802 3: the server recovers ClientKey = ClientProof XOR
	// ClientSignature, ClientSignature = HMAC(StoredKey, AuthMessage), and
	// checks H(ClientKey) against StoredKey. Constant time, so the
	// comparison leaks nothing about StoredKey.
	clientSignature := hmacSHA256(s.keys.StoredKey, authMessage)
	clientKey := make([]byte, sha256.Size)
	subtle.XORBytes(clientKey, proof, clientSignature)
	got := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(got[:], s.keys.StoredKey) != 1 || !s.known {
		return nil, fmt.Errorf("%w: SCRAM proof", ErrInvalidCredentials)
	}
	// RFC 5802 5: after the proof the server verifies that the authorization
	// identity, if any, may act as the authentication identity.
	if !authzidAllowed(s.authzid, s.username, s.found) {
		return nil, fmt.Errorf("%w: SCRAM", ErrAuthzidNotAllowed)
	}
	s.account = s.found
	// RFC 5802 7: server-final-message = verifier; ServerSignature :=
	// HMAC(ServerKey, AuthMessage) (3).
	return []byte("v=" + base64.StdEncoding.EncodeToString(hmacSHA256(s.keys.ServerKey, authMessage))), nil
}

// decodeSASLName undoes RFC 5802 5.1's escaping: "," travels as "=2C" and
// "=" as "=3D"; any other "=" MUST fail the authentication.
func decodeSASLName(v string) (string, error) {
	// RFC 5802 7: saslname = 1*(value-safe-char / "=2C" / "=3D")
	if v == "" {
		return "", malformed("SCRAM empty name")
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '=':
			switch {
			case strings.HasPrefix(v[i:], "=2C"):
				b.WriteByte(',')
			case strings.HasPrefix(v[i:], "=3D"):
				b.WriteByte('=')
			default:
				return "", malformed("SCRAM name has = not followed by 2C or 3D")
			}
			i += 2
		case 0:
			return "", malformed("SCRAM name contains NUL")
		default:
			b.WriteByte(c)
		}
	}
	name := b.String()
	// RFC 5802 5.1 n: names are UTF-8; RFC 5802 7 lists
	// "invalid-username-encoding" for invalid UTF-8. The length bound is
	// ours, the same as PLAIN's (RFC 4616 2).
	if !utf8.ValidString(name) || len(name) > maxFieldLen {
		return "", malformed("SCRAM name not UTF-8 or too long")
	}
	return name, nil
}

// checkExtensions validates optional extensions (RFC 5802 7: extensions =
// attr-val *("," attr-val), attr-val = ALPHA "=" value). Unknown ones MUST
// be ignored (5.1), but "m" MUST cause failure (5.1 m).
func checkExtensions(fields []string) error {
	for _, f := range fields {
		if len(f) < 3 || !isAlpha(f[0]) || f[1] != '=' || strings.IndexByte(f, 0) >= 0 || !utf8.ValidString(f) {
			return malformed("SCRAM extension attribute")
		}
		if f[0] == 'm' {
			return malformed("SCRAM mandatory extension (m=) not supported")
		}
	}
	return nil
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// isPrintable reports RFC 5802 7 "1*printable": %x21-2B / %x2D-7E.
func isPrintable(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// isCBName reports RFC 5802 7 cb-name = 1*(ALPHA / DIGIT / "." / "-").
func isCBName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !('0' <= c && c <= '9') && c != '.' && c != '-' {
			return false
		}
	}
	return true
}
