package ftpserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Every verb that needs a login gets 530 before one, and the session goes
// on (STYLE.md 2: a test walks the table).
func TestVerbsNeedLogin(t *testing.T) {
	h := start(t, withOptions(func(o *Options) { o.Limits.MaxErrorsBeforeLogin, o.Limits.MaxErrors = 1000, 1000 }))
	c := h.dial("ftp")
	n := 0
	for verb, cmd := range commands {
		if cmd.flags&preAuth != 0 {
			continue
		}
		c.cmd("%s x", verb).is(t, 530)
		n++
	}
	if n < 30 {
		t.Fatalf("only %d verbs need a login", n)
	}
	c.cmd("NOOP").is(t, 200)
}

func TestPreLoginErrorLimit(t *testing.T) {
	h := start(t)
	c := h.dial("ftp")
	// An HTTP request sent to the FTP port (a cross-protocol attempt) is cut
	// after a few bad lines.
	for i := 0; i < 4; i++ {
		c.cmd("GET / HTTP/1.1").is(t, 500)
	}
	c.cmd("Host: x").is(t, 500)
	c.read().is(t, 421)
	if !c.closed() {
		t.Fatal("session left open")
	}
}

func TestBasics(t *testing.T) {
	h := start(t)
	c := h.dial("ftp")
	c.cmd("SYST").is(t, 215, "UNIX Type: L8")
	c.cmd("FEAT").is(t, 211, "AUTH TLS", "PBSZ", "PROT", "EPSV", "EPRT", "REST STREAM", "SIZE", "MDTM",
		"MLST type*;size*;modify*;perm*;unique*;UNIX.mode*;", "HOST", "UTF8", "HASH SHA-256*;SHA-1;MD5", "MFMT")
	c.cmd("OPTS UTF8 ON").is(t, 200)
	c.cmd("HELP").is(t, 214, "RETR")
	c.cmd("HELP MLSD").is(t, 214, "MLSD")
	c.cmd("PASS x").is(t, 503)
	c.cmd("ACCT x").is(t, 503)
	c.cmd("USER %s", alice).is(t, 331)
	c.cmd("PASS wrong").is(t, 530)
	c.login(alice)
	c.cmd("ACCT x").is(t, 202)
	c.cmd("PWD").is(t, 257, `"/"`)
	c.cmd("MKD docs").is(t, 257, `"/docs" created`)
	c.cmd(`MKD we"ird`).is(t, 257, `"/we""ird" created`)
	c.cmd("MKD docs").is(t, 550)
	c.cmd("XMKD docs/sub").is(t, 257)
	c.cmd("CWD docs").is(t, 250)
	c.cmd("XPWD").is(t, 257, `"/docs"`)
	c.cmd("XCWD sub").is(t, 250)
	c.cmd("CDUP").is(t, 250)
	c.cmd("XCUP").is(t, 250)
	c.cmd("PWD").is(t, 257, `"/"`)
	c.cmd("CWD nowhere").is(t, 550)
	c.cmd("CWD").is(t, 501)
	c.cmd("XRMD docs").is(t, 550, "not empty")
	c.cmd("RMD docs/sub").is(t, 250)
	c.cmd("RMD docs").is(t, 250)
	// Transfer parameters.
	for _, tc := range []struct {
		cmd  string
		code int
	}{
		{"TYPE A", 200}, {"TYPE A N", 200}, {"TYPE I", 200}, {"TYPE L 8", 200}, {"TYPE a", 200},
		{"TYPE E", 504}, {"TYPE A T", 504}, {"TYPE L 16", 504}, {"TYPE Q", 501},
		{"STRU F", 200}, {"STRU R", 504}, {"STRU P", 504}, {"STRU X", 501},
		{"MODE S", 200}, {"MODE B", 504}, {"MODE C", 504}, {"MODE Z", 501},
		{"SMNT /x", 502}, {"ALLO 1000", 202}, {"ALLO 10 R 5", 202}, {"ALLO x", 501},
		{"REST 10", 350}, {"REST -1", 501}, {"REST abc", 501},
		{"CCC", 533}, {"PBSZ 0", 503}, {"PROT P", 503},
		{"SITE HELP", 214}, {"SITE NOPE", 501}, {"OPTS FOO bar", 501}, {"OPTS UTF8 MAYBE", 501},
		{"HOST ftp.example.test", 503}, // after login
		{"XYZZ", 500}, {"TOOLONGVERB", 500}, {"NOOP", 200},
	} {
		c.cmd("%s", tc.cmd).is(t, tc.code)
	}
	// A line over the limit is refused and the session goes on.
	c.cmd("NOOP %s", strings.Repeat("x", DefaultLimits().MaxLineLength)).is(t, 500, "too long")
	c.cmd("NOOP").is(t, 200)
	c.cmd("STAT").is(t, 211, "Logged in as "+alice, "Working directory: /")
	c.cmd("QUIT").is(t, 221)
	if !c.closed() {
		t.Fatal("QUIT did not close")
	}
}

func TestErrorLimit(t *testing.T) {
	h := start(t, withOptions(func(o *Options) { o.Limits.MaxErrors = 3 }))
	c := h.dial("ftp")
	c.login(alice)
	c.cmd("BLAH").is(t, 500)
	c.cmd("TYPE").is(t, 501)
	c.cmd("BLAH").is(t, 500)
	c.read().is(t, 421)
	if !c.closed() {
		t.Fatal("not closed")
	}
}

// Binary transfers in every data mode, with the files checked on disk.
func TestTransfers(t *testing.T) {
	h := start(t)
	c := h.dial("ftp")
	c.login(alice)
	c.cmd("TYPE I").is(t, 200)
	data := bytes.Repeat([]byte("0123456789\x00\xff\r\n\n"), 300000) // 4.5 MB, several chunks
	c.stor("STOR", "big.bin", data, false).is(t, 226)
	if got, _ := os.ReadFile(h.file(alice, "big.bin")); !bytes.Equal(got, data) {
		t.Fatal("stored file differs")
	}
	if got := c.retr("big.bin", false); !bytes.Equal(got, data) {
		t.Fatal("EPSV RETR differs")
	}
	// PASV.
	addr := c.pasv()
	c.send("RETR big.bin")
	dc := c.dataDial(addr, false)
	c.read().is(t, 150, "BINARY", "(4500000 bytes)")
	if got, _ := io.ReadAll(dc); !bytes.Equal(got, data) {
		t.Fatal("PASV RETR differs")
	}
	c.read().is(t, 226)
	// PORT: the server connects to us.
	ln, arg := c.activeListener()
	c.cmd("PORT %s", arg).is(t, 200)
	c.send("STOR active.bin")
	ac, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.read().is(t, 150)
	ac.Write(data[:100000])
	ac.Close()
	c.read().is(t, 226)
	if got, _ := os.ReadFile(h.file(alice, "active.bin")); !bytes.Equal(got, data[:100000]) {
		t.Fatal("PORT STOR differs")
	}
	// EPRT.
	ln2, _ := c.activeListener()
	c.cmd("EPRT |1|127.0.0.1|%d|", ln2.Addr().(*net.TCPAddr).Port).is(t, 200)
	c.send("RETR active.bin")
	ac2, err := ln2.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.read().is(t, 150)
	if got, _ := io.ReadAll(ac2); !bytes.Equal(got, data[:100000]) {
		t.Fatal("EPRT RETR differs")
	}
	c.read().is(t, 226)
	// A transfer without a data connection set up.
	c.cmd("RETR big.bin").is(t, 425)
	c.cmd("RETR missing").is(t, 425) // the data check comes first
	c.epsv()
	c.cmd("RETR missing").is(t, 550)
	c.epsv()
	c.cmd("RETR /").is(t, 550, "directory")

	// REST on RETR and on STOR (resume).
	c.cmd("REST 4499990").is(t, 350)
	if got := c.retr("big.bin", false); !bytes.Equal(got, data[4499990:]) {
		t.Fatalf("REST RETR got %q", got)
	}
	c.cmd("REST 99999999").is(t, 350)
	c.epsv()
	c.cmd("RETR big.bin").is(t, 554)
	c.cmd("REST 50000").is(t, 350)
	c.stor("STOR", "active.bin", []byte("RESUMED"), false).is(t, 226)
	if got, _ := os.ReadFile(h.file(alice, "active.bin")); string(got) != string(data[:50000])+"RESUMED" {
		t.Fatalf("REST STOR: %d bytes", len(got))
	}
	// REST is consumed by the transfer it precedes (a second RETR is whole).
	if got := c.retr("active.bin", false); len(got) != 50007 {
		t.Fatalf("REST leaked into the next transfer: %d bytes", len(got))
	}
	// APPE and STOU.
	c.stor("APPE", "active.bin", []byte("+more"), false).is(t, 226)
	if got, _ := os.ReadFile(h.file(alice, "active.bin")); !strings.HasSuffix(string(got), "RESUMED+more") {
		t.Fatal("APPE")
	}
	r := c.stor("STOU", "active.bin", []byte("unique"), false).is(t, 226, "/active.bin.1")
	_ = r
	if got, _ := os.ReadFile(h.file(alice, "active.bin.1")); string(got) != "unique" {
		t.Fatal("STOU")
	}
	// SIZE, MDTM, MFMT, HASH.
	c.cmd("SIZE big.bin").is(t, 213, "4500000")
	c.cmd("SIZE /").is(t, 550)
	c.cmd("MFMT 20200102030405 big.bin").is(t, 213, "Modify=20200102030405; /big.bin")
	c.cmd("MDTM big.bin").is(t, 213, "20200102030405")
	c.cmd("MFMT 2020 big.bin").is(t, 501)
	sum := sha256.Sum256(data)
	c.cmd("HASH big.bin").is(t, 213, "SHA-256 0-4500000 "+hex.EncodeToString(sum[:])+" /big.bin")
	c.cmd("OPTS HASH MD5").is(t, 200, "MD5")
	c.cmd("HASH active.bin.1").is(t, 213, "MD5 0-6 673eb027e9c056f57140322807351dd5")
	c.cmd("OPTS HASH CRC99").is(t, 501)
	c.cmd("FEAT").is(t, 211, "HASH SHA-256;SHA-1;MD5*")
	// Rename and delete.
	c.cmd("RNFR active.bin.1").is(t, 350)
	c.cmd("RNTO renamed.txt").is(t, 250)
	c.cmd("RNTO again.txt").is(t, 503)
	c.cmd("RNFR renamed.txt").is(t, 350)
	c.cmd("NOOP").is(t, 200)
	c.cmd("RNTO again.txt").is(t, 503) // RNTO must follow RNFR at once
	c.cmd("RNFR nothing").is(t, 550)
	c.cmd("DELE renamed.txt").is(t, 250)
	c.cmd("DELE renamed.txt").is(t, 550)
	c.cmd("SITE CHMOD 600 big.bin").is(t, 200)
	if fi, _ := os.Stat(h.file(alice, "big.bin")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("chmod: %v", fi.Mode())
	}
	c.cmd("SITE CHMOD 9999 big.bin").is(t, 501)
}

func TestListings(t *testing.T) {
	h := start(t)
	c := h.dial("ftp")
	c.login(alice)
	c.cmd("MKD dir").is(t, 257)
	c.cmd("TYPE I").is(t, 200)
	c.stor("STOR", "dir/a.txt", []byte("hello"), false).is(t, 226)
	c.stor("STOR", "b.txt", []byte("hi"), false).is(t, 226)
	list := c.list("LIST", "", false)
	if !strings.Contains(list, "drwx") || !strings.Contains(list, " dir\r\n") || !strings.Contains(list, "b.txt\r\n") ||
		!strings.Contains(list, " ftp ftp ") {
		t.Fatalf("LIST:\n%s", list)
	}
	if got := c.list("LIST", "-la dir", false); !strings.HasPrefix(got, "-rw") || !strings.HasSuffix(got, " a.txt\r\n") {
		t.Fatalf("LIST -la dir:\n%s", got)
	}
	if got := c.list("NLST", "", false); got != "b.txt\r\ndir\r\n" {
		t.Fatalf("NLST %q", got)
	}
	if got := c.list("NLST", "dir", false); got != "a.txt\r\n" {
		t.Fatalf("NLST dir %q", got)
	}
	if got := c.list("NLST", "b.txt", false); got != "b.txt\r\n" {
		t.Fatalf("NLST file %q", got)
	}
	mlsd := c.list("MLSD", "", false)
	lines := strings.Split(strings.TrimSuffix(mlsd, "\r\n"), "\r\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "type=file;size=2;modify=") ||
		!strings.Contains(lines[0], ";perm=adfrw;unique=") || !strings.HasSuffix(lines[0], ";UNIX.mode=0644; b.txt") ||
		!strings.HasPrefix(lines[1], "type=dir;modify=") || !strings.Contains(lines[1], "perm=flcdmpe;") {
		t.Fatalf("MLSD:\n%s", mlsd)
	}
	c.epsv()
	c.cmd("MLSD b.txt").is(t, 501)
	c.cmd("MLST dir/a.txt").is(t, 250, " type=file;size=5;", "; /dir/a.txt", "End")
	c.cmd("OPTS MLST size;Type;bogus;").is(t, 200, "MLST OPTS type;size;")
	c.cmd("MLST b.txt").is(t, 250, " type=file;size=2; /b.txt")
	c.cmd("FEAT").is(t, 211, "MLST type*;size*;modify;perm;unique;UNIX.mode;")
	c.cmd("STAT dir").is(t, 212, "Status of /dir:", "a.txt", "End of status")
	c.cmd("STAT b.txt").is(t, 213, "b.txt")
	c.cmd("STAT nothing").is(t, 550)
}

func TestASCII(t *testing.T) {
	h := start(t)
	c := h.dial("ftp")
	c.login(alice)
	c.cmd("TYPE A").is(t, 200)
	c.stor("STOR", "text.txt", []byte("line one\r\nline two\r\nlone\rcr\r\n"), false).is(t, 226)
	if got, _ := os.ReadFile(h.file(alice, "text.txt")); string(got) != "line one\nline two\nlone\rcr\n" {
		t.Fatalf("stored %q", got)
	}
	if got := c.retr("text.txt", false); string(got) != "line one\r\nline two\r\nlone\rcr\r\n" {
		t.Fatalf("ASCII RETR %q", got)
	}
	c.cmd("SIZE text.txt").is(t, 213, "29")
	c.cmd("TYPE I").is(t, 200)
	c.cmd("SIZE text.txt").is(t, 213, "26")
	if got := c.retr("text.txt", false); string(got) != "line one\nline two\nlone\rcr\n" {
		t.Fatalf("binary RETR %q", got)
	}
	// REST in TYPE A counts octets of the wire form (RFC 3659 5.1).
	c.cmd("TYPE A").is(t, 200)
	c.cmd("REST 10").is(t, 350)
	if got := c.retr("text.txt", false); string(got) != "line two\r\nlone\rcr\r\n" {
		t.Fatalf("ASCII REST RETR %q", got)
	}
	c.cmd("REST 9").is(t, 350) // between the CR and LF the server inserts
	c.epsv()
	c.cmd("STOR text.txt").is(t, 554)
	c.cmd("REST 10").is(t, 350)
	c.stor("STOR", "text.txt", []byte("second\r\n"), false).is(t, 226)
	if got, _ := os.ReadFile(h.file(alice, "text.txt")); string(got) != "line one\nsecond\n" {
		t.Fatalf("ASCII resume stored %q", got)
	}
	// A file stored with CRLF goes out unchanged in TYPE A.
	os.WriteFile(h.file(alice, "dos.txt"), []byte("a\r\nb\r\n"), 0o644)
	if got := c.retr("dos.txt", false); string(got) != "a\r\nb\r\n" {
		t.Fatalf("CRLF file in TYPE A: %q", got)
	}
}

// STAT and ABOR are served while a transfer runs; ABOR gets 426 for the
// transfer, then 226.
func TestAbortAndStatDuringTransfer(t *testing.T) {
	h := start(t)
	big := h.file(alice, "huge.bin")
	c := h.dial("ftp")
	c.login(alice)
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 64<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	c.cmd("TYPE I").is(t, 200)
	addr := c.epsv()
	c.send("RETR huge.bin")
	dc := c.dataDial(addr, false)
	c.read().is(t, 150)
	// Read a little, so the transfer is known to run, then stop reading.
	if _, err := io.ReadFull(dc, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	c.cmd("STAT").is(t, 213, "RETR /huge.bin:", "of 67108864 transferred")
	c.send("ABOR")
	c.read().is(t, 426)
	c.read().is(t, 226, "ABOR")
	if _, err := io.Copy(io.Discard, dc); err == nil {
		// The data connection was closed under the transfer: a clean EOF
		// is possible only if everything was sent, which it was not.
	}
	c.cmd("ABOR").is(t, 225)
	c.cmd("NOOP").is(t, 200)

	// ABOR of an upload leaves no file.
	addr = c.epsv()
	c.send("STOR partial.bin")
	dc = c.dataDial(addr, false)
	c.read().is(t, 150)
	dc.Write(make([]byte, 100000))
	waitFor(t, "the upload to start", func() bool {
		c.send("STAT")
		r := c.read()
		return r.code == 213 && strings.Contains(r.msg, "100000 bytes")
	})
	c.send("ABOR")
	c.read().is(t, 426)
	c.read().is(t, 226)
	if _, err := os.Stat(h.file(alice, "partial.bin")); err == nil {
		t.Fatal("aborted upload visible")
	}
	// The Telnet IP and Synch before ABOR (RFC 959 4.1.3) are ignored.
	c.cmd("\xff\xf4\xff\xf2ABOR").is(t, 225)
}

// Other commands wait for the running transfer's reply (order), QUIT too.
func TestCommandsWaitForTransfer(t *testing.T) {
	h := start(t)
	os.MkdirAll(h.file(alice, ""), 0o700)
	c := h.dial("ftp")
	c.login(alice)
	os.WriteFile(h.file(alice, "f.bin"), bytes.Repeat([]byte("y"), 8<<20), 0o644)
	c.cmd("TYPE I").is(t, 200)
	addr := c.epsv()
	c.send("RETR f.bin")
	dc := c.dataDial(addr, false)
	c.read().is(t, 150)
	c.send("PWD")
	c.send("FROB") // a refusal waits its turn too
	c.send("QUIT")
	n, err := io.Copy(io.Discard, dc)
	if err != nil || n != 8<<20 {
		t.Fatalf("got %d bytes, %v", n, err)
	}
	c.read().is(t, 226)
	c.read().is(t, 257)
	c.read().is(t, 500)
	c.read().is(t, 221)
	if !c.closed() {
		t.Fatal("not closed after QUIT")
	}
}

func TestActiveModeRefusals(t *testing.T) {
	h := start(t)
	c := h.dial("ftp")
	c.login(alice)
	c.cmd("PORT 10,1,2,3,100,100").is(t, 504)  // another address: bounce
	c.cmd("PORT 127,0,0,1,0,25").is(t, 504)    // a privileged port
	c.cmd("PORT 127,0,0,1,3,255").is(t, 504)   // 1023
	c.cmd("PORT 127,0,0,1,300,1").is(t, 501)   // syntax
	c.cmd("PORT 127,0,0,1,4").is(t, 501)       // syntax
	c.cmd("EPRT |1|10.1.2.3|5000|").is(t, 504) // bounce
	c.cmd("EPRT |2|::1|5000|").is(t, 504)      // not the control address
	c.cmd("EPRT |3|x|5000|").is(t, 522, "(1,2)")
	c.cmd("EPRT |1|127.0.0.1|25|").is(t, 504)
	c.cmd("EPRT garbage").is(t, 501)
	c.cmd("EPSV 2").is(t, 522, "(1)")
	c.cmd("EPSV 9").is(t, 522)
	c.cmd("EPSV ALL").is(t, 200)
	c.cmd("PASV").is(t, 503)
	c.cmd("PORT 127,0,0,1,100,100").is(t, 503)
	c.cmd("EPRT |1|127.0.0.1|5000|").is(t, 503)
	c.epsv()
}

// A data connection from another address is refused; the client's own
// then gets the transfer.
func TestDataConnectionFromOtherAddress(t *testing.T) {
	h := start(t)
	c := h.dial("ftp")
	c.login(alice)
	os.WriteFile(h.file(alice, "f.txt"), []byte("secret"), 0o644)
	c.cmd("TYPE I").is(t, 200)
	addr := c.epsv()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	thief, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2: %v", err)
	}
	defer thief.Close()
	c.send("RETR f.txt")
	c.read().is(t, 150)
	thief.SetDeadline(time.Now().Add(ioTimeout))
	if b, _ := io.ReadAll(thief); len(b) != 0 {
		t.Fatalf("thief got %q", b)
	}
	dc := c.dataDial(addr, false)
	if got := readAllString(t, dc); got != "secret" {
		t.Fatalf("owner got %q", got)
	}
	c.read().is(t, 226)
	if !strings.Contains(h.logBuf.String(), "data connection from another address refused") {
		t.Fatal("refusal not logged")
	}
}

func TestReadOnlyAndQuota(t *testing.T) {
	h := start(t)
	os.MkdirAll(h.file(bob, "d"), 0o755)
	os.WriteFile(h.file(bob, "f"), []byte("keep"), 0o644)
	h.dir.set(bob, func(a *directoryAccount) { a.FilesReadOnly = true })
	c := h.dial("ftp")
	c.login(bob)
	c.cmd("TYPE I").is(t, 200)
	for _, cmd := range []string{"STOR x", "APPE f", "STOU", "DELE f", "RMD d", "MKD e", "RNFR f", "MFMT 20200101000000 f",
		"SITE CHMOD 644 f"} {
		c.epsv()
		c.cmd("%s", cmd).is(t, 550, "read-only")
	}
	if got := c.retr("f", false); string(got) != "keep" {
		t.Fatal("read-only account cannot read")
	}
	if got := c.list("MLSD", "", false); !strings.Contains(got, "perm=r;") || !strings.Contains(got, "perm=el;") {
		t.Fatalf("MLSD perms for read-only: %s", got)
	}

	h.dir.set(alice, func(a *directoryAccount) { a.QuotaBytes = 1000 })
	a := h.dial("ftp")
	a.login(alice)
	a.cmd("TYPE I").is(t, 200)
	a.stor("STOR", "one", make([]byte, 600), false).is(t, 226)
	a.stor("STOR", "two", make([]byte, 600), false).is(t, 552)
	if _, err := os.Stat(h.file(alice, "two")); err == nil {
		t.Fatal("over-quota upload stored")
	}
	a.cmd("ALLO 500").is(t, 552)
	a.cmd("ALLO 400").is(t, 202)
	a.stor("STOR", "two", make([]byte, 400), false).is(t, 226)
	a.epsv()
	a.cmd("STOR three").is(t, 552) // nothing left: refused before 150
	a.cmd("DELE one").is(t, 250)
	a.stor("STOR", "three", make([]byte, 600), false).is(t, 226)
}

func TestTraversal(t *testing.T) {
	h := start(t)
	c := h.dial("ftp")
	c.login(alice)
	outside := filepath.Join(filepath.Dir(h.root), "outside.txt")
	os.WriteFile(outside, []byte("outside"), 0o644)
	os.Symlink(outside, h.file(alice, "link"))
	os.Symlink("/etc", h.file(alice, "etc"))
	c.cmd("CWD ../..").is(t, 250, "/")
	c.cmd("PWD").is(t, 257, `"/"`)
	c.cmd("TYPE I").is(t, 200)
	for _, p := range []string{"../../etc/passwd", "/../outside.txt", "link", "etc/passwd", "../../../../etc/passwd"} {
		c.epsv()
		c.cmd("RETR %s", p).is(t, 550)
		c.cmd("SIZE %s", p).is(t, 550)
	}
	c.cmd("CWD etc").is(t, 550)
	c.cmd("CWD /.posta-tmp").is(t, 550)
	if got := c.list("NLST", "", false); got != "" {
		t.Fatalf("listing shows %q", got)
	}
	c.stor("STOR", "../../escape.txt", []byte("x"), false).is(t, 226)
	if _, err := os.Stat(filepath.Join(filepath.Dir(h.root), "escape.txt")); err == nil {
		t.Fatal("escaped")
	}
	if _, err := os.Stat(h.file(alice, "escape.txt")); err != nil {
		t.Fatal("cleaned path not used")
	}
}

func TestAnonymous(t *testing.T) {
	h := start(t)
	c := h.dial("ftp")
	c.cmd("USER anonymous").is(t, 331)
	c.cmd("PASS guest@example.test").is(t, 230)
	if got := c.retr("welcome.txt", false); string(got) != "hello anonymous\r\n" {
		t.Fatalf("anonymous RETR %q", got)
	}
	c.epsv()
	c.cmd("STOR x").is(t, 550)
	c.cmd("MKD x").is(t, 550)

	off := start(t, withOptions(func(o *Options) { o.Anonymous = false }))
	d := off.dial("ftp")
	d.cmd("USER ftp").is(t, 331)
	d.cmd("PASS x").is(t, 530)
}

func TestHOSTAndREIN(t *testing.T) {
	h := start(t)
	c := h.dial("ftp")
	c.cmd("HOST ftp.example.test").is(t, 220)
	c.cmd("HOST other.example.test").is(t, 220) // the last one counts (RFC 7151 3)
	c.cmd("HOST 127.0.0.1").is(t, 220)
	c.cmd("HOST 10.0.0.1").is(t, 504)
	c.cmd("HOST 127.0.0.1:21").is(t, 501)
	c.cmd("HOST [::1]").is(t, 504)
	c.cmd("HOST bad_name!").is(t, 501)
	c.login(alice)
	c.cmd("HOST ftp.example.test").is(t, 503)
	c.cmd("CWD /").is(t, 250)
	c.cmd("REIN").is(t, 220)
	c.cmd("PWD").is(t, 530)
	c.cmd("HOST ftp.example.test").is(t, 220)
	c.login(bob)
	c.cmd("PWD").is(t, 257)
	// USER while logged in starts over.
	c.cmd("USER %s", alice).is(t, 331)
	c.cmd("PWD").is(t, 530)
}

func TestIdleTimeout(t *testing.T) {
	h := start(t, withOptions(func(o *Options) { o.Limits.IdleTimeout = 100 * time.Millisecond }))
	c := h.dial("ftp")
	c.read().is(t, 421, "timeout")
	if !c.closed() {
		t.Fatal("not closed")
	}
}

func TestGuard(t *testing.T) {
	h := start(t, withGuard(guardLimits(2, 3)))
	c1 := h.dial("ftp")
	h.dial("ftps") // one guard for every listener
	nc, err := net.Dial("tcp", h.addr["ftp"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(ioTimeout))
	if got := readAllString(t, nc); !strings.HasPrefix(got, "421 ") {
		t.Fatalf("third connection got %q", got)
	}
	// Failed logins: the session ends after MaxLoginFailures (3) with 421.
	c1.cmd("USER %s", alice).is(t, 331)
	c1.cmd("PASS bad1").is(t, 530)
	c1.cmd("USER %s", alice).is(t, 331)
	c1.cmd("PASS bad2").is(t, 530)
	c1.cmd("USER %s", alice).is(t, 331)
	// The third failure within the window bans the address.
	c1.cmd("PASS bad3").is(t, 421)
	if !c1.closed() {
		t.Fatal("banned session left open")
	}
	waitFor(t, "the slot to free", func() bool { return h.guard.Stats().Conns <= 1 })
	nc2, err := net.Dial("tcp", h.addr["ftp"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	nc2.SetDeadline(time.Now().Add(ioTimeout))
	if got := readAllString(t, nc2); !strings.HasPrefix(got, "421 ") || !strings.Contains(got, "failed logins") {
		t.Fatalf("banned address got %q", got)
	}
}

func TestShutdown(t *testing.T) {
	h := start(t)
	idle := h.dial("ftp")
	idle.login(alice)
	busy := h.dial("ftp")
	busy.login(alice)
	os.WriteFile(h.file(alice, "f.bin"), bytes.Repeat([]byte("z"), 16<<20), 0o644)
	busy.cmd("TYPE I").is(t, 200)
	addr := busy.epsv()
	busy.send("RETR f.bin")
	dc := busy.dataDial(addr, false)
	busy.read().is(t, 150)
	if _, err := io.ReadFull(dc, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := contextWithTimeout(10 * time.Second)
		defer cancel()
		done <- h.srv["ftp"].Shutdown(ctx)
	}()
	// The idle session hears 421 at once.
	idle.read().is(t, 421, "shutting down")
	// The busy one finishes its transfer, then hears 421.
	n, err := io.Copy(io.Discard, dc)
	if err != nil || n != 15<<20 {
		t.Fatalf("transfer cut: %d, %v", n, err)
	}
	busy.read().is(t, 226)
	busy.read().is(t, 421)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestShutdownDeadlineCuts(t *testing.T) {
	h := start(t)
	busy := h.dial("ftp")
	busy.login(alice)
	os.WriteFile(h.file(alice, "f.bin"), bytes.Repeat([]byte("z"), 32<<20), 0o644)
	busy.cmd("TYPE I").is(t, 200)
	addr := busy.epsv()
	busy.send("RETR f.bin")
	dc := busy.dataDial(addr, false)
	busy.read().is(t, 150)
	ctx, cancel := contextWithTimeout(100 * time.Millisecond)
	defer cancel()
	if err := h.srv["ftp"].Shutdown(ctx); err == nil {
		t.Fatal("Shutdown returned nil with a stalled transfer")
	}
	if _, err := io.Copy(io.Discard, dc); err != nil && !isConnReset(err) {
		t.Logf("data: %v", err)
	}
	if !busy.closed() {
		t.Fatal("control connection still open after the deadline")
	}
}

// A transfer may outlast the idle timeout: the quiet control connection is
// not cut meanwhile, under TLS too (a timed-out TLS read must not poison
// the connection).
func TestTransferLongerThanIdleTimeout(t *testing.T) {
	h := start(t, withOptions(func(o *Options) { o.Limits.IdleTimeout = 300 * time.Millisecond }))
	os.MkdirAll(h.file(alice, ""), 0o700)
	os.WriteFile(h.file(alice, "f.bin"), bytes.Repeat([]byte("w"), 16<<20), 0o644)
	c := h.dial("ftp")
	c.startTLS()
	c.login(alice)
	c.protP()
	c.cmd("TYPE I").is(t, 200)
	addr := c.epsv()
	c.send("RETR f.bin")
	dc := c.dataDial(addr, true)
	c.read().is(t, 150)
	if _, err := io.ReadFull(dc, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	// The thing under test is elapsed time: stall the transfer for several
	// idle timeouts.
	<-time.After(4 * 300 * time.Millisecond)
	c.cmd("STAT").is(t, 213, "RETR /f.bin")
	if n, err := io.Copy(io.Discard, dc); err != nil || n != 15<<20 {
		t.Fatalf("rest of transfer: %d, %v", n, err)
	}
	c.read().is(t, 226)
	// Idle again: now the timeout applies.
	c.read().is(t, 421, "timeout")
}
