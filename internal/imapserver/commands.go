package imapserver

import "posta/internal/imapwire"

// flag says where a command may run and what the dispatcher does around it.
type flag uint16

const (
	notAuth      flag = 1 << iota // Not Authenticated state (RFC 9051 6.2)
	needAuth                      // Authenticated or Selected state (RFC 9051 6.3)
	needSelected                  // Selected state only (RFC 9051 6.4)
	anyState                      // any state (RFC 9051 6.1)
	writable                      // the selected mailbox must be read-write
	seqNums                       // uses sequence numbers: no EXPUNGE while it runs (RFC 9051 7.5.1)
	noUpdates                     // sends no pending updates before its tagged reply
)

type command struct {
	run   func(*session, *imapwire.Command) error
	flags flag
}

// commands is every verb the server serves, one row each; UID forms are
// rows of their own (RFC 9051 6.4.9).
var commands map[string]command

func init() {
	commands = map[string]command{
		// RFC 9051 6.1: any state.
		"CAPABILITY": {(*session).capability, anyState},
		"NOOP":       {(*session).noop, anyState},
		"LOGOUT":     {(*session).logout, anyState | noUpdates},
		"ID":         {(*session).id_, anyState}, // RFC 2971
		// RFC 9051 6.2: not authenticated.
		"STARTTLS":     {(*session).starttls, notAuth | noUpdates},
		"AUTHENTICATE": {(*session).authenticate, notAuth},
		"LOGIN":        {(*session).login, notAuth},
		// RFC 9051 6.3: authenticated.
		"ENABLE":       {(*session).enable, needAuth},
		"SELECT":       {(*session).selectCmd, needAuth | noUpdates},
		"EXAMINE":      {(*session).selectCmd, needAuth | noUpdates},
		"CREATE":       {(*session).create, needAuth},
		"DELETE":       {(*session).delete, needAuth},
		"RENAME":       {(*session).rename, needAuth},
		"SUBSCRIBE":    {(*session).subscribe, needAuth},
		"UNSUBSCRIBE":  {(*session).subscribe, needAuth},
		"LIST":         {(*session).list, needAuth},
		"LSUB":         {(*session).list, needAuth},
		"NAMESPACE":    {(*session).namespace, needAuth},
		"STATUS":       {(*session).status, needAuth},
		"APPEND":       {(*session).appendCmd, needAuth},
		"IDLE":         {(*session).idle, needAuth},
		"COMPRESS":     {(*session).compress, needAuth | noUpdates}, // RFC 4978
		"GETQUOTA":     {(*session).getQuota, needAuth},             // RFC 9208
		"GETQUOTAROOT": {(*session).getQuotaRoot, needAuth},
		"SETQUOTA":     {(*session).setQuota, needAuth},
		// RFC 9051 6.4: selected.
		"CHECK":       {(*session).noop, needSelected},
		"CLOSE":       {(*session).closeCmd, needSelected | noUpdates},
		"UNSELECT":    {(*session).unselect, needSelected | noUpdates},
		"EXPUNGE":     {(*session).expunge, needSelected | writable},
		"UID EXPUNGE": {(*session).expunge, needSelected | writable},
		"SEARCH":      {(*session).search, needSelected | seqNums},
		"UID SEARCH":  {(*session).search, needSelected},
		"FETCH":       {(*session).fetch, needSelected | seqNums},
		"UID FETCH":   {(*session).fetch, needSelected},
		"STORE":       {(*session).store, needSelected | writable | seqNums},
		"UID STORE":   {(*session).store, needSelected | writable},
		"COPY":        {(*session).copyCmd, needSelected},
		"UID COPY":    {(*session).copyCmd, needSelected},
		"MOVE":        {(*session).copyCmd, needSelected | writable},
		"UID MOVE":    {(*session).copyCmd, needSelected | writable},
	}
}
