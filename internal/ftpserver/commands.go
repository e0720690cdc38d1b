package ftpserver

// flag is a rule the dispatcher applies to a verb before its handler runs.
type flag uint16

const (
	// preAuth: allowed before login; every other verb gets 530 (RFC 959
	// 4.2) until PASS succeeds.
	preAuth flag = 1 << iota
	// duringTransfer: served at once while a transfer runs (RFC 959 4.1.3:
	// ABOR, STAT; QUIT); every other verb waits for the transfer's final
	// reply, so replies stay in command order (RFC 959 5.4).
	duringTransfer
	// needArg: 501 without an argument.
	needArg
	// writes: changes the tree; 550 at once on a read-only tree, before
	// any data connection is opened.
	writes
	// keepsRest: does not clear a pending REST marker. RFC 3659 5.3 wants
	// REST right before the transfer, but clients put data-connection setup
	// (PASV, PORT, TYPE) between them.
	keepsRest
)

type handler func(ss *session, arg string) (*reply, error)

type command struct {
	run   handler
	flags flag
	help  string // syntax for HELP <verb>
}

// commands is the one table of verbs (STYLE.md 2). A verb missing here gets
// 500 (RFC 959 4.2); implemented-but-refused verbs (SMNT, CCC) are rows
// that say so.
var commands map[string]command

func init() {
	setup := preAuth | keepsRest
	commands = map[string]command{
		// RFC 959 4.1.1 access control.
		"USER": {(*session).cmdUSER, preAuth | needArg, "USER <address>"},
		"PASS": {(*session).cmdPASS, preAuth, "PASS <password>"},
		"ACCT": {(*session).cmdACCT, preAuth, "ACCT <account>"},
		"CWD":  {(*session).cmdCWD, needArg, "CWD <path>"},
		"XCWD": {(*session).cmdCWD, needArg, "XCWD <path>"},
		"CDUP": {(*session).cmdCDUP, 0, "CDUP"},
		"XCUP": {(*session).cmdCDUP, 0, "XCUP"},
		"SMNT": {(*session).cmdSMNT, 0, "SMNT <path> (not implemented)"},
		"REIN": {(*session).cmdREIN, preAuth, "REIN"},
		"QUIT": {(*session).cmdQUIT, preAuth | duringTransfer, "QUIT"},
		// RFC 959 4.1.2 transfer parameters.
		"PORT": {(*session).cmdPORT, keepsRest | needArg, "PORT h1,h2,h3,h4,p1,p2"},
		"PASV": {(*session).cmdPASV, keepsRest, "PASV"},
		"TYPE": {(*session).cmdTYPE, setup | needArg, "TYPE A [N] | I | L 8"},
		"STRU": {(*session).cmdSTRU, setup | needArg, "STRU F"},
		"MODE": {(*session).cmdMODE, setup | needArg, "MODE S"},
		// RFC 2428.
		"EPRT": {(*session).cmdEPRT, keepsRest | needArg, "EPRT |af|addr|port|"},
		"EPSV": {(*session).cmdEPSV, keepsRest, "EPSV [1 | 2 | ALL]"},
		// RFC 959 4.1.3 service commands.
		"RETR": {(*session).cmdRETR, needArg, "RETR <path>"},
		"STOR": {(*session).cmdSTOR, needArg | writes, "STOR <path>"},
		"STOU": {(*session).cmdSTOU, writes, "STOU [<name>]"},
		"APPE": {(*session).cmdAPPE, needArg | writes, "APPE <path>"},
		"ALLO": {(*session).cmdALLO, keepsRest | needArg, "ALLO <bytes>"},
		"REST": {(*session).cmdREST, keepsRest | needArg, "REST <offset>"},
		"RNFR": {(*session).cmdRNFR, needArg | writes, "RNFR <path>"},
		"RNTO": {(*session).cmdRNTO, needArg | writes, "RNTO <path>"},
		"ABOR": {(*session).cmdABOR, duringTransfer, "ABOR"},
		"DELE": {(*session).cmdDELE, needArg | writes, "DELE <path>"},
		"RMD":  {(*session).cmdRMD, needArg | writes, "RMD <path>"},
		"XRMD": {(*session).cmdRMD, needArg | writes, "XRMD <path>"},
		"MKD":  {(*session).cmdMKD, needArg | writes, "MKD <path>"},
		"XMKD": {(*session).cmdMKD, needArg | writes, "XMKD <path>"},
		"PWD":  {(*session).cmdPWD, 0, "PWD"},
		"XPWD": {(*session).cmdPWD, 0, "XPWD"},
		"LIST": {(*session).cmdLIST, 0, "LIST [<path>]"},
		"NLST": {(*session).cmdNLST, 0, "NLST [<path>]"},
		"SITE": {(*session).cmdSITE, needArg, "SITE HELP | CHMOD <mode> <path>"},
		"SYST": {(*session).cmdSYST, preAuth, "SYST"},
		"STAT": {(*session).cmdSTAT, duringTransfer, "STAT [<path>]"},
		"HELP": {(*session).cmdHELP, preAuth, "HELP [<verb>]"},
		"NOOP": {(*session).cmdNOOP, preAuth | keepsRest, "NOOP"},
		// RFC 2228 / RFC 4217.
		"AUTH": {(*session).cmdAUTH, preAuth | needArg, "AUTH TLS"},
		"PBSZ": {(*session).cmdPBSZ, setup | needArg, "PBSZ 0"},
		"PROT": {(*session).cmdPROT, setup | needArg, "PROT C | P"},
		"CCC":  {(*session).cmdCCC, preAuth, "CCC (refused)"},
		// RFC 2389.
		"FEAT": {(*session).cmdFEAT, preAuth | keepsRest, "FEAT"},
		"OPTS": {(*session).cmdOPTS, preAuth | keepsRest | needArg, "OPTS UTF8 ON | MLST <facts> | HASH <algo>"},
		// RFC 3659.
		"SIZE": {(*session).cmdSIZE, keepsRest | needArg, "SIZE <path>"},
		"MDTM": {(*session).cmdMDTM, keepsRest | needArg, "MDTM <path>"},
		"MLST": {(*session).cmdMLST, 0, "MLST [<path>]"},
		"MLSD": {(*session).cmdMLSD, 0, "MLSD [<path>]"},
		// RFC 7151.
		"HOST": {(*session).cmdHOST, preAuth | needArg, "HOST <hostname>"},
		// draft-somers-ftp-mfxx.
		"MFMT": {(*session).cmdMFMT, needArg | writes, "MFMT YYYYMMDDHHMMSS <path>"},
		// draft-bryan-ftpext-hash.
		"HASH": {(*session).cmdHASH, needArg, "HASH <path>"},
	}
}
