package imapserver

import (
	"errors"
	"slices"
	"time"

	"posta/internal/imapwire"
	"posta/internal/mailstore"
)

// bulkMetas is how many messages make reading their rows a range at a time
// cheaper than one query each.
const bulkMetas = 64

// metas returns the current metadata of uids (ascending); expunged ones are
// missing from the map.
func (ss *session) metas(uids []uint32) (map[uint32]mailstore.MessageMeta, error) {
	list, err := ss.s.o.Store.Metas(ss.c.ctx, ss.mb.id, uids)
	if err != nil {
		return nil, err
	}
	out := make(map[uint32]mailstore.MessageMeta, len(list))
	for _, m := range list {
		out[m.UID] = m
	}
	return out, nil
}

// rowChunk is how many messages' store rows FETCH reads at once.
const rowChunk = 256

// needsRow reports whether any item needs more than a message's metadata.
func needsRow(items []imapwire.FetchItem) bool {
	for _, it := range items {
		switch it.Attr {
		case imapwire.FetchFlags, imapwire.FetchUID, imapwire.FetchInternalDate, imapwire.FetchRFC822Size, imapwire.FetchModSeq:
		default:
			return true
		}
	}
	return false
}

func hasItem(items []imapwire.FetchItem, a imapwire.FetchAttr) bool {
	return slices.ContainsFunc(items, func(it imapwire.FetchItem) bool { return it.Attr == a })
}

// fetch answers FETCH and UID FETCH (RFC 9051 6.4.5, 6.4.9), with
// CHANGEDSINCE and VANISHED (RFC 7162 3.1.4.1, 3.2.6).
func (ss *session) fetch(cmd *imapwire.Command) error {
	f := cmd.Fetch
	if !cmd.UID {
		if err := ss.checkSeqs(f.Seq); err != nil {
			return err
		}
	}
	if f.Vanished && (!cmd.UID || !ss.qresync || f.ChangedSince == 0) {
		// RFC 7162 3.2.6: VANISHED needs UID FETCH, QRESYNC and CHANGEDSINCE.
		return bad("VANISHED needs UID FETCH with CHANGEDSINCE after ENABLE QRESYNC")
	}
	items := f.Items
	if cmd.UID && !hasItem(items, imapwire.FetchUID) {
		// RFC 9051 6.4.9: UID FETCH always returns the UID.
		items = append([]imapwire.FetchItem{{Attr: imapwire.FetchUID}}, items...)
	}
	if f.ChangedSince > 0 {
		ss.condstore = true // RFC 7162 3.1: CHANGEDSINCE enables CONDSTORE
	}
	uids := ss.uidsOf(f.Seq, cmd.UID)
	if f.Vanished {
		_, gone, err := ss.s.o.Store.Changes(ss.c.ctx, ss.mb.id, f.ChangedSince)
		if err != nil {
			return err
		}
		var vanished []uint32
		for _, u := range gone {
			if f.Seq.Contains(u, ss.mb.lastUID()) {
				vanished = append(vanished, u)
			}
		}
		if len(vanished) > 0 {
			if err := ss.c.enc.Vanished(imapwire.SeqSetOf(vanished...), true); err != nil {
				return err
			}
		}
	}
	if len(uids) == 0 {
		return nil
	}
	metas, err := ss.metas(uids)
	if err != nil {
		return err
	}
	if needsSeen(items) && !ss.mb.readOnly {
		// RFC 9051 6.4.5: BODY[...] without PEEK sets \Seen; the new flags
		// go out in the same FETCH response.
		var unseen []uint32
		for _, u := range uids {
			if m, ok := metas[u]; ok && m.Flags.System&mailstore.Seen == 0 {
				unseen = append(unseen, u)
			}
		}
		if len(unseen) > 0 {
			updated, _, err := ss.s.o.Store.SetFlags(ss.ctx(), ss.mb.id, unseen, mailstore.FlagsAdd, mailstore.Flags{System: mailstore.Seen}, 0)
			if err != nil {
				return err
			}
			for _, m := range updated {
				metas[m.UID] = m
			}
			if !hasItem(items, imapwire.FetchFlags) {
				items = append(items, imapwire.FetchItem{Attr: imapwire.FetchFlags})
			}
		}
	}
	if (f.ChangedSince > 0 || ss.condstore && hasItem(items, imapwire.FetchFlags)) && !hasItem(items, imapwire.FetchModSeq) {
		// RFC 7162 3.1.4.1: CHANGEDSINCE implies MODSEQ, and so do FLAGS
		// once CONDSTORE is on (including those \Seen just changed).
		items = append(items, imapwire.FetchItem{Attr: imapwire.FetchModSeq})
	}
	if hasItem(items, imapwire.FetchFlags) && ss.wantsUID() && !hasItem(items, imapwire.FetchUID) {
		items = append([]imapwire.FetchItem{{Attr: imapwire.FetchUID}}, items...)
	}
	ctx := ss.c.ctx
	// Items beyond the metadata need each message's store row; for many
	// messages read the rows a range at a time, not one query each.
	var rows map[uint32]*mailstore.Message
	bulkRows := len(uids) > bulkMetas && needsRow(items)
	for i, u := range uids {
		meta, ok := metas[u]
		if !ok || f.ChangedSince > 0 && meta.ModSeq <= f.ChangedSince {
			continue
		}
		if bulkRows && rows[u] == nil {
			chunk := uids[i:min(i+rowChunk, len(uids))]
			list, err := ss.s.o.Store.MessageRange(ctx, ss.mb.id, chunk[0], chunk[len(chunk)-1])
			if err != nil {
				return err
			}
			rows = make(map[uint32]*mailstore.Message, len(list))
			for j := range list {
				rows[list[j].UID] = &list[j]
			}
		}
		m := newMsg(ss.s.o.Store, ss.mb.id, uint32(ss.mb.view.seq(u)), meta)
		if r := rows[u]; r != nil {
			m.stored = r
		}
		err := writeFetch(ctx, ss.c.enc, m, items, ss.rev2)
		m.Close()
		if err != nil {
			if errors.Is(err, mailstore.ErrNoMessage) {
				continue // expunged meanwhile (RFC 9051 7.5.1 lets us leave it out)
			}
			if errors.Is(err, errFetchBroken) {
				// Half a FETCH response is on the wire: nothing more can be
				// said on this connection.
				return &abortError{err: err}
			}
			return err
		}
		if ss.condstore {
			ss.modseq = max(ss.modseq, meta.ModSeq)
		}
	}
	return nil
}

// store answers STORE and UID STORE (RFC 9051 6.4.6), with UNCHANGEDSINCE
// (RFC 7162 3.1.3).
func (ss *session) store(cmd *imapwire.Command) error {
	st := cmd.Store
	if !cmd.UID {
		if err := ss.checkSeqs(st.Seq); err != nil {
			return err
		}
	}
	flags, err := parseFlags(st.Flags)
	if err != nil {
		return bad("Invalid flag")
	}
	if st.HasUnchangedSince {
		ss.condstore = true
	}
	uids := ss.uidsOf(st.Seq, cmd.UID)
	if len(uids) == 0 {
		return nil
	}
	op := map[imapwire.StoreOp]mailstore.FlagOp{
		imapwire.StoreReplace: mailstore.FlagsReplace, imapwire.StoreAdd: mailstore.FlagsAdd, imapwire.StoreRemove: mailstore.FlagsRemove,
	}[st.Op]
	var updated []mailstore.MessageMeta
	var modified []uint32
	if st.HasUnchangedSince && st.UnchangedSince == 0 {
		// RFC 7162 3.1.3: every message has a MODSEQ above 0.
		modified = uids
	} else {
		updated, modified, err = ss.s.o.Store.SetFlags(ss.ctx(), ss.mb.id, uids, op, flags, st.UnchangedSince)
		if err != nil {
			return err
		}
	}
	for _, m := range updated {
		if err := ss.newKeywords(m.Flags.Keywords); err != nil {
			return err
		}
	}
	// RFC 9051 6.4.6: FETCH with the new flags unless .SILENT; RFC 7162
	// 3.1.3: with CONDSTORE, MODSEQ too, and even under .SILENT for the
	// messages whose MODSEQ changed.
	report := map[uint32]mailstore.MessageMeta{}
	for _, m := range updated {
		report[m.UID] = m
	}
	if !st.Silent {
		var rest []uint32
		for _, u := range uids {
			if _, ok := report[u]; !ok && !slices.Contains(modified, u) {
				rest = append(rest, u)
			}
		}
		if len(rest) > 0 {
			others, err := ss.metas(rest)
			if err != nil {
				return err
			}
			for u, m := range others {
				report[u] = m
			}
		}
	}
	for _, u := range uids {
		m, ok := report[u]
		if !ok {
			continue
		}
		if st.Silent && !ss.condstore {
			continue
		}
		fw := ss.c.enc.Fetch(uint32(ss.mb.view.seq(u)))
		if cmd.UID || ss.wantsUID() {
			fw.UID(u)
		}
		if !st.Silent {
			fw.Flags(flagList(m.Flags)...)
		}
		if ss.condstore {
			fw.ModSeq(m.ModSeq)
			ss.modseq = max(ss.modseq, m.ModSeq)
		}
		if err := fw.Close(); err != nil {
			return err
		}
	}
	if len(modified) > 0 {
		// RFC 7162 3.1.3: [MODIFIED set], UIDs for UID STORE.
		set := modified
		if !cmd.UID {
			set = make([]uint32, 0, len(modified))
			for _, u := range modified {
				set = append(set, uint32(ss.mb.view.seq(u)))
			}
		}
		ss.okCode, ss.okText = imapwire.CodeModified(imapwire.SeqSetOf(set...)), "Conditional STORE failed for some messages"
	}
	return nil
}

// search answers SEARCH and UID SEARCH (RFC 9051 6.4.4), with ESEARCH
// (RFC 4731), SEARCHRES (RFC 5182) and MODSEQ (RFC 7162 3.1.5).
func (ss *session) search(cmd *imapwire.Command) error {
	s := cmd.Search
	switch cs := s.Charset; {
	case cs == "", equalFoldASCII(cs, "UTF-8"), equalFoldASCII(cs, "US-ASCII"):
	default:
		// RFC 9051 6.4.4: BADCHARSET lists what we do support.
		return no(imapwire.CodeBadCharsets("UTF-8", "US-ASCII"), "Unsupported charset")
	}
	withModSeq := searchHasModSeq(s.Keys)
	if withModSeq {
		ss.condstore = true
	}
	all, err := ss.s.o.Store.Messages(ss.c.ctx, ss.mb.id)
	if err != nil {
		return err
	}
	v := ss.mb.view
	env := &searchEnv{MaxSeq: uint32(v.exists()), MaxUID: ss.mb.lastUID(), Saved: ss.saved}
	var hits []uint32 // UIDs, ascending
	var highest uint64
	ctx := ss.c.ctx
	for _, meta := range all {
		seq := v.seq(meta.UID)
		if seq == 0 {
			continue // not yet announced (RFC 9051 7.5.1: numbers are the client's)
		}
		m := newMsg(ss.s.o.Store, ss.mb.id, uint32(seq), meta)
		ok, err := matchSearch(ctx, s.Keys, m, env)
		m.Close()
		if err != nil {
			if errors.Is(err, mailstore.ErrNoMessage) {
				continue
			}
			return err
		}
		if ok {
			hits = append(hits, meta.UID)
			highest = max(highest, meta.ModSeq)
		}
	}
	if !withModSeq {
		highest = 0
	}
	nums := hits
	if !cmd.UID {
		nums = make([]uint32, len(hits))
		for i, u := range hits {
			nums[i] = uint32(v.seq(u))
		}
	}
	ret := s.Return
	esearch := s.ESearch || ss.rev2 // RFC 9051 7.3.4: IMAP4rev2 answers SEARCH with ESEARCH
	if esearch && ret == 0 {
		ret = imapwire.ReturnAll // RFC 4731 3.1: RETURN () means ALL
	}
	if ret&imapwire.ReturnSave != 0 {
		// RFC 5182 2.4: with only MIN and/or MAX, only those are saved.
		saved := hits
		if ret&(imapwire.ReturnAll|imapwire.ReturnCount) == 0 && ret&(imapwire.ReturnMin|imapwire.ReturnMax) != 0 && len(hits) > 0 {
			saved = nil
			if ret&imapwire.ReturnMin != 0 {
				saved = append(saved, hits[0])
			}
			if ret&imapwire.ReturnMax != 0 && (len(saved) == 0 || saved[0] != hits[len(hits)-1]) {
				saved = append(saved, hits[len(hits)-1])
			}
		}
		ss.saved = slices.Clone(saved)
		if ss.saved == nil {
			ss.saved = []uint32{}
		}
		if ret&^imapwire.ReturnSave == 0 {
			return nil // RFC 5182 2.4: SAVE alone returns no ESEARCH
		}
	}
	if !esearch {
		return ss.c.enc.Search(nums, highest)
	}
	r := imapwire.ESearchData{Tag: cmd.Tag, UID: cmd.UID, Return: ret, ModSeq: highest}
	if len(nums) > 0 {
		r.Min, r.Max = nums[0], nums[len(nums)-1]
		if !cmd.UID {
			r.Min, r.Max = slices.Min(nums), slices.Max(nums)
		}
		r.All = imapwire.SeqSetOf(nums...)
	}
	r.Count = uint32(len(nums))
	return ss.c.enc.ESearch(r)
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

func searchHasModSeq(keys []imapwire.SearchKey) bool {
	for _, k := range keys {
		if k.Op == imapwire.SearchModSeq || searchHasModSeq(k.Keys) {
			return true
		}
	}
	return false
}

// copyCmd answers COPY, MOVE and their UID forms (RFC 9051 6.4.7, 6.4.8;
// RFC 6851; COPYUID from RFC 4315 3).
func (ss *session) copyCmd(cmd *imapwire.Command) error {
	cp := cmd.Copy
	if !cmd.UID {
		if err := ss.checkSeqs(cp.Seq); err != nil {
			return err
		}
	}
	name, err := mailboxName(cp.Mailbox)
	if err != nil {
		return err
	}
	dest, err := ss.s.o.Store.Mailbox(ss.c.ctx, ss.account, name)
	if errors.Is(err, mailstore.ErrNoMailbox) {
		return errTryCreate // RFC 9051 6.4.7
	}
	if err != nil {
		return err
	}
	uids := ss.uidsOf(cp.Seq, cmd.UID)
	if len(uids) == 0 {
		return nil
	}
	move := cmd.Name == "MOVE" || cmd.Name == "UID MOVE"
	if !move {
		if err := ss.s.o.Spool.CheckQuota(ss.c.ctx, ss.account, 0); err != nil {
			return err
		}
	}
	var res mailstore.AppendResult
	var src []uint32
	if move {
		res, src, err = ss.s.o.Store.Move(ss.ctx(), ss.mb.id, uids, dest.ID)
	} else {
		res, src, err = ss.s.o.Store.Copy(ss.ctx(), ss.mb.id, uids, dest.ID)
	}
	if err != nil {
		return err
	}
	if len(src) == 0 {
		return nil
	}
	code := imapwire.CodeCopyUID(res.UIDValidity, imapwire.SeqSetOf(src...), imapwire.SeqSetOf(res.UIDs...))
	if move {
		// RFC 6851 4.3: COPYUID in an untagged OK before the expunges.
		return ss.c.enc.Untagged(imapwire.OK, code, "Moved")
	}
	ss.okCode = code
	return nil
}

// appendCmd answers APPEND (RFC 9051 6.3.12) with MULTIAPPEND (RFC 3502),
// BINARY literals (RFC 3516 4.2) and UTF8 (RFC 6855 4); APPENDUID from
// RFC 4315 3. All messages are stored in one transaction or none.
func (ss *session) appendCmd(cmd *imapwire.Command) error {
	// On an error here the messages are not read: the Decoder skips the
	// rest of the command (a synchronizing literal never got its "+").
	name, err := mailboxName(cmd.Mailbox)
	if err != nil {
		return err
	}
	if _, err := ss.s.o.Store.Mailbox(ss.c.ctx, ss.account, name); errors.Is(err, mailstore.ErrNoMailbox) {
		return errTryCreate // RFC 9051 6.3.12
	} else if err != nil {
		return err
	}
	var msgs []mailstore.NewMessage
	var releases []func()
	releaseAll := func() {
		for _, r := range releases {
			r()
		}
	}
	var total int64
	for {
		m, err := ss.c.dec.NextMessage()
		if err != nil {
			releaseAll()
			var se *imapwire.SyntaxError
			if errors.As(err, &se) {
				if se.Fatal {
					return &abortError{bye: se.Msg}
				}
				if se.Err != nil {
					return se.Err
				}
				return &replyError{status: se.Status, code: se.Code, text: se.Msg}
			}
			return &abortError{err: err}
		}
		if m == nil {
			break
		}
		flags, ferr := parseFlags(m.Flags)
		date := m.Date
		if date.IsZero() {
			date = time.Now()
		}
		nm, release, err := ss.s.o.Spool.Spool(m.Body, m.Size, date)
		releases = append(releases, release)
		if err != nil {
			releaseAll()
			return &abortError{err: err}
		}
		if ferr != nil {
			// The literal is read; the command fails as a whole.
			releaseAll()
			return bad("Invalid flag in APPEND")
		}
		nm.Flags = flags
		msgs = append(msgs, nm)
		total += m.Size
	}
	if len(msgs) == 0 {
		return bad("APPEND without a message")
	}
	if err := ss.s.o.Spool.CheckQuota(ss.c.ctx, ss.account, total); err != nil {
		releaseAll()
		return err
	}
	res, err := ss.s.o.Store.Append(ss.ctx(), ss.account, name, msgs...)
	if err != nil {
		releaseAll()
		return err
	}
	ss.okCode = imapwire.CodeAppendUID(res.UIDValidity, imapwire.SeqSetOf(res.UIDs...))
	return nil
}
