package message

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The golden corpus (testdata/mime, copied byte for byte from shared/testdata/mime) holds messages and Dovecot
// 2.3.19.1's answers to FETCH ENVELOPE, BODYSTRUCTURE, BODY, RFC822.SIZE and BODY[section] for every part. The
// test compares ours after normalising exactly the differences the corpus README allows: letter case of media
// types, subtypes, parameter names and encodings (normBody), order of body parameters, NIL versus absent trailing
// extension data, quoted string versus literal (parseIMAP keeps no form). Everything else must be equal, or be
// listed in goldenAllow with the answer we give instead and why it is also correct.

// goldenAllow lists deliberate differences from Dovecot on malformed input. Each entry names the message, the
// FETCH item, our (normalised) answer, and why. The test fails if our answer is not exactly that or if Dovecot's
// answer turns out equal, so an entry can neither hide a regression nor outlive its reason.
var goldenAllow = []struct {
	file, item, ours, why string
}{}

type goldenExchange struct {
	cmd   string
	items map[string]ival // FETCH data items of the (single) untagged response
}

// readGolden splits a .dovecot.txt file into its commands and FETCH responses.
func readGolden(raw string) ([]goldenExchange, error) {
	var out []goldenExchange
	i := 0
	line := func() string {
		end := strings.Index(raw[i:], "\r\n")
		if end < 0 {
			end = len(raw) - i
			l := raw[i:]
			i = len(raw)
			return l
		}
		l := raw[i : i+end]
		i += end + 2
		return l
	}
	fetchPrefix := regexp.MustCompile(`^\* \d+ FETCH `)
	for i < len(raw) {
		l := line()
		switch {
		case strings.HasPrefix(l, "# "), l == "":
			continue
		case strings.HasPrefix(l, "C: "):
		default:
			return nil, fmt.Errorf("unexpected line %q", l)
		}
		ex := goldenExchange{cmd: strings.TrimPrefix(l, "C: "), items: map[string]ival{}}
		for strings.HasPrefix(raw[i:], "* ") {
			m := fetchPrefix.FindString(raw[i:])
			if m == "" {
				return nil, fmt.Errorf("not a FETCH response at %d", i)
			}
			r := imapReader{s: raw, i: i + len(m)}
			v, err := r.value()
			if err != nil {
				return nil, err
			}
			if v.kind != 'l' || len(v.list)%2 != 0 {
				return nil, fmt.Errorf("FETCH data is not key/value pairs: %v", v)
			}
			for k := 0; k < len(v.list); k += 2 {
				ex.items[strings.ToUpper(v.list[k].s)] = v.list[k+1]
			}
			i = r.i
			if !strings.HasPrefix(raw[i:], "\r\n") {
				return nil, fmt.Errorf("no CRLF after FETCH response at %d", i)
			}
			i += 2
		}
		if l := line(); !strings.HasPrefix(l, "R: ") {
			return nil, fmt.Errorf("expected R: line after %q, got %q", ex.cmd, l)
		}
		out = append(out, ex)
	}
	return out, nil
}

var sectionCmd = regexp.MustCompile(`^UID FETCH \$UID \(BODY\.PEEK\[(.*)\]\)$`)

// goldenCompare returns, per FETCH item, our normalised answer and Dovecot's, for every item of the golden file.
func goldenCompare(t *testing.T, emlPath string) (items []string, ours, theirs map[string]string) {
	t.Helper()
	raw, err := os.ReadFile(emlPath)
	if err != nil {
		t.Fatal(err)
	}
	goldRaw, err := os.ReadFile(strings.TrimSuffix(emlPath, ".eml") + ".dovecot.txt")
	if err != nil {
		t.Fatal(err)
	}
	exchanges, err := readGolden(string(goldRaw))
	if err != nil {
		t.Fatalf("golden file: %v", err)
	}
	m, err := Parse(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	ours, theirs = map[string]string{}, map[string]string{}
	add := func(item, our, their string) {
		items = append(items, item)
		ours[item], theirs[item] = our, their
	}
	mustIMAP := func(what string, b []byte) ival {
		v, err := parseIMAP(string(b))
		if err != nil {
			t.Fatalf("our %s is not IMAP syntax: %v\n%s", what, err, b)
		}
		return v
	}
	for _, ex := range exchanges {
		if ex.cmd == "UID FETCH $UID (ENVELOPE BODYSTRUCTURE BODY RFC822.SIZE)" {
			add("RFC822.SIZE", fmt.Sprint(m.Size), ex.items["RFC822.SIZE"].String())
			add("ENVELOPE", mustIMAP("ENVELOPE", m.IMAPEnvelope()).String(), ex.items["ENVELOPE"].String())
			add("BODYSTRUCTURE", normBody(mustIMAP("BODYSTRUCTURE", m.IMAPBodyStructure(true))).String(),
				normBody(ex.items["BODYSTRUCTURE"]).String())
			add("BODY", normBody(mustIMAP("BODY", m.IMAPBodyStructure(false))).String(), normBody(ex.items["BODY"]).String())
			continue
		}
		sm := sectionCmd.FindStringSubmatch(ex.cmd)
		if sm == nil {
			t.Fatalf("unknown golden command %q", ex.cmd)
		}
		item := "BODY[" + sm[1] + "]"
		want, ok := ex.items[item]
		if !ok {
			t.Fatalf("golden has no %s in its answer to %q", item, ex.cmd)
		}
		sec, err := ParseSection(sm[1])
		if err != nil {
			t.Fatalf("ParseSection(%q): %v", sm[1], err)
		}
		span, err := m.Section(sec)
		if err != nil {
			add(item, "error: "+err.Error(), want.String())
			continue
		}
		got := raw[span.Start:span.End]
		if span.Filter {
			got = sec.Filter(got)
		}
		add(item, ival{kind: 's', s: string(got)}.String(), want.String())
	}
	return items, ours, theirs
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/mime/*.eml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	allowed := map[string]int{} // file+item -> index in goldenAllow
	for i, a := range goldenAllow {
		allowed[a.file+"\x00"+a.item] = i
	}
	used := map[int]bool{}
	equal, withAllowed := 0, 0
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".eml")
		clean := true
		okRun := t.Run(name, func(t *testing.T) {
			items, ours, theirs := goldenCompare(t, f)
			for _, item := range items {
				if i, ok := allowed[name+"\x00"+item]; ok {
					used[i] = true
					clean = false
					a := goldenAllow[i]
					if ours[item] != a.ours {
						t.Errorf("%s: allow-listed answer changed\n ours:   %s\n listed: %s", item, ours[item], a.ours)
					}
					if ours[item] == theirs[item] {
						t.Errorf("%s: allow-list entry is stale, we now agree with Dovecot", item)
					}
					continue
				}
				if ours[item] != theirs[item] {
					t.Errorf("%s differs\n ours:    %s\n dovecot: %s", item, ours[item], theirs[item])
				}
			}
		})
		switch {
		case okRun && clean:
			equal++
		case okRun:
			withAllowed++
		}
	}
	for i, a := range goldenAllow {
		if !used[i] {
			t.Errorf("allow-list entry %s %s matched no comparison", a.file, a.item)
		}
	}
	t.Logf("golden: %d of %d messages equal to Dovecot after normalisation, %d more equal but for allow-listed differences",
		equal, len(files), withAllowed)
}
