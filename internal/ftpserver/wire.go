package ftpserver

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// This file is the FTP grammar: bytes to values and back, no I/O, no policy
// (STYLE.md 1). It is fuzzed (fuzz_test.go).

// Command is one parsed command line.
type Command struct {
	Verb string // upper case, 1-4 letters
	Arg  string // everything after the first space, as sent
}

// Grammar errors; replyFor maps them.
var (
	// errSyntax: not a command line at all (RFC 959 4.2: 500).
	errSyntax = errors.New("ftp: syntax error, command unrecognized")
	// errArg: a verb with a malformed argument (RFC 959 4.2: 501).
	errArg = errors.New("ftp: syntax error in parameters or arguments")
	// errNetProto: EPRT/EPSV naming an address family we do not serve
	// (RFC 2428 2: 522).
	errNetProto = errors.New("ftp: network protocol not supported")
)

// Telnet codes (RFC 854) that may appear on the control connection: RFC 959
// 4.1.3 has clients send IP and Synch (IAC DM) before ABOR and STAT.
const (
	iac  = 0xFF
	will = 0xFB
	dont = 0xFE
)

// stripTelnet removes Telnet commands from a line: IAC IAC is a literal
// 0xFF, IAC WILL/WONT/DO/DONT takes one option byte, any other IAC x
// (IP, DM, ...) is two bytes. A dangling IAC at the end is dropped.
func stripTelnet(line []byte) []byte {
	if !containsByte(line, iac) {
		return line
	}
	out := make([]byte, 0, len(line))
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c != iac {
			out = append(out, c)
			continue
		}
		if i+1 >= len(line) {
			break
		}
		next := line[i+1]
		switch {
		case next == iac:
			out = append(out, iac)
			i++
		case next >= will && next <= dont:
			i += 2
		default:
			i++
		}
	}
	return out
}

func containsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// ParseCommand parses one command line without its line ending (a trailing
// CR is removed here). RFC 959 5.3.1: a command is a code of up to four
// letters, case-insensitive, then a single space and the argument. The
// argument keeps inner and trailing spaces (they may belong to a file name,
// RFC 3659 2.2); it may not contain control characters (RFC 959 5.3.2
// arguments are <string> of printable characters; RFC 2640 adds UTF-8,
// which is passed through as bytes).
func ParseCommand(line []byte) (Command, error) {
	line = stripTelnet(line)
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	verb, arg, hasArg := strings.Cut(string(line), " ")
	if len(verb) == 0 || len(verb) > 4 {
		return Command{}, errSyntax
	}
	for i := 0; i < len(verb); i++ {
		c := verb[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return Command{}, errSyntax
		}
	}
	cmd := Command{Verb: strings.ToUpper(verb)}
	if hasArg {
		for i := 0; i < len(arg); i++ {
			if c := arg[i]; c < ' ' || c == 0x7f {
				return cmd, errArg
			}
		}
		cmd.Arg = arg
	}
	return cmd, nil
}

// ParsePORT parses RFC 959 4.1.2's host-port: h1,h2,h3,h4,p1,p2 with each
// field a decimal 0-255.
func ParsePORT(arg string) (netip.AddrPort, error) {
	parts := strings.Split(strings.TrimSpace(arg), ",")
	if len(parts) != 6 {
		return netip.AddrPort{}, errArg
	}
	var b [6]byte
	for i, p := range parts {
		if len(p) == 0 || len(p) > 3 {
			return netip.AddrPort{}, errArg
		}
		v, err := strconv.ParseUint(p, 10, 8)
		if err != nil {
			return netip.AddrPort{}, errArg
		}
		b[i] = byte(v)
	}
	ip := netip.AddrFrom4([4]byte{b[0], b[1], b[2], b[3]})
	return netip.AddrPortFrom(ip, uint16(b[4])<<8|uint16(b[5])), nil
}

// FormatPASV renders RFC 959 4.1.2's host-port for the 227 reply.
func FormatPASV(ap netip.AddrPort) string {
	a := ap.Addr().Unmap().As4()
	return fmt.Sprintf("%d,%d,%d,%d,%d,%d", a[0], a[1], a[2], a[3], ap.Port()>>8, ap.Port()&0xff)
}

// ParseEPRT parses RFC 2428 2: <d><net-prt><d><net-addr><d><tcp-port><d>,
// the delimiter any of ASCII 33-126. Address families 1 (IPv4, dotted
// decimal) and 2 (IPv6) are known; others give errNetProto.
func ParseEPRT(arg string) (netip.AddrPort, error) {
	if len(arg) < 2 {
		return netip.AddrPort{}, errArg
	}
	d := arg[0]
	if d < 33 || d > 126 {
		return netip.AddrPort{}, errArg
	}
	f := strings.Split(arg, string(d))
	if len(f) != 5 || f[0] != "" || f[4] != "" {
		return netip.AddrPort{}, errArg
	}
	port, err := strconv.ParseUint(f[3], 10, 16)
	if err != nil || port == 0 || len(f[3]) > 5 {
		return netip.AddrPort{}, errArg
	}
	var ip netip.Addr
	switch f[1] {
	case "1":
		ip, err = netip.ParseAddr(f[2])
		if err != nil || !ip.Is4() {
			return netip.AddrPort{}, errArg
		}
	case "2":
		ip, err = netip.ParseAddr(f[2])
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return netip.AddrPort{}, errArg
		}
	default:
		if _, err := strconv.Atoi(f[1]); err != nil {
			return netip.AddrPort{}, errArg
		}
		return netip.AddrPort{}, errNetProto
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}

// FormatEPRT renders an EPRT argument with "|" (RFC 2428 2).
func FormatEPRT(ap netip.AddrPort) string {
	af := 2
	if ap.Addr().Is4() {
		af = 1
	}
	return fmt.Sprintf("|%d|%s|%d|", af, ap.Addr().String(), ap.Port())
}

// FormatEPSV renders RFC 2428 3's 229 text argument: (|||port|).
func FormatEPSV(port uint16) string { return fmt.Sprintf("(|||%d|)", port) }

// epsvArg is EPSV's argument (RFC 2428 3): none, a protocol, or ALL.
type epsvArg struct {
	all bool
	af  int // 0 = same as the control connection
}

func parseEPSV(arg string) (epsvArg, error) {
	switch a := strings.TrimSpace(arg); {
	case a == "":
		return epsvArg{}, nil
	case strings.EqualFold(a, "ALL"):
		return epsvArg{all: true}, nil
	case a == "1":
		return epsvArg{af: 1}, nil
	case a == "2":
		return epsvArg{af: 2}, nil
	default:
		if _, err := strconv.Atoi(a); err == nil {
			return epsvArg{}, errNetProto
		}
		return epsvArg{}, errArg
	}
}

// quotePath renders a path for a 257 reply: RFC 959 Appendix II, the name
// in double quotes with embedded quotes doubled.
func quotePath(p string) string { return `"` + strings.ReplaceAll(p, `"`, `""`) + `"` }

// replyLines formats a reply (RFC 959 4.2): one line "code text", or
// "code-first", continuation lines each starting with a space (so none can
// be taken for the end), and "code last".
func replyLines(code int, lines []string) []byte {
	var b strings.Builder
	if len(lines) == 0 {
		lines = []string{""}
	}
	if len(lines) == 1 {
		fmt.Fprintf(&b, "%d %s\r\n", code, sanitize(lines[0]))
		return []byte(b.String())
	}
	fmt.Fprintf(&b, "%d-%s\r\n", code, sanitize(lines[0]))
	for _, l := range lines[1 : len(lines)-1] {
		b.WriteString(" ")
		b.WriteString(sanitize(l))
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "%d %s\r\n", code, sanitize(lines[len(lines)-1]))
	return []byte(b.String())
}

// sanitize keeps a reply line a single line: CR and LF (possible only in
// file names echoed back) become spaces.
func sanitize(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}
