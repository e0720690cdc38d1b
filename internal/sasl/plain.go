package sasl

import (
	"bytes"
	"context"
	"fmt"
)

// phase is where a conversation stands; every mechanism walks a subset.
type phase int

const (
	phaseStart    phase = iota // nothing received yet
	phaseWaiting               // sent the empty challenge, waiting for the initial response
	phaseUsername              // LOGIN: sent "Username:"
	phasePassword              // LOGIN: sent "Password:"
	phaseFinal                 // SCRAM: sent server-first, waiting for client-final
	phaseOver                  // succeeded or failed; Next refuses
)

// plainServer is RFC 4616 PLAIN: one client message, no challenges.
type plainServer struct {
	ctx      context.Context
	creds    Credentials
	phase    phase
	username string
	account  string
}

func (s *plainServer) Account() string  { return s.account }
func (s *plainServer) Username() string { return s.username }

func (s *plainServer) Next(response []byte) ([]byte, bool, error) {
	switch s.phase {
	case phaseStart:
		if len(response) == 0 {
			// RFC 4422 3 and 5 2a: PLAIN is client-first; without an initial
			// response the server sends an empty challenge and the client's
			// message follows. An empty initial response is no valid message
			// either, so it is treated the same way.
			s.phase = phaseWaiting
			return []byte{}, false, nil
		}
	case phaseWaiting:
	default:
		return nil, false, ErrExchangeOver
	}
	s.phase = phaseOver
	authzid, authcid, passwd, err := parsePlain(response)
	if err != nil {
		return nil, false, err
	}
	s.username = authcid
	account, err := s.creds.VerifyPassword(s.ctx, authcid, passwd)
	if err != nil {
		return nil, false, credentialsError("PLAIN", err)
	}
	// RFC 4616 2: after the credentials, the server verifies that they permit
	// acting as the (presented or derived) authorization identity. Checking
	// the password first means a bad authzid reveals nothing to a guesser.
	if !authzidAllowed(authzid, authcid, account) {
		return nil, false, fmt.Errorf("%w: PLAIN", ErrAuthzidNotAllowed)
	}
	s.account = account
	return nil, true, nil
}

// parsePlain splits message = [authzid] UTF8NUL authcid UTF8NUL passwd.
func parsePlain(msg []byte) (authzid, authcid, passwd string, err error) {
	// RFC 4616 2: each field up to 255 octets plus the two NULs; anything
	// longer cannot be valid, so reject it before splitting.
	if len(msg) > 3*maxFieldLen+2 {
		return "", "", "", malformed("PLAIN message too long")
	}
	// RFC 4616 2: NUL MUST NOT appear in any field, so there are exactly two.
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return "", "", "", malformed("PLAIN message needs exactly two NULs")
	}
	authzid, authcid, passwd = string(parts[0]), string(parts[1]), string(parts[2])
	// RFC 4616 2: authcid and passwd are 1*SAFE (non-empty UTF-8); authzid is
	// optional, and RFC 4422 3.4.1: an empty one equals an absent one.
	if !validField(authcid) || !validField(passwd) || (authzid != "" && !validField(authzid)) {
		return "", "", "", malformed("PLAIN field empty, too long or not UTF-8")
	}
	return authzid, authcid, passwd, nil
}

// loginServer is the LOGIN mechanism as deployed (draft-murchison-sasl-login):
// the server asks for the user name, then the password, each as a challenge
// whose text clients ignore. There is no authorization identity.
type loginServer struct {
	ctx      context.Context
	creds    Credentials
	phase    phase
	username string
	account  string
}

// The challenge texts. The LOGIN drafts leave the text to the server and
// clients ignore it; the deployed servers (Exchange, Cyrus, Postfix, Dovecot,
// Exim) send "Username:" and "Password:", and a few old clients look for
// exactly those, so we send them too.
var (
	loginUsernameChallenge = []byte("Username:")
	loginPasswordChallenge = []byte("Password:")
)

func (s *loginServer) Account() string  { return s.account }
func (s *loginServer) Username() string { return s.username }

func (s *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch s.phase {
	case phaseStart:
		if len(response) == 0 {
			s.phase = phaseUsername
			return loginUsernameChallenge, false, nil
		}
		// Clients such as Outlook and curl send the user name as the initial
		// response ("AUTH LOGIN dXNlcg=="); the draft allows it.
		fallthrough
	case phaseUsername:
		if !validField(string(response)) {
			s.phase = phaseOver
			return nil, false, malformed("LOGIN user name empty, too long or not UTF-8")
		}
		s.username = string(response)
		s.phase = phasePassword
		return loginPasswordChallenge, false, nil
	case phasePassword:
		s.phase = phaseOver
		if !validField(string(response)) {
			return nil, false, malformed("LOGIN password empty, too long or not UTF-8")
		}
		account, err := s.creds.VerifyPassword(s.ctx, s.username, string(response))
		if err != nil {
			return nil, false, credentialsError("LOGIN", err)
		}
		s.account = account
		return nil, true, nil
	}
	return nil, false, ErrExchangeOver
}
