package ftpserver

import (
	"strings"
)

// cmdFEAT: RFC 2389 3: 211, one feature a line, each indented by a space.
// RFC 4217 6 requires AUTH, PBSZ and PROT to be listed.
func (ss *session) cmdFEAT(string) (*reply, error) {
	lines := []string{"Extensions supported:"}
	if ss.s.tlsConfig != nil {
		if !ss.s.implicitTLS {
			lines = append(lines, "AUTH TLS")
		}
		lines = append(lines, "PBSZ", "PROT")
	}
	hashes := make([]string, len(hashAlgos))
	for i, a := range hashAlgos {
		hashes[i] = a
		if a == ss.hashAlgo {
			hashes[i] += "*"
		}
	}
	lines = append(lines,
		"EPRT", "EPSV", // RFC 2428
		"HOST",                                // RFC 7151 3.3
		"MDTM", "SIZE", "REST STREAM", "TVFS", // RFC 3659 3.3, 4.3, 5.4, 6.3
		ss.featMLST(),                     // RFC 3659 7.8
		"MFMT",                            // draft-somers-ftp-mfxx
		"HASH "+strings.Join(hashes, ";"), // draft-bryan-ftpext-hash
		"UTF8",                            // RFC 2640 3.2
		"End")
	return &reply{code: 211, lines: lines}, nil
}

// cmdOPTS: RFC 2389 4.
func (ss *session) cmdOPTS(arg string) (*reply, error) {
	name, rest, _ := strings.Cut(arg, " ")
	rest = strings.TrimSpace(rest)
	switch strings.ToUpper(name) {
	case "UTF8":
		// RFC 2640 3.2 / draft-ietf-ftpext-utf-8-option: names are UTF-8
		// bytes either way; OFF is accepted and changes nothing.
		switch strings.ToUpper(rest) {
		case "ON", "":
			return ok(200, "UTF8 mode always on"), nil
		case "OFF":
			return ok(200, "Names are sent as stored"), nil
		}
		return nil, errArg
	case "MLST":
		return ss.optsMLST(rest)
	case "HASH":
		return ss.optsHASH(rest)
	}
	// RFC 2389 4: 501 for an OPTS of a command that has none.
	return nil, refuse(501, "No options for "+name)
}

// cmdHELP: RFC 959 4.1.3: 214.
func (ss *session) cmdHELP(arg string) (*reply, error) {
	if arg != "" {
		if c, ok := commands[strings.ToUpper(strings.TrimSpace(arg))]; ok {
			return &reply{code: 214, lines: []string{"Syntax: " + c.help}}, nil
		}
		return nil, refuse(502, "Unknown command "+arg)
	}
	lines := []string{"The following commands are recognized:"}
	verbs := sortedVerbs()
	for i := 0; i < len(verbs); i += 10 {
		lines = append(lines, strings.Join(verbs[i:min(i+10, len(verbs))], " "))
	}
	lines = append(lines, "Help OK")
	return &reply{code: 214, lines: lines}, nil
}

// cmdSYST: RFC 959 4.1.3: 215 with a system name from the Assigned Numbers
// list; "UNIX Type: L8" is what clients expect for ls-style listings.
func (ss *session) cmdSYST(string) (*reply, error) { return ok(215, "UNIX Type: L8"), nil }

// cmdNOOP: RFC 959 4.1.3.
func (ss *session) cmdNOOP(string) (*reply, error) { return ok(200, "NOOP ok"), nil }

// cmdTYPE: RFC 959 4.1.2: A [N] (ASCII, non-print), I (image) and L 8 are
// served; A T, A C, E and L with another byte size are not (504).
func (ss *session) cmdTYPE(arg string) (*reply, error) {
	f := strings.Fields(strings.ToUpper(arg))
	switch {
	case len(f) == 1 && f[0] == "A", len(f) == 2 && f[0] == "A" && f[1] == "N":
		ss.typ = typeASCII
		return ok(200, "Type set to A"), nil
	case len(f) == 1 && f[0] == "I", len(f) == 2 && f[0] == "L" && f[1] == "8":
		ss.typ = typeImage
		return ok(200, "Type set to I"), nil
	case len(f) >= 1 && (f[0] == "A" || f[0] == "E") && len(f) <= 2,
		len(f) == 2 && f[0] == "L", len(f) == 1 && f[0] == "L":
		return nil, refuse(504, "Type not supported; use A or I")
	}
	return nil, errArg
}

// cmdSTRU: RFC 959 4.1.2: File only; Record and Page are 504.
func (ss *session) cmdSTRU(arg string) (*reply, error) {
	switch strings.ToUpper(strings.TrimSpace(arg)) {
	case "F":
		return ok(200, "Structure set to F"), nil
	case "R", "P":
		return nil, refuse(504, "Only STRU F is supported")
	}
	return nil, errArg
}

// cmdMODE: RFC 959 4.1.2: Stream only; Block and Compressed are 504.
func (ss *session) cmdMODE(arg string) (*reply, error) {
	switch strings.ToUpper(strings.TrimSpace(arg)) {
	case "S":
		return ok(200, "Mode set to S"), nil
	case "B", "C":
		return nil, refuse(504, "Only MODE S is supported")
	}
	return nil, errArg
}
