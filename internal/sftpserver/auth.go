package sftpserver

import (
	"context"
	"errors"

	"golang.org/x/crypto/ssh"

	"posta/internal/sasl"
)

var (
	errAuthFailed = errors.New("sftpserver: authentication failed")
	errBanned     = errors.New("sftpserver: address banned")
)

// password is the "password" method (RFC 4252 8). x/crypto/ssh runs the
// callbacks on the connection's goroutine, one attempt at a time, and
// counts attempts against MaxAuthTries (RFC 4252 4).
func (c *conn) password(meta ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
	c.user = meta.User()
	if err := c.checkBan(); err != nil {
		return nil, err
	}
	addr, err := c.s.o.Directory.VerifyPassword(c.ctx, meta.User(), string(pw))
	if err != nil {
		if !errors.Is(err, sasl.ErrInvalidCredentials) {
			// Our failure (database down): not the client's, so no guard
			// record; the attempt fails and the client may retry.
			c.internalErr = true
			c.s.log.Error("sftp auth error", "conn", c.id, "ip", c.ip.String(), "err", err.Error())
			return nil, errAuthFailed
		}
		return nil, c.failed("password")
	}
	return &ssh.Permissions{Extensions: map[string]string{extAccount: addr, extMethod: "password"}}, nil
}

// publicKey is the "publickey" method (RFC 4252 7): the key must be one of
// the account's authorized keys. x/crypto/ssh verifies the signature after
// this says yes, and caches the answer per key for the connection.
//
// A key that is not authorized is not a guard failure: clients offer every
// key they hold (an agent may have many) and a key cannot be guessed;
// MaxAuthTries bounds the offers per connection, as in sshd.
func (c *conn) publicKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	c.user = meta.User()
	if err := c.checkBan(); err != nil {
		return nil, err
	}
	addr, err := canonicalAddress(meta.User())
	if err != nil {
		return nil, errAuthFailed
	}
	ok, err := keyAuthorized(c.ctx, c.s.o.DB, addr, key)
	if err != nil {
		c.internalErr = true
		c.s.log.Error("sftp auth error", "conn", c.id, "ip", c.ip.String(), "err", err.Error())
		return nil, errAuthFailed
	}
	if !ok {
		c.s.log.Debug("sftp key not authorized", "conn", c.id, "ip", c.ip.String(), "user", c.user,
			"key", ssh.FingerprintSHA256(key))
		return nil, errAuthFailed
	}
	return &ssh.Permissions{Extensions: map[string]string{extAccount: addr, extMethod: "publickey",
		extKey: ssh.FingerprintSHA256(key)}}, nil
}

// checkBan stops a connection whose address was banned meanwhile (by
// another session, of any protocol).
func (c *conn) checkBan() error {
	if banned, _ := c.s.o.Guard.Banned(c.ip); banned {
		c.banned = true
		c.raw.abort()
		return errBanned
	}
	return nil
}

// failed records a failed login with the guard, waits its delay (ending
// early when the connection or the server stops), and cuts a peer that is
// now banned.
func (c *conn) failed(method string) error {
	c.authFails++
	delay, banned := c.s.o.Guard.AuthFailed(c.ip, c.user)
	c.s.log.Info("sftp auth failed", "conn", c.id, "ip", c.ip.String(), "user", c.user, "method", method,
		"delay", delay, "banned", banned)
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	stop := context.AfterFunc(c.s.conns.StoppingContext(), cancel)
	defer stop()
	if err := c.s.o.Guard.Sleep(ctx, delay); err != nil {
		c.raw.abort()
		return err
	}
	if banned {
		c.banned = true
		c.raw.abort()
		return errBanned
	}
	return errAuthFailed
}
