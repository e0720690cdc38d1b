#!/bin/sh
# Regenerates rfc-client-lines.txt: every client line ("C:") of the examples in the IMAP RFCs the
# server implements, as "rfcNNNN.txt:LINE: text". Run from this directory:
#
#	sh extract-rfc-client-lines.sh /work/shared/rfc > rfc-client-lines.txt
#
# Rules (awk below): a line matches when it starts, after spaces and an optional "Example:", with
# "C:" followed by a space or the end of the line; exactly one space after "C:" is dropped (a
# second one is data: "C:  (\Seen) ..." continues a command after a literal). A following line
# that is indented deeper than the "C:", not blank and not an "S:" line, is the RFC wrapping a long
# line: it is joined with one space, or with none after a trailing "," (a wrapped sequence set).
# A page break, a blank line or an "S:" line ends the joining.
dir=${1:-/work/shared/rfc}
for f in rfc9051 rfc3501 rfc2177 rfc2342 rfc2971 rfc3348 rfc3502 rfc3516 rfc3691 rfc4315 rfc4466 \
	rfc4731 rfc4959 rfc4978 rfc5161 rfc5182 rfc5258 rfc5819 rfc6154 rfc6851 rfc6855 rfc7162 rfc7888 \
	rfc7889 rfc9208; do
	awk -v F=$f '
	function flush() { if (p != "") print p; p = "" }
	{ sub(/\r$/, ""); sub(/^\xef\xbb\xbf/, "") }
	/^ *(Example: *)?C:( |$)/ {
		flush(); c = index($0, "C:"); t = substr($0, c + 2); sub(/^ /, "", t)
		p = F ".txt:" NR ": " t; next
	}
	p != "" && $0 !~ /^ *$/ && $0 !~ /^ *(Example: *)?S:/ && match($0, /^ */) && RLENGTH >= c {
		t = $0; sub(/^ +/, "", t); p = p ((p ~ /,$/) ? "" : " ") t; next
	}
	{ flush() }
	END { flush() }' "$dir/$f.txt"
done
