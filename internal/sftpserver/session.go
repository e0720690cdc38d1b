package sftpserver

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"posta/internal/files"
)

// session serves one "session" channel (RFC 4254 6). The only request
// granted is "subsystem" with the name "sftp" (RFC 4254 6.5;
// draft-ietf-secsh-filexfer-02 2), once. Everything else gets "failure":
// "shell" and "exec" (6.5), "pty-req" (6.2), "x11-req" (6.3.1), "env"
// (6.4), "auth-agent-req@openssh.com" (agent forwarding), signals and
// window changes.
func (c *conn) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer c.endSession(ch)
	var sftpDone sync.WaitGroup
	started := false
	for req := range reqs {
		switch req.Type {
		case "subsystem":
			var sub struct{ Name string }
			if !started && ssh.Unmarshal(req.Payload, &sub) == nil && sub.Name == "sftp" {
				started = true
				// The reply must reach the client before any SFTP data.
				if req.WantReply {
					req.Reply(true, nil)
				}
				sftpDone.Add(1)
				go func() {
					defer sftpDone.Done()
					if !c.runSFTP(ch) {
						// RFC 4254 6.10: exit-status, then close. (A session
						// that ran sends them from its stream's Close.)
						ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{1}))
					}
					ch.Close()
				}()
				continue
			}
			c.s.log.Info("sftp refused subsystem", "conn", c.id, "account", c.account, "name", sub.Name)
		case "shell", "exec", "x11-req", "auth-agent-req@openssh.com":
			c.s.log.Info("sftp refused request", "conn", c.id, "account", c.account, "request", req.Type)
		}
		if req.WantReply {
			req.Reply(false, nil)
		}
	}
	sftpDone.Wait()
	ch.Close()
}

// runSFTP serves the SFTP subsystem until the client closes it (or the
// connection ends); false if it could not start.
func (c *conn) runSFTP(ch ssh.Channel) bool {
	s := c.s
	acc, err := s.o.Directory.Account(c.ctx, c.account)
	if err != nil {
		s.log.Error("sftp: account lookup failed", "conn", c.id, "account", c.account, "err", err.Error())
		return false
	}
	tree, err := s.o.Files.Tree(c.ctx, files.Account{Address: acc.Address, QuotaBytes: acc.QuotaBytes,
		ReadOnly: acc.FilesReadOnly})
	if err != nil {
		s.log.Error("sftp: open tree failed", "conn", c.id, "account", c.account, "err", err.Error())
		return false
	}
	defer tree.Close()
	h := newHandlers(c, tree)
	st := newStream(ch, c)
	rs := sftp.NewRequestServer(st, sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h}, sftp.WithRSAllocator())
	start := time.Now()
	s.log.Info("sftp session start", "conn", c.id, "account", c.account, "read_only", acc.FilesReadOnly)
	err = rs.Serve()
	rs.Close()
	// Whatever was in flight is over: pkg/sftp closed every open handle.
	c.adjust(-st.unanswered(), 0)
	s.log.Info("sftp session end", "conn", c.id, "account", c.account,
		"duration", time.Since(start).Round(time.Millisecond), "err", errText(err))
	return true
}

func errText(err error) string {
	if err == nil || errors.Is(err, io.EOF) {
		return ""
	}
	return err.Error()
}
