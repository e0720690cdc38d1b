package ftpserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"posta/internal/files"
)

func TestParseNetworkAddresses(t *testing.T) {
	got, err := ParseNetworkAddresses("10.0.0.0/8=10.0.0.5, 192.168.1.7/16=ftp.lan.example  127.0.0.0/8=127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	want := []NetworkAddress{
		{netip.MustParsePrefix("10.0.0.0/8"), "10.0.0.5"},
		{netip.MustParsePrefix("192.168.0.0/16"), "ftp.lan.example"},
		{netip.MustParsePrefix("127.0.0.0/8"), "127.0.0.1"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v", got)
	}
	for _, bad := range []string{"10.0.0.0/8", "10.0.0.0/33=1.2.3.4", "10.0.0.0/8=::1", "x=1.2.3.4", "10.0.0.0/8=bad_name!"} {
		if _, err := ParseNetworkAddresses(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if got, err := ParseNetworkAddresses(""); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, err)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	h := start(t)
	base := Options{Directory: h.dir, Files: h.store, Guard: h.guard, Limits: DefaultLimits()}
	for name, f := range map[string]func(*Options){
		"zero limit":     func(o *Options) { o.Limits.DataTimeout = 0 },
		"zero drain":     func(o *Options) { o.Limits.MaxDrain = 0 },
		"short line":     func(o *Options) { o.Limits.MaxLineLength = 100 },
		"half range":     func(o *Options) { o.PassivePortMin = 50000 },
		"low range":      func(o *Options) { o.PassivePortMin, o.PassivePortMax = 100, 200 },
		"reversed range": func(o *Options) { o.PassivePortMin, o.PassivePortMax = 60000, 50000 },
		"v6 passive":     func(o *Options) { o.PassiveAddress = "2001:db8::1" },
		"bad policy":     func(o *Options) { o.TLSData = "sometimes" },
		"implicit no tls": func(o *Options) {
			o.Listener.Name, o.Listener.ImplicitTLS = "ftps", true
		},
		"no files": func(o *Options) { o.Files = nil },
		"anonymous without area": func(o *Options) {
			st, _ := files.Open(files.Options{Dir: t.TempDir()})
			o.Files, o.Anonymous = st, true
		},
	} {
		o := base
		f(&o)
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// PASV announces the configured address (per client network first) and
// listens in the configured port range.
func TestPassiveAddressAndPorts(t *testing.T) {
	var lookups atomic.Int32
	h := start(t, withOptions(func(o *Options) {
		o.PassivePortMin, o.PassivePortMax = 40000, 40009
		o.PassiveAddress = "ftp.public.example"
		o.PassiveAddressByNetwork = []NetworkAddress{{netip.MustParsePrefix("10.0.0.0/8"), "10.1.1.1"}}
		o.LookupNetIP = func(_ context.Context, network, host string) ([]netip.Addr, error) {
			lookups.Add(1)
			if network != "ip4" || host != "ftp.public.example" {
				return nil, fmt.Errorf("unexpected lookup %s %s", network, host)
			}
			return []netip.Addr{netip.MustParseAddr("198.51.100.7")}, nil
		}
	}))
	c := h.dial("ftp")
	c.login(alice)
	for i := 0; i < 12; i++ {
		r := c.cmd("PASV").is(t, 227, "(198,51,100,7,")
		ap, err := ParsePORT(r.msg[strings.Index(r.msg, "(")+1 : strings.Index(r.msg, ")")])
		if err != nil || ap.Port() < 40000 || ap.Port() > 40009 {
			t.Fatalf("PASV %q", r.msg)
		}
		r = c.cmd("EPSV").is(t, 229)
		if !strings.Contains(r.msg, "(|||400") {
			t.Fatalf("EPSV port outside the range: %q", r.msg)
		}
	}
	if lookups.Load() == 0 {
		t.Fatal("host name not resolved")
	}
	// The loopback client matches no override; one that does gets its own.
	h2 := start(t, withOptions(func(o *Options) {
		o.PassiveAddress = "203.0.113.9"
		o.PassiveAddressByNetwork = []NetworkAddress{{netip.MustParsePrefix("127.0.0.0/8"), "127.0.0.1"}}
	}))
	c2 := h2.dial("ftp")
	c2.login(alice)
	c2.cmd("PASV").is(t, 227, "(127,0,0,1,")
}

// IPv6: EPSV and EPRT work, PASV (IPv4 only) is refused, HOST takes a
// bracketed literal.
func TestIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	h := start(t)
	o := h.opts
	o.Listener.Name = "ftp"
	o.Directory, o.Files, o.Guard, o.TLS = h.dir, h.store, h.guard, h.tlsm
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	h.addr["ftp6"] = ln.Addr().String()
	c := h.dial("ftp6")
	c.cmd("HOST [::1]").is(t, 220)
	c.login(alice)
	c.cmd("PASV").is(t, 501, "EPSV")
	c.cmd("EPSV 1").is(t, 522, "(2)")
	r := c.cmd("EPSV 2").is(t, 229)
	port := r.msg[strings.Index(r.msg, "(|||")+4 : strings.LastIndex(r.msg, "|)")]
	c.send("STOR v6.txt")
	dc, err := net.Dial("tcp", net.JoinHostPort("::1", port))
	if err != nil {
		t.Fatal(err)
	}
	c.read().is(t, 150)
	dc.Write([]byte("over ipv6"))
	dc.Close()
	c.read().is(t, 226)
	al, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	c.cmd("EPRT |2|::1|%d|", al.Addr().(*net.TCPAddr).Port).is(t, 200)
	c.cmd("EPRT |1|127.0.0.1|%d|", al.Addr().(*net.TCPAddr).Port).is(t, 504) // not the control address
	c.cmd("EPRT |2|::1|%d|", al.Addr().(*net.TCPAddr).Port).is(t, 200)
	c.send("RETR v6.txt")
	ac, err := al.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.read().is(t, 150)
	if got := readAllString(t, ac); got != "over ipv6" {
		t.Fatalf("got %q", got)
	}
	c.read().is(t, 226)
}

func TestMoreCommands(t *testing.T) {
	h := start(t)
	c := h.dial("ftp")
	c.startTLS()
	// RFC 7151 3.2.2: with SNI, HOST must match it.
	c.cmd("HOST other.example").is(t, 504)
	c.cmd("HOST localhost").is(t, 220)
	c.login(alice)
	c.protP()
	c.cmd("TYPE I").is(t, 200)
	// STOU without a name picks one.
	r := c.stor("STOU", "", []byte("u"), true).is(t, 226, "/stou-")
	_ = r
	// REIN keeps TLS but forgets the user and PROT.
	c.cmd("REIN").is(t, 220, "TLS stays on")
	c.cmd("PWD").is(t, 530)
	c.login(alice)
	c.cmd("STAT").is(t, 211, "data protection: C", "TLS")
	c.cmd("SIZE nothing").is(t, 550)
	c.cmd("MLST nothing").is(t, 550)
	c.cmd("HASH nothing").is(t, 550)
	c.cmd("MDTM nothing").is(t, 550)
	c.cmd("OPTS HASH").is(t, 200, "SHA-256")
	c.cmd("OPTS HASH sha-1").is(t, 200, "SHA-1")
}
