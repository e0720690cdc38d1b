package directory

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Address is a normalised mail address: lower case, one "@", a valid local
// part and domain.
type Address struct {
	Local, Domain string
}

func (a Address) String() string { return a.Local + "@" + a.Domain }

// ParseAddress validates and normalises an address such as
// "Alice@Example.TEST" to alice@example.test.
//
// The local part is a dot-atom (RFC 5322 3.4.1) whose octets may also be
// UTF-8 (RFC 6531 3.3); quoted local parts are refused because no sane
// account needs one and they complicate every comparison. Local parts are
// compared case-insensitively, as every common server does although RFC 5321
// 2.4 allows otherwise. Limits: RFC 5321 4.5.3.1.1 (64 octets local part),
// 4.5.3.1.2 (255 domain), 4.5.3.1.3 (256 path incl. brackets).
func ParseAddress(s string) (Address, error) {
	s = strings.TrimSpace(s)
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return Address{}, fmt.Errorf("%w: %q has no @", ErrBadAddress, s)
	}
	a := Address{Local: strings.ToLower(s[:at]), Domain: strings.ToLower(s[at+1:])}
	if err := checkLocal(a.Local); err != nil {
		return Address{}, fmt.Errorf("%w: %q: %v", ErrBadAddress, s, err)
	}
	if err := checkDomain(a.Domain); err != nil {
		return Address{}, fmt.Errorf("%w: %q: %v", ErrBadAddress, s, err)
	}
	if len(a.String()) > 254 {
		return Address{}, fmt.Errorf("%w: %q is longer than 254 octets", ErrBadAddress, s)
	}
	return a, nil
}

// ParseDomain validates and normalises a domain name.
func ParseDomain(s string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
	if err := checkDomain(d); err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrBadDomain, s, err)
	}
	return d, nil
}

const atextSpecials = "!#$%&'*+-/=?^_`{|}~"

func checkLocal(l string) error {
	switch {
	case l == "":
		return fmt.Errorf("empty local part")
	case len(l) > 64:
		return fmt.Errorf("local part longer than 64 octets")
	case !utf8.ValidString(l):
		return fmt.Errorf("local part is not valid UTF-8")
	case strings.HasPrefix(l, ".") || strings.HasSuffix(l, ".") || strings.Contains(l, ".."):
		return fmt.Errorf("local part has a leading, trailing or double dot")
	case strings.HasPrefix(l, "\""):
		return fmt.Errorf("quoted local parts are not supported")
	}
	for _, r := range l {
		if r >= 0x80 || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '.' || strings.ContainsRune(atextSpecials, r) {
			if r == utf8.RuneError || r < 0xa0 && r >= 0x80 {
				return fmt.Errorf("local part has a control character")
			}
			continue
		}
		return fmt.Errorf("local part has the character %q", r)
	}
	return nil
}

// checkDomain accepts an ASCII host name (RFC 1123 2.1 labels); an
// internationalised domain must be given in its A-label (xn--) form.
func checkDomain(d string) error {
	if d == "" {
		return fmt.Errorf("empty domain")
	}
	if len(d) > 253 {
		return fmt.Errorf("domain longer than 253 octets")
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" {
			return fmt.Errorf("domain has an empty label")
		}
		if len(label) > 63 {
			return fmt.Errorf("domain label longer than 63 octets")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("domain label starts or ends with a hyphen")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if c >= 0x80 {
				return fmt.Errorf("non-ASCII domain: give its xn-- form")
			}
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("domain has the character %q", c)
			}
		}
	}
	return nil
}

// subaddressSeparator splits alice+tag into the account alice and the detail
// tag, as Postfix's recipient_delimiter and Dovecot's do.
const subaddressSeparator = "+"

// splitDetail returns the base local part and the detail, if any.
func splitDetail(local string) (base, detail string, ok bool) {
	i := strings.Index(local, subaddressSeparator)
	if i <= 0 {
		return local, "", false
	}
	return local[:i], local[i+1:], true
}
